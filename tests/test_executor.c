/* SPDX-License-Identifier: MIT */
/* The executor: blocking calls on worker threads, results back through the
 * ring.  With UCO_TEST_EXECUTOR=inbox every executor posts through the
 * eventfd inbox instead of MSG_RING, so both ways back are tested. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "helpers.h"

static uco_executor *new_executor(unsigned threads, unsigned queue_max)
{
	uco_executor_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.threads = threads;
	opts.queue_max = queue_max;
	const char *path = getenv("UCO_TEST_EXECUTOR");
	if (path && strcmp(path, "inbox") == 0)
		opts.flags |= UCO_EXECUTOR_NO_MSG_RING;
	uco_executor *ex = NULL;
	cr_assert_eq(uco_executor_create(&ex, &opts), 0);
	return ex;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts))
		;
}

/* ---- the seed's example: 10 blocking calls on 3 threads, loop not blocked */

static atomic_int running_now, running_max;
static int ticks_during_jobs;
static atomic_int jobs_done;

static void *blocking_get_url(void *arg)
{
	int now = atomic_fetch_add(&running_now, 1) + 1;
	int max = atomic_load(&running_max);
	while (now > max && !atomic_compare_exchange_weak(&running_max, &max, now))
		;
	sleep_ms(40); /* really blocks this thread */
	atomic_fetch_sub(&running_now, 1);
	atomic_fetch_add(&jobs_done, 1);
	return (void *)((intptr_t)arg + 1000);
}

struct url_job {
	uco_executor *ex;
	intptr_t n;
};

static void *get_url_task(void *arg)
{
	struct url_job *j = arg;
	void *v = NULL;
	int err = uco_run_in_executor(j->ex, blocking_get_url, (void *)j->n, &v);
	return err ? uco_fail(err) : v;
}

static void *ticker(void *arg)
{
	(void)arg;
	while (atomic_load(&jobs_done) < 10) {
		uco_sleep(2 * UCO_NS_PER_MS);
		if (atomic_load(&jobs_done) < 10)
			ticks_during_jobs++;
	}
	return NULL;
}

Test(seed, ten_blocking_calls_on_three_threads_while_the_loop_ticks, .timeout = 60)
{
	uco_loop *loop = test_loop();
	uco_executor *ex = new_executor(3, 0);
	struct url_job jobs[10];
	uco_task *t[10];
	for (int i = 0; i < 10; i++) {
		jobs[i] = (struct url_job){ ex, i };
		cr_assert_eq(uco_spawn(loop, &t[i], get_url_task, &jobs[i]), 0);
	}
	cr_assert_eq(uco_spawn(loop, NULL, ticker, NULL), 0);
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run(loop), 0);
	int64_t elapsed = uco_now() - t0;

	for (int i = 0; i < 10; i++) {
		void *v;
		cr_assert_eq(uco_task_result(t[i], &v), 0);
		cr_assert_eq((intptr_t)v, 1000 + i, "each result reaches its own task");
		uco_task_release(t[i]);
	}
	cr_assert_eq(atomic_load(&running_max), 3, "three threads ran at once, no more");
	/* ceil(10/3) = 4 rounds of 40 ms at least; the loop kept ticking. */
	cr_assert_geq(elapsed, 4 * 40 * UCO_NS_PER_MS);
	cr_assert_gt(ticks_during_jobs, 0, "the loop was not blocked");
	cr_assert_eq(uco_executor_shutdown(ex, 0), 0);
	test_close(loop);
}

/* ---- values, the default executor, futures from outside */

static void *plus_one(void *arg)
{
	return (void *)((intptr_t)arg + 1);
}

static void *round_trips(void *arg)
{
	uco_executor *ex = arg;
	for (intptr_t i = 0; i < 2000; i++) {
		void *v;
		int err = uco_run_in_executor(ex, plus_one, (void *)i, &v);
		if (err)
			return uco_fail(err);
		cr_assert_eq((intptr_t)v, i + 1);
	}
	return "ok";
}

Test(executor, sequential_round_trips_return_each_value)
{
	uco_loop *loop = test_loop();
	uco_executor *ex = new_executor(2, 0);
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, round_trips, ex), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_str_eq(v, "ok");
	uco_task_release(t);
	test_close(loop);
	cr_assert_eq(uco_executor_shutdown(ex, 0), 0);
}

Test(executor, the_default_executor_is_made_on_first_use_and_closed_with_the_loop)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, round_trips, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_str_eq(v, "ok");
	uco_task_release(t);
	test_close(loop); /* ASan/TSan: its threads joined, memory freed */
}

Test(executor, a_future_from_outside_a_coroutine)
{
	uco_loop *loop = test_loop();
	uco_executor *ex = new_executor(2, 0);
	cr_assert_eq(uco_loop_set_executor(loop, ex), 0);
	uco_task *f[50];
	for (intptr_t i = 0; i < 50; i++)
		cr_assert_eq(uco_spawn_in_executor(loop, &f[i], NULL, plus_one, (void *)i), 0);
	for (intptr_t i = 0; i < 50; i++) {
		void *v;
		cr_assert_eq(uco_loop_run_until(loop, f[i], &v), 0);
		cr_assert_eq((intptr_t)v, i + 1);
		uco_task_release(f[i]);
	}
	test_close(loop);
	cr_assert_eq(uco_executor_shutdown(ex, 0), 0, "a loop never shuts down an executor it was lent");
}

Test(executor, bad_calls)
{
	uco_executor *ex;
	uco_executor_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.flags = 1u << 20;
	cr_assert_eq(uco_executor_create(&ex, &opts), -EINVAL);
	cr_assert_eq(uco_executor_create(NULL, NULL), -EINVAL);
	cr_assert_eq(uco_run_in_executor(NULL, plus_one, NULL, NULL), -EPERM);
	cr_assert_eq(uco_executor_shutdown(NULL, 0), -EINVAL);
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_spawn_in_executor(loop, NULL, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(uco_loop_set_executor(loop, NULL), -EINVAL);
	test_close(loop);
}

/* ---- many loops on many threads share one executor */

struct loop_thread {
	uco_executor *ex;
	intptr_t tag;
	int mismatches;
	int err;
};

static void *tagged(void *arg)
{
	return arg;
}

static void *submits_tagged(void *arg)
{
	struct loop_thread *lt = arg;
	for (int i = 0; i < 500; i++) {
		void *v;
		int err = uco_run_in_executor(lt->ex, tagged, (void *)(lt->tag * 100000 + i), &v);
		if (err)
			return uco_fail(err);
		if ((intptr_t)v != lt->tag * 100000 + i)
			lt->mismatches++;
	}
	return NULL;
}

static void *run_loop_thread(void *arg)
{
	struct loop_thread *lt = arg;
	uco_loop *loop;
	lt->err = uco_loop_create(&loop, NULL);
	if (lt->err)
		return NULL;
	for (int i = 0; i < 8; i++)
		uco_spawn(loop, NULL, submits_tagged, lt);
	lt->err = uco_loop_run(loop);
	if (!lt->err)
		lt->err = uco_loop_close(loop);
	return NULL;
}

Test(executor, many_loops_share_one_executor_and_results_go_home, .timeout = 60)
{
	uco_executor *ex = new_executor(4, 0);
	enum { LOOPS = 4 };
	pthread_t th[LOOPS];
	struct loop_thread lt[LOOPS];
	for (int i = 0; i < LOOPS; i++) {
		lt[i] = (struct loop_thread){ ex, i + 1, 0, 0 };
		cr_assert_eq(pthread_create(&th[i], NULL, run_loop_thread, &lt[i]), 0);
	}
	for (int i = 0; i < LOOPS; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(lt[i].err, 0, "loop %d: %d", i, lt[i].err);
		cr_assert_eq(lt[i].mismatches, 0, "loop %d got another loop's result", i);
	}
	cr_assert_eq(uco_executor_shutdown(ex, 0), 0);
}

/* ---- jobs that outlive a stop, shutdown both ways, cancellation */

/* A gate the test opens: jobs block on it, truly, in their thread. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int gated_started, gated_finished;

static void *gated(void *arg)
{
	atomic_fetch_add(&gated_started, 1);
	pthread_mutex_lock(&gate_lock);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	atomic_fetch_add(&gated_finished, 1);
	return arg;
}

static void open_gate(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static void wait_started(int n)
{
	while (atomic_load(&gated_started) < n)
		sleep_ms(1);
}

static void *stops_the_loop(void *arg)
{
	(void)arg;
	uco_sleep(UCO_NS_PER_MS);
	uco_loop_stop(uco_loop_current());
	return NULL;
}

Test(executor, a_job_outlives_its_loop_stopping)
{
	uco_loop *loop = test_loop();
	uco_executor *ex = new_executor(1, 0);
	uco_task *f;
	cr_assert_eq(uco_spawn_in_executor(loop, &f, ex, gated, "late"), 0);
	cr_assert_eq(uco_spawn(loop, NULL, stops_the_loop, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 1, "stopped with the job still running");
	cr_assert_eq(uco_loop_close(loop), -EBUSY, "a job in flight keeps the loop open");
	open_gate();
	void *v;
	cr_assert_eq(uco_loop_run_until(loop, f, &v), 0);
	cr_assert_str_eq(v, "late");
	uco_task_release(f);
	test_close(loop);
	cr_assert_eq(uco_executor_shutdown(ex, 0), 0);
}

struct shutdown_case {
	uco_executor *ex;
	unsigned flags;
	uco_task **futures;
	bool cancel_after;
};

static void *opens_gate_from_a_thread(void *arg)
{
	(void)arg;
	sleep_ms(20); /* while uco_executor_shutdown() blocks */
	open_gate();
	return NULL;
}

static void *shuts_down_when_queued(void *arg)
{
	struct shutdown_case *c = arg;
	uco_yield();     /* jobs go to the executor at the end of a turn */
	wait_started(1); /* one job runs, the others are queued */
	uco_yield();     /* let every future submit its job */
	/* The queued jobs must still be queued when shutdown begins: the
	 * running one is let go from another thread meanwhile. */
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, opens_gate_from_a_thread, NULL), 0);
	int err = uco_executor_shutdown(c->ex, c->flags);
	pthread_join(th, NULL);
	/* Cancelling the futures before the loop has received the posts:
	 * the executor must still be there for them (ASan would see it). */
	for (int i = 0; c->cancel_after && i < 6; i++)
		uco_task_cancel(c->futures[i]);
	return (void *)(intptr_t)err;
}

static void run_shutdown_case(unsigned flags, bool cancel_after, int expect_cancelled,
                              int expect_ran)
{
	uco_loop *loop = test_loop();
	uco_task *f[6], *s;
	struct shutdown_case c = { new_executor(1, 0), flags, f, cancel_after };
	for (intptr_t i = 0; i < 6; i++)
		cr_assert_eq(uco_spawn_in_executor(loop, &f[i], c.ex, gated, (void *)(i + 1)), 0);
	cr_assert_eq(uco_spawn(loop, &s, shuts_down_when_queued, &c), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	void *v;
	cr_assert_eq(uco_task_result(s, &v), 0);
	cr_assert_eq((intptr_t)v, 0, "shutdown: %ld", (long)(intptr_t)v);
	int cancelled = 0;
	for (int i = 0; i < 6; i++) {
		int r = uco_task_result(f[i], &v);
		if (r == -ECANCELED)
			cancelled++;
		else
			cr_assert(r == 0 && (intptr_t)v == i + 1, "future %d: %d", i, r);
		uco_task_release(f[i]);
	}
	cr_assert_eq(cancelled, expect_cancelled);
	cr_assert_eq(atomic_load(&gated_finished), expect_ran, "dropped jobs never ran");
	uco_task_release(s);
	test_close(loop);
}

Test(executor, shutdown_runs_the_queued_jobs)
{
	run_shutdown_case(0, false, 0, 6);
}

Test(executor, shutdown_can_drop_the_queued_jobs)
{
	run_shutdown_case(UCO_EXECUTOR_CANCEL_QUEUED, false, 5, 1);
}

/* Every result still on its way is dropped: the one job that ran too. */
Test(executor, cancelling_after_shutdown_before_the_results_arrive)
{
	run_shutdown_case(UCO_EXECUTOR_CANCEL_QUEUED, true, 6, 1);
}

struct cancel_case {
	uco_task *running, *queued;
};

static void *cancels_jobs(void *arg)
{
	struct cancel_case *c = arg;
	uco_yield(); /* jobs go to the executor at the end of a turn */
	wait_started(1);
	uco_yield();
	cr_assert_eq(uco_task_cancel(c->queued), 0);
	cr_assert_eq(uco_task_cancel(c->running), 0);
	/* The queued job's task ends now; the running one's only after the
	 * job has ended (its memory is still in use). */
	uco_sleep(5 * UCO_NS_PER_MS);
	cr_assert_eq(uco_task_state_get(c->queued), UCO_TASK_CANCELLED);
	cr_assert_eq(uco_task_state_get(c->running), UCO_TASK_PENDING);
	cr_assert_eq(atomic_load(&gated_finished), 0);
	open_gate();
	return NULL;
}

Test(executor, cancelling_a_queued_job_drops_it_and_a_running_one_waits_for_it)
{
	uco_loop *loop = test_loop();
	uco_executor *ex = new_executor(1, 0);
	struct cancel_case c;
	cr_assert_eq(uco_spawn_in_executor(loop, &c.running, ex, gated, "r"), 0);
	cr_assert_eq(uco_spawn_in_executor(loop, &c.queued, ex, gated, "q"), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_jobs, &c), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_result(c.running, NULL), -ECANCELED, "result dropped");
	cr_assert_eq(uco_task_result(c.queued, NULL), -ECANCELED);
	cr_assert_eq(atomic_load(&gated_started), 1, "the queued job never ran");
	cr_assert_eq(atomic_load(&gated_finished), 1, "the running one ran to its end");
	uco_task_release(c.running);
	uco_task_release(c.queued);
	test_close(loop);
	cr_assert_eq(uco_executor_shutdown(ex, 0), 0);
}

/* ---- bounded queue */

static void *submits_when_full(void *arg)
{
	uco_executor *ex = arg;
	void *v;
	/* The queue is full: this coroutine waits for room, then its job. */
	int err = uco_run_in_executor(ex, plus_one, (void *)41, &v);
	return err ? uco_fail(err) : v;
}

static void *opens_gate_later(void *arg)
{
	(void)arg;
	uco_sleep(5 * UCO_NS_PER_MS);
	open_gate();
	return NULL;
}

Test(executor, a_bounded_queue_makes_coroutines_wait_and_outsiders_get_EAGAIN)
{
	uco_loop *loop = test_loop();
	uco_executor *ex = new_executor(1, 2);
	uco_task *f[3], *waiter;
	/* One job runs (blocked on the gate), two fill the queue. */
	cr_assert_eq(uco_spawn_in_executor(loop, &f[0], ex, gated, NULL), 0);
	uco_loop_stop(loop);
	uco_loop_run(loop);
	wait_started(1);
	cr_assert_eq(uco_spawn_in_executor(loop, &f[1], ex, gated, NULL), 0);
	cr_assert_eq(uco_spawn_in_executor(loop, &f[2], ex, gated, NULL), 0);
	uco_loop_stop(loop);
	uco_loop_run(loop);
	uco_task *refused = (uco_task *)1;
	cr_assert_eq(uco_spawn_in_executor(loop, &refused, ex, gated, NULL), -EAGAIN);
	cr_assert_eq(refused, (uco_task *)1);

	cr_assert_eq(uco_spawn(loop, &waiter, submits_when_full, ex), 0);
	cr_assert_eq(uco_spawn(loop, NULL, opens_gate_later, NULL), 0);
	void *v;
	cr_assert_eq(uco_loop_run_until(loop, waiter, &v), 0);
	cr_assert_eq((intptr_t)v, 42);
	cr_assert_eq(uco_loop_run(loop), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(uco_task_result(f[i], NULL), 0);
		uco_task_release(f[i]);
	}
	uco_task_release(waiter);
	test_close(loop);
	cr_assert_eq(uco_executor_shutdown(ex, 0), 0);
}

/* ---- getaddrinfo */

static void *resolves(void *arg)
{
	(void)arg;
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_INET;
	hints.ai_flags = AI_NUMERICHOST;
	int err = uco_getaddrinfo("127.0.0.1", "8080", &hints, &res);
	cr_assert_eq(err, 0, "%s", uco_gai_strerror(err));
	cr_assert_not_null(res);
	cr_assert_eq(res->ai_family, AF_INET);
	freeaddrinfo(res);

	err = uco_getaddrinfo("not an address", NULL, &hints, &res);
	cr_assert_eq(err, UCO_EAI_ERROR(EAI_NONAME), "%d: %s", err, uco_gai_strerror(err));
	cr_assert_str_eq(uco_gai_strerror(err), gai_strerror(EAI_NONAME));
	cr_assert_eq(uco_getaddrinfo(NULL, NULL, &hints, &res), -EINVAL);
	return "ok";
}

Test(executor, getaddrinfo_runs_on_the_default_executor)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, resolves, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_str_eq(v, "ok");
	uco_task_release(t);
	test_close(loop);
	cr_assert_str_eq(uco_gai_strerror(-ENOENT), strerror(ENOENT));
}

/* ---- Ctrl-C after the default executor started */

#include <signal.h>
#include <sys/wait.h>

static volatile int got_sigint;

static void on_sigint(int signo, void *loop)
{
	got_sigint = signo;
	uco_loop_stop(loop);
}

static void *nothing(void *arg)
{
	return arg;
}

/* Starts the default executor's workers, then asks for SIGINT and sends
 * it to the whole process (kill, not raise: the kernel picks a thread that
 * does not block it).  A worker with SIGINT unblocked would take it with
 * the default disposition and kill the process. */
static void *starts_workers_then_presses_ctrl_c(void *loop)
{
	if (uco_run_in_executor(NULL, nothing, NULL, NULL))
		_exit(2);
	if (uco_loop_on_signal(loop, SIGINT, on_sigint, loop))
		_exit(3);
	kill(getpid(), SIGINT);
	/* Waits for the signal through the loop (the deadline only bounds a
	 * broken run). */
	uco_sleep(20 * UCO_NS_PER_S);
	return NULL;
}

Test(executor, ctrl_c_after_the_workers_started_reaches_the_loop)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_loop_close(loop), 0);
	/* In a child of its own: it must not depend on the runner's threads. */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		uco_loop *l;
		if (uco_loop_create(&l, NULL))
			_exit(4);
		if (uco_spawn(l, NULL, starts_workers_then_presses_ctrl_c, l))
			_exit(5);
		int r = uco_loop_run(l);
		if (got_sigint != SIGINT || r != 1)
			_exit(6);
		uco_loop_cancel_all(l);
		uco_loop_run(l);
		_exit(uco_loop_close(l) ? 7 : 0);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(!WIFSIGNALED(status), "killed by signal %d", WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0);
}

/* ---- asyncio's shutdown with a job in a worker: cancel all, stop, run
 * once more, close */

static atomic_int job_started;

static void *blocks_300ms(void *arg)
{
	(void)arg;
	atomic_store(&job_started, 1);
	sleep_ms(300);
	return NULL;
}

static void *waits_for_a_blocked_job(void *arg)
{
	(void)arg;
	int err = uco_run_in_executor(NULL, blocks_300ms, NULL, NULL);
	return err ? uco_fail(err) : NULL;
}

static void *stops_once_the_job_runs(void *loop)
{
	while (!atomic_load(&job_started))
		uco_sleep(MS(1));
	uco_loop_stop(loop);
	return NULL;
}

static void cancel_all_of(void *loop)
{
	cr_assert_eq(uco_loop_cancel_all(loop), 1);
}

static void shutdown_with_a_job_in_flight(bool cancel_inside)
{
	uco_loop *loop = test_loop();
	atomic_store(&job_started, 0);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, waits_for_a_blocked_job, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, stops_once_the_job_runs, loop), 0);
	cr_assert_eq(uco_loop_run(loop), 1, "stopped with the task left");
	if (cancel_inside) {
		/* The second run is the one that cancels and stops (a
		 * signal handler's shape). */
		cr_assert_eq(uco_loop_call(loop, cancel_all_of, loop), 0);
	} else {
		cr_assert_eq(uco_loop_cancel_all(loop), 1);
	}
	cr_assert_eq(uco_loop_stop(loop), 0);
	/* Once more: the cancellation finishes although the job holds the
	 * task until the worker is done with its memory. */
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_CANCELLED);
	uco_task_release(t);
	cr_assert_eq(uco_loop_close(loop), 0);
}

Test(executor, cancel_all_stop_run_once_more_and_close_with_a_job_in_a_worker)
{
	shutdown_with_a_job_in_flight(false);
}

Test(executor, the_same_when_a_posted_call_cancels)
{
	shutdown_with_a_job_in_flight(true);
}
