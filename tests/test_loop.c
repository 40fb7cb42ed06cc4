/* SPDX-License-Identifier: MIT */
/* The loop: run, run_until, stop, close, misuse, batching, counters. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "helpers.h"

static void *returns_arg(void *arg)
{
	return arg;
}

static void *sleeps_ms(void *arg)
{
	cr_assert_eq(uco_sleep(MS((intptr_t)arg)), 0);
	return arg;
}

Test(loop, create_and_close_an_empty_loop)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_loop_run(loop), 0, "nothing to run: returns at once");
	cr_assert_null(uco_loop_current());
	test_close(loop);
}

Test(loop, bad_options_are_EINVAL)
{
	uco_loop *loop = NULL;
	uco_loop_opts opts;
	cr_assert_eq(uco_loop_create(NULL, NULL), -EINVAL);
	memset(&opts, 0, sizeof opts);
	opts.stack_size = 1024;
	cr_assert_eq(uco_loop_create(&loop, &opts), -EINVAL);
	memset(&opts, 0, sizeof opts);
	opts.flags = 1u << 30;
	cr_assert_eq(uco_loop_create(&loop, &opts), -EINVAL);
	memset(&opts, 0, sizeof opts);
	opts.reserved_[sizeof opts.reserved_ / sizeof opts.reserved_[0] - 1] = 1;
	cr_assert_eq(uco_loop_create(&loop, &opts), -EINVAL);
	memset(&opts, 0, sizeof opts);
	opts.backend = UCO_BACKEND_EPOLL + 1;
	cr_assert_eq(uco_loop_create(&loop, &opts), -EINVAL);
	cr_assert_null(loop);
	cr_assert_eq(uco_loop_run(NULL), -EINVAL);
	cr_assert_eq(uco_loop_stop(NULL), -EINVAL);
	cr_assert_eq(uco_loop_close(NULL), -EINVAL);
	cr_assert_eq(uco_loop_trim(NULL), -EINVAL);
	cr_assert_eq(uco_loop_run_until(NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(uco_loop_stats_get(NULL, NULL), -EINVAL);
}

Test(loop, ring_features_are_probed)
{
	uco_loop *loop = test_loop();
	unsigned f = uco_loop_features(loop);
	const char *ring = getenv("UCO_TEST_RING");
	if (test_on_epoll(loop)) /* the readiness equivalent: no ring, no ring flags */
		cr_assert_eq(f & (UCO_RING_SINGLE_ISSUER | UCO_RING_DEFER_TASKRUN |
		                  UCO_RING_COOP_TASKRUN), 0);
	else if (ring && strcmp(ring, "plain") == 0)
		cr_assert_eq(f & (UCO_RING_SINGLE_ISSUER | UCO_RING_DEFER_TASKRUN |
		                  UCO_RING_COOP_TASKRUN), 0);
	else
		cr_assert_neq(f & (UCO_RING_DEFER_TASKRUN | UCO_RING_COOP_TASKRUN), 0,
		              "a 6.x kernel takes one of the task-run flags");
	test_close(loop);
}

static void *stops_loop(void *arg)
{
	uco_loop_stop(uco_loop_current());
	return arg;
}

Test(loop, stop_returns_after_the_turn_and_run_continues)
{
	uco_loop *loop = test_loop();
	uco_task *sleeper;
	cr_assert_eq(uco_spawn(loop, &sleeper, sleeps_ms, (void *)20), 0);
	cr_assert_eq(uco_spawn(loop, NULL, stops_loop, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 1, "stopped with a task left");
	cr_assert_eq(uco_task_state_get(sleeper), UCO_TASK_PENDING);
	cr_assert_eq(uco_loop_close(loop), -EBUSY, "an unfinished task keeps the loop open");
	cr_assert_eq(uco_loop_run(loop), 0, "the next run finishes the work");
	cr_assert_eq(uco_task_state_get(sleeper), UCO_TASK_DONE);
	uco_task_release(sleeper);
	test_close(loop);
}

Test(loop, stop_before_run_runs_one_turn)
{
	uco_loop *loop = test_loop();
	uco_task *a, *s;
	cr_assert_eq(uco_spawn(loop, &a, returns_arg, "a"), 0);
	cr_assert_eq(uco_spawn(loop, &s, sleeps_ms, (void *)5), 0);
	cr_assert_eq(uco_loop_stop(loop), 0);
	cr_assert_eq(uco_loop_run(loop), 1);
	cr_assert_eq(uco_task_state_get(a), UCO_TASK_DONE, "the turn ran ready tasks");
	cr_assert_eq(uco_task_state_get(s), UCO_TASK_PENDING);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_task_release(a);
	uco_task_release(s);
	test_close(loop);
}

Test(loop, run_until_a_task_stopped_first_is_EINTR)
{
	uco_loop *loop = test_loop();
	uco_task *slow;
	cr_assert_eq(uco_spawn(loop, &slow, sleeps_ms, (void *)50), 0);
	cr_assert_eq(uco_spawn(loop, NULL, stops_loop, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, slow, NULL), -EINTR);
	void *v;
	cr_assert_eq(uco_loop_run_until(loop, slow, &v), 0);
	cr_assert_eq((intptr_t)v, 50);
	uco_task_release(slow);
	test_close(loop);
}

Test(loop, run_until_leaves_other_tasks_in_the_loop)
{
	uco_loop *loop = test_loop();
	uco_task *fast, *slow;
	cr_assert_eq(uco_spawn(loop, &slow, sleeps_ms, (void *)30), 0);
	cr_assert_eq(uco_spawn(loop, &fast, sleeps_ms, (void *)1), 0);
	cr_assert_eq(uco_loop_run_until(loop, fast, NULL), 0);
	cr_assert_eq(uco_task_state_get(slow), UCO_TASK_PENDING);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	cr_assert_eq(s.tasks_live_now, 1);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_state_get(slow), UCO_TASK_DONE);
	uco_task_release(fast);
	uco_task_release(slow);
	test_close(loop);
}

static void *run_nested(void *arg)
{
	cr_assert_eq(uco_loop_run(arg), -EBUSY);
	cr_assert_eq(uco_loop_run_until(arg, uco_task_current(), NULL), -EBUSY);
	cr_assert_eq(uco_loop_close(arg), -EBUSY);
	return NULL;
}

Test(loop, running_inside_a_running_loop_is_EBUSY)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_spawn(loop, NULL, run_nested, loop), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	test_close(loop);
}

static void *from_other_thread(void *arg)
{
	uco_loop *loop = arg;
	intptr_t r1 = uco_loop_run(loop);
	intptr_t r2 = uco_spawn(loop, NULL, returns_arg, NULL);
	intptr_t r3 = uco_loop_close(loop);
	return (void *)(intptr_t)(r1 == -EPERM && r2 == -EPERM && r3 == -EPERM);
}

Test(loop, other_threads_get_EPERM)
{
	uco_loop *loop = test_loop();
	pthread_t th;
	void *ok;
	cr_assert_eq(pthread_create(&th, NULL, from_other_thread, loop), 0);
	cr_assert_eq(pthread_join(th, &ok), 0);
	cr_assert(ok, "run, spawn and close from another thread are EPERM");
	test_close(loop);
}

static void *loop_per_thread(void *arg)
{
	(void)arg;
	uco_loop *loop;
	if (uco_loop_create(&loop, NULL))
		return NULL;
	uco_task *t;
	void *v = NULL;
	uco_spawn(loop, &t, sleeps_ms, (void *)3);
	int err = uco_loop_run_until(loop, t, &v);
	uco_task_release(t);
	uco_loop_close(loop);
	return (void *)(intptr_t)(err == 0 && (intptr_t)v == 3);
}

Test(loop, one_loop_per_thread_runs_independently)
{
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, loop_per_thread, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *ok;
		pthread_join(th[i], &ok);
		cr_assert(ok);
	}
}

Test(loop, sqes_of_one_turn_go_in_one_submit)
{
	uco_loop *loop = test_loop();
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(uco_spawn(loop, NULL, sleeps_ms, (void *)(intptr_t)(1 + i % 5)), 0);
	/* Stopped before it starts, the loop runs exactly one turn: all
	 * 1000 tasks start and sleep, and their timeouts go to the kernel
	 * in one system call. */
	cr_assert_eq(uco_loop_stop(loop), 0);
	cr_assert_eq(uco_loop_run(loop), 1);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	/* SQEs and submits are io_uring's: on epoll the switches and spawns
	 * are checked.  (Readiness equivalent, for the epoll backend: the
	 * sleeps go into its timer structure with no system call each.) */
	bool ring = !test_on_epoll(loop);
	if (ring) {
		cr_assert_eq(s.submit_calls, 1);
		cr_assert_geq(s.timer_sqes, 5, "five distinct deadlines at least");
		cr_assert_lt(s.timer_sqes, 1000, "sleeps share timeouts");
		/* The timeouts, and the inbox's standing read that every loop
		 * keeps for other threads (uco_loop_call, executors). */
		cr_assert_eq(s.sqes_submitted, s.timer_sqes + 1);
	}
	cr_assert_eq(s.switches, 2000, "each task in and out once");

	cr_assert_eq(uco_loop_run(loop), 0);
	uco_loop_stats_get(loop, &s);
	if (ring)
		cr_assert_eq(s.cqes_reaped, s.timer_sqes, "one completion per timeout");
	cr_assert_eq(s.tasks_spawned, 1000);
	cr_assert_eq(s.switches, 4000);
	test_close(loop);
}

Test(loop, a_full_sq_loses_nothing)
{
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.ring_entries = 4;
	uco_loop *loop = test_loop_opts(&opts);
	/* Distinct deadlines: 3000 sleeps need ~hundreds of SQEs through an
	 * SQ of 4 and a CQ of 32. */
	uco_task *t[3000];
	for (int i = 0; i < 3000; i++)
		cr_assert_eq(uco_spawn(loop, &t[i], sleeps_ms, (void *)(intptr_t)(1 + i % 40)), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	for (int i = 0; i < 3000; i++) {
		void *v;
		cr_assert_eq(uco_task_result(t[i], &v), 0);
		cr_assert_eq((intptr_t)v, 1 + i % 40);
		uco_task_release(t[i]);
	}
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	if (!test_on_epoll(loop)) { /* no SQ on epoll: the results above are the check */
		cr_assert_gt(s.timer_sqes, 8, "more SQEs than the SQ holds");
		cr_assert_eq(s.cqes_reaped, s.timer_sqes);
	}
	test_close(loop);
}

Test(loop, strerror_names_the_cause)
{
	cr_assert(strstr(uco_loop_strerror(-ENOSYS), "kernel"));
	cr_assert(strstr(uco_loop_strerror(-ENOMEM), "MEMLOCK"));
	cr_assert(strstr(uco_loop_strerror(-EPERM), "io_uring"));
	cr_assert_not_null(uco_loop_strerror(-12345));
}

Test(loop, version_matches_the_header)
{
	cr_assert_str_eq(uco_version(), UCO_VERSION);
	cr_assert_eq(UCO_VERSION_NUMBER, UCO_VERSION_MAJOR * 10000 + UCO_VERSION_MINOR * 100 +
	                                     UCO_VERSION_PATCH);
}

static void *fails_like_a_stop(void *arg)
{
	(void)arg;
	return uco_fail(-EINTR);
}

Test(loop, run_until_tells_a_task_failing_EINTR_from_a_stop)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, fails_like_a_stop, NULL), 0);
	void *v = (void *)1;
	/* The run went well: the task finished. */
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_null(v);
	cr_assert_eq(uco_task_result(t, NULL), -EINTR, "the task's own failure");
	uco_task_release(t);
	test_close(loop);
}
