/* SPDX-License-Identifier: MIT */
/*
 * What the reports written from signal handlers share (the stack-overflow
 * report, the stall report), and that the dump and the slow-task warning
 * use too: a line built without stdio or malloc (with the "task ... (fn)
 * of loop ..." words both reports start with), where the interrupted code
 * was (from the handler's ucontext), and names for code addresses.
 *
 * dladdr() sees only the dynamic symbol table, so a static function, or
 * any function of a program not linked with -rdynamic, has no name there
 * ("prog+0x11c4" was all a report could say).  The full symbol table
 * (.symtab) of an unstripped ELF file has it: uco__symbolize() maps the
 * file that holds the address (the link map dladdr1() returns says which,
 * /proc/self/exe for the program itself) read-only, looks the address up
 * in .symtab (or .dynsym when the file is stripped) and unmaps it again.
 * Only open, fstat, mmap, munmap, close and readlink: plain system calls,
 * so a signal handler may call it.  dladdr1() itself is not on POSIX's list of
 * async-signal-safe functions, but glibc's takes only the loader's
 * recursive lock, so it can only go wrong for a signal that interrupts
 * the dynamic loader itself.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

#include "report.h"

/* ------------------------------------------------------------ the line */

void uco__msg_put(struct uco__msg *m, const char *s)
{
	while (*s && m->len < sizeof m->text)
		m->text[m->len++] = *s++;
}

void uco__msg_hex(struct uco__msg *m, uintptr_t v)
{
	char digits[2 + 2 * sizeof v + 1], *p = digits + sizeof digits - 1;
	*p = '\0';
	do
		*--p = "0123456789abcdef"[v & 15];
	while (v >>= 4);
	*--p = 'x';
	*--p = '0';
	uco__msg_put(m, p);
}

void uco__msg_dec(struct uco__msg *m, uint64_t v)
{
	char digits[24], *p = digits + sizeof digits - 1;
	*p = '\0';
	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	uco__msg_put(m, p);
}

void uco__msg_flush(struct uco__msg *m)
{
	const char *p = m->text;
	size_t n = m->len;
	while (n) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		n -= (size_t)w;
	}
	m->len = 0;
}

void uco__msg_task(struct uco__msg *m, const uco_loop *loop, const uco_task *t)
{
	uco__msg_put(m, "task ");
	uco__msg_hex(m, (uintptr_t)t);
	uco__msg_put(m, " (");
	uco__msg_fn(m, t->fn);
	uco__msg_put(m, ") of loop ");
	uco__msg_hex(m, (uintptr_t)loop);
}

void uco__interrupted_at(const void *context, uintptr_t *pc, uintptr_t *sp)
{
	const ucontext_t *uc = context;
#if defined(__x86_64__)
	*pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	*sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	*pc = (uintptr_t)uc->uc_mcontext.pc;
	*sp = (uintptr_t)uc->uc_mcontext.sp;
#else
	(void)uc;
	*pc = *sp = 0;
#endif
}

/* ------------------------------------------------------------ symbols */

static void copy(char *dst, size_t cap, const char *src)
{
	size_t i = 0;
	while (src[i] && i + 1 < cap) {
		dst[i] = src[i];
		i++;
	}
	dst[i] = '\0';
}

/* The section header `i` of the ELF image, if it lies inside it. */
static const ElfW(Shdr) *section(const char *img, const ElfW(Ehdr) *eh, unsigned i)
{
	if (i >= eh->e_shnum)
		return NULL;
	return (const ElfW(Shdr) *)(const void *)(img + eh->e_shoff + (size_t)i * sizeof(ElfW(Shdr)));
}

/* Look `vaddr` (an address as the file's own headers number them) up in
 * the symbol table of type `type`; the best function symbol's name goes to
 * out.  False when the table is missing or has no function there. */
static bool lookup(const char *img, size_t size, const ElfW(Ehdr) *eh, unsigned type,
                   uintptr_t vaddr, struct uco__sym *out)
{
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const ElfW(Shdr) *sh = section(img, eh, i);
		if (sh->sh_type != type || sh->sh_entsize != sizeof(ElfW(Sym)))
			continue;
		const ElfW(Shdr) *strs = section(img, eh, sh->sh_link);
		if (!strs || sh->sh_offset > size || sh->sh_size > size - sh->sh_offset ||
		    strs->sh_offset > size || strs->sh_size > size - strs->sh_offset)
			return false;
		const ElfW(Sym) *syms = (const ElfW(Sym) *)(const void *)(img + sh->sh_offset);
		size_t n = sh->sh_size / sizeof *syms;
		const ElfW(Sym) *best = NULL;
		for (size_t k = 0; k < n; k++) {
			const ElfW(Sym) *s = &syms[k];
			unsigned t = ELF64_ST_TYPE(s->st_info);
			if ((t != STT_FUNC && t != STT_GNU_IFUNC) || s->st_shndx == SHN_UNDEF ||
			    s->st_name >= strs->sh_size)
				continue;
			uintptr_t lo = (uintptr_t)s->st_value;
			bool inside = vaddr == lo || (vaddr > lo && vaddr - lo < s->st_size);
			/* Of aliases, a global name over a local one. */
			if (inside && (!best || (ELF64_ST_BIND(s->st_info) == STB_GLOBAL &&
			                         ELF64_ST_BIND(best->st_info) != STB_GLOBAL)))
				best = s;
		}
		if (!best)
			return false;
		const char *name = img + strs->sh_offset + best->st_name;
		/* The name must end inside its table. */
		if (!memchr(name, '\0', strs->sh_size - best->st_name) || !name[0])
			return false;
		copy(out->name, sizeof out->name, name);
		out->offset = vaddr - (uintptr_t)best->st_value;
		return true;
	}
	return false;
}

/* Name vaddr from the ELF file at path. */
static bool from_file(const char *path, uintptr_t vaddr, struct uco__sym *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	bool found = false;
	if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(ElfW(Ehdr))) {
		size_t size = (size_t)st.st_size;
		const char *img = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (img != MAP_FAILED) {
			const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)(const void *)img;
			bool sane = memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
			            eh->e_ident[EI_CLASS] == (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) &&
			            eh->e_shentsize == sizeof(ElfW(Shdr)) && eh->e_shoff < size &&
			            (size - eh->e_shoff) / sizeof(ElfW(Shdr)) >= eh->e_shnum;
			found = sane && (lookup(img, size, eh, SHT_SYMTAB, vaddr, out) ||
			                 lookup(img, size, eh, SHT_DYNSYM, vaddr, out));
			munmap((void *)img, size);
		}
	}
	close(fd);
	return found;
}

bool uco__symbolize(const void *addr, struct uco__sym *out)
{
	out->name[0] = out->file[0] = '\0';
	out->offset = out->vaddr = 0;
	Dl_info info;
	struct link_map *lm = NULL;
	if (!dladdr1(addr, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
		return false;
	/* Addresses as the file numbers them: what addr2line -e takes. */
	out->vaddr = (uintptr_t)addr - (uintptr_t)lm->l_addr;
	/* The program itself has an empty name in the link map (and
	 * dladdr's dli_fname is then argv[0], maybe relative). */
	const char *path = "/proc/self/exe";
	if (lm->l_name && lm->l_name[0]) {
		path = lm->l_name;
		copy(out->file, sizeof out->file, path);
	} else {
		ssize_t n = readlink(path, out->file, sizeof out->file - 1);
		out->file[n > 0 ? n : 0] = '\0';
	}
	if (from_file(path, out->vaddr, out))
		return true;
	/* No symbol table in the file (stripped, or not readable): the
	 * dynamic symbol dladdr found, if it is this very function. */
	if (info.dli_sname && info.dli_saddr == addr) {
		copy(out->name, sizeof out->name, info.dli_sname);
		return true;
	}
	return false;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

void uco__msg_frame(struct uco__msg *m, const void *addr, bool return_address)
{
	/* A return address may lie just past its function (a call that does
	 * not return ends it): name the call instruction's function. */
	struct uco__sym s;
	bool named = uco__symbolize((const char *)addr - return_address, &s);
	if (named) {
		uco__msg_put(m, s.name);
		uco__msg_put(m, "+");
		uco__msg_hex(m, s.offset + return_address);
	}
	if (s.file[0]) {
		uco__msg_put(m, named ? " (" : "");
		uco__msg_put(m, base_name(s.file));
		uco__msg_put(m, "+");
		uco__msg_hex(m, s.vaddr + return_address);
		uco__msg_put(m, named ? ")" : "");
	}
}

void uco__msg_fn(struct uco__msg *m, uco_fn fn)
{
	void *addr;
	memcpy(&addr, &fn, sizeof addr); /* ISO C has no function-to-object cast */
	struct uco__sym s;
	if (uco__symbolize(addr, &s)) {
		uco__msg_put(m, s.name);
	} else if (s.file[0]) {
		uco__msg_put(m, base_name(s.file));
		uco__msg_put(m, "+");
		uco__msg_hex(m, s.vaddr);
	} else {
		uco__msg_hex(m, (uintptr_t)addr);
	}
}

void uco__msg_addr2line_hint(struct uco__msg *m, uco_fn fn)
{
	void *addr;
	memcpy(&addr, &fn, sizeof addr);
	struct uco__sym s;
	if (uco__symbolize(addr, &s) || !s.file[0])
		return;
	uco__msg_put(m, "uco: the function has no symbol here; name it with: addr2line -f -e ");
	uco__msg_put(m, s.file);
	uco__msg_put(m, " ");
	uco__msg_hex(m, s.vaddr);
	uco__msg_put(m, "\n");
}
