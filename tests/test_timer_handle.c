/* SPDX-License-Identifier: MIT */
/* Timer handles: uco_call_later/uco_call_at, cancel, release. */
#include <errno.h>
#include <stdint.h>

#include "helpers.h"
#include "internal.h"

#ifdef UCO__ASAN
#include <sanitizer/lsan_interface.h>
#endif

/* Criterion passes a test whose worker LeakSanitizer reports at exit: ask
 * it here instead. */
static void no_leaks(void)
{
#ifdef UCO__ASAN
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
#endif
}

/* Handles do not keep a loop running: a task waits for `done`, which the
 * test's last callback sets. */
static uco_event done;
static int fired;

static void *wait_done(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_event_wait_dl(&done, uco_now() + 20 * UCO_NS_PER_S), 0,
	             "the callbacks never finished");
	return NULL;
}

static void run_until_done(uco_loop *loop)
{
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, wait_done, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	uco_task_release(t);
}

static void set_done(void *arg)
{
	(void)arg;
	uco_event_set(&done);
}

/* ------------------------------------------------------------ order */

static struct event_log order_log;

static void log_arg(void *arg)
{
	log_event(&order_log, arg);
}

Test(call_later, runs_in_time_order_and_call_order_for_equal_times)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	int64_t base = uco_now() + MS(20);
	cr_assert_eq(uco_call_at(loop, base + MS(30), log_arg, "30", NULL), 0);
	cr_assert_eq(uco_call_at(loop, base + MS(10), log_arg, "10a", NULL), 0);
	cr_assert_eq(uco_call_at(loop, base + MS(5), log_arg, "5", NULL), 0);
	cr_assert_eq(uco_call_at(loop, base + MS(10), log_arg, "10b", NULL), 0);
	cr_assert_eq(uco_call_at(loop, base + MS(20), log_arg, "20", NULL), 0);
	cr_assert_eq(uco_call_at(loop, base + MS(10), log_arg, "10c", NULL), 0);
	cr_assert_eq(uco_call_later(loop, MS(60), set_done, NULL, NULL), 0);
	run_until_done(loop);
	cr_assert_str_eq(order_log.text, "5,10a,10b,10c,20,30");
	test_close(loop);
}

/* ------------------------------------------------------------ never early */

struct check {
	int64_t asked, delay, ran;
};

static void record(void *arg)
{
	struct check *c = arg;
	c->ran = uco_now();
	if (++fired == 2000)
		uco_event_set(&done);
}

Test(call_later, never_runs_before_its_time)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	fired = 0;
	enum { N = 2000 };
	static struct check c[N];
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < N; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		c[i].delay = 1000 + (int64_t)(x % (uint64_t)MS(30));
		c[i].asked = uco_now();
		if (i % 2)
			cr_assert_eq(uco_call_later(loop, c[i].delay, record, &c[i], NULL), 0);
		else
			cr_assert_eq(uco_call_at(loop, c[i].asked + c[i].delay, record, &c[i], NULL), 0);
	}
	run_until_done(loop);
	for (int i = 0; i < N; i++)
		cr_assert_geq(c[i].ran - c[i].asked, c[i].delay, "handle %d ran %ld ns early", i,
		              (long)(c[i].delay - (c[i].ran - c[i].asked)));
	test_close(loop);
}

/* A time already past runs on a later turn, not inside the call. */
Test(call_later, a_past_time_runs_soon_but_not_inside_the_call)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	cr_assert_eq(uco_call_at(loop, uco_now() - UCO_NS_PER_S, set_done, NULL, NULL), 0);
	cr_assert_eq(uco_event_is_set(&done), 0);
	run_until_done(loop);
	test_close(loop);
}

/* ------------------------------------------------------------ cancel */

static void must_not_run(void *arg)
{
	(void)arg;
	cr_assert_fail("a cancelled callback ran");
}

static void count(void *arg)
{
	(void)arg;
	fired++;
}

Test(call_later, cancel_before_it_runs)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	uco_timer *t;
	cr_assert_eq(uco_call_later(loop, MS(5), must_not_run, NULL, &t), 0);
	cr_assert_eq(uco_timer_cancel(t), 0);
	cr_assert_eq(uco_timer_cancel(t), -EALREADY, "cancel is idempotent");
	cr_assert_eq(uco_call_later(loop, MS(20), set_done, NULL, NULL), 0);
	run_until_done(loop);
	cr_assert_eq(uco_timer_cancel(t), -EALREADY);
	uco_timer_release(t);
	test_close(loop);
}

Test(call_later, cancel_after_it_ran)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	uco_timer *t;
	cr_assert_eq(uco_call_later(loop, MS(1), set_done, NULL, &t), 0);
	run_until_done(loop);
	cr_assert_eq(uco_timer_cancel(t), -EALREADY);
	uco_timer_release(t);
	test_close(loop);
}

static uco_timer *self_handle, *victim;

static void cancels_itself_and_another(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_timer_cancel(self_handle), -EALREADY, "it is running");
	cr_assert_eq(uco_timer_cancel(victim), 0, "due at the same time, not run yet");
	uco_timer_release(self_handle); /* releasing from inside is fine too */
	uco_event_set(&done);
}

Test(call_later, cancel_from_inside_a_callback)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	int64_t when = uco_now() + MS(5);
	cr_assert_eq(uco_call_at(loop, when, cancels_itself_and_another, NULL, &self_handle), 0);
	cr_assert_eq(uco_call_at(loop, when, must_not_run, NULL, &victim), 0);
	run_until_done(loop);
	cr_assert_eq(uco_timer_cancel(victim), -EALREADY);
	uco_timer_release(victim);
	test_close(loop);
}

/* The last pending handle cancelled: the loop does not wait for its time
 * (it would for a while: a minute). */
Test(call_later, cancelling_the_only_handle_does_not_keep_the_loop_waiting)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	uco_timer *t;
	cr_assert_eq(uco_call_later(loop, 60 * UCO_NS_PER_S, must_not_run, NULL, &t), 0);
	cr_assert_eq(uco_call_later(loop, MS(1), set_done, NULL, NULL), 0);
	cr_assert_eq(uco_timer_cancel(t), 0);
	int64_t t0 = uco_now();
	run_until_done(loop);
	cr_assert_lt(uco_now() - t0, 30 * UCO_NS_PER_S);
	uco_timer_release(t);
	test_close(loop);
}

/* ------------------------------------------------------------ many */

struct many {
	int64_t when;
	int index;
};

static int64_t last_when;
static int many_fired, many_left;

static void many_cb(void *arg)
{
	struct many *m = arg;
	cr_assert_geq(m->when, last_when, "ran out of order");
	cr_assert_geq(uco_now(), m->when, "ran early");
	last_when = m->when;
	many_fired++;
	if (--many_left == 0)
		uco_event_set(&done);
}

Test(call_later, ten_thousand_handles_half_cancelled)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	enum { N = 10000 };
	static struct many m[N];
	static uco_timer *h[N];
	uint64_t x = 2463534242ull;
	int64_t now = uco_now();
	for (int i = 0; i < N; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		m[i] = (struct many){ now + MS(2) + (int64_t)(x % (uint64_t)MS(40)), i };
		cr_assert_eq(uco_call_at(loop, m[i].when, many_cb, &m[i], &h[i]), 0);
	}
	for (int i = 0; i < N; i += 2)
		cr_assert_eq(uco_timer_cancel(h[i]), 0);
	many_left = N / 2;
	run_until_done(loop);
	cr_assert_eq(many_fired, N / 2);
	for (int i = 0; i < N; i++)
		uco_timer_release(h[i]);
	test_close(loop);
	no_leaks();
}

/* ------------------------------------------------------------ the loop */

Test(call_later, a_pending_handle_does_not_keep_the_loop_running)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	fired = 0;
	cr_assert_eq(uco_call_later(loop, MS(1), count, NULL, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0, "no task: run returns at once");
	cr_assert_eq(fired, 0);
	/* It runs when the loop runs for a task past its time. */
	cr_assert_eq(uco_call_later(loop, MS(10), set_done, NULL, NULL), 0);
	run_until_done(loop);
	cr_assert_eq(fired, 1);
	test_close(loop);
}

Test(call_later, loop_close_discards_pending_handles)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	uco_timer *held;
	for (int i = 0; i < 100; i++)
		cr_assert_eq(uco_call_later(loop, UCO_NS_PER_S * (i + 1), must_not_run, NULL, NULL),
		             0);
	cr_assert_eq(uco_call_later(loop, UCO_NS_PER_S, must_not_run, NULL, &held), 0);
	cr_assert_eq(uco_call_later(loop, MS(1), set_done, NULL, NULL), 0);
	run_until_done(loop);
	test_close(loop);
	cr_assert_eq(uco_timer_cancel(held), -EALREADY, "discarded at close");
	uco_timer_release(held);
	no_leaks();
}

static void *spawned(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_sleep(MS(1)), 0, "a task spawned by a callback runs and sleeps");
	uco_event_set(&done);
	return NULL;
}

static void spawns(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_spawn(NULL, NULL, spawned, NULL), 0);
}

Test(call_later, a_callback_can_spawn_tasks)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	cr_assert_eq(uco_call_later(loop, MS(2), spawns, NULL, NULL), 0);
	run_until_done(loop);
	cr_assert_eq(uco_loop_run(loop), 0);
	test_close(loop);
}

/* A callback that reschedules itself with delay 0 runs again on a later
 * turn, so the loop goes on turning (tasks run in between). */
static int again_left;
static int task_turns;

static void again(void *arg)
{
	if (--again_left == 0) {
		uco_event_set(&done);
		return;
	}
	cr_assert_eq(uco_call_later(NULL, 0, again, arg, NULL), 0);
}

static void *counts_turns(void *arg)
{
	(void)arg;
	while (!uco_event_is_set(&done)) {
		task_turns++;
		uco_yield();
	}
	return NULL;
}

Test(call_later, rescheduling_from_a_callback_does_not_starve_tasks)
{
	uco_loop *loop = test_loop();
	uco_event_init(&done);
	again_left = 50;
	cr_assert_eq(uco_call_later(loop, 0, again, NULL, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, counts_turns, NULL), 0);
	run_until_done(loop);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_geq(task_turns, 25, "tasks ran between the callbacks (%d turns)", task_turns);
	test_close(loop);
}

/* ------------------------------------------------------------ errors */

Test(call_later, bad_arguments)
{
	cr_assert_eq(uco_call_later(NULL, MS(1), count, NULL, NULL), -EINVAL, "no loop");
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_call_later(loop, MS(1), NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(uco_call_later(loop, -1, count, NULL, NULL), -EINVAL);
	cr_assert_eq(uco_call_at(loop, -1, count, NULL, NULL), -EINVAL);
	cr_assert_eq(uco_timer_cancel(NULL), -EINVAL);
	uco_timer_release(NULL);
	test_close(loop);
}
