/* SPDX-License-Identifier: MIT */
/* Cancellation of tasks: before they run, while they sleep, await or run,
 * asyncio's delivery rules, and a storm of them. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

static int body_ran;

static void *never_runs(void *arg)
{
	body_ran++;
	return arg;
}

Test(cancel, a_task_that_has_not_run_ends_cancelled_without_running)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, never_runs, "v"), 0);
	cr_assert_eq(uco_task_cancel(t), 0);
	cr_assert_eq(uco_task_cancel(t), 0, "a second request is the same cancellation");
	void *v = (void *)1;
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0, "it finished");
	cr_assert_null(v, "no value");
	cr_assert_eq(uco_task_result(t, &v), -ECANCELED);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_CANCELLED);
	cr_assert_eq(body_ran, 0);
	cr_assert_eq(uco_task_cancel(t), -EALREADY, "a finished task says so");
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_CANCELLED);
	uco_task_release(t);
	test_close(loop);
}

static void *sleeps_a_minute(void *arg)
{
	int r = uco_sleep(60 * UCO_NS_PER_S);
	return r ? uco_fail(r) : arg;
}

static void *cancels_after_1ms(void *arg)
{
	uco_sleep(UCO_NS_PER_MS);
	cr_assert_eq(uco_task_cancel(arg), 0);
	return NULL;
}

Test(cancel, a_sleep_returns_ECANCELED_and_the_loop_does_not_wait_it_out)
{
	uco_loop *loop = test_loop();
	uco_task *sleeper;
	cr_assert_eq(uco_spawn(loop, &sleeper, sleeps_a_minute, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_after_1ms, sleeper), 0);
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run(loop), 0);
	/* The kernel timeout was removed: run() returned without the minute. */
	cr_assert_lt(uco_now() - t0, 30 * UCO_NS_PER_S);
	cr_assert_eq(uco_task_result(sleeper, NULL), -ECANCELED);
	cr_assert_eq(uco_task_state_get(sleeper), UCO_TASK_CANCELLED);
	uco_task_release(sleeper);
	test_close(loop);
}

static void *ignores_cancel(void *arg)
{
	int r = uco_sleep(60 * UCO_NS_PER_S);
	cr_assert_eq(r, -ECANCELED);
	/* Clean up and carry on, as asyncio allows: the next sleep is not
	 * cancelled again. */
	cr_assert_eq(uco_sleep(UCO_NS_PER_MS), 0);
	return arg;
}

Test(cancel, a_task_may_ignore_the_cancellation_and_return_a_value)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, ignores_cancel, "kept"), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_after_1ms, t), 0);
	void *v;
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_str_eq(v, "kept");
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE);
	uco_task_release(t);
	test_close(loop);
}

static void *cancels_itself_and_returns(void *arg)
{
	cr_assert_eq(uco_task_cancel(uco_task_current()), 0);
	return arg; /* never blocks again: the cancellation is not delivered */
}

static void *cancels_itself_then_yields(void *arg)
{
	cr_assert_eq(uco_task_cancel(uco_task_current()), 0);
	cr_assert_eq(uco_yield(), -ECANCELED, "delivered at the next blocking call");
	cr_assert_eq(uco_yield(), 0, "and only once");
	return arg;
}

Test(cancel, undelivered_means_cancelled_delivered_and_ignored_means_done)
{
	uco_loop *loop = test_loop();
	uco_task *a, *b;
	cr_assert_eq(uco_spawn(loop, &a, cancels_itself_and_returns, "a"), 0);
	cr_assert_eq(uco_spawn(loop, &b, cancels_itself_then_yields, "b"), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_state_get(a), UCO_TASK_CANCELLED);
	cr_assert_eq(uco_task_state_get(b), UCO_TASK_DONE);
	uco_task_release(a);
	uco_task_release(b);
	test_close(loop);
}

static void *sleeps_ms_arg(void *arg)
{
	int r = uco_sleep((intptr_t)arg * UCO_NS_PER_MS);
	return r ? uco_fail(r) : arg;
}

static void *awaits_and_propagates(void *arg)
{
	void *v;
	int r = uco_await(arg, &v);
	return r ? uco_fail(r) : v;
}

static void *cancels_later(void *arg)
{
	uco_sleep(2 * UCO_NS_PER_MS);
	uco_task_cancel(arg);
	return NULL;
}

Test(cancel, an_await_passes_the_cancellation_on_and_waits_for_the_outcome)
{
	uco_loop *loop = test_loop();
	uco_task *inner, *outer, *ignoring, *outer2;
	cr_assert_eq(uco_spawn(loop, &inner, sleeps_ms_arg, (void *)(intptr_t)60000), 0);
	cr_assert_eq(uco_spawn(loop, &outer, awaits_and_propagates, inner), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_later, outer), 0);
	/* An inner task that ignores the cancellation hands its value on. */
	cr_assert_eq(uco_spawn(loop, &ignoring, ignores_cancel, "inner value"), 0);
	cr_assert_eq(uco_spawn(loop, &outer2, awaits_and_propagates, ignoring), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_later, outer2), 0);
	cr_assert_eq(uco_loop_run(loop), 0);

	cr_assert_eq(uco_task_state_get(inner), UCO_TASK_CANCELLED, "cancelled through the await");
	cr_assert_eq(uco_task_state_get(outer), UCO_TASK_CANCELLED);
	void *v;
	cr_assert_eq(uco_task_result(outer2, &v), 0);
	cr_assert_str_eq(v, "inner value");
	cr_assert_eq(uco_task_state_get(ignoring), UCO_TASK_DONE);
	uco_task_release(inner);
	uco_task_release(outer);
	uco_task_release(ignoring);
	uco_task_release(outer2);
	test_close(loop);
}

Test(cancel, other_sleepers_of_the_same_timeout_are_untouched)
{
	uco_loop *loop = test_loop();
	uco_task *t[10];
	for (int i = 0; i < 10; i++)
		cr_assert_eq(uco_spawn(loop, &t[i], sleeps_ms_arg, (void *)(intptr_t)20), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_after_1ms, t[3]), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_after_1ms, t[7]), 0);
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_geq(uco_now() - t0, 20 * UCO_NS_PER_MS);
	for (int i = 0; i < 10; i++) {
		int want = (i == 3 || i == 7) ? UCO_TASK_CANCELLED : UCO_TASK_DONE;
		cr_assert_eq(uco_task_state_get(t[i]), want, "task %d", i);
		uco_task_release(t[i]);
	}
	test_close(loop);
}

static uint64_t storm_seed = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
	storm_seed ^= storm_seed << 13;
	storm_seed ^= storm_seed >> 7;
	storm_seed ^= storm_seed << 17;
	return storm_seed;
}

struct storm {
	uco_task **tasks;
	int n;
};

static void *cancels_at_random(void *arg)
{
	struct storm *s = arg;
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < s->n / 40; i++)
			uco_task_cancel(s->tasks[next_random() % (uint64_t)s->n]);
		uco_sleep((int64_t)(next_random() % 500) * 1000);
	}
	return NULL;
}

/* The storm's random cancels may have finished it first. */
static void *cancels_soon_if_pending(void *arg)
{
	uco_sleep((int64_t)(next_random() % 2000) * 1000);
	int r = uco_task_cancel(arg);
	cr_assert(r == 0 || r == -EALREADY, "%d", r);
	return NULL;
}

/* Blocked in a socket read (an unbound UDP socket: nothing ever comes) or
 * a pipe read, until cancelled. */
static void *reads_forever(void *arg)
{
	char buf[32];
	ssize_t r = uco_read((int)(intptr_t)arg, buf, sizeof buf, -1);
	return r < 0 ? uco_fail((int)r) : NULL;
}

Test(cancel, a_storm_leaves_every_task_in_a_final_state, .timeout = 60)
{
	uco_loop *loop = test_loop();
	enum { N = 20000, READERS = 3000 };
	static uco_task *tasks[N];
	static int fds[READERS][2];
	for (int i = 0; i < N; i++) {
		uco_fn fn = sleeps_ms_arg;
		void *arg = (void *)(intptr_t)(1 + next_random() % 20);
		if (i < READERS / 2) { /* socket reads */
			fds[i][0] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			fds[i][1] = -1;
			cr_assert_geq(fds[i][0], 0);
			fn = reads_forever;
			arg = (void *)(intptr_t)fds[i][0];
		} else if (i < READERS) { /* pipe reads */
			cr_assert_eq(pipe(fds[i]), 0);
			fn = reads_forever;
			arg = (void *)(intptr_t)fds[i][0];
		}
		cr_assert_eq(uco_spawn(loop, &tasks[i], fn, arg), 0);
	}
	/* The readers would wait forever: cancel every one of them, at
	 * random moments, besides the random cancels among the sleepers. */
	for (int i = 0; i < READERS; i++)
		cr_assert_eq(uco_spawn(loop, NULL, cancels_soon_if_pending, tasks[i]), 0);
	struct storm s = { tasks, N };
	cr_assert_eq(uco_spawn(loop, NULL, cancels_at_random, &s), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	int cancelled = 0, done = 0;
	for (int i = 0; i < N; i++) {
		int st = uco_task_state_get(tasks[i]);
		cr_assert(st == UCO_TASK_DONE || st == UCO_TASK_CANCELLED, "task %d: %d", i, st);
		cancelled += st == UCO_TASK_CANCELLED;
		done += st == UCO_TASK_DONE;
		uco_task_release(tasks[i]);
	}
	cr_assert_geq(cancelled, READERS, "every reader, and some sleepers");
	cr_assert_gt(done, 0);
	uco_loop_stats st;
	uco_loop_stats_get(loop, &st);
	cr_assert_eq(st.tasks_live_now, 0);
	test_close(loop); /* ASan: no task or stack leaked */
	for (int i = 0; i < READERS; i++) {
		close(fds[i][0]);
		if (fds[i][1] >= 0)
			close(fds[i][1]);
	}
}

static void *cancel_from_thread(void *arg)
{
	return (void *)(intptr_t)uco_task_cancel(arg);
}

Test(cancel, bad_calls)
{
	cr_assert_eq(uco_task_cancel(NULL), -EINVAL);
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, never_runs, NULL), 0);
	pthread_t th;
	void *r;
	cr_assert_eq(pthread_create(&th, NULL, cancel_from_thread, t), 0);
	pthread_join(th, &r);
	cr_assert_eq((intptr_t)r, -EPERM);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE);
	uco_task_release(t);
	test_close(loop);
}

/* ------------------------------------------------ uco_close under cancel */

struct closing {
	int fd;
	int closed;     /* uco_close's result */
	int after;      /* the next blocking call's */
	uco_task *other; /* cancelled by the closer, or NULL */
};

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* Closes fd with a cancellation due: its own, requested before the close
 * (a cleanup path that runs while a cancel is pending), or, with `other`
 * set, one that task requests while the close is on its way to the kernel.
 * The descriptor must go all the same, and the cancellation must stay for
 * the next blocking call. */
static void *closes(void *arg)
{
	struct closing *c = arg;
	if (!c->other)
		cr_assert_eq(uco_task_cancel(uco_task_current()), 0);
	c->closed = uco_close(c->fd);
	c->after = uco_yield();
	return NULL;
}

static void *cancels_the_closer(void *arg)
{
	struct closing *c = arg;
	cr_assert_eq(uco_task_cancel(c->other), 0);
	return NULL;
}

static void close_under_cancel(bool in_flight)
{
	uco_loop *loop = test_loop();
	int p[2];
	cr_assert_eq(pipe(p), 0);
	struct closing c = { .fd = p[0], .closed = 1, .after = 1 };
	uco_task *closer;
	cr_assert_eq(uco_spawn(loop, &closer, closes, &c), 0);
	/* Runs right after the closer parked on its close, before the turn
	 * submits it. */
	c.other = in_flight ? closer : NULL;
	if (in_flight)
		cr_assert_eq(uco_spawn(loop, NULL, cancels_the_closer, &c), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(c.closed, 0, "uco_close: %d", c.closed);
	cr_assert(!fd_open(p[0]), "the descriptor is still open");
	cr_assert_eq(c.after, -ECANCELED, "the cancellation is delivered by the next call");
	uco_task_release(closer);
	close(p[1]);
	test_close(loop);
}

Test(cancel, a_close_with_a_cancel_pending_still_releases_the_descriptor)
{
	close_under_cancel(false);
}

Test(cancel, a_close_cancelled_in_flight_finishes_and_reports)
{
	close_under_cancel(true);
}
