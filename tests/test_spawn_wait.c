/* SPDX-License-Identifier: MIT */
/* uco_spawn_wait: uco_wait as a task, run from outside any task with
 * uco_loop_run_until (asyncio's run_until_complete(wait(...))).  The cases
 * mirror uco_wait's in test_combinators.c. */
#include <errno.h>
#include <stdint.h>

#include <uco/criterion.h>

#include "helpers.h"

/* Spawn sleepers of the given lengths (ms; negative fails) on loop. */
static void spawn_sleepers(uco_loop *loop, uco_task **t, const intptr_t *ms, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(uco_spawn(loop, &t[i], sleeps_then, (void *)ms[i]), 0);
}

static void finish_and_release(uco_loop *loop, uco_task **t, size_t n)
{
	uco_loop_cancel_all(loop);
	cr_assert_eq(uco_loop_run(loop), 0);
	for (size_t i = 0; i < n; i++)
		uco_task_release(t[i]);
}

/* Run a spawn_wait to its end from outside any task: its result, and the
 * count in *count. */
static int run_wait(uco_loop *loop, uco_task *const *t, size_t n, int mode, int64_t deadline,
                    unsigned char *done, size_t *count)
{
	uco_task *w;
	cr_assert_eq(uco_spawn_wait(loop, &w, t, n, mode, deadline, done), 0);
	void *v = NULL;
	/* run_until reports only the loop's own errors; the wait's outcome
	 * is the task's result. */
	cr_assert_eq(uco_loop_run_until(loop, w, NULL), 0);
	int r = uco_task_result(w, &v);
	*count = (size_t)(uintptr_t)v;
	uco_task_release(w);
	return r;
}

Test(spawn_wait, first_completed_from_outside_a_task)
{
	uco_loop *loop = test_loop();
	uco_task *t[3];
	spawn_sleepers(loop, t, (const intptr_t[]){ 5, 2000, 3000 }, 3);
	unsigned char done[3] = { 9, 9, 9 };
	size_t count;
	cr_assert_eq(run_wait(loop, t, 3, UCO_WAIT_FIRST_COMPLETED, UCO_FOREVER, done, &count), 0);
	cr_assert_eq(count, 1);
	cr_assert(done[0] == 1 && done[1] == 0 && done[2] == 0);
	cr_assert_eq(uco_task_state_get(t[1]), UCO_TASK_PENDING, "nothing was cancelled");
	finish_and_release(loop, t, 3);
	test_close(loop);
}

Test(spawn_wait, first_exception_returns_at_the_failure)
{
	uco_loop *loop = test_loop();
	uco_task *t[3];
	spawn_sleepers(loop, t, (const intptr_t[]){ 2, -10, 5000 }, 3);
	unsigned char done[3];
	size_t count;
	cr_assert_eq(run_wait(loop, t, 3, UCO_WAIT_FIRST_EXCEPTION, UCO_FOREVER, done, &count), 0);
	cr_assert_eq(count, 2);
	cr_assert(done[0] && done[1] && !done[2]);
	cr_assert_eq(uco_task_result(t[1], NULL), -EIO);
	finish_and_release(loop, t, 3);
	test_close(loop);
}

Test(spawn_wait, all_completed_and_done_filled)
{
	uco_loop *loop = test_loop();
	uco_task *t[4];
	spawn_sleepers(loop, t, (const intptr_t[]){ 3, 1, -2, 4 }, 4);
	unsigned char done[4] = { 0 };
	size_t count;
	cr_assert_eq(run_wait(loop, t, 4, UCO_WAIT_ALL_COMPLETED, UCO_FOREVER, done, &count), 0);
	cr_assert_eq(count, 4);
	cr_assert(done[0] && done[1] && done[2] && done[3]);
	finish_and_release(loop, t, 4);
	test_close(loop);
}

Test(spawn_wait, the_deadline_ends_it_with_the_count_and_cancels_nothing)
{
	uco_loop *loop = test_loop();
	uco_task *t[2];
	spawn_sleepers(loop, t, (const intptr_t[]){ 1, 60000 }, 2);
	unsigned char done[2];
	size_t count;
	int64_t t0 = uco_now();
	int r = run_wait(loop, t, 2, UCO_WAIT_ALL_COMPLETED, t0 + MS(30), done, &count);
	cr_assert_geq(uco_now() - t0, MS(30), "never early");
	/* uco_wait reports expiry through its count (see uco_wait(3)); should it
	 * ever report -ETIMEDOUT, the wait task carries that instead. */
	if (r == 0) {
		cr_assert_eq(count, 1);
		cr_assert(done[0] && !done[1]);
	} else {
		cr_assert_eq(r, -ETIMEDOUT);
	}
	cr_assert_eq(uco_task_state_get(t[1]), UCO_TASK_PENDING);
	finish_and_release(loop, t, 2);
	test_close(loop);
}

Test(spawn_wait, no_tasks_and_finished_tasks_end_at_once)
{
	uco_loop *loop = test_loop();
	size_t count = 99;
	cr_assert_eq(run_wait(loop, NULL, 0, UCO_WAIT_ALL_COMPLETED, UCO_FOREVER, NULL, &count), 0);
	cr_assert_eq(count, 0);
	uco_task *t[1];
	spawn_sleepers(loop, t, (const intptr_t[]){ 0 }, 1);
	cr_assert_eq(uco_loop_run_until(loop, t[0], NULL), 0);
	cr_assert_eq(run_wait(loop, t, 1, UCO_WAIT_FIRST_EXCEPTION, 0, NULL, &count), 0);
	cr_assert_eq(count, 1);
	uco_task_release(t[0]);
	test_close(loop);
}

Test(spawn_wait, bad_arguments_are_refused_at_spawn_or_fail_the_task)
{
	uco_loop *loop = test_loop();
	uco_task *w = NULL;
	cr_assert_eq(uco_spawn_wait(loop, &w, NULL, 1, UCO_WAIT_ALL_COMPLETED, -1, NULL), -EINVAL);
	uco_task *t[1] = { NULL };
	cr_assert_eq(uco_spawn_wait(loop, &w, t, 1, 7, -1, NULL), -EINVAL);
	cr_assert_eq(uco_spawn_wait(loop, &w, t, 1, -1, -1, NULL), -EINVAL);
	cr_assert_null(w, "nothing spawned");
	/* A NULL element is found when the task runs, as spawn_gather's. */
	size_t count;
	cr_assert_eq(run_wait(loop, t, 1, UCO_WAIT_ALL_COMPLETED, -1, NULL, &count), -EINVAL);

	/* A task of another loop: -EXDEV. */
	uco_loop *other = test_loop();
	spawn_sleepers(other, t, (const intptr_t[]){ 0 }, 1);
	cr_assert_eq(run_wait(loop, t, 1, UCO_WAIT_ALL_COMPLETED, -1, NULL, &count), -EXDEV);
	cr_assert_eq(uco_loop_run(other), 0);
	uco_task_release(t[0]);
	test_close(other);
	test_close(loop);
}

UCO_TEST(spawn_wait, cancelling_the_wait_task_ends_it_cancelled_and_cancels_no_member)
{
	uco_task *t[2], *w;
	spawn_sleepers(NULL, t, (const intptr_t[]){ 60000, 60000 }, 2);
	cr_assert_eq(uco_spawn_wait(NULL, &w, t, 2, UCO_WAIT_FIRST_COMPLETED, UCO_FOREVER, NULL), 0);
	uco_yield(); /* the wait task starts waiting */
	cr_assert_eq(uco_task_cancel(w), 0);
	cr_assert_eq(uco_await(w, NULL), -ECANCELED);
	cr_assert_eq(uco_task_state_get(w), UCO_TASK_CANCELLED);
	cr_assert_eq(uco_task_state_get(t[0]), UCO_TASK_PENDING, "a wait cancels nothing");
	uco_task_cancel(t[0]);
	uco_task_cancel(t[1]);
	uco_await(t[0], NULL);
	uco_await(t[1], NULL);
	uco_task_release(t[0]);
	uco_task_release(t[1]);
	uco_task_release(w);
	return NULL;
}

Test(spawn_wait, cancelled_before_it_ran_it_ends_without_waiting)
{
	uco_loop *loop = test_loop();
	uco_task *t[1], *w;
	spawn_sleepers(loop, t, (const intptr_t[]){ 60000 }, 1);
	cr_assert_eq(uco_spawn_wait(loop, &w, t, 1, UCO_WAIT_ALL_COMPLETED, -1, NULL), 0);
	cr_assert_eq(uco_task_cancel(w), 0);
	cr_assert_eq(uco_loop_run_until(loop, w, NULL), 0);
	cr_assert_eq(uco_task_result(w, NULL), -ECANCELED);
	uco_task_release(w);
	finish_and_release(loop, t, 1);
	test_close(loop);
}
