/* SPDX-License-Identifier: MIT */
/* The switch as tasks see it: many switches, per-coroutine floating-point
 * control state, ABI stack alignment, and unwinding that stops cleanly.
 * (tests/switch_standalone.c checks the raw routine register by register.) */
#include <errno.h>
#include <execinfo.h>
#include <fenv.h>
#include <signal.h>
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

#if defined(__x86_64__)
/*
 * The scheduler's rounding mode (x86_64's MXCSR and x87 control word) is
 * its own: user code that runs on its stack (done-callbacks, call_later
 * handles, uco_loop_call's calls, signal callbacks, context destructors)
 * may change it with
 * fesetround() and the change stays with the scheduler, past every task
 * switch, up to uco_loop_run's return; tasks started afterwards start with
 * the default anyway, and a task resumed afterwards has its own.  The
 * switch into a task saves a cached copy of the scheduler's word, so each
 * of these places must refresh it: with one missing, the next task to park
 * would bring the scheduler back the word from before the callback.
 */
static struct {
	volatile bool changed;  /* the callback has run */
	int task_fail;          /* what the parking task saw wrong, 0: nothing */
	int new_mode;           /* the mode a task started afterwards saw */
	int sched_mode;         /* the scheduler's, after the parking task ended */
	int rounds;             /* the parking task's resumes after the change */
} fpcb;

static void change_mode(void)
{
	fesetround(FE_DOWNWARD);
	fpcb.changed = true;
}

static void *reports_mode(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)fegetround();
}

/* Parks with FE_UPWARD until the callback has run, starts a task then,
 * and parks some more: it must come back with FE_UPWARD every time. */
static void *parks_upward(void *arg)
{
	(void)arg;
	fesetround(FE_UPWARD);
	for (int i = 0; !fpcb.changed; i++) {
		if (i == 100000) {
			fpcb.task_fail = 1; /* the callback never ran */
			return NULL;
		}
		/* Parked on the kernel, so that a signal's read completes. */
		if (uco_sleep(10 * 1000) != 0)
			fpcb.task_fail = 5;
		if (fegetround() != FE_UPWARD)
			fpcb.task_fail = 2;
	}
	uco_task *n;
	void *v = NULL;
	if (uco_spawn(NULL, &n, reports_mode, NULL) != 0 || uco_await(n, &v) != 0)
		fpcb.task_fail = 3;
	uco_task_release(n);
	fpcb.new_mode = (int)(intptr_t)v;
	for (int i = 0; i < 10; i++, fpcb.rounds++) {
		uco_yield();
		if (fegetround() != FE_UPWARD)
			fpcb.task_fail = 4;
	}
	return NULL;
}

static void record_sched_mode(uco_task *t, void *user)
{
	(void)t;
	(void)user;
	fpcb.sched_mode = fegetround();
}

/* Spawns the parking task with its done-callback (which reads the
 * scheduler's mode after its last switch back) and, with `other`, one more
 * task that the caller uses to trigger the callback. */
static void fp_scene(uco_loop *loop, void *(*other)(void *), uco_task **other_task)
{
	memset(&fpcb, 0, sizeof fpcb);
	uco_task *p;
	cr_assert_eq(uco_spawn(loop, &p, parks_upward, NULL), 0);
	cr_assert_eq(uco_task_add_done_callback(p, record_sched_mode, NULL), 0);
	uco_task_release(p);
	if (other)
		cr_assert_eq(uco_spawn(loop, other_task, other, NULL), 0);
}

static void fp_scene_check(uco_loop *loop)
{
	cr_assert_eq(uco_loop_run(loop), 0);
	int after = fegetround();
	fesetround(FE_TONEAREST);
	cr_assert(fpcb.changed, "the callback ran");
	cr_assert_eq(fpcb.task_fail, 0, "the parking task's check %d failed", fpcb.task_fail);
	cr_assert_eq(fpcb.rounds, 10);
	cr_assert_eq(fpcb.new_mode, FE_TONEAREST, "a task started after the callback "
	             "starts with the default mode");
	cr_assert_eq(fpcb.sched_mode, FE_DOWNWARD, "the scheduler keeps the callback's "
	             "mode past a task's switches (got %#x)", fpcb.sched_mode);
	cr_assert_eq(after, FE_DOWNWARD, "uco_loop_run returns with the callback's mode");
	test_close(loop);
}

static void *returns_at_once(void *arg)
{
	return arg;
}

static void done_changes_mode(uco_task *t, void *user)
{
	(void)t;
	(void)user;
	change_mode();
}

Test(switch, a_done_callbacks_rounding_mode_stays_with_the_scheduler)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	fp_scene(loop, returns_at_once, &t);
	cr_assert_eq(uco_task_add_done_callback(t, done_changes_mode, NULL), 0);
	uco_task_release(t);
	fp_scene_check(loop);
}

static void call_changes_mode(void *arg)
{
	(void)arg;
	change_mode();
}

Test(switch, a_call_later_handles_rounding_mode_stays_with_the_scheduler)
{
	uco_loop *loop = test_loop();
	fp_scene(loop, NULL, NULL);
	cr_assert_eq(uco_call_later(loop, 0, call_changes_mode, NULL, NULL), 0);
	fp_scene_check(loop);
}

Test(switch, a_loop_calls_rounding_mode_stays_with_the_scheduler)
{
	uco_loop *loop = test_loop();
	fp_scene(loop, NULL, NULL);
	cr_assert_eq(uco_loop_call(loop, call_changes_mode, NULL), 0);
	fp_scene_check(loop);
}

static void signal_changes_mode(int signo, void *user)
{
	(void)signo;
	(void)user;
	change_mode();
}

static void *raises_sigusr2(void *arg)
{
	(void)arg;
	raise(SIGUSR2); /* blocked in this thread: it waits for the signalfd */
	return NULL;
}

Test(switch, a_signal_callbacks_rounding_mode_stays_with_the_scheduler)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_loop_on_signal(loop, SIGUSR2, signal_changes_mode, NULL), 0);
	uco_task *t;
	fp_scene(loop, raises_sigusr2, &t);
	uco_task_release(t);
	fp_scene_check(loop);
}

static uco_ctx_key *fp_key;

static void dtor_changes_mode(void *value)
{
	(void)value;
	change_mode();
}

static void *sets_a_context_value(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_ctx_set(fp_key, &fp_key), 0);
	return NULL;
}

Test(switch, a_context_destructors_rounding_mode_stays_with_the_scheduler)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_ctx_key_create(&fp_key, dtor_changes_mode), 0);
	uco_task *t;
	fp_scene(loop, sets_a_context_value, &t);
	uco_task_release(t);
	fp_scene_check(loop);
	uco_ctx_key_delete(fp_key);
}

/* A task parked on the kernel (a timer) with FE_UPWARD resumes with it,
 * while the scheduler runs with its own mode, set before uco_loop_run. */
static void *sleeps_upward(void *arg)
{
	(void)arg;
	fesetround(FE_UPWARD);
	for (int i = 0; i < 3; i++) {
		if (uco_sleep(1000) != 0)
			return (void *)1;
		if (fegetround() != FE_UPWARD)
			return (void *)2;
	}
	return NULL;
}

Test(switch, a_task_parked_with_its_own_rounding_mode_resumes_with_it)
{
	uco_loop *loop = test_loop();
	uco_task *t[2];
	void *v[2] = { (void *)-1, (void *)-1 };
	fesetround(FE_TOWARDZERO);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(uco_spawn(loop, &t[i], sleeps_upward, NULL), 0);
	int r = uco_loop_run(loop);
	int after = fegetround();
	fesetround(FE_TONEAREST);
	cr_assert_eq(r, 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(uco_task_result(t[i], &v[i]), 0);
		cr_assert_null(v[i], "task %d: check %d failed", i, (int)(intptr_t)v[i]);
		uco_task_release(t[i]);
	}
	cr_assert_eq(after, FE_TOWARDZERO, "the scheduler keeps its own mode");
	test_close(loop);
}
#endif
