/* SPDX-License-Identifier: MIT */
/*
 * The executor's threaded paths without Criterion, so that they can run
 * under ThreadSanitizer (Criterion's runner cannot start under TSan: its
 * inheritable arena collides with TSan's shadow memory).  CI builds it with
 * -Db_sanitize=thread.  Prints "N passed, M failed".
 */
#define _GNU_SOURCE /* statx */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uco.h>

#include "xchan_cases.h"

static int failures, checks;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		checks++;                                                  \
		if (!(cond)) {                                             \
			failures++;                                        \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
		}                                                          \
	} while (0)

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts))
		;
}

/* ---- many loops on many threads, one executor, results go home */

struct shared_state {
	uco_executor *ex;
	intptr_t tag;
	atomic_int *mismatches;
};

static void *echo_job(void *arg)
{
	sleep_us((intptr_t)arg % 3); /* vary the order results come back in */
	return arg;
}

static void *submitter(void *arg)
{
	struct shared_state *s = arg;
	for (intptr_t i = 0; i < 300; i++) {
		void *v;
		intptr_t want = s->tag * 1000000 + i;
		int err = uco_run_in_executor(s->ex, echo_job, (void *)want, &v);
		if (err || (intptr_t)v != want)
			atomic_fetch_add(s->mismatches, 1);
	}
	return NULL;
}

struct loop_thread {
	struct shared_state s;
	int err;
};

static void *loop_thread(void *arg)
{
	struct loop_thread *lt = arg;
	uco_loop *loop;
	if ((lt->err = uco_loop_create(&loop, NULL)))
		return NULL;
	for (int i = 0; i < 6; i++)
		uco_spawn(loop, NULL, submitter, &lt->s);
	lt->err = uco_loop_run(loop);
	if (!lt->err)
		lt->err = uco_loop_close(loop);
	return NULL;
}

static void shared_by_loops(unsigned flags)
{
	uco_executor_opts opts = { .threads = 3, .flags = flags };
	uco_executor *ex;
	CHECK(uco_executor_create(&ex, &opts) == 0, "create");
	atomic_int mismatches = 0;
	struct loop_thread lt[3];
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		lt[i] = (struct loop_thread){ { ex, i + 1, &mismatches }, 0 };
		pthread_create(&th[i], NULL, loop_thread, &lt[i]);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		CHECK(lt[i].err == 0, "loop %d: %d", i, lt[i].err);
	}
	CHECK(atomic_load(&mismatches) == 0, "%d results went astray", atomic_load(&mismatches));
	CHECK(uco_executor_shutdown(ex, 0) == 0, "shutdown");
	printf("ok: 3 loops x 1800 jobs share one executor%s\n",
	       (flags & UCO_EXECUTOR_NO_MSG_RING) ? " (eventfd inbox)" : " (MSG_RING)");
}

/* ---- cancellation while workers run, and shutdown that drops the queue */

static atomic_int slow_ran, slow_started;

static void *slow_job(void *arg)
{
	atomic_fetch_add(&slow_started, 1);
	sleep_us(2000);
	atomic_fetch_add(&slow_ran, 1);
	return arg;
}

static void *cancels_half(void *arg)
{
	uco_task **tasks = arg;
	uco_sleep(3 * UCO_NS_PER_MS);
	for (int i = 0; i < 40; i += 2)
		uco_task_cancel(tasks[i]);
	return NULL;
}

static void cancel_while_running(void)
{
	uco_executor_opts opts = { .threads = 2 };
	uco_executor *ex;
	uco_loop *loop;
	CHECK(uco_executor_create(&ex, &opts) == 0, "create");
	CHECK(uco_loop_create(&loop, NULL) == 0, "loop");
	uco_task *tasks[40];
	for (intptr_t i = 0; i < 40; i++)
		uco_spawn_in_executor(loop, &tasks[i], ex, slow_job, (void *)i);
	uco_spawn(loop, NULL, cancels_half, tasks);
	CHECK(uco_loop_run(loop) == 0, "run");
	int cancelled = 0, done = 0;
	for (int i = 0; i < 40; i++) {
		void *v;
		int r = uco_task_result(tasks[i], &v);
		if (r == -ECANCELED)
			cancelled++;
		else if (r == 0 && (intptr_t)v == i)
			done++;
		uco_task_release(tasks[i]);
	}
	CHECK(cancelled + done == 40, "%d cancelled + %d done", cancelled, done);
	CHECK(cancelled > 0 && cancelled <= 20, "%d cancelled", cancelled);
	CHECK(uco_loop_close(loop) == 0, "close");
	CHECK(uco_executor_shutdown(ex, 0) == 0, "shutdown");
	printf("ok: %d of 40 jobs cancelled while 2 workers ran (%d ran)\n", cancelled,
	       atomic_load(&slow_ran));
}

static void *shuts_down(void *arg)
{
	/* Once a worker runs a job, however slow the machine is to start
	 * them (a blind 3 ms sleep dropped all 30 under load). */
	int base = atomic_load(&slow_started);
	for (int i = 0; i < 10000 && atomic_load(&slow_started) == base; i++)
		uco_sleep(UCO_NS_PER_MS);
	return (void *)(intptr_t)uco_executor_shutdown(arg, UCO_EXECUTOR_CANCEL_QUEUED);
}

static void shutdown_drops_queue(void)
{
	uco_executor_opts opts = { .threads = 2 };
	uco_executor *ex;
	uco_loop *loop;
	CHECK(uco_executor_create(&ex, &opts) == 0, "create");
	CHECK(uco_loop_create(&loop, NULL) == 0, "loop");
	uco_task *tasks[30], *s;
	for (intptr_t i = 0; i < 30; i++)
		uco_spawn_in_executor(loop, &tasks[i], ex, slow_job, (void *)i);
	uco_spawn(loop, &s, shuts_down, ex);
	CHECK(uco_loop_run(loop) == 0, "run");
	int dropped = 0;
	for (int i = 0; i < 30; i++) {
		dropped += uco_task_result(tasks[i], NULL) == -ECANCELED;
		uco_task_release(tasks[i]);
	}
	void *r;
	CHECK(uco_task_result(s, &r) == 0 && r == NULL, "shutdown result");
	CHECK(dropped > 0 && dropped < 30, "%d dropped", dropped);
	uco_task_release(s);
	CHECK(uco_loop_close(loop) == 0, "close");
	printf("ok: shutdown dropped %d queued jobs, the running ones finished\n", dropped);
}

/* ---- calls into a loop from plain threads */

static int calls_seen; /* only touched on the loop's thread */
static uco_event all_called;

static void count_call(void *arg)
{
	(void)arg;
	if (++calls_seen == 900)
		uco_event_set(&all_called);
}

static void *caller(void *loop)
{
	for (int i = 0; i < 300; i++)
		uco_loop_call(loop, count_call, NULL);
	return NULL;
}

static void *waits_all_called(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_event_wait_dl(&all_called, uco_now() + 20 * UCO_NS_PER_S);
}

static void calls_from_threads(void)
{
	uco_loop *loop;
	CHECK(uco_loop_create(&loop, NULL) == 0, "loop");
	uco_event_init(&all_called);
	uco_task *t;
	uco_spawn(loop, &t, waits_all_called, NULL);
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, caller, loop);
	void *v = (void *)1;
	CHECK(uco_loop_run_until(loop, t, &v) == 0 && v == NULL, "woken by the calls");
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	uco_loop_run(loop);
	CHECK(calls_seen == 900, "%d of 900 calls ran", calls_seen);
	uco_task_release(t);
	CHECK(uco_loop_close(loop) == 0, "close");
	printf("ok: 900 calls from 3 threads ran on the loop\n");
}

/* ---- a channel between two loops on two threads */

struct xfer {
	uco_xchan *chan;
	intptr_t n, got;
	int bad;
};

static void *xsend_all(void *arg)
{
	struct xfer *x = arg;
	for (intptr_t i = 1; i <= x->n; i++)
		if (uco_xchan_send(x->chan, (void *)i))
			x->bad++;
	uco_xchan_close(x->chan);
	return NULL;
}

static void *xrecv_all(void *arg)
{
	struct xfer *x = arg;
	void *item;
	while (uco_xchan_recv(x->chan, &item) == 0)
		if ((intptr_t)item != ++x->got)
			x->bad++;
	return NULL;
}

static int setup_xfer(uco_loop *loop, unsigned index, void *arg)
{
	return uco_spawn(loop, NULL, index == 0 ? xsend_all : xrecv_all, arg);
}

static void channel_between_loops(void)
{
	struct xfer x = { NULL, 200000, 0, 0 };
	CHECK(uco_xchan_create(&x.chan, 64) == 0, "create");
	CHECK(uco_run_threads(2, 0, setup_xfer, &x) == 0, "threads");
	CHECK(x.got == x.n && !x.bad, "%ld of %ld in order", (long)x.got, (long)x.n);
	CHECK(uco_xchan_destroy(x.chan) == 0, "destroy");
	printf("ok: 200,000 items between two loops on two threads\n");
}

/* ---- many senders and receivers, a close in flight, cancels mid-stream
 * (the scenarios of xchan_cases.h, smaller than test_threads.c's) */

static void xchan_scenarios(void)
{
	size_t caps[] = { 0, 1, 3, 64 };
	for (unsigned i = 0; i < sizeof caps / sizeof *caps; i++) {
		struct xc_run many = { .sender_loops = 2, .senders_per_loop = 2,
		                       .receiver_loops = 2, .receivers_per_loop = 2,
		                       .items = 3000 };
		const char *why = xc_run(&many, caps[i]);
		CHECK(!why, "many, capacity %zu: %s", caps[i], why);
		struct xc_run closing = { .sender_loops = 2, .senders_per_loop = 2,
		                          .receiver_loops = 1, .receivers_per_loop = 2,
		                          .items = 200000, .close_early = true };
		why = xc_run(&closing, caps[i]);
		CHECK(!why, "close in flight, capacity %zu: %s", caps[i], why);
		struct xc_run cancels = { .sender_loops = 1, .senders_per_loop = 3,
		                          .receiver_loops = 1, .receivers_per_loop = 4,
		                          .items = 1000, .cancels = true };
		why = xc_run(&cancels, caps[i]);
		CHECK(!why, "cancels, capacity %zu: %s", caps[i], why);
	}
	printf("ok: xchan with many senders and receivers, closes and cancels\n");
}

/* ---- a loop with no task takes posted spawns; a failed thread stops the
 * others (the inbox peek and the group's posts, under TSan) */

static atomic_int idle_spawned;

static void *counts_idle(void *arg)
{
	(void)arg;
	atomic_fetch_add(&idle_spawned, 1);
	return NULL;
}

static void *spawns_into(void *loop)
{
	for (int i = 0; i < 100; i++)
		uco_loop_spawn_threadsafe(loop, counts_idle, NULL);
	return NULL;
}

static void *sleeps_long(void *arg)
{
	(void)arg;
	uco_sleep(3600 * UCO_NS_PER_S);
	return NULL;
}

static int setup_third_fails(uco_loop *loop, unsigned index, void *arg)
{
	(void)arg;
	if (index == 2) {
		sleep_us(20000);
		return -EIO;
	}
	return uco_spawn(loop, NULL, sleeps_long, NULL);
}

static void idle_loops_and_failed_threads(void)
{
	uco_loop *loop;
	CHECK(uco_loop_create(&loop, NULL) == 0, "loop");
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, spawns_into, loop);
	int runs = 0;
	while (atomic_load(&idle_spawned) < 300 && runs++ < 100000) {
		int r = uco_loop_run(loop);
		CHECK(r == 0, "run: %d", r);
		if (r)
			break;
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	CHECK(uco_loop_run(loop) == 0, "last run");
	CHECK(atomic_load(&idle_spawned) == 300, "%d of 300 spawns ran", atomic_load(&idle_spawned));
	CHECK(uco_loop_close(loop) == 0, "close");
	CHECK(uco_run_threads(4, 0, setup_third_fails, NULL) == -EIO, "run_threads");
}

/* ---- the epoll backend's file workers: regular-file operations run on
 * them and come back through the engine's eventfd, many at once, some
 * cancelled on their way */

struct file_job {
	int fd;
	char buf[4096];
	ssize_t n;
};

static void *reads_file(void *arg)
{
	struct file_job *j = arg;
	char path[64];
	struct statx st;
	snprintf(path, sizeof path, "/proc/self/fd/%d", j->fd);
	if (uco_statx(AT_FDCWD, path, 0, STATX_SIZE, &st) < 0)
		j->n = -1;
	else
		j->n = uco_read(j->fd, j->buf, sizeof j->buf, 0);
	return NULL;
}

static void epoll_file_workers(void)
{
	uco_loop_opts o = { .backend = UCO_BACKEND_EPOLL };
	uco_loop *loop;
	CHECK(uco_loop_create(&loop, &o) == 0, "epoll loop");
	char name[] = "/tmp/uco-tsan-XXXXXX";
	int fd = mkstemp(name);
	CHECK(fd >= 0, "mkstemp");
	unlink(name);
	char data[4096];
	memset(data, 'f', sizeof data);
	CHECK(write(fd, data, sizeof data) == (ssize_t)sizeof data, "write");
	/* O_DIRECT-free and cached: RWF_NOWAIT may serve it, so statx (always
	 * a worker) is what makes the workers run. */
	enum { JOBS = 32 };
	static struct file_job jobs[JOBS];
	uco_task *t[JOBS];
	for (int i = 0; i < JOBS; i++) {
		jobs[i] = (struct file_job){ .fd = fd };
		CHECK(uco_spawn(loop, &t[i], reads_file, &jobs[i]) == 0, "spawn");
	}
	for (int i = 0; i < JOBS; i += 4)
		uco_task_cancel(t[i]);
	CHECK(uco_loop_run(loop) == 0, "run");
	for (int i = 0; i < JOBS; i++) {
		if (uco_task_state_get(t[i]) == UCO_TASK_DONE && i % 4)
			CHECK(jobs[i].n == (ssize_t)sizeof data, "job %d read %zd", i, jobs[i].n);
		uco_task_release(t[i]);
	}
	close(fd);
	CHECK(uco_loop_close(loop) == 0, "close");
}

int main(void)
{
	uco_loop *probe;
	int err = uco_loop_create(&probe, NULL);
	if (err) {
		printf("skipped: %s\n", uco_loop_strerror(err));
		return 77;
	}
	uco_loop_close(probe);
	shared_by_loops(0);
	shared_by_loops(UCO_EXECUTOR_NO_MSG_RING);
	cancel_while_running();
	shutdown_drops_queue();
	calls_from_threads();
	channel_between_loops();
	xchan_scenarios();
	idle_loops_and_failed_threads();
	epoll_file_workers();
	printf("%d passed, %d failed\n", checks - failures, failures);
	return failures ? 1 : 0;
}
