/* SPDX-License-Identifier: MIT */
/*
 * switch: the one-way cost of a context switch.
 *
 * For every implementation the same structure: two contexts A and B, each
 * on its own mmap'd stack of UCO_STACK_SIZE_DEFAULT bytes with a guard page.
 * The main thread enters A; A times n round trips A -> B -> A (B does
 * nothing but switch back), then returns to the main thread.  A round trip
 * is two switches, so ns_per_switch = elapsed / (2 n).  The loop overhead
 * (a counter and a compare) is in every implementation's figure alike.
 *
 *   uco             uco__switch / uco__context_init (lib/arch/)
 *   boost-fcontext  jump_fcontext / make_fcontext of Boost.Context
 *                   (libboost-context-dev), declared here in C
 *   ucontext        glibc swapcontext / makecontext (which also saves and
 *                   restores the signal mask: one system call per switch)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#include "arch/switch.h"
#include "bench.h"
#include "uco.h"

#define STACK_SIZE ((size_t)UCO_STACK_SIZE_DEFAULT)

/* What every implementation provides: set up A and B, run n timed round
 * trips (returns the elapsed ns measured inside A), tear down. */
struct switch_impl {
	const char *name;
	int (*setup)(void);
	int64_t (*run)(uint64_t n);
	void (*teardown)(void);
};

/* ------------------------------------------------------------ uco */

static struct {
	void *main_sp, *a_sp, *b_sp;
	void *a_stack, *b_stack;
	uint64_t n;
	int64_t elapsed;
} us;

static void uco_a(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t n = us.n;
		int64_t t0 = bench_now_ns();
		for (uint64_t i = 0; i < n; i++)
			uco__switch(&us.a_sp, us.b_sp);
		us.elapsed = bench_now_ns() - t0;
		uco__switch(&us.a_sp, us.main_sp);
	}
}

static void uco_b(void *arg)
{
	(void)arg;
	for (;;)
		uco__switch(&us.b_sp, us.a_sp);
}

static int uco_setup(void)
{
	us.a_stack = bench_stack_alloc(STACK_SIZE);
	us.b_stack = bench_stack_alloc(STACK_SIZE);
	if (!us.a_stack || !us.b_stack)
		return -ENOMEM;
	us.a_sp = uco__context_init((char *)us.a_stack + STACK_SIZE, uco_a, NULL);
	us.b_sp = uco__context_init((char *)us.b_stack + STACK_SIZE, uco_b, NULL);
	return 0;
}

static int64_t uco_run(uint64_t n)
{
	us.n = n;
	uco__switch(&us.main_sp, us.a_sp);
	return us.elapsed;
}

static void uco_teardown(void)
{
	bench_stack_free(us.a_stack, STACK_SIZE);
	bench_stack_free(us.b_stack, STACK_SIZE);
	memset(&us, 0, sizeof us);
}

/* ------------------------------------------------------------ Boost.Context */

#if defined(UCO_BENCH_HAVE_BOOST_CONTEXT)
/* The C ABI of Boost.Context's assembly (boost/context/detail/fcontext.hpp,
 * declared there inside extern "C"). */
typedef void *fcontext_t;
typedef struct {
	fcontext_t fctx;
	void *data;
} transfer_t;
transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

static struct {
	fcontext_t main_ctx, a_ctx, b_ctx;
	void *a_stack, *b_stack;
	uint64_t n;
	int64_t elapsed;
} bs;

static void boost_a(transfer_t t)
{
	bs.main_ctx = t.fctx;
	for (;;) {
		uint64_t n = bs.n;
		int64_t t0 = bench_now_ns();
		for (uint64_t i = 0; i < n; i++)
			bs.b_ctx = jump_fcontext(bs.b_ctx, NULL).fctx;
		bs.elapsed = bench_now_ns() - t0;
		bs.main_ctx = jump_fcontext(bs.main_ctx, NULL).fctx;
	}
}

static void boost_b(transfer_t t)
{
	for (;;)
		t = jump_fcontext(t.fctx, NULL);
}

static int boost_setup(void)
{
	bs.a_stack = bench_stack_alloc(STACK_SIZE);
	bs.b_stack = bench_stack_alloc(STACK_SIZE);
	if (!bs.a_stack || !bs.b_stack)
		return -ENOMEM;
	bs.a_ctx = make_fcontext((char *)bs.a_stack + STACK_SIZE, STACK_SIZE, boost_a);
	bs.b_ctx = make_fcontext((char *)bs.b_stack + STACK_SIZE, STACK_SIZE, boost_b);
	return 0;
}

static int64_t boost_run(uint64_t n)
{
	bs.n = n;
	bs.a_ctx = jump_fcontext(bs.a_ctx, NULL).fctx;
	return bs.elapsed;
}

static void boost_teardown(void)
{
	bench_stack_free(bs.a_stack, STACK_SIZE);
	bench_stack_free(bs.b_stack, STACK_SIZE);
	memset(&bs, 0, sizeof bs);
}
#endif

/* ------------------------------------------------------------ ucontext */

static struct {
	ucontext_t main_uc, a_uc, b_uc;
	void *a_stack, *b_stack;
	uint64_t n;
	int64_t elapsed;
} uc;

static void uc_a(void)
{
	for (;;) {
		uint64_t n = uc.n;
		int64_t t0 = bench_now_ns();
		for (uint64_t i = 0; i < n; i++)
			swapcontext(&uc.a_uc, &uc.b_uc);
		uc.elapsed = bench_now_ns() - t0;
		swapcontext(&uc.a_uc, &uc.main_uc);
	}
}

static void uc_b(void)
{
	for (;;)
		swapcontext(&uc.b_uc, &uc.a_uc);
}

static int uc_make(ucontext_t *ctx, void *stack, void (*fn)(void))
{
	if (getcontext(ctx) < 0)
		return -errno;
	ctx->uc_stack.ss_sp = stack;
	ctx->uc_stack.ss_size = STACK_SIZE;
	ctx->uc_link = NULL;
	makecontext(ctx, fn, 0);
	return 0;
}

static int uc_setup(void)
{
	int ret;

	uc.a_stack = bench_stack_alloc(STACK_SIZE);
	uc.b_stack = bench_stack_alloc(STACK_SIZE);
	if (!uc.a_stack || !uc.b_stack)
		return -ENOMEM;
	if ((ret = uc_make(&uc.a_uc, uc.a_stack, uc_a)) < 0 ||
	    (ret = uc_make(&uc.b_uc, uc.b_stack, uc_b)) < 0)
		return ret;
	return 0;
}

static int64_t uc_run(uint64_t n)
{
	uc.n = n;
	swapcontext(&uc.main_uc, &uc.a_uc);
	return uc.elapsed;
}

static void uc_teardown(void)
{
	bench_stack_free(uc.a_stack, STACK_SIZE);
	bench_stack_free(uc.b_stack, STACK_SIZE);
	memset(&uc, 0, sizeof uc);
}

/* ------------------------------------------------------------ driver */

static const struct switch_impl impls[] = {
	{"uco", uco_setup, uco_run, uco_teardown},
#if defined(UCO_BENCH_HAVE_BOOST_CONTEXT)
	{"boost-fcontext", boost_setup, boost_run, boost_teardown},
#endif
	{"ucontext", uc_setup, uc_run, uc_teardown},
};

static int run_one(const struct switch_impl *im, const struct bench_opts *opts)
{
	const int64_t target_ns = BENCH_PICK(opts, 20, 100, 200) * INT64_C(1000000);
	const int repeats = BENCH_PICK(opts, 3, 7, 15);
	uint64_t n = 1024;
	int64_t el;
	int ret;

	bench_progress("switch", im->name, "");
	ret = im->setup();
	if (ret < 0) {
		bench_fail("switch", im->name, "setup: %s", strerror(-ret));
		im->teardown();
		return ret;
	}
	/* Calibrate (and warm up): grow n until one run lasts >= 10 ms, then
	 * size a repeat to last about target_ns. */
	for (;;) {
		el = im->run(n);
		if (el >= 10 * INT64_C(1000000) || n >= (UINT64_C(1) << 40))
			break;
		n *= 2;
	}
	if (el > 0)
		n = (uint64_t)((double)n * (double)target_ns / (double)el);
	if (n < 1024)
		n = 1024;

	for (int r = 0; r < repeats; r++) {
		el = im->run(n);
		bench_emit("switch", im->name, "ns_per_switch",
		           (double)el / (2.0 * (double)n), "ns");
	}
	im->teardown();
	return 0;
}

int bench_switch_run(const struct bench_opts *opts)
{
	int ret = 0;

#if !defined(UCO_BENCH_HAVE_BOOST_CONTEXT)
	bench_skip("switch", "boost-fcontext",
	           "Boost.Context (libboost-context-dev) was not found at build time");
#endif
	for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
		int r = run_one(&impls[i], opts);
		if (r < 0 && strcmp(impls[i].name, "uco") == 0)
			ret = r;
	}
	return ret;
}
