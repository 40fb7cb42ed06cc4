/* SPDX-License-Identifier: MIT */
/* Tasks: values, failures, done-callbacks, awaiting, lifetimes. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "helpers.h"

/* ---- the seed's first example: a value through the task and a callback */

struct html_run {
	struct event_log log;
	const char *callback_url;
	void *callback_value;
};

static struct html_run html_run;

static void *get_html(void *url)
{
	log_event(&html_run.log, "start get url");
	cr_assert_eq(uco_sleep(MS(20)), 0);
	log_event(&html_run.log, "slept");
	cr_assert_str_eq(url, "http://www.imooc.com");
	return "bobby";
}

static void send_email(uco_task *task, void *url)
{
	html_run.callback_url = url;
	cr_assert_eq(uco_task_result(task, &html_run.callback_value), 0);
	cr_assert_null(uco_task_current(), "callbacks run on the loop, not in a coroutine");
	log_event(&html_run.log, "callback");
}

Test(seed, get_html_value_through_task_and_callback)
{
	uco_loop *loop = test_loop();
	uco_task *task;
	cr_assert_eq(uco_spawn(loop, &task, get_html, "http://www.imooc.com"), 0);
	cr_assert_eq(uco_task_add_done_callback(task, send_email, "http://www.imooc.com"), 0);
	cr_assert_eq(uco_task_state_get(task), UCO_TASK_PENDING);
	cr_assert_eq(uco_task_result(task, NULL), -EAGAIN);
	log_event(&html_run.log, "spawned");

	void *value = NULL;
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run_until(loop, task, &value), 0);
	cr_assert_geq(uco_now() - t0, MS(20), "the sleep never ends early");
	log_event(&html_run.log, "returned");

	cr_assert_str_eq(value, "bobby");
	cr_assert_str_eq(html_run.callback_value, "bobby");
	cr_assert_str_eq(html_run.callback_url, "http://www.imooc.com");
	cr_assert_str_eq(html_run.log.text, "spawned,start get url,slept,callback,returned");
	void *again = NULL;
	cr_assert_eq(uco_task_result(task, &again), 0);
	cr_assert_str_eq(again, "bobby");
	cr_assert_eq(uco_task_state_get(task), UCO_TASK_DONE);
	uco_task_release(task);
	test_close(loop);
}

/* ---- the seed's fourth example: print_sum awaiting compute */

static struct event_log sum_log;

/* A plain C function that sleeps: called from a coroutine it simply
 * suspends that coroutine (stackful coroutines need no `await` keyword). */
static intptr_t compute(intptr_t x, intptr_t y)
{
	char line[64];
	snprintf(line, sizeof line, "Compute %ld + %ld ...", (long)x, (long)y);
	log_event(&sum_log, line);
	cr_assert_eq(uco_sleep(MS(10)), 0);
	return x + y;
}

static void *compute_task(void *arg)
{
	intptr_t *xy = arg;
	return (void *)compute(xy[0], xy[1]);
}

static void *print_sum_call(void *arg)
{
	intptr_t *xy = arg;
	intptr_t result = compute(xy[0], xy[1]);
	char line[64];
	snprintf(line, sizeof line, "%ld + %ld = %ld", (long)xy[0], (long)xy[1], (long)result);
	log_event(&sum_log, line);
	return (void *)result;
}

static void *print_sum_await(void *arg)
{
	intptr_t *xy = arg;
	uco_task *sub;
	void *value;
	int err = uco_spawn(NULL, &sub, compute_task, xy);
	if (err)
		return uco_fail(err);
	err = uco_await(sub, &value);
	uco_task_release(sub);
	if (err)
		return uco_fail(err);
	char line[64];
	snprintf(line, sizeof line, "%ld + %ld = %ld", (long)xy[0], (long)xy[1], (long)(intptr_t)value);
	log_event(&sum_log, line);
	return value;
}

static void run_print_sum(uco_fn print_sum)
{
	uco_loop *loop = test_loop();
	intptr_t xy[2] = { 1, 2 };
	uco_task *task;
	void *value = NULL;
	cr_assert_eq(uco_spawn(loop, &task, print_sum, xy), 0);
	cr_assert_eq(uco_loop_run_until(loop, task, &value), 0);
	cr_assert_eq((intptr_t)value, 3);
	cr_assert_str_eq(sum_log.text, "Compute 1 + 2 ...,1 + 2 = 3");
	uco_task_release(task);
	test_close(loop);
}

Test(seed, print_sum_calls_compute_as_a_plain_function)
{
	run_print_sum(print_sum_call);
}

Test(seed, print_sum_awaits_compute_as_a_task)
{
	run_print_sum(print_sum_await);
}

/* ---- failures are kept apart from values */

static void *fails(void *arg)
{
	(void)arg;
	return uco_fail(-ENOENT);
}

static void *fails_badly(void *arg)
{
	(void)arg;
	return uco_fail(7); /* not a negative errno */
}

static void *awaits_failure(void *arg)
{
	uco_task *sub;
	void *value = (void *)1;
	cr_assert_eq(uco_spawn(NULL, &sub, fails, NULL), 0);
	int err = uco_await(sub, &value);
	cr_assert_eq(err, -ENOENT);
	cr_assert_eq(value, (void *)1, "a failure leaves *value untouched");
	uco_task_release(sub);
	return arg;
}

Test(task, failure_is_reported_apart_from_the_value)
{
	uco_loop *loop = test_loop();
	uco_task *t, *bad, *awaiter;
	void *value = (void *)1;
	cr_assert_eq(uco_spawn(loop, &t, fails, NULL), 0);
	cr_assert_eq(uco_spawn(loop, &bad, fails_badly, NULL), 0);
	/* The run succeeded; the task's failure is the task's to tell. */
	cr_assert_eq(uco_loop_run_until(loop, t, &value), 0);
	cr_assert_null(value);
	value = (void *)1;
	cr_assert_eq(uco_task_result(t, &value), -ENOENT);
	cr_assert_eq(value, (void *)1);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_FAILED);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_result(bad, NULL), -EINVAL);
	cr_assert_eq(uco_spawn(loop, &awaiter, awaits_failure, "ok"), 0);
	cr_assert_eq(uco_loop_run_until(loop, awaiter, &value), 0);
	cr_assert_str_eq(value, "ok");
	uco_task_release(t);
	uco_task_release(bad);
	uco_task_release(awaiter);
	test_close(loop);
}

Test(task, uco_fail_outside_a_task_does_nothing)
{
	cr_assert_null(uco_fail(-EIO));
}

/* ---- done-callbacks */

static struct event_log cb_log;

static void log_cb(uco_task *task, void *name)
{
	(void)task;
	log_event(&cb_log, name);
}

static void *returns_at_once(void *arg)
{
	return arg;
}

static void *yields_then_returns(void *arg)
{
	log_event(&cb_log, "task");
	uco_yield();
	return arg;
}

Test(callbacks, run_once_in_registration_order_after_the_task)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, yields_then_returns, NULL), 0);
	cr_assert_eq(uco_task_add_done_callback(t, log_cb, "a"), 0);
	cr_assert_eq(uco_task_add_done_callback(t, log_cb, "b"), 0);
	cr_assert_eq(uco_task_add_done_callback(t, log_cb, "c"), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_eq(cb_log.text, "task,a,b,c");
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_eq(cb_log.text, "task,a,b,c", "callbacks run once");
	uco_task_release(t);
	test_close(loop);
}

static void *adds_callback_to_finished(void *arg)
{
	uco_task *done = arg;
	cr_assert_eq(uco_task_state_get(done), UCO_TASK_DONE);
	cr_assert_eq(uco_task_add_done_callback(done, log_cb, "late"), 0);
	log_event(&cb_log, "added");
	uco_yield();
	log_event(&cb_log, "after-yield");
	return NULL;
}

Test(callbacks, added_to_a_finished_task_runs_later_never_inside_the_call)
{
	uco_loop *loop = test_loop();
	uco_task *t, *adder;
	cr_assert_eq(uco_spawn(loop, &t, returns_at_once, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);

	cr_assert_eq(uco_task_add_done_callback(t, log_cb, "outside"), 0);
	cr_assert_str_eq(cb_log.text, "", "not run inside add_done_callback");
	cr_assert_eq(uco_spawn(loop, &adder, adds_callback_to_finished, t), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_eq(cb_log.text, "outside,added,late,after-yield");
	uco_task_release(adder);
	uco_task_release(t);
	test_close(loop);
}

static void release_in_callback(uco_task *task, void *arg)
{
	(void)arg;
	uco_task_release(task); /* the caller's only reference */
	log_event(&cb_log, "released");
}

Test(callbacks, may_release_the_last_handle)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, returns_at_once, "v"), 0);
	cr_assert_eq(uco_task_add_done_callback(t, release_in_callback, NULL), 0);
	cr_assert_eq(uco_task_add_done_callback(t, log_cb, "next"), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_eq(cb_log.text, "released,next");
	test_close(loop);
}

static void spawn_in_callback(uco_task *task, void *loop)
{
	(void)task;
	cr_assert_eq(uco_spawn(loop, NULL, yields_then_returns, NULL), 0);
}

Test(callbacks, may_spawn_tasks)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, returns_at_once, NULL), 0);
	cr_assert_eq(uco_task_add_done_callback(t, spawn_in_callback, loop), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_eq(cb_log.text, "task");
	uco_task_release(t);
	test_close(loop);
}

Test(callbacks, bad_arguments)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_task_add_done_callback(NULL, log_cb, NULL), -EINVAL);
	cr_assert_eq(uco_spawn(loop, &t, returns_at_once, NULL), 0);
	cr_assert_eq(uco_task_add_done_callback(t, NULL, NULL), -EINVAL);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_task_release(t);
	test_close(loop);
}

/* ---- awaiting */

static void *awaits_self(void *arg)
{
	(void)arg;
	void *v;
	cr_assert_eq(uco_await(uco_task_current(), &v), -EDEADLK);
	return "survived";
}

static uco_task *cycle_a, *cycle_b;

static void *cycle_first(void *arg)
{
	(void)arg;
	uco_sleep(MS(1));
	return (void *)(intptr_t)uco_await(cycle_b, NULL);
}

static void *cycle_second(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_await(cycle_a, NULL);
}

Test(await, itself_or_a_cycle_is_EDEADLK)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, awaits_self, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_str_eq(v, "survived");
	uco_task_release(t);

	/* b awaits a (pending), then a tries to await b: a cycle. */
	cr_assert_eq(uco_spawn(loop, &cycle_a, cycle_first, NULL), 0);
	cr_assert_eq(uco_spawn(loop, &cycle_b, cycle_second, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_result(cycle_a, &v), 0);
	cr_assert_eq((intptr_t)v, -EDEADLK);
	cr_assert_eq(uco_task_result(cycle_b, &v), 0);
	cr_assert_eq((intptr_t)v, 0, "b got a's value");
	uco_task_release(cycle_a);
	uco_task_release(cycle_b);
	test_close(loop);
}

Test(await, outside_a_coroutine_is_EPERM_and_NULL_is_EINVAL)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, returns_at_once, NULL), 0);
	cr_assert_eq(uco_await(t, NULL), -EPERM);
	cr_assert_eq(uco_await(NULL, NULL), -EINVAL);
	cr_assert_eq(uco_task_state_get(NULL), -EINVAL);
	cr_assert_eq(uco_task_result(NULL, NULL), -EINVAL);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_task_release(t);
	test_close(loop);
}

static void *awaits_arg(void *arg)
{
	void *v = NULL;
	uint64_t before;
	uco_loop_stats s;
	uco_loop_stats_get(uco_loop_current(), &s);
	before = s.switches;
	int err = uco_await(arg, &v);
	uco_loop_stats_get(uco_loop_current(), &s);
	cr_assert_eq(s.switches, before, "awaiting a finished task does not switch");
	return err ? uco_fail(err) : v;
}

Test(await, a_finished_task_returns_at_once)
{
	uco_loop *loop = test_loop();
	uco_task *done, *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &done, returns_at_once, "x"), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_spawn(loop, &t, awaits_arg, done), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_str_eq(v, "x");
	uco_task_release(done);
	uco_task_release(t);
	test_close(loop);
}

static void *sleeps_then_returns(void *arg)
{
	uco_sleep(MS(5));
	return arg;
}

static void *awaits_shared(void *arg)
{
	void *v = NULL;
	cr_assert_eq(uco_await(arg, &v), 0);
	return v;
}

static void drop_handle(uco_task *task, void *arg)
{
	(void)arg;
	uco_task_release(task);
}

Test(await, many_awaiters_of_one_task_whose_handle_is_dropped)
{
	uco_loop *loop = test_loop();
	uco_task *target, *w[10];
	cr_assert_eq(uco_spawn(loop, &target, sleeps_then_returns, "shared"), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(uco_spawn(loop, &w[i], awaits_shared, target), 0);
	/* The callback drops the only user handle before the awaiters run:
	 * the awaiters' own references keep the result readable. */
	cr_assert_eq(uco_task_add_done_callback(target, drop_handle, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	for (int i = 0; i < 10; i++) {
		void *v;
		cr_assert_eq(uco_task_result(w[i], &v), 0);
		cr_assert_str_eq(v, "shared");
		uco_task_release(w[i]);
	}
	test_close(loop);
}

/* ---- spawning and lifetimes */

static int detached_ran;

static void *detached(void *arg)
{
	(void)arg;
	uco_sleep(MS(1));
	detached_ran++;
	return NULL;
}

Test(spawn, detached_tasks_run_and_free_themselves)
{
	uco_loop *loop = test_loop();
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(uco_spawn(loop, NULL, detached, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(detached_ran, 1000);
	test_close(loop); /* ASan would report a leaked task here */
}

static int order_pos;
static int order_seen[3];

static void *records_order(void *arg)
{
	order_seen[order_pos++] = (int)(intptr_t)arg;
	return NULL;
}

static void *spawner(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_spawn(NULL, NULL, records_order, (void *)1), 0);
	cr_assert_eq(uco_spawn(NULL, NULL, records_order, (void *)2), 0);
	cr_assert_eq(order_pos, 0, "spawn never runs the task inside the call");
	records_order((void *)0);
	return NULL;
}

Test(spawn, from_a_coroutine_runs_later_in_spawn_order)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_spawn(loop, NULL, spawner, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(order_pos, 3);
	cr_assert_eq(order_seen[0], 0);
	cr_assert_eq(order_seen[1], 1);
	cr_assert_eq(order_seen[2], 2);
	test_close(loop);
}

Test(spawn, bad_arguments_start_nothing)
{
	uco_loop *loop = test_loop();
	uco_task *t = (uco_task *)0x1;
	cr_assert_eq(uco_spawn(loop, &t, NULL, NULL), -EINVAL);
	cr_assert_eq(uco_spawn(NULL, &t, returns_at_once, NULL), -EINVAL, "no loop running here");
	cr_assert_eq(uco_spawn_sized(loop, &t, returns_at_once, NULL, 100), -EINVAL);
	cr_assert_eq(t, (uco_task *)0x1, "*out untouched on failure");
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	cr_assert_eq(s.tasks_spawned, 0);
	cr_assert_eq(s.tasks_live_now, 0);
	test_close(loop);
}

Test(lifetime, handles_outlive_their_loop)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, returns_at_once, "kept"), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	test_close(loop);
	void *v;
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE);
	cr_assert_eq(uco_task_result(t, &v), 0);
	cr_assert_str_eq(v, "kept");
	cr_assert_eq(uco_task_add_done_callback(t, log_cb, "x"), -ESHUTDOWN);
	cr_assert_eq(uco_task_retain(t), t);
	uco_task_release(t);
	uco_task_release(t);
}

Test(lifetime, retain_keeps_the_handle_past_release)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, returns_at_once, "v"), 0);
	uco_task *second = uco_task_retain(t);
	uco_task_release(t);
	cr_assert_eq(uco_loop_run(loop), 0);
	void *v;
	cr_assert_eq(uco_task_result(second, &v), 0);
	cr_assert_str_eq(v, "v");
	uco_task_release(second);
	uco_task_release(NULL);
	cr_assert_null(uco_task_retain(NULL));
	test_close(loop);
}

Test(lifetime, a_released_pending_task_still_runs)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	detached_ran = 0;
	cr_assert_eq(uco_spawn(loop, &t, detached, NULL), 0);
	uco_task_release(t);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(detached_ran, 1);
	test_close(loop);
}
