/* SPDX-License-Identifier: MIT */
/* Time: sleeps (never early, shared timeouts), yield, now. */
#include <errno.h>
#include <stdint.h>

#include "helpers.h"

struct sleep_check {
	int64_t ns;
	int64_t started, woke;
	int result;
};

static void *timed_sleep(void *arg)
{
	struct sleep_check *c = arg;
	c->started = uco_now();
	c->result = uco_sleep(c->ns);
	c->woke = uco_now();
	return NULL;
}

/* Run the loop until every sleep of c[0, n) is over, check that none
 * ended before its length, and close the loop. */
static void run_and_check_never_early(uco_loop *loop, const struct sleep_check *c, int n)
{
	cr_assert_eq(uco_loop_run(loop), 0);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(c[i].result, 0);
		cr_assert_geq(c[i].woke - c[i].started, c[i].ns,
		              "sleep %d of %ld ns woke after %ld ns", i, (long)c[i].ns,
		              (long)(c[i].woke - c[i].started));
	}
	test_close(loop);
}

Test(sleep, never_ends_before_its_deadline)
{
	uco_loop *loop = test_loop();
	enum { N = 2000 };
	static struct sleep_check c[N];
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < N; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* From 1 us to ~30 ms, spread over every granularity. */
		c[i].ns = 1000 + (int64_t)(x % (uint64_t)MS(30));
		cr_assert_eq(uco_spawn(loop, NULL, timed_sleep, &c[i]), 0);
	}
	run_and_check_never_early(loop, c, N);
}

/* Sleeps of one length started in one turn fill buckets that go to the
 * kernel before the turn ends (time.c, START_EARLY): each still lasts at
 * least its length from its own start. */
Test(sleep, a_long_burst_of_equal_sleeps_never_ends_early, .timeout = 60)
{
	uco_loop *loop = test_loop();
	enum { N = 5000 };
	static struct sleep_check c[N];
	for (int i = 0; i < N; i++) {
		c[i].ns = MS(5);
		cr_assert_eq(uco_spawn(loop, NULL, timed_sleep, &c[i]), 0);
	}
	run_and_check_never_early(loop, c, N);
}

static struct event_log order_log;

static void *sleep_and_log(void *arg)
{
	intptr_t ms = (intptr_t)arg;
	uco_sleep(MS(ms));
	char name[16];
	snprintf(name, sizeof name, "%ld", (long)ms);
	log_event(&order_log, name);
	return NULL;
}

Test(sleep, shorter_sleeps_wake_first)
{
	uco_loop *loop = test_loop();
	static const int ms[] = { 40, 10, 30, 20, 5 };
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(uco_spawn(loop, NULL, sleep_and_log, (void *)(intptr_t)ms[i]), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_eq(order_log.text, "5,10,20,30,40");
	test_close(loop);
}

Test(sleep, outside_a_coroutine_is_EPERM)
{
	cr_assert_eq(uco_sleep(MS(1)), -EPERM);
	cr_assert_eq(uco_sleep(-1), -EPERM);
	cr_assert_eq(uco_sleep_until(uco_now() + MS(1)), -EPERM);
	cr_assert_eq(uco_yield(), -EPERM);
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_sleep(MS(1)), -EPERM, "a loop that is not running has no coroutine");
	test_close(loop);
}

static void *negative_sleep(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_sleep(-5);
}

Test(sleep, negative_is_EINVAL)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, negative_sleep, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, -EINVAL);
	uco_task_release(t);
	test_close(loop);
}

static struct event_log yield_log;

static void *yields_thrice(void *arg)
{
	for (int i = 0; i < 3; i++) {
		log_event(&yield_log, arg);
		cr_assert_eq(uco_yield(), 0);
	}
	return NULL;
}

static void *sleeps_zero(void *arg)
{
	for (int i = 0; i < 3; i++) {
		log_event(&yield_log, arg);
		cr_assert_eq(uco_sleep(0), 0, "sleep(0) yields");
	}
	return NULL;
}

Test(yield, goes_to_the_back_of_the_run_queue)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_spawn(loop, NULL, yields_thrice, "a"), 0);
	cr_assert_eq(uco_spawn(loop, NULL, yields_thrice, "b"), 0);
	cr_assert_eq(uco_spawn(loop, NULL, sleeps_zero, "c"), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_eq(yield_log.text, "a,b,c,a,b,c,a,b,c");
	test_close(loop);
}

static void *sleeps_10ms(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_sleep(MS(10)), 0);
	return NULL;
}

Test(sleep, a_hundred_thousand_sleepers_share_few_timeouts, .timeout = 60)
{
	uco_loop *loop = test_loop();
	enum { N = 100000 };
	for (int i = 0; i < N; i++)
		cr_assert_eq(uco_spawn(loop, NULL, sleeps_10ms, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	cr_assert_eq(s.tasks_spawned, N);
	cr_assert_eq(s.tasks_live_now, 0);
	/* Grouping is a property, not a speed: at most one SQE per distinct
	 * rounded deadline, and 10 ms sleeps round to ~0.26 ms. */
	cr_assert_lt(s.timer_sqes, N / 10, "%lu timeout SQEs for %d sleeps",
	             (unsigned long)s.timer_sqes, N);
	test_close(loop);
}

Test(now, is_monotonic_and_in_nanoseconds)
{
	int64_t a = uco_now();
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	int64_t b = uco_now();
	cr_assert_geq(b - a, MS(2));
	cr_assert_lt(b - a, 60 * UCO_NS_PER_S);
}

static void *until_past(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_sleep_until(uco_now() - MS(5));
}

Test(sleep, until_a_past_deadline_returns_after_a_yield)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v = (void *)1;
	cr_assert_eq(uco_spawn(loop, &t, until_past, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, 0);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	cr_assert_eq(s.timer_sqes, 0);
	uco_task_release(t);
	test_close(loop);
}
