/* SPDX-License-Identifier: MIT */
/* gather, wait, wait_for, shield, as_completed, groups, all_tasks, and the
 * seed's second and third examples (signals). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "helpers.h"

/* ---- the seed's second example: ten 2 s sleeps finish in ~2 s, not 20 */

struct ten {
	int mode; /* 0: gather, 1: wait */
	int64_t elapsed;
	int r;
};

static void *ten_sleepers(void *arg)
{
	struct ten *c = arg;
	uco_task *t[10];
	for (int i = 0; i < 10; i++)
		cr_assert_eq(uco_spawn(NULL, &t[i], sleeps_then, (void *)(intptr_t)20), 0);
	int64_t t0 = uco_now();
	if (c->mode == 0) {
		void *v[10];
		c->r = uco_gather(t, 10, v, NULL, 0);
		for (int i = 0; i < 10; i++)
			cr_assert_eq((intptr_t)v[i], 20);
	} else {
		unsigned char done[10];
		c->r = uco_wait(t, 10, UCO_WAIT_ALL_COMPLETED, UCO_FOREVER, done);
	}
	c->elapsed = uco_now() - t0;
	for (int i = 0; i < 10; i++)
		uco_task_release(t[i]);
	return NULL;
}

Test(seed, ten_sleeps_run_concurrently_under_gather_and_wait)
{
	uco_loop *loop = test_loop();
	struct ten g = { 0, 0, -1 }, w = { 1, 0, -1 };
	cr_assert_eq(uco_spawn(loop, NULL, ten_sleepers, &g), 0);
	cr_assert_eq(uco_spawn(loop, NULL, ten_sleepers, &w), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(g.r, 0);
	cr_assert_eq(w.r, 10);
	cr_assert_geq(g.elapsed, MS(20));
	cr_assert_lt(g.elapsed, MS(20) * 10, "concurrent, not one after another");
	cr_assert_lt(w.elapsed, MS(20) * 10);
	test_close(loop);
}

/* ---- gather */

static void *gathers(void *arg)
{
	intptr_t *ms = arg; /* five durations, in a result order != finish order */
	uco_task *t[5];
	for (int i = 0; i < 5; i++)
		uco_spawn(NULL, &t[i], sleeps_then, (void *)ms[i]);
	void *v[5];
	int errors[5];
	int r = uco_gather(t, 5, v, errors, UCO_GATHER_COLLECT);
	for (int i = 0; i < 5; i++) {
		if (ms[i] < 0) {
			cr_assert_eq(errors[i], -EIO);
		} else {
			cr_assert_eq(errors[i], 0);
			cr_assert_eq((intptr_t)v[i], ms[i], "values in the order given");
		}
		uco_task_release(t[i]);
	}
	return (void *)(intptr_t)r;
}

Test(gather, values_in_order_and_collect_mode)
{
	uco_loop *loop = test_loop();
	static intptr_t ms[5] = { 30, 10, -20, 5, 15 };
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, gathers, ms), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, 1, "one failed");
	uco_task_release(t);
	test_close(loop);
}

/* Waiting for itself could never end: refused, as uco_await refuses it. */
static void *waits_for_itself(void *arg)
{
	(void)arg;
	uco_task *t[2] = { NULL, uco_task_current() };
	unsigned char taken[2] = { 0 };
	cr_assert_eq(uco_spawn(NULL, &t[0], sleeps_then, (void *)(intptr_t)1), 0);
	cr_expect_eq(uco_gather(t, 2, NULL, NULL, 0), -EDEADLK);
	cr_expect_eq(uco_wait(t, 2, UCO_WAIT_ALL_COMPLETED, UCO_FOREVER, NULL), -EDEADLK);
	cr_expect_eq(uco_next_completed(t, 2, taken, UCO_FOREVER), -EDEADLK);
	cr_expect_eq(uco_gather(t, 1, NULL, NULL, 0), 0, "the others still work");
	uco_task_release(t[0]);
	return (void *)7;
}

Test(gather, the_caller_among_the_tasks_is_refused)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, waits_for_itself, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, 7);
	uco_task_release(t);
	test_close(loop);
}

static void *gathers_failing(void *arg)
{
	(void)arg;
	uco_task *t[3];
	uco_spawn(NULL, &t[0], sleeps_then, (void *)(intptr_t)50);
	uco_spawn(NULL, &t[1], sleeps_then, (void *)(intptr_t)-5);
	uco_spawn(NULL, &t[2], sleeps_then, (void *)(intptr_t)60);
	int64_t t0 = uco_now();
	int r = uco_gather(t, 3, NULL, NULL, 0);
	cr_assert_lt(uco_now() - t0, MS(50), "the first failure returns at once");
	cr_assert_eq(uco_task_state_get(t[0]), UCO_TASK_PENDING, "the others go on");
	for (int i = 0; i < 3; i++)
		uco_task_release(t[i]);
	return (void *)(intptr_t)r;
}

Test(gather, the_first_failure_returns_at_once)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, gathers_failing, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, -EIO);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_task_release(t);
	test_close(loop);
}

/* gather(group1, group2), each group itself a gather; cancel the outer. */
static uco_task *leaves[6];

static void *outer_gather(void *arg)
{
	(void)arg;
	uco_task *groups[2];
	for (int i = 0; i < 6; i++)
		uco_spawn(NULL, &leaves[i], sleeps_then, (void *)(intptr_t)(10000 + i));
	cr_assert_eq(uco_spawn_gather(NULL, &groups[0], leaves, 3, 0), 0);
	cr_assert_eq(uco_spawn_gather(NULL, &groups[1], leaves + 3, 3, 0), 0);
	int r = uco_gather(groups, 2, NULL, NULL, 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(uco_task_state_get(groups[i]), UCO_TASK_CANCELLED);
		uco_task_release(groups[i]);
	}
	return r ? uco_fail(r) : NULL;
}

static void *cancels_after(void *arg)
{
	uco_sleep(MS(5));
	uco_task_cancel(arg);
	return NULL;
}

Test(gather, groups_of_groups_and_cancelling_the_outer_cancels_every_leaf)
{
	uco_loop *loop = test_loop();
	uco_task *outer;
	cr_assert_eq(uco_spawn(loop, &outer, outer_gather, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_after, outer), 0);
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_lt(uco_now() - t0, 5 * UCO_NS_PER_S, "no leaf slept its 10 s");
	cr_assert_eq(uco_task_state_get(outer), UCO_TASK_CANCELLED);
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(uco_task_state_get(leaves[i]), UCO_TASK_CANCELLED, "leaf %d", i);
		uco_task_release(leaves[i]);
	}
	uco_task_release(outer);
	test_close(loop);
}

/* asyncio's gather(return_exceptions=True) future succeeds whatever its
 * children did: so does a spawned COLLECT gather, with how many failed as
 * its value; each task's own result stays readable. */
Test(gather, a_spawned_collect_gather_is_done_and_counts_the_failures)
{
	uco_loop *loop = test_loop();
	uco_task *t[3], *collect, *first;
	cr_assert_eq(uco_spawn(loop, &t[0], sleeps_then, (void *)(intptr_t)2), 0);
	cr_assert_eq(uco_spawn(loop, &t[1], sleeps_then, (void *)(intptr_t)-1), 0);
	cr_assert_eq(uco_spawn(loop, &t[2], sleeps_then, (void *)(intptr_t)3), 0);
	cr_assert_eq(uco_task_cancel(t[2]), 0);
	cr_assert_eq(uco_spawn_gather(loop, &collect, t, 3, UCO_GATHER_COLLECT), 0);
	cr_assert_eq(uco_spawn_gather(loop, &first, t, 3, 0), 0);
	void *v = NULL;
	cr_assert_eq(uco_loop_run_until(loop, collect, &v), 0);
	cr_assert_eq(uco_task_state_get(collect), UCO_TASK_DONE);
	cr_assert_eq((uintptr_t)v, 2, "two of three failed: %p", v);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_result(t[0], &v), 0);
	cr_assert_eq((intptr_t)v, 2);
	cr_assert_eq(uco_task_result(t[1], NULL), -EIO);
	cr_assert_eq(uco_task_result(t[2], NULL), -ECANCELED);
	/* Without COLLECT the gather still fails with the first failure. */
	cr_assert_eq(uco_task_state_get(first), UCO_TASK_CANCELLED);
	for (int i = 0; i < 3; i++)
		uco_task_release(t[i]);
	uco_task_release(collect);
	uco_task_release(first);
	test_close(loop);
}

/* ---- wait, wait_for, shield, as_completed */

/* The order the tasks end in is set by the test, not by a clock: a slow
 * machine must not change which wait sees what. */
static uco_event fail_now, finish_now;

static void *fails_when_told(void *arg)
{
	(void)arg;
	uco_event_wait(&fail_now);
	return uco_fail(-EIO);
}

static void *finishes_when_told(void *arg)
{
	uco_event_wait(&finish_now);
	return arg;
}

static void *waits_modes(void *arg)
{
	(void)arg;
	uco_task *t[3];
	uco_event_init(&fail_now);
	uco_event_init(&finish_now);
	uco_spawn(NULL, &t[0], finishes_when_told, (void *)(intptr_t)40);
	uco_spawn(NULL, &t[1], fails_when_told, NULL);
	uco_spawn(NULL, &t[2], sleeps_then, (void *)(intptr_t)5);
	unsigned char done[3];
	cr_assert_eq(uco_wait(t, 3, UCO_WAIT_FIRST_COMPLETED, UCO_FOREVER, done), 1);
	cr_assert(done[2] && !done[0] && !done[1]);
	uco_event_set(&fail_now);
	cr_assert_eq(uco_wait(t, 3, UCO_WAIT_FIRST_EXCEPTION, UCO_FOREVER, done), 2);
	cr_assert(done[1]);
	int64_t t0 = uco_now();
	done[0] = done[1] = done[2] = 9;
	cr_assert_eq(uco_wait(t, 3, UCO_WAIT_ALL_COMPLETED, t0 + MS(5), done), -ETIMEDOUT);
	cr_assert_geq(uco_now() - t0, MS(5));
	cr_assert(!done[0] && done[1] && done[2], "done[] is written on expiry too");
	cr_assert_eq(uco_wait(t, 3, UCO_WAIT_ALL_COMPLETED, 0, NULL), -ETIMEDOUT, "try once");
	cr_assert_eq(uco_wait(t, 3, UCO_WAIT_FIRST_COMPLETED, 0, done), 2,
	             "try once, and the condition holds");
	unsigned char taken[3] = { 0, 1, 1 };
	cr_assert_eq(uco_next_completed(t, 3, taken, uco_now() + MS(1)), -ETIMEDOUT,
	             "the same rule as uco_wait");
	cr_assert_eq(uco_task_state_get(t[0]), UCO_TASK_PENDING, "wait cancels nothing");
	uco_event_set(&finish_now);
	cr_assert_eq(uco_wait(t, 3, UCO_WAIT_ALL_COMPLETED, UCO_FOREVER, done), 3);
	cr_assert_eq(uco_wait(t, 3, 7, UCO_FOREVER, done), -EINVAL);
	for (int i = 0; i < 3; i++)
		uco_task_release(t[i]);
	return NULL;
}

Test(wait, first_completed_first_exception_all_and_a_timeout)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, waits_modes, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE);
	uco_task_release(t);
	test_close(loop);
}

static void *ignores_cancel_and_returns(void *arg)
{
	int r = uco_sleep(MS(100));
	cr_assert_eq(r, -ECANCELED);
	return arg;
}

static void *waits_for(void *arg)
{
	(void)arg;
	uco_task *slow, *quick, *stubborn;
	uco_spawn(NULL, &slow, sleeps_then, (void *)(intptr_t)10000);
	uco_spawn(NULL, &quick, sleeps_then, (void *)(intptr_t)3);
	uco_spawn(NULL, &stubborn, ignores_cancel_and_returns, "mine");
	void *v;
	int64_t t0 = uco_now();
	cr_assert_eq(uco_wait_for(slow, t0 + MS(10), &v), -ETIMEDOUT);
	cr_assert_geq(uco_now() - t0, MS(10));
	cr_assert_eq(uco_task_state_get(slow), UCO_TASK_CANCELLED, "really finished");
	cr_assert_eq(uco_wait_for(quick, uco_now() + UCO_NS_PER_S, &v), 0);
	cr_assert_eq((intptr_t)v, 3);
	cr_assert_eq(uco_wait_for(stubborn, uco_now() + MS(5), &v), 0, "a value wins");
	cr_assert_str_eq(v, "mine");
	uco_task_release(slow);
	uco_task_release(quick);
	uco_task_release(stubborn);
	return NULL;
}

Test(wait, wait_for_cancels_on_expiry_and_waits_for_the_end)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, waits_for, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE);
	uco_task_release(t);
	test_close(loop);
}

static uco_task *shielded_inner;

static void *shields(void *arg)
{
	(void)arg;
	void *v;
	return (void *)(intptr_t)uco_shield(shielded_inner, &v);
}

Test(wait, shield_lets_the_outer_be_cancelled_not_the_inner)
{
	uco_loop *loop = test_loop();
	uco_task *outer;
	cr_assert_eq(uco_spawn(loop, &shielded_inner, sleeps_then, (void *)(intptr_t)20), 0);
	cr_assert_eq(uco_spawn(loop, &outer, shields, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_after, outer), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	void *v;
	cr_assert_eq(uco_task_result(outer, &v), 0);
	cr_assert_eq((intptr_t)v, -ECANCELED, "the shield returned -ECANCELED");
	cr_assert_eq(uco_task_result(shielded_inner, &v), 0, "the inner task ran to its end");
	cr_assert_eq((intptr_t)v, 20);
	uco_task_release(outer);
	uco_task_release(shielded_inner);
	test_close(loop);
}

static void *as_completed(void *arg)
{
	(void)arg;
	static const intptr_t ms[4] = { 30, 10, 40, 20 };
	uco_task *t[4];
	for (int i = 0; i < 4; i++)
		uco_spawn(NULL, &t[i], sleeps_then, (void *)ms[i]);
	unsigned char taken[4] = { 0 };
	int order[4];
	for (int k = 0; k < 4; k++)
		order[k] = uco_next_completed(t, 4, taken, UCO_FOREVER);
	cr_assert_eq(uco_next_completed(t, 4, taken, UCO_FOREVER), -ENOENT);
	cr_assert_eq(order[0], 1);
	cr_assert_eq(order[1], 3);
	cr_assert_eq(order[2], 0);
	cr_assert_eq(order[3], 2);
	for (int i = 0; i < 4; i++)
		uco_task_release(t[i]);
	return NULL;
}

Test(wait, as_completed_hands_tasks_back_in_completion_order)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, as_completed, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE);
	uco_task_release(t);
	test_close(loop);
}

/* ---- task groups */

static void *group_with_a_failure(void *arg)
{
	(void)arg;
	uco_group *g;
	cr_assert_eq(uco_group_create(NULL, &g), 0);
	uco_task *slow;
	cr_assert_eq(uco_group_spawn(g, &slow, sleeps_then, (void *)(intptr_t)10000), 0);
	cr_assert_eq(uco_group_spawn(g, NULL, sleeps_then, (void *)(intptr_t)-5), 0);
	cr_assert_eq(uco_group_spawn(g, NULL, sleeps_then, (void *)(intptr_t)1), 0);
	int r = uco_group_wait(g);
	cr_assert_eq(uco_task_state_get(slow), UCO_TASK_CANCELLED, "the failure cancelled the rest");
	uco_task_release(slow);
	uco_group_destroy(g);
	return (void *)(intptr_t)r;
}

Test(group, one_failure_cancels_the_rest_and_is_reported)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, group_with_a_failure, NULL), 0);
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, -EIO);
	cr_assert_lt(uco_now() - t0, 5 * UCO_NS_PER_S);
	uco_task_release(t);
	test_close(loop);
}

static void *group_all_fine(void *arg)
{
	(void)arg;
	uco_group *g;
	cr_assert_eq(uco_group_create(NULL, &g), 0);
	for (intptr_t i = 1; i <= 20; i++)
		cr_assert_eq(uco_group_spawn(g, NULL, sleeps_then, (void *)i), 0);
	int r = uco_group_wait(g);
	uco_group_destroy(g);
	return (void *)(intptr_t)r;
}

Test(group, all_fine_is_zero)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, group_all_fine, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, 0);
	uco_task_release(t);
	test_close(loop);
}

/* ---- all tasks, and the seed's third example: Ctrl-C */

static int interrupted;

static void on_sigint(int signo, void *loop)
{
	cr_assert_eq(signo, SIGINT);
	interrupted++;
	/* The seed: cancel every task, stop the loop. */
	cr_assert_eq(uco_loop_cancel_all(loop), 3);
	uco_loop_stop(loop);
}

static void *presses_ctrl_c(void *arg)
{
	(void)arg;
	uco_sleep(MS(10));
	raise(SIGINT); /* blocked in this thread: it waits for the signalfd */
	return NULL;
}

Test(signals, ctrl_c_cancels_every_task_stops_runs_once_more_and_closes)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_loop_on_signal(loop, SIGINT, on_sigint, loop), 0);
	uco_task *t[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(uco_spawn(loop, &t[i], sleeps_then, (void *)(intptr_t)(60000)), 0);
	cr_assert_eq(uco_spawn(loop, NULL, presses_ctrl_c, NULL), 0);

	uco_task *listed[8];
	size_t n = uco_loop_tasks(loop, listed, 8);
	cr_assert_eq(n, 4, "all_tasks");
	for (size_t i = 0; i < n; i++)
		uco_task_release(listed[i]);

	int64_t t0 = uco_now();
	int r = uco_loop_run(loop);
	cr_assert_eq(interrupted, 1);
	cr_assert(r == 1 || r == 0, "stopped: %d", r);
	/* Run once more so the cancellations finish, then close. */
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_lt(uco_now() - t0, 30 * UCO_NS_PER_S, "nobody slept a minute");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(uco_task_state_get(t[i]), UCO_TASK_CANCELLED);
		uco_task_release(t[i]);
	}
	test_close(loop); /* no leak (ASan) */
}

static void *waits_for_usr1(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	int64_t t0 = uco_now();
	cr_assert_eq(uco_signal_wait(&set, t0 + MS(5)), -ETIMEDOUT);
	return (void *)(intptr_t)uco_signal_wait(&set, UCO_FOREVER);
}

static void *sends_usr1(void *arg)
{
	(void)arg;
	uco_sleep(MS(10));
	raise(SIGUSR1);
	return NULL;
}

Test(signals, a_coroutine_waits_for_a_signal)
{
	uco_loop *loop = test_loop();
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, waits_for_usr1, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, sends_usr1, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, SIGUSR1);
	uco_task_release(t);
	test_close(loop);
}

/* ---- cancellation from inside and outside */

static void *gathers_with_an_inside_cancel(void *arg)
{
	(void)arg;
	uco_task *t[3];
	for (int i = 0; i < 3; i++)
		uco_spawn(NULL, &t[i], sleeps_then, (void *)(intptr_t)(20 + i));
	uco_task_cancel(t[1]); /* one of the gathered tasks is cancelled */
	int errors[3];
	int collected = uco_gather(t, 3, NULL, errors, UCO_GATHER_COLLECT);
	cr_assert_eq(collected, 1);
	cr_assert_eq(errors[1], -ECANCELED);
	cr_assert_eq(errors[0], 0);
	uco_task *u[2];
	uco_spawn(NULL, &u[0], sleeps_then, (void *)(intptr_t)30);
	uco_spawn(NULL, &u[1], sleeps_then, (void *)(intptr_t)30);
	uco_task_cancel(u[0]);
	int first = uco_gather(u, 2, NULL, NULL, 0);
	cr_assert_eq(first, -ECANCELED, "the cancelled one is the first failure");
	uco_wait(u, 2, UCO_WAIT_ALL_COMPLETED, UCO_FOREVER, NULL);
	for (int i = 0; i < 3; i++)
		uco_task_release(t[i]);
	uco_task_release(u[0]);
	uco_task_release(u[1]);
	return NULL;
}

static void *group_waits_long(void *arg)
{
	uco_task **kids = arg;
	uco_group *g;
	uco_group_create(NULL, &g);
	uco_group_spawn(g, &kids[0], sleeps_then, (void *)(intptr_t)60000);
	uco_group_spawn(g, &kids[1], sleeps_then, (void *)(intptr_t)60000);
	int r = uco_group_wait(g);
	uco_group_destroy(g);
	return r ? uco_fail(r) : NULL;
}

static void *waits_long(void *arg)
{
	uco_task **t = arg;
	return (void *)(intptr_t)uco_wait(t, 1, UCO_WAIT_ALL_COMPLETED, UCO_FOREVER, NULL);
}

Test(cancel, inside_and_outside_of_gather_group_and_wait)
{
	uco_loop *loop = test_loop();
	uco_task *in, *grp, *waiter, *kids[2], *long_one;
	cr_assert_eq(uco_spawn(loop, &in, gathers_with_an_inside_cancel, NULL), 0);
	cr_assert_eq(uco_spawn(loop, &grp, group_waits_long, kids), 0);
	cr_assert_eq(uco_spawn(loop, &long_one, sleeps_then, (void *)(intptr_t)40), 0);
	cr_assert_eq(uco_spawn(loop, &waiter, waits_long, &long_one), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_after, grp), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_after, waiter), 0);
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_lt(uco_now() - t0, 10 * UCO_NS_PER_S);
	cr_assert_eq(uco_task_state_get(in), UCO_TASK_DONE);
	cr_assert_eq(uco_task_state_get(grp), UCO_TASK_CANCELLED, "the group's waiter");
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(uco_task_state_get(kids[i]), UCO_TASK_CANCELLED, "its members too");
		uco_task_release(kids[i]);
	}
	void *v;
	cr_assert_eq(uco_task_result(waiter, &v), 0);
	cr_assert_eq((intptr_t)v, -ECANCELED, "wait returned -ECANCELED");
	cr_assert_eq(uco_task_state_get(long_one), UCO_TASK_DONE, "and cancelled nothing");
	uco_task_release(in);
	uco_task_release(grp);
	uco_task_release(waiter);
	uco_task_release(long_one);
	test_close(loop);
}
