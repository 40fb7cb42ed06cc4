/* SPDX-License-Identifier: MIT */
/*
 * The context switch on its own: lib/arch/switch.h and the arch files for
 * the host, nothing else (no liburing, no Criterion, no libuco), so that it
 * can be cross-compiled and run under qemu-user (see .ci/aarch64-switch-test).
 *
 * Build with -fno-omit-frame-pointer: check (e) walks frame records.
 * Each check runs in its own process, so a crash is a failure, not the end
 * of the run.  The last line is "N passed, M failed"; the exit status is
 * non-zero if any check failed.  Skipped checks are printed, not counted.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <unwind.h>

#include "switch.h"

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "switch_standalone.c knows x86_64 and aarch64 only"
#endif

/* Not in switch.h: the first code of every coroutine. */
void uco__trampoline(void);

#define STACK_BYTES (64 * 1024)
#define SKIP 77

/* ---- reporting -------------------------------------------------------- */

#define MSG_BYTES 2048
static char *msg; /* MAP_SHARED: the checking child writes, the parent prints */
static int n_passed, n_failed, n_skipped;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	size_t used = strlen(msg);
	va_list ap;

	if (used + 3 >= MSG_BYTES)
		return;
	if (used) {
		strcpy(msg + used, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(msg + used, MSG_BYTES - used, fmt, ap);
	va_end(ap);
}

static void run_check(const char *name, int (*fn)(void))
{
	int status;
	pid_t pid;

	msg[0] = '\0';
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		int r;

		alarm(60); /* qemu-user is slow, but not this slow */
		r = fn();
		fflush(stdout);
		_exit(r);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		exit(2);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("PASS %s: %s\n", name, msg);
		n_passed++;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP) {
		printf("SKIP %s: %s\n", name, msg);
		n_skipped++;
	} else if (WIFEXITED(status)) {
		printf("FAIL %s: %s\n", name, msg);
		n_failed++;
	} else {
		printf("FAIL %s: killed by signal %d (%s)%s%s\n", name,
		       WTERMSIG(status), strsignal(WTERMSIG(status)),
		       msg[0] ? ": " : "", msg);
		n_failed++;
	}
	fflush(stdout);
}

/* ---- stacks and shared state ------------------------------------------ */

struct stack {
	char *lo, *hi;
};

/* A 64 KiB mmap'd stack with a guard page below it. */
static void stack_new(struct stack *s)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = STACK_BYTES + page;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		_exit(2);
	}
	if (mprotect(p, page, PROT_NONE) != 0) {
		perror("mprotect");
		_exit(2);
	}
	s->lo = p + page;
	s->hi = p + len;
}

static void *main_sp;
static void *co_sp[2];
static volatile unsigned long counter;
static volatile unsigned long co_errors;

static int in_trampoline(uintptr_t ret)
{
	uintptr_t t = (uintptr_t)uco__trampoline;

	return ret > t && ret <= t + 32;
}

/* Return addresses stored in frame records may carry a PAC signature in
 * their top bits; user addresses fit in 48 bits. */
static uintptr_t strip_pac(uintptr_t p)
{
#if defined(__aarch64__)
	return p & (((uintptr_t)1 << 48) - 1);
#else
	return p;
#endif
}

/* ---- per-arch helpers in assembly -------------------------------------- */

/*
 * void regs_switch(void **from, void *to, const uint64_t *in, uint64_t *out)
 * Loads every callee-saved register from in[], calls uco__switch(from, to),
 * and when resumed stores the same registers to out[].  Whoever runs in
 * between does the same with its own values, so a register the switch fails
 * to keep comes back with the other side's value.
 *
 * void entry_probe(void *arg)
 * A coroutine entry that records sp, the frame pointer and the return
 * address exactly as the trampoline left them (plus d8-d15 on aarch64) in
 * probe_rec, then tail-jumps to probe_main(arg) with nothing changed.
 */
void regs_switch(void **from, void *to, const uint64_t *in, uint64_t *out);
void entry_probe(void *arg);
void probe_main(void *arg) __attribute__((noreturn));

struct probe_rec {
	uint64_t sp, fp, ra;
	uint64_t d[8];
};
extern struct probe_rec probe_rec;
__attribute__((visibility("hidden"), used)) struct probe_rec probe_rec;

#if defined(__x86_64__)
#define NREG 6
static const char *const reg_names[NREG] = { "rbx", "rbp", "r12", "r13", "r14", "r15" };

/* regs_switch's and regs_start's two halves: save main's callee-saved
 * registers and load in[] (rdx) into them, keeping out (rcx) on the
 * stack; then, once main runs again, store them to out[] and return. */
#define REGS_IN \
	"	pushq	%rbp\n" \
	"	pushq	%rbx\n" \
	"	pushq	%r12\n" \
	"	pushq	%r13\n" \
	"	pushq	%r14\n" \
	"	pushq	%r15\n" \
	"	pushq	%rcx\n" /* out; also makes rsp 16-aligned for the call */ \
	"	movq	0(%rdx), %rbx\n" \
	"	movq	8(%rdx), %rbp\n" \
	"	movq	16(%rdx), %r12\n" \
	"	movq	24(%rdx), %r13\n" \
	"	movq	32(%rdx), %r14\n" \
	"	movq	40(%rdx), %r15\n"
#define REGS_OUT \
	"	popq	%rcx\n" \
	"	movq	%rbx, 0(%rcx)\n" \
	"	movq	%rbp, 8(%rcx)\n" \
	"	movq	%r12, 16(%rcx)\n" \
	"	movq	%r13, 24(%rcx)\n" \
	"	movq	%r14, 32(%rcx)\n" \
	"	movq	%r15, 40(%rcx)\n" \
	"	popq	%r15\n" \
	"	popq	%r14\n" \
	"	popq	%r13\n" \
	"	popq	%r12\n" \
	"	popq	%rbx\n" \
	"	popq	%rbp\n" \
	"	ret\n"

__asm__(
	"	.text\n"
	"	.globl	regs_switch\n"
	"	.hidden	regs_switch\n"
	"	.type	regs_switch, @function\n"
	"regs_switch:\n"
	"	.byte	0xf3, 0x0f, 0x1e, 0xfa\n" /* endbr64 */
	REGS_IN
	"	call	uco__switch\n"
	REGS_OUT
	"	.size	regs_switch, .-regs_switch\n"
	"\n"
	"	.globl	entry_probe\n"
	"	.hidden	entry_probe\n"
	"	.type	entry_probe, @function\n"
	"entry_probe:\n"
	"	.byte	0xf3, 0x0f, 0x1e, 0xfa\n" /* endbr64 */
	"	leaq	probe_rec(%rip), %rax\n"
	"	movq	%rsp, 0(%rax)\n"
	"	movq	%rbp, 8(%rax)\n"
	"	movq	(%rsp), %rcx\n"
	"	movq	%rcx, 16(%rax)\n"
	"	jmp	probe_main\n"
	"	.size	entry_probe, .-entry_probe\n");

/* At a function's first instruction rsp + 8 is 16-aligned (SysV). */
static int entry_sp_ok(uint64_t sp)
{
	return (sp + 8) % 16 == 0;
}

#elif defined(__aarch64__)
#define NREG 19
static const char *const reg_names[NREG] = {
	"x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29",
	"d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15",
};

__asm__(
	"	.text\n"
	"	.globl	regs_switch\n"
	"	.hidden	regs_switch\n"
	"	.type	regs_switch, %function\n"
	"	.p2align 2\n"
	"regs_switch:\n"
	"	hint	#34\n" /* bti c */
	"	stp	x29, x30, [sp, #-176]!\n"
	"	mov	x29, sp\n"
	"	stp	x19, x20, [sp, #16]\n"
	"	stp	x21, x22, [sp, #32]\n"
	"	stp	x23, x24, [sp, #48]\n"
	"	stp	x25, x26, [sp, #64]\n"
	"	stp	x27, x28, [sp, #80]\n"
	"	stp	d8, d9, [sp, #96]\n"
	"	stp	d10, d11, [sp, #112]\n"
	"	stp	d12, d13, [sp, #128]\n"
	"	stp	d14, d15, [sp, #144]\n"
	"	str	x3, [sp, #160]\n"
	"	ldp	x19, x20, [x2, #0]\n"
	"	ldp	x21, x22, [x2, #16]\n"
	"	ldp	x23, x24, [x2, #32]\n"
	"	ldp	x25, x26, [x2, #48]\n"
	"	ldp	x27, x28, [x2, #64]\n"
	"	ldr	x29, [x2, #80]\n"
	"	ldp	d8, d9, [x2, #88]\n"
	"	ldp	d10, d11, [x2, #104]\n"
	"	ldp	d12, d13, [x2, #120]\n"
	"	ldp	d14, d15, [x2, #136]\n"
	"	bl	uco__switch\n"
	"	ldr	x3, [sp, #160]\n"
	"	stp	x19, x20, [x3, #0]\n"
	"	stp	x21, x22, [x3, #16]\n"
	"	stp	x23, x24, [x3, #32]\n"
	"	stp	x25, x26, [x3, #48]\n"
	"	stp	x27, x28, [x3, #64]\n"
	"	str	x29, [x3, #80]\n"
	"	stp	d8, d9, [x3, #88]\n"
	"	stp	d10, d11, [x3, #104]\n"
	"	stp	d12, d13, [x3, #120]\n"
	"	stp	d14, d15, [x3, #136]\n"
	"	ldp	x19, x20, [sp, #16]\n"
	"	ldp	x21, x22, [sp, #32]\n"
	"	ldp	x23, x24, [sp, #48]\n"
	"	ldp	x25, x26, [sp, #64]\n"
	"	ldp	x27, x28, [sp, #80]\n"
	"	ldp	d8, d9, [sp, #96]\n"
	"	ldp	d10, d11, [sp, #112]\n"
	"	ldp	d12, d13, [sp, #128]\n"
	"	ldp	d14, d15, [sp, #144]\n"
	"	ldp	x29, x30, [sp], #176\n"
	"	ret\n"
	"	.size	regs_switch, .-regs_switch\n"
	"\n"
	"	.globl	entry_probe\n"
	"	.hidden	entry_probe\n"
	"	.type	entry_probe, %function\n"
	"	.p2align 2\n"
	"entry_probe:\n"
	"	hint	#34\n" /* bti c: reached by the trampoline's blr */
	"	adrp	x9, probe_rec\n"
	"	add	x9, x9, :lo12:probe_rec\n"
	"	mov	x10, sp\n"
	"	str	x10, [x9, #0]\n"
	"	str	x29, [x9, #8]\n"
	"	str	x30, [x9, #16]\n"
	"	stp	d8, d9, [x9, #24]\n"
	"	stp	d10, d11, [x9, #40]\n"
	"	stp	d12, d13, [x9, #56]\n"
	"	stp	d14, d15, [x9, #72]\n"
	"	b	probe_main\n"
	"	.size	entry_probe, .-entry_probe\n");

/* AAPCS64: sp is 16-aligned at all times. */
static int entry_sp_ok(uint64_t sp)
{
	return sp % 16 == 0;
}
#endif

/* ---- (a) ping-pong ----------------------------------------------------- */

#define ROUNDS 2000000UL

static void pingpong_entry(void *arg)
{
	(void)arg;
	for (unsigned long expect = 0;; expect++) {
		if (counter != expect)
			co_errors++;
		counter = expect + 1;
		uco__switch(&co_sp[0], main_sp);
	}
}

static int check_pingpong(void)
{
	struct stack s;

	stack_new(&s);
	co_sp[0] = uco__context_init(s.hi, pingpong_entry, NULL);
	for (unsigned long i = 0; i < ROUNDS; i++) {
		uco__switch(&main_sp, co_sp[0]);
		if (counter != i + 1) {
			note("after round trip %lu the counter is %lu, not %lu", i, counter, i + 1);
			return 1;
		}
	}
	if (co_errors) {
		note("the coroutine saw a wrong counter %lu times", co_errors);
		return 1;
	}
	note("%lu round trips (%lu switches), counter %lu", ROUNDS, 2 * ROUNDS, counter);
	return 0;
}

/* Two coroutines taking turns, each resumed by main. */
static void turn_entry(void *arg)
{
	unsigned long id = (unsigned long)(uintptr_t)arg;

	for (;;) {
		if (counter % 2 != id)
			co_errors++;
		counter++;
		uco__switch(&co_sp[id], main_sp);
	}
}

static int check_two_via_main(void)
{
	struct stack s0, s1;

	stack_new(&s0);
	stack_new(&s1);
	co_sp[0] = uco__context_init(s0.hi, turn_entry, (void *)0);
	co_sp[1] = uco__context_init(s1.hi, turn_entry, (void *)1);
	for (unsigned long i = 0; i < ROUNDS / 2; i++) {
		uco__switch(&main_sp, co_sp[0]);
		if (counter != 2 * i + 1) {
			note("after coroutine 0's turn %lu the counter is %lu", i, counter);
			return 1;
		}
		uco__switch(&main_sp, co_sp[1]);
		if (counter != 2 * i + 2) {
			note("after coroutine 1's turn %lu the counter is %lu", i, counter);
			return 1;
		}
	}
	if (co_errors) {
		note("a coroutine ran out of turn %lu times", co_errors);
		return 1;
	}
	note("%lu turns (%lu switches), counter %lu", ROUNDS, 2 * ROUNDS, counter);
	return 0;
}

/* Two coroutines switching straight to each other; the last one returns to
 * main. */
static void relay_entry(void *arg)
{
	unsigned long id = (unsigned long)(uintptr_t)arg;

	for (;;) {
		if (counter % 2 != id)
			co_errors++;
		counter++;
		if (counter >= ROUNDS)
			uco__switch(&co_sp[id], main_sp);
		else
			uco__switch(&co_sp[id], co_sp[id ^ 1]);
	}
}

static int check_two_direct(void)
{
	struct stack s0, s1;

	stack_new(&s0);
	stack_new(&s1);
	co_sp[0] = uco__context_init(s0.hi, relay_entry, (void *)0);
	co_sp[1] = uco__context_init(s1.hi, relay_entry, (void *)1);
	uco__switch(&main_sp, co_sp[0]);
	if (counter != ROUNDS || co_errors) {
		note("counter %lu (want %lu), %lu out-of-turn runs", counter, ROUNDS, co_errors);
		return 1;
	}
	note("%lu switches between the coroutines, counter %lu", ROUNDS, counter);
	return 0;
}

/* ---- (b) callee-saved registers ---------------------------------------- */

static uint64_t main_in[2][NREG], main_out[2][NREG], co_in[NREG], co_out[NREG];

static uint64_t reg_pattern(unsigned side, unsigned i)
{
	/* distinct, non-zero, every byte different between sides */
	return (0x0101010101010101ULL * (0x10u * side + i + 1)) ^ 0x8040201008040201ULL;
}

static void regs_entry(void *arg)
{
	(void)arg;
	/* Back to main with co_in live: main must get its own values back. */
	regs_switch(&co_sp[0], main_sp, co_in, co_out);
	/* Resumed by main with main_in[1] live: ours must be back. */
	uco__switch(&co_sp[0], main_sp);
	for (;;)
		uco__switch(&co_sp[0], main_sp);
}

static int compare_regs(const char *who, const uint64_t *want, const uint64_t *got)
{
	int bad = 0;

	for (int i = 0; i < NREG; i++) {
		if (want[i] != got[i]) {
			note("%s %s = %#llx, want %#llx", who, reg_names[i],
			     (unsigned long long)got[i], (unsigned long long)want[i]);
			bad = 1;
		}
	}
	return bad;
}

/* Main's two sets and the coroutine's: patterns first, first + 1, first + 2. */
static void fill_regs(unsigned first)
{
	for (unsigned i = 0; i < NREG; i++) {
		main_in[0][i] = reg_pattern(first, i);
		main_in[1][i] = reg_pattern(first + 1, i);
		co_in[i] = reg_pattern(first + 2, i);
	}
}

static int check_regs(void)
{
	struct stack s;
	int bad = 0;

	fill_regs(1);
	stack_new(&s);
	co_sp[0] = uco__context_init(s.hi, regs_entry, NULL);
	regs_switch(&main_sp, co_sp[0], main_in[0], main_out[0]);
	bad |= compare_regs("main (first switch)", main_in[0], main_out[0]);
	regs_switch(&main_sp, co_sp[0], main_in[1], main_out[1]);
	bad |= compare_regs("coroutine", co_in, co_out);
	bad |= compare_regs("main (second switch)", main_in[1], main_out[1]);
	if (!bad)
		note("%d registers kept on both sides of 3 switches", NREG);
	return bad;
}

/* ---- (c) floating-point control state ---------------------------------- */

#if defined(__x86_64__)
static uint32_t mxcsr_get(void)
{
	uint32_t v;

	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static void mxcsr_set(uint32_t v)
{
	__asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static uint16_t x87cw_get(void)
{
	uint16_t v;

	__asm__ volatile("fnstcw %0" : "=m"(v));
	return v;
}

static void x87cw_set(uint16_t v)
{
	__asm__ volatile("fldcw %0" : : "m"(v));
}

#define MXCSR_CONTROL 0xffc0u  /* all but the sticky exception flags */
#define MXCSR_DEFAULT 0x1f80u
#define X87CW_DEFAULT 0x037fu
#define MAIN_MXCSR (MXCSR_DEFAULT | 0x2000u)          /* round down */
#define MAIN_X87CW (X87CW_DEFAULT | 0x0400u)          /* round down */
#define CO_MXCSR (MXCSR_DEFAULT | 0x6000u | 0x8000u)  /* toward zero, FTZ */
#define CO_X87CW ((X87CW_DEFAULT & ~0x0300u) | 0x0200u | 0x0800u) /* double, up */
/* What main passes to uco__switch_in / uco__switch_start_in as its word:
 * not the MXCSR in force (MAIN_MXCSR), so that main coming back with it
 * shows the word was stored, not read; with the inexact flag set, so that
 * it shows the flags go with it. */
#define MAIN_MXCSR_PASSED (MXCSR_DEFAULT | 0x4000u | 0x0020u) /* round up, PE */
#define MAIN_FPCTL_PASSED (MAIN_MXCSR_PASSED | (uint64_t)MAIN_X87CW << 32)

static volatile uint32_t co_mxcsr[2];
static volatile uint16_t co_x87cw[2];

static void fpctl_entry(void *arg)
{
	(void)arg;
	co_mxcsr[0] = mxcsr_get();
	co_x87cw[0] = x87cw_get();
	mxcsr_set(CO_MXCSR);
	x87cw_set(CO_X87CW);
	uco__switch(&co_sp[0], main_sp);
	co_mxcsr[1] = mxcsr_get();
	co_x87cw[1] = x87cw_get();
	for (;;)
		uco__switch(&co_sp[0], main_sp);
}

static int check_main_fpctl(const char *when)
{
	uint32_t mx = mxcsr_get() & MXCSR_CONTROL;
	uint16_t cw = x87cw_get();

	if (mx == MAIN_MXCSR && cw == MAIN_X87CW)
		return 0;
	note("%s: main's MXCSR %#x x87 CW %#x, want %#x %#x", when, mx, cw,
	     MAIN_MXCSR, MAIN_X87CW);
	return 1;
}

/* Main's MXCSR, whole (flags too), must be the word it passed. */
static __attribute__((unused)) int check_main_passed(const char *when)
{
	uint32_t mx = mxcsr_get();
	uint16_t cw = x87cw_get();

	if (mx == MAIN_MXCSR_PASSED && cw == MAIN_X87CW)
		return 0;
	note("%s: main's MXCSR %#x x87 CW %#x, want the word it passed, %#x %#x", when, mx,
	     cw, MAIN_MXCSR_PASSED, MAIN_X87CW);
	return 1;
}

static int check_fpctl(void)
{
	struct stack s;
	int bad = 0;

	mxcsr_set(MAIN_MXCSR);
	x87cw_set(MAIN_X87CW);
	stack_new(&s);
	co_sp[0] = uco__context_init(s.hi, fpctl_entry, NULL);
	uco__switch(&main_sp, co_sp[0]);
	if ((co_mxcsr[0] & MXCSR_CONTROL) != MXCSR_DEFAULT || co_x87cw[0] != X87CW_DEFAULT) {
		note("a new coroutine starts with MXCSR %#x x87 CW %#x, want the defaults %#x %#x",
		     co_mxcsr[0], co_x87cw[0], MXCSR_DEFAULT, X87CW_DEFAULT);
		bad = 1;
	}
	bad |= check_main_fpctl("after the coroutine changed its own");
	uco__switch(&main_sp, co_sp[0]);
	if ((co_mxcsr[1] & MXCSR_CONTROL) != CO_MXCSR || co_x87cw[1] != CO_X87CW) {
		note("resumed coroutine has MXCSR %#x x87 CW %#x, want its own %#x %#x",
		     co_mxcsr[1], co_x87cw[1], CO_MXCSR, CO_X87CW);
		bad = 1;
	}
	bad |= check_main_fpctl("after resuming the coroutine");
	if (!bad)
		note("MXCSR and x87 control word kept per coroutine; new ones start at the defaults");
	return bad;
}
#else
static int check_fpctl(void)
{
	note("FPCR is not part of the aarch64 switch contract (switch.h)");
	return SKIP;
}
#endif

/* ---- (l) the scheduler's switch ---------------------------------------- */

#if defined(UCO__HAVE_SWITCH_IN)
/*
 * void regs_switch_in(void **from, void *to, const uint64_t *in,
 *                     uint64_t *out, uint64_t fpctl)
 * regs_switch for uco__switch_in(from, to, fpctl).
 */
void regs_switch_in(void **from, void *to, const uint64_t *in, uint64_t *out, uint64_t fpctl);
__asm__(
	"	.text\n"
	"	.globl	regs_switch_in\n"
	"	.hidden	regs_switch_in\n"
	"	.type	regs_switch_in, @function\n"
	"regs_switch_in:\n"
	"	.byte	0xf3, 0x0f, 0x1e, 0xfa\n" /* endbr64 */
	REGS_IN
	"	movq	%r8, %rdx\n"
	"	call	uco__switch_in\n"
	REGS_OUT
	"	.size	regs_switch_in, .-regs_switch_in\n");

/* The coroutine's MXCSR, flags and all (invalid-operation flag set). */
#define CO_MXCSR_FLAGGED (CO_MXCSR | 0x0001u)

static void switch_in_entry(void *arg)
{
	(void)arg;
	co_mxcsr[0] = mxcsr_get();
	co_x87cw[0] = x87cw_get();
	mxcsr_set(CO_MXCSR_FLAGGED);
	x87cw_set(CO_X87CW);
	/* Back to main with co_in live: main must get its own back. */
	regs_switch(&co_sp[0], main_sp, co_in, co_out);
	/* Resumed by uco__switch_in: ours must be back, whatever main had. */
	co_mxcsr[1] = mxcsr_get();
	co_x87cw[1] = x87cw_get();
	for (;;)
		uco__switch(&co_sp[0], main_sp);
}

/* uco__switch_in saves main's registers, and the word it is given as its
 * MXCSR and x87 control word (main comes back with that word, not the one
 * in force when it switched), and resumes the other side with its own. */
static int check_switch_in(void)
{
	struct stack s;
	int bad = 0;

	fill_regs(6);
	stack_new(&s);
	co_sp[0] = uco__context_init(s.hi, switch_in_entry, NULL);
	mxcsr_set(MAIN_MXCSR);
	x87cw_set(MAIN_X87CW);
	regs_switch_in(&main_sp, co_sp[0], main_in[0], main_out[0], MAIN_FPCTL_PASSED);
	bad |= compare_regs("main (first switch)", main_in[0], main_out[0]);
	bad |= check_main_passed("after the coroutine's first run");
	if ((co_mxcsr[0] & MXCSR_CONTROL) != MXCSR_DEFAULT || co_x87cw[0] != X87CW_DEFAULT) {
		note("a new coroutine starts with MXCSR %#x x87 CW %#x, want the defaults %#x %#x",
		     co_mxcsr[0], co_x87cw[0], MXCSR_DEFAULT, X87CW_DEFAULT);
		bad = 1;
	}
	mxcsr_set(MAIN_MXCSR);
	regs_switch_in(&main_sp, co_sp[0], main_in[1], main_out[1], MAIN_FPCTL_PASSED);
	bad |= compare_regs("coroutine", co_in, co_out);
	bad |= compare_regs("main (second switch)", main_in[1], main_out[1]);
	bad |= check_main_passed("after resuming the coroutine");
	if (co_mxcsr[1] != CO_MXCSR_FLAGGED || co_x87cw[1] != CO_X87CW) {
		note("resumed coroutine has MXCSR %#x x87 CW %#x, want its own %#x %#x",
		     co_mxcsr[1], co_x87cw[1], CO_MXCSR_FLAGGED, CO_X87CW);
		bad = 1;
	}
	mxcsr_set(MXCSR_DEFAULT);
	x87cw_set(X87CW_DEFAULT);
	if (!bad)
		note("%d registers kept; main back with the word it passed (flags too), "
		     "the coroutine with its own", NREG);
	return bad;
}
#else
static int check_switch_in(void)
{
	note("no uco__switch_in on this architecture (switch.h)");
	return SKIP;
}
#endif

/* ---- (k) the start switch ---------------------------------------------- */

#if defined(UCO__HAVE_SWITCH_IN)
/* Set by (k): run_probe starts the probe with uco__switch_start_in instead of
 * uco__context_init + uco__switch. */
static int probe_via_start;

static int check_alignment(void);
static int check_frame_chain(void);
static int check_unwind(void);
static int check_entry_state(void);

/* (d)-(g) and (c)'s defaults again, the context entered by
 * uco__switch_start_in: it must start exactly as a first frame does, and
 * main must come back with the FP control word it passed. */
static int check_start(void)
{
	struct stack s;
	int bad = 0;

	probe_via_start = 1;
	bad |= check_alignment();
	bad |= check_frame_chain();
	bad |= check_unwind();
	bad |= check_entry_state();
	probe_via_start = 0;

	mxcsr_set(MAIN_MXCSR);
	x87cw_set(MAIN_X87CW);
	stack_new(&s);
	uco__switch_start_in(&main_sp, s.hi, fpctl_entry, NULL, MAIN_FPCTL_PASSED);
	if ((co_mxcsr[0] & MXCSR_CONTROL) != MXCSR_DEFAULT || co_x87cw[0] != X87CW_DEFAULT) {
		note("a started coroutine has MXCSR %#x x87 CW %#x, want the defaults %#x %#x",
		     co_mxcsr[0], co_x87cw[0], MXCSR_DEFAULT, X87CW_DEFAULT);
		bad = 1;
	}
	bad |= check_main_passed("after the started coroutine changed its own");
	mxcsr_set(MXCSR_DEFAULT);
	x87cw_set(X87CW_DEFAULT);
	if (!bad)
		note("alignment, frame chain, unwind stop, entry state, main's registers "
		     "and FP defaults as with a first frame");
	return bad;
}
#else
static int check_start(void)
{
	note("no uco__switch_start_in on this architecture (switch.h)");
	return SKIP;
}
#endif

/* ---- (j) the exit switch ----------------------------------------------- */

#if defined(UCO__HAVE_SWITCH_EXIT)
/*
 * void regs_exit(void *to, const uint64_t *in)
 * Loads every callee-saved register from in[] and jumps to
 * uco__switch_exit(to): main must get its own registers back, not these.
 */
void regs_exit(void *to, const uint64_t *in) __attribute__((noreturn));
__asm__(
	"	.text\n"
	"	.globl	regs_exit\n"
	"	.hidden	regs_exit\n"
	"	.type	regs_exit, @function\n"
	"regs_exit:\n"
	"	.byte	0xf3, 0x0f, 0x1e, 0xfa\n" /* endbr64 */
	"	movq	0(%rsi), %rbx\n"
	"	movq	8(%rsi), %rbp\n"
	"	movq	16(%rsi), %r12\n"
	"	movq	24(%rsi), %r13\n"
	"	movq	32(%rsi), %r14\n"
	"	movq	40(%rsi), %r15\n"
	"	jmp	uco__switch_exit\n"
	"	.size	regs_exit, .-regs_exit\n");

static void exit_entry(void *arg)
{
	(void)arg;
	/* Leave with everything main could get back wrong changed. */
	mxcsr_set(CO_MXCSR);
	x87cw_set(CO_X87CW);
	regs_exit(main_sp, co_in);
}

static int check_exit(void)
{
	struct stack s;
	int bad = 0;

	fill_regs(4);
	mxcsr_set(MAIN_MXCSR);
	x87cw_set(MAIN_X87CW);
	stack_new(&s);
	co_sp[0] = uco__context_init(s.hi, exit_entry, NULL);
	regs_switch(&main_sp, co_sp[0], main_in[0], main_out[0]);
	bad |= compare_regs("main (after the exit switch)", main_in[0], main_out[0]);
	bad |= check_main_fpctl("after the coroutine ended with its own");
	if (!bad)
		note("%d registers, MXCSR and x87 control word restored by uco__switch_exit", NREG);
	return bad;
}
#else
static int check_exit(void)
{
	note("no uco__switch_exit on this architecture (switch.h)");
	return SKIP;
}
#endif

/* ---- (d)-(g) the first frame, seen from inside ------------------------- */

struct probe_out {
	void *arg;
	uintptr_t local; /* address of a 16-aligned local in probe_main */
	/* frame-record walk */
	int walk_frames, walk_ended;
	uintptr_t walk_bad_fp, walk_last_ra;
	/* _Unwind_Backtrace */
	int unw_frames, unw_code;
	uintptr_t unw_ip[64];
};

/* Readable, zero, and no code: an unwinder that lands here finds no FDE
 * and stops, reporting this address. */
static uint64_t unwind_poison[4];
#define UNWIND_POISON ((uint64_t)(uintptr_t)&unwind_poison[2])

static struct probe_out pout;
static uintptr_t probe_lo, probe_hi;
static int probe_unwind; /* only check (f) unwinds: a bad CFI may crash */

static __attribute__((noinline)) void walk_frame_records(void)
{
	uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
	int n = 0;

	while (fp != 0 && n < 64) {
		const uintptr_t *rec = (const uintptr_t *)fp;

		if (fp < probe_lo || fp + 16 > probe_hi || fp % 8 != 0) {
			pout.walk_bad_fp = fp;
			break;
		}
		pout.walk_last_ra = strip_pac(rec[1]);
		fp = rec[0];
		n++;
	}
	pout.walk_frames = n;
	pout.walk_ended = fp == 0;
	__asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
}

static _Unwind_Reason_Code unwind_cb(struct _Unwind_Context *ctx, void *p)
{
	struct probe_out *o = p;

	o->unw_ip[o->unw_frames] = (uintptr_t)_Unwind_GetIP(ctx);
	if (++o->unw_frames >= 64)
		return _URC_END_OF_STACK; /* runaway: makes the result FATAL */
	return _URC_NO_REASON;
}

static __attribute__((noinline)) void unwind_from_here(void)
{
	pout.unw_code = _Unwind_Backtrace(unwind_cb, &pout);
	__asm__ volatile("" ::: "memory");
}

__attribute__((visibility("hidden"), used, noinline)) void probe_main(void *arg)
{
	__attribute__((aligned(16))) volatile char local[16];
	uintptr_t a = (uintptr_t)local;

	local[0] = 1;
	/* Hide the address's provenance, or the compiler folds a % 16 to 0. */
	__asm__ volatile("" : "+r"(a) : : "memory");
	pout.local = a;
	pout.arg = arg;
	walk_frame_records();
	if (probe_unwind) {
		/* Put a bogus return address / frame record where an unwinder
		 * that ignored the trampoline's CFI would look next (on x86_64
		 * the zero word context_init leaves above the first frame would
		 * otherwise end the walk by luck), so that only `.cfi_undefined`
		 * can stop it cleanly. */
#if defined(__x86_64__)
		((volatile uint64_t *)(uintptr_t)(probe_rec.sp + 8))[0] = UNWIND_POISON;
#else
		((volatile uint64_t *)(uintptr_t)probe_rec.sp)[0] = UNWIND_POISON;
		((volatile uint64_t *)(uintptr_t)probe_rec.sp)[1] = UNWIND_POISON;
#endif
		unwind_from_here();
	}
	uco__switch(&co_sp[0], main_sp);
	for (;;)
		uco__switch(&co_sp[0], main_sp);
}

/*
 * Start entry_probe on a fresh stack whose top is `top_off` bytes below the
 * end of the mapping (to try unaligned tops), with main's callee-saved
 * registers full of non-zero values, and check the context_init contract:
 * the frame is inside [top - UCO__CONTEXT_FRAME_BYTES, top) and nothing at
 * or above top is written.
 */
#if defined(UCO__HAVE_SWITCH_IN)
/*
 * void regs_start(void **from, void *top, const uint64_t *in, uint64_t *out,
 *                 void *arg, uint64_t fpctl)
 * regs_switch for uco__switch_start_in: enters entry_probe(arg) on a fresh
 * stack at top with in[] in the callee-saved registers, and stores them to
 * out[] when main is resumed.
 */
void regs_start(void **from, void *top, const uint64_t *in, uint64_t *out, void *arg,
                uint64_t fpctl);
__asm__(
	"	.text\n"
	"	.globl	regs_start\n"
	"	.hidden	regs_start\n"
	"	.type	regs_start, @function\n"
	"regs_start:\n"
	"	.byte	0xf3, 0x0f, 0x1e, 0xfa\n" /* endbr64 */
	REGS_IN
	"	leaq	entry_probe(%rip), %rdx\n"
	"	movq	%r8, %rcx\n"
	"	movq	%r9, %r8\n"
	"	call	uco__switch_start_in\n"
	REGS_OUT
	"	.size	regs_start, .-regs_start\n");
#endif

static int run_probe(size_t top_off)
{
	static const unsigned char canary = 0xa5;
	static uint64_t in[NREG], out[NREG];
	struct stack s;
	char *top;
	int bad = 0;

	stack_new(&s);
	top = s.hi - top_off;
	memset(top, canary, top_off);
	probe_lo = (uintptr_t)s.lo;
	probe_hi = (uintptr_t)top;
	memset(&probe_rec, 0, sizeof probe_rec);
	memset(&pout, 0, sizeof pout);
	for (unsigned i = 0; i < NREG; i++)
		in[i] = reg_pattern(4, i);

#if defined(UCO__HAVE_SWITCH_IN)
	if (probe_via_start) {
		regs_start(&main_sp, top, in, out, &pout, uco__fpctl_read());
	} else
#endif
	{
		co_sp[0] = uco__context_init(top, entry_probe, &pout);
		if ((char *)co_sp[0] < top - UCO__CONTEXT_FRAME_BYTES ||
		    (char *)co_sp[0] >= top) {
			note("top %p: context_init returned sp %p, outside the %d-byte frame",
			     (void *)top, co_sp[0], UCO__CONTEXT_FRAME_BYTES);
			return 1;
		}
		regs_switch(&main_sp, co_sp[0], in, out);
	}
	for (size_t i = 0; i < top_off; i++) {
		if ((unsigned char)top[i] != canary) {
			note("top %p: byte top+%zu was overwritten", (void *)top, i);
			bad = 1;
			break;
		}
	}
	return bad;
}

/* (d) the stack alignment seen by the entry function */
static int check_alignment(void)
{
	static const size_t offs[] = { 0, 8, 13, 24 };
	int bad = 0;

	for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
		if (run_probe(offs[k])) {
			bad = 1;
			continue;
		}
		if (!entry_sp_ok(probe_rec.sp)) {
			note("top-%zu: sp at entry is %#llx (mod 16 = %llu)", offs[k],
			     (unsigned long long)probe_rec.sp,
			     (unsigned long long)(probe_rec.sp % 16));
			bad = 1;
		}
		if (pout.local % 16 != 0) {
			note("top-%zu: aligned(16) local at %#lx", offs[k], (unsigned long)pout.local);
			bad = 1;
		}
	}
	if (!bad)
		note("entry sp %#llx; %s; aligned(16) local ok; frame within %d bytes, "
		     "nothing above top written, for 4 tops",
		     (unsigned long long)probe_rec.sp,
#if defined(__x86_64__)
		     "rsp+8 16-aligned",
#else
		     "sp 16-aligned",
#endif
		     UCO__CONTEXT_FRAME_BYTES);
	return bad;
}

/* (e) the frame-pointer chain ends at the first frame */
static int check_frame_chain(void)
{
	int bad = run_probe(0);

	if (probe_rec.fp != 0) {
		note("frame pointer at entry is %#llx, not 0", (unsigned long long)probe_rec.fp);
		bad = 1;
	}
	if (pout.walk_bad_fp) {
		note("walk reached frame pointer %#lx outside the stack", (unsigned long)pout.walk_bad_fp);
		bad = 1;
	} else if (!pout.walk_ended) {
		note("walk did not end after %d frames", pout.walk_frames);
		bad = 1;
	} else if (pout.walk_frames < 2 || !in_trampoline(pout.walk_last_ra)) {
		note("walk ended after %d frames at return address %#lx, not in uco__trampoline %p",
		     pout.walk_frames, (unsigned long)pout.walk_last_ra,
		     (void *)(uintptr_t)uco__trampoline);
		bad = 1;
	}
	if (!bad)
		note("fp 0 at entry; %d frame records, the last returns into uco__trampoline+%lu, then 0",
		     pout.walk_frames, (unsigned long)(pout.walk_last_ra - (uintptr_t)uco__trampoline));
	return bad;
}

/* (f) DWARF unwinding stops at the trampoline (.cfi_undefined) */
static int check_unwind(void)
{
	int bad;
	int n, last;

	probe_unwind = 1;
	bad = run_probe(0);
	n = pout.unw_frames;
	last = n - 1;

	/* libgcc reports the frame after the one whose return address is
	 * undefined once more, with ip 0, before END_OF_STACK. */
	if (last >= 0 && pout.unw_ip[last] == 0)
		last--;
	if (pout.unw_code != _URC_END_OF_STACK || last < 1 ||
	    !in_trampoline(pout.unw_ip[last])) {
		note("_Unwind_Backtrace returned %d (want END_OF_STACK = %d) after %d frames; "
		     "uco__trampoline is at %p; ips:", pout.unw_code, _URC_END_OF_STACK, n,
		     (void *)(uintptr_t)uco__trampoline);
		for (int i = 0; i < n && i < 8; i++)
			note("%#lx", (unsigned long)pout.unw_ip[i]);
		bad = 1;
	}
	if (!bad)
		note("%d frames, the last real one in uco__trampoline", last + 1);
	return bad;
}

/* (g) what else entry() finds: its argument, a return address in the
 * trampoline, and (aarch64) d8-d15 zero, not the spawner's values. */
static int check_entry_state(void)
{
	int bad = run_probe(0);

	if (pout.arg != &pout) {
		note("entry got arg %p, want %p", pout.arg, (void *)&pout);
		bad = 1;
	}
	if (!in_trampoline(probe_rec.ra)) {
		note("return address at entry %#llx is not in uco__trampoline",
		     (unsigned long long)probe_rec.ra);
		bad = 1;
	}
#if defined(__aarch64__)
	for (int i = 0; i < 8; i++) {
		if (probe_rec.d[i] != 0) {
			note("d%d = %#llx at entry, want 0", 8 + i, (unsigned long long)probe_rec.d[i]);
			bad = 1;
		}
	}
#endif
	if (!bad)
		note("arg passed, return address uco__trampoline+%lu%s",
		     (unsigned long)(probe_rec.ra - (uintptr_t)uco__trampoline),
#if defined(__aarch64__)
		     ", d8-d15 zero"
#else
		     ""
#endif
		);
	return bad;
}

/* ---- (h) an entry that returns traps ----------------------------------- */

static void returning_entry(void *arg)
{
	(void)arg;
}

static int check_return_traps(void)
{
#if defined(__x86_64__)
	const int want = SIGILL; /* ud2 */
#else
	const int want = SIGTRAP; /* brk #0 */
#endif
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		struct stack s;
		int devnull = open("/dev/null", O_WRONLY);

		/* qemu-user reports the expected trap on stderr: keep it quiet */
		if (devnull >= 0)
			dup2(devnull, STDERR_FILENO);
		stack_new(&s);
		co_sp[0] = uco__context_init(s.hi, returning_entry, NULL);
		uco__switch(&main_sp, co_sp[0]);
		_exit(0); /* only if the trampoline let entry() return into main */
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		note("fork/waitpid failed");
		return 1;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == want) {
		note("the process died of %s", strsignal(want));
		return 0;
	}
	if (WIFSIGNALED(status))
		note("died of signal %d (%s), want %s", WTERMSIG(status),
		     strsignal(WTERMSIG(status)), strsignal(want));
	else
		note("exited with status %d, want death by %s", WEXITSTATUS(status), strsignal(want));
	return 1;
}

/* ---- (i) BTI landing pads (aarch64) ------------------------------------ */

#if defined(__aarch64__)
#ifndef PROT_BTI
#define PROT_BTI 0x10
#endif
#ifndef HWCAP2_BTI
#define HWCAP2_BTI (1 << 17)
#endif

static int guarded_segments;

static int guard_exe_text(struct dl_phdr_info *info, size_t size, void *data)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	(void)size;
	(void)data;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start, end;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		start = (info->dlpi_addr + ph->p_vaddr) & ~(page - 1);
		end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		if (mprotect((void *)start, end - start, PROT_READ | PROT_EXEC | PROT_BTI) != 0)
			return -1;
		guarded_segments++;
	}
	return 1; /* the first object is the executable: stop there */
}

static void (*volatile switch_ptr)(void **, void *) = uco__switch;

static void bti_entry(void *arg)
{
	(void)arg;
	for (;;) {
		counter++;
		switch_ptr(&co_sp[0], main_sp);
	}
}

static int check_bti(void)
{
	struct stack s;

	if (!(getauxval(AT_HWCAP2) & HWCAP2_BTI)) {
		note("the CPU has no BTI");
		return SKIP;
	}
	/* Debian's crt files and libc carry no BTI note, so the executable is
	 * not guarded as a whole; guard its own text by hand.  Only code of
	 * this test, built with -mbranch-protection, runs from there now. */
	if (dl_iterate_phdr(guard_exe_text, NULL) != 1 || guarded_segments == 0) {
		note("mprotect(PROT_BTI) failed or found no text");
		return SKIP;
	}
	stack_new(&s);
	/* blr from the trampoline into a C entry, `br`-free resumes, and an
	 * indirect call into uco__switch's `bti c`. */
	co_sp[0] = uco__context_init(s.hi, bti_entry, NULL);
	for (unsigned long i = 0; i < 10000; i++) {
		switch_ptr(&main_sp, co_sp[0]);
		if (counter != i + 1) {
			note("counter %lu after %lu round trips", counter, i + 1);
			return 1;
		}
	}
	note("10000 indirect round trips on BTI-guarded text");
	return 0;
}
#else
static int check_bti(void)
{
	note("Linux does not enforce IBT in user space; readelf checks the note instead");
	return SKIP;
}
#endif

/* ------------------------------------------------------------------------ */

int main(void)
{
	struct rlimit no_core = { 0, 0 };

	/* Checks that expect a crash should not leave core files (qemu-user
	 * writes its own). */
	setrlimit(RLIMIT_CORE, &no_core);
	setvbuf(stdout, NULL, _IOLBF, 0);
	msg = mmap(NULL, MSG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (msg == MAP_FAILED) {
		perror("mmap");
		return 2;
	}

	run_check("(a1) ping-pong main <-> coroutine", check_pingpong);
	run_check("(a2) two coroutines, each resumed by main", check_two_via_main);
	run_check("(a3) two coroutines switching to each other", check_two_direct);
	run_check("(b) callee-saved registers survive a switch", check_regs);
	run_check("(c) floating-point control state per coroutine", check_fpctl);
	run_check("(d) stack alignment at the entry function", check_alignment);
	run_check("(e) frame-pointer chain ends at the first frame", check_frame_chain);
	run_check("(f) unwinder stops at uco__trampoline", check_unwind);
	run_check("(g) entry function's initial state", check_entry_state);
	run_check("(h) an entry that returns traps", check_return_traps);
	run_check("(i) BTI landing pads on guarded pages", check_bti);
	run_check("(j) the exit switch restores the other side", check_exit);
	run_check("(k) the start switch enters as a first frame does", check_start);
	run_check("(l) the scheduler's switch saves the word it is given", check_switch_in);

	printf("%d passed, %d failed\n", n_passed, n_failed);
	(void)n_skipped;
	return n_failed ? 1 : 0;
}
