/* SPDX-License-Identifier: MIT */
/*
 * The stack-overflow report.  A task that runs past the end of its stack
 * hits the guard page below it, and the SIGSEGV alone says nothing about
 * which task that was (tarantool #9222).  So a process-wide SIGSEGV handler
 * looks at the fault: on the guard page of the task running on this thread
 * (or with that task's stack pointer already below its stack, for a frame
 * that jumped over the guard), it names the task, its function and loop,
 * says how to get a larger stack, and aborts.  Any other fault goes to the
 * handler installed before uco's (ASan's, a crash reporter's) or, if there
 * was none, to the default action, so ordinary crashes behave as before.
 *
 * The handler runs on an alternate signal stack, since the overflowed
 * stack has no room left: each thread gets one while it has a loop (unless
 * it already has one, such as ASan's).  The handler is installed when the
 * first loop is created; UCO_OVERFLOW_REPORT=0 in the environment leaves
 * SIGSEGV alone.
 *
 * Inside the handler: write(2) and hand-made formatting, nothing from
 * stdio or malloc (report.c, which also names the function from the ELF
 * symbol table, so that a static function has its name too).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "report.h"

#define ALTSTACK_SIZE (64u * 1024)

/* A frame that jumps over the guard leaves the stack pointer below the
 * stack; up to this far below it still counts as this task's overflow. */
#define MAX_JUMP ((uintptr_t)1 << 20)

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static bool installed;
static struct sigaction previous; /* the SIGSEGV action before uco's */

static __thread unsigned tls_loops;  /* loops this thread has open */
static __thread char *tls_altstack;  /* the mapping uco made, or NULL */
static __thread size_t tls_altstack_len;

/* ------------------------------------------------------------ the message */

/* Sizes are whole pages: KiB unless not a multiple of it. */
static void put_size(struct uco__msg *m, size_t bytes)
{
	if (bytes % 1024) {
		uco__msg_dec(m, bytes);
		uco__msg_put(m, " bytes");
	} else {
		uco__msg_dec(m, bytes / 1024);
		uco__msg_put(m, " KiB");
	}
}

__attribute__((noreturn)) static void report(const uco_loop *loop, const uco_task *t,
                                             uintptr_t addr, uintptr_t sp)
{
	struct uco__msg m = { .len = 0 };
	uco__msg_put(&m, "uco: stack overflow: ");
	uco__msg_task(&m, loop, t);
	uco__msg_put(&m, " ran past the end of its ");
	put_size(&m, t->stack.size);
	uco__msg_put(&m, " stack [");
	uco__msg_hex(&m, (uintptr_t)t->stack.base);
	uco__msg_put(&m, ", ");
	uco__msg_hex(&m, (uintptr_t)t->stack.base + t->stack.size);
	uco__msg_put(&m, "): fault at ");
	uco__msg_hex(&m, addr);
	uco__msg_put(&m, ", stack pointer ");
	uco__msg_hex(&m, sp);
	uco__msg_put(&m, "\nuco: give the task a larger stack with uco_spawn_sized(), or every "
	                 "task of the loop with uco_loop_opts.stack_size (this loop's: ");
	put_size(&m, loop->pool.stack_size);
	uco__msg_put(&m, ")\n");
	uco__msg_addr2line_hint(&m, t->fn);
	uco__msg_put(&m, "uco: aborting\n");
	uco__msg_flush(&m);
	abort();
}

/* ------------------------------------------------------------ the handler */

/* Not an overflow of ours: whoever handled SIGSEGV before uco does. */
static void pass_on(int signo, siginfo_t *si, void *context)
{
	if (previous.sa_flags & SA_SIGINFO) {
		previous.sa_sigaction(signo, si, context);
		return;
	}
	if (previous.sa_handler == SIG_IGN && si->si_code <= 0)
		return; /* sent by kill(), and ignored before uco came */
	if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(signo);
		return;
	}
	/* The default action, as if uco had never been here: a fault comes
	 * back when the instruction runs again on return, and kills the
	 * process the usual way; a SIGSEGV sent by kill() is sent again. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGSEGV, &dfl, NULL);
	if (si->si_code <= 0)
		raise(signo);
}

static void on_segv(int signo, siginfo_t *si, void *context)
{
	int saved_errno = errno;
	uco_loop *loop = uco_loop_current();
	const uco_task *t = loop ? loop->current : NULL;
	/* si_code > 0: a fault, not a signal someone sent. */
	if (t && t->stack.base && si->si_code > 0) {
		uintptr_t base = (uintptr_t)t->stack.base;
		uintptr_t addr = (uintptr_t)si->si_addr;
		uintptr_t pc, sp;
		uco__interrupted_at(context, &pc, &sp);
		uintptr_t page = uco__page_size();
		bool on_guard = addr < base && addr >= base - page;
		/* A write into the frames between that stack pointer and the
		 * stack, which is what the jump over the guard leads to. */
		bool sp_below = sp < base && sp >= base - MAX_JUMP && addr >= sp - page &&
		                addr < base;
		if (on_guard || sp_below)
			report(loop, t, addr, sp);
	}
	pass_on(signo, si, context);
	errno = saved_errno;
}

static void install(void)
{
	const char *env = getenv("UCO_OVERFLOW_REPORT");
	if (env && strcmp(env, "0") == 0)
		return;
	/* Read the previous action first: once ours is in, a fault in any
	 * thread may need it. */
	if (sigaction(SIGSEGV, NULL, &previous))
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	installed = sigaction(SIGSEGV, &sa, NULL) == 0;
}

/* ------------------------------------------------------------ per thread */

void uco__overflow_watch(void)
{
	pthread_once(&install_once, install);
	if (!installed || tls_loops++)
		return;
	stack_t cur;
	if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
		return; /* the thread has one already (the program's, ASan's) */
	size_t page = uco__page_size();
	size_t len = ALTSTACK_SIZE;
#ifdef _SC_SIGSTKSZ
	long min = sysconf(_SC_SIGSTKSZ); /* larger with AVX-512 state */
	if (min > 0 && (size_t)min > len)
		len = ((size_t)min + page - 1) & ~(page - 1);
#endif
	/* A guard page below it too: a handler that overflowed this stack
	 * would otherwise write into whatever lies below. */
	char *p = mmap(NULL, page + len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		return;
	mprotect(p, page, PROT_NONE);
	stack_t ss = { .ss_sp = p + page, .ss_size = len, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL)) {
		munmap(p, page + len);
		return;
	}
	tls_altstack = p;
	tls_altstack_len = page + len;
}

void uco__overflow_unwatch(void)
{
	if (!tls_loops || --tls_loops || !tls_altstack)
		return;
	/* The thread's last loop is gone: take the alternate stack down, if
	 * it is still the thread's and no handler runs on it. */
	char *ours = tls_altstack + uco__page_size();
	stack_t cur;
	if (sigaltstack(NULL, &cur))
		return;
	if (cur.ss_sp == ours && !(cur.ss_flags & SS_DISABLE)) {
		if (cur.ss_flags & SS_ONSTACK)
			return; /* closed from a signal handler: keep it */
		stack_t off = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
		if (sigaltstack(&off, NULL))
			return;
	}
	munmap(tls_altstack, tls_altstack_len);
	tls_altstack = NULL;
}
