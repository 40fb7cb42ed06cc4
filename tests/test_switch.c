/* SPDX-License-Identifier: MIT */
/* The switch as tasks see it: many switches, per-coroutine floating-point
 * control state, ABI stack alignment, and unwinding that stops cleanly.
 * (tests/switch_standalone.c checks the raw routine register by register.) */
#include <errno.h>
#include <execinfo.h>
#include <fenv.h>
#include <stdint.h>

#include "helpers.h"

static uint64_t pingpong_count;

static void *pingpong(void *arg)
{
	intptr_t rounds = (intptr_t)arg;
	for (intptr_t i = 0; i < rounds; i++) {
		pingpong_count++;
		cr_assert_eq(uco_yield(), 0);
	}
	return NULL;
}

Test(switch, millions_of_switches, .timeout = 120)
{
	uco_loop *loop = test_loop();
	enum { ROUNDS = 500000 };
	cr_assert_eq(uco_spawn(loop, NULL, pingpong, (void *)(intptr_t)ROUNDS), 0);
	cr_assert_eq(uco_spawn(loop, NULL, pingpong, (void *)(intptr_t)ROUNDS), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(pingpong_count, 2 * ROUNDS);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	cr_assert_geq(s.switches, 4ull * ROUNDS, "each yield is a switch out and back in");
	test_close(loop);
}

#if defined(__x86_64__)
static uint32_t read_mxcsr(void)
{
	uint32_t v;
	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static uint16_t read_x87_cw(void)
{
	uint16_t v;
	__asm__ volatile("fnstcw %0" : "=m"(v));
	return v;
}
#endif

static int fp_fail;

static void *fp_rounding(void *arg)
{
	int mode = (int)(intptr_t)arg;
	/* A new coroutine starts with the ABI default, whatever the others
	 * set. */
	if (fegetround() != FE_TONEAREST)
		fp_fail = 1;
	fesetround(mode);
#if defined(__x86_64__)
	uint32_t mxcsr = read_mxcsr();
	uint16_t cw = read_x87_cw();
#endif
	for (int i = 0; i < 100; i++) {
		uco_yield();
		if (fegetround() != mode)
			fp_fail = 2;
#if defined(__x86_64__)
		/* The control bits only: MXCSR's low six bits are sticky
		 * exception flags, which the division below sets (unless
		 * the optimizer drops it, as it does above -O0). */
		if ((read_mxcsr() & ~0x3fu) != (mxcsr & ~0x3fu) || read_x87_cw() != cw)
			fp_fail = 3;
#endif
		volatile double third = 1.0, three = 3.0;
		double up = third / three;
		(void)up;
	}
	return NULL;
}

Test(switch, floating_point_control_state_is_per_coroutine)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_spawn(loop, NULL, fp_rounding, (void *)(intptr_t)FE_UPWARD), 0);
	cr_assert_eq(uco_spawn(loop, NULL, fp_rounding, (void *)(intptr_t)FE_DOWNWARD), 0);
	cr_assert_eq(uco_spawn(loop, NULL, fp_rounding, (void *)(intptr_t)FE_TOWARDZERO), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(fp_fail, 0, "check %d failed", fp_fail);
	cr_assert_eq(fegetround(), FE_TONEAREST, "the scheduler's own mode is untouched");
	test_close(loop);
}

/* Compiled with frame pointers: at a function's entry rsp + 8 (x86_64) or
 * sp (aarch64) is 16-byte aligned, so the frame address is 16-aligned. */
__attribute__((noinline, optimize("no-omit-frame-pointer")))
static void *reports_alignment(void *arg)
{
	(void)arg;
	uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
	float __attribute__((aligned(32))) wide[8] = { 0 };
	wide[0] = 1;
	return (void *)((fp % 16) | ((uintptr_t)wide % 32));
}

Test(switch, the_stack_is_aligned_as_the_abi_wants)
{
	uco_loop *loop = test_loop();
	for (int i = 0; i < 4; i++) {
		uco_task *t;
		void *v = (void *)1;
		cr_assert_eq(uco_spawn(loop, &t, reports_alignment, NULL), 0);
		cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
		cr_assert_eq((uintptr_t)v, 0, "misaligned by %lu", (unsigned long)(uintptr_t)v);
		uco_task_release(t);
	}
	test_close(loop);
}

static int nest_and_unwind(int depth)
{
	if (depth == 0) {
		void *frames[128];
		return backtrace(frames, 128);
	}
	return nest_and_unwind(depth - 1) + 0 * depth;
}

static void *unwinds(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)nest_and_unwind(5);
}

Test(switch, unwinding_stops_at_the_coroutine_entry)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, unwinds, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	intptr_t frames = (intptr_t)v;
	/* nest_and_unwind x6, unwinds, task_entry, trampoline: then stop. */
	cr_assert_geq(frames, 3);
	cr_assert_lt(frames, 20, "backtrace walked %ld frames: past the entry", (long)frames);
	uco_task_release(t);
	test_close(loop);
}
