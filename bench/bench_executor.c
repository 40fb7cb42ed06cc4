/* SPDX-License-Identifier: MIT */
/*
 * executor: a trivial job (a function that returns its argument + 1) run
 * on a pool of EXEC_WORKERS worker threads, its result back in the loop
 * (or coroutine) that submitted it.
 *
 * Figures (BENCH.md: rt_us and ops_per_s; the two cpu_s_* are extra):
 *   rt_us             sequential round trip: submit one job, wait for its
 *                     result, submit the next; the median of the per-job
 *                     times (clock read around each job), in microseconds;
 *   ops_per_s         throughput with EXEC_INFLIGHT jobs in flight: jobs /
 *                     wall time from the first submission to the last
 *                     result;
 *   cpu_s_rt          CPU seconds (user + sys, getrusage(RUSAGE_SELF), so
 *                     every thread of the process) spent during the timed
 *                     rt_us run;
 *   cpu_s_throughput  the same for the timed ops_per_s run.
 * The cpu_s_* figures show speed bought by burning CPU: uco's idle workers
 * spin for the next job (spin_us, default 50 us) before they sleep, and a
 * spinning thread counts here while a sleeping one does not.  The job
 * counts are the same for every implementation, so these compare as they
 * are.
 *
 * Every implementation runs in its own fresh process (uco-bench
 * --internal-child executor IMPL, or python3 with the peer script), which
 * does one untimed warm-up of each run, then the timed rt run, then the
 * timed throughput run, and reports one line per figure.  The parent
 * interleaves the processes (uco, uco-epoll, libuv, asyncio, uco, ...).
 *
 *   uco      uco_executor_create() with threads = 4 (default spin), one
 *            loop; rt: one coroutine doing sequential
 *            uco_run_in_executor(ex, fn, arg, &value); throughput:
 *            EXEC_INFLIGHT coroutines, each doing uco_run_in_executor in a
 *            loop until the shared count of jobs is reached (this file);
 *   uco-epoll  the same on a loop of the readiness backend
 *            (UCO_BACKEND_EPOLL; skipped where the loop does not run on it);
 *   libuv    uv_queue_work() with UV_THREADPOOL_SIZE=4 (set in this child
 *            before the first libuv call: libuv reads it once); rt: the
 *            after_work callback of each job queues the next; throughput:
 *            EXEC_INFLIGHT requests, the after_work of each queues it again
 *            until the count is reached (this file);
 *   asyncio  peers/executor_asyncio.py: loop.run_in_executor(
 *            ThreadPoolExecutor(4), fn, x); rt: sequential awaits;
 *            throughput: EXEC_INFLIGHT tasks doing awaits in a loop until
 *            the count is reached, gathered.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "uco.h"

#if defined(UCO_BENCH_HAVE_LIBUV)
#include <uv.h>
#endif

#define EXEC_WORKERS 4
#define EXEC_INFLIGHT 1000

/* The work, the same for every implementation. */
struct exec_counts {
	uint64_t rt_jobs;      /* timed sequential round trips */
	uint64_t rt_warmup;    /* untimed ones before */
	uint64_t thr_jobs;     /* timed jobs of the throughput run */
	uint64_t thr_warmup;   /* untimed throughput run before */
};

static struct exec_counts exec_counts(const struct bench_opts *opts)
{
	struct exec_counts c = {
		.rt_jobs = BENCH_PICK(opts, 2000, 10000, 50000),
		.rt_warmup = 200,
		.thr_jobs = BENCH_PICK(opts, 20000, 200000, 500000),
		.thr_warmup = 2 * EXEC_INFLIGHT,
	};
	return c;
}

static void *add_one(void *arg)
{
	return (void *)((uintptr_t)arg + 1);
}

/* CPU seconds of the whole process (every thread) so far. */
static double cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* What every implementation reports, from its raw measurements. */
static void report(const char *impl, double *lat_ns, uint64_t rt_jobs,
                   double cpu_rt, uint64_t thr_jobs, int64_t thr_ns,
                   double cpu_thr)
{
	bench_emit("executor", impl, "rt_us",
	           bench_median(lat_ns, rt_jobs) / 1e3, "us");
	bench_emit("executor", impl, "cpu_s_rt", cpu_rt, "s");
	bench_emit("executor", impl, "ops_per_s",
	           (double)thr_jobs * 1e9 / (double)thr_ns, "ops/s");
	bench_emit("executor", impl, "cpu_s_throughput", cpu_thr, "s");
}

/* ------------------------------------------------------------ uco */

struct uco_rt {
	const char *impl;
	uco_executor *ex;
	uint64_t n;
	double *lat_ns;
	double cpu;
	int err;
};

static void *uco_rt_driver(void *arg)
{
	struct uco_rt *st = arg;
	double c0 = cpu_seconds();

	for (uint64_t i = 0; i < st->n; i++) {
		void *v = NULL;
		int64_t t0 = bench_now_ns();
		int r = uco_run_in_executor(st->ex, add_one, (void *)(uintptr_t)i, &v);
		int64_t t1 = bench_now_ns();

		if (r < 0) {
			st->err = r;
			bench_fail("executor", st->impl, "uco_run_in_executor: %s",
			           strerror(-r));
			break;
		}
		if ((uintptr_t)v != i + 1) {
			st->err = -EPROTO;
			bench_fail("executor", st->impl, "job %" PRIu64 " returned "
			           "%" PRIuPTR, i, (uintptr_t)v);
			break;
		}
		st->lat_ns[i] = (double)(t1 - t0);
	}
	st->cpu = cpu_seconds() - c0;
	return NULL;
}

static int uco_rt_run(uco_loop *loop, struct uco_rt *st)
{
	uco_task *drv;
	int ret = uco_spawn(loop, &drv, uco_rt_driver, st);

	if (ret < 0) {
		bench_fail("executor", st->impl, "uco_spawn: %s", strerror(-ret));
		return ret;
	}
	ret = uco_loop_run_until(loop, drv, NULL);
	if (!ret)
		ret = uco_task_result(drv, NULL);
	uco_task_release(drv);
	if (ret < 0) {
		bench_fail("executor", st->impl, "uco_loop_run_until: %s",
		           strerror(-ret));
		return ret;
	}
	return st->err;
}

struct uco_thr {
	const char *impl;
	uco_executor *ex;
	uint64_t total, issued, done;
	int64_t t_last;
	int err;
};

static void *uco_thr_worker(void *arg)
{
	struct uco_thr *st = arg;

	while (st->issued < st->total && !st->err) {
		uintptr_t x = (uintptr_t)st->issued++;
		void *v = NULL;
		int r = uco_run_in_executor(st->ex, add_one, (void *)x, &v);

		if (r < 0) {
			if (!st->err)
				bench_fail("executor", st->impl, "uco_run_in_executor: "
				           "%s", strerror(-r));
			st->err = r;
			break;
		}
		if ((uintptr_t)v != x + 1) {
			if (!st->err)
				bench_fail("executor", st->impl, "job %" PRIuPTR
				           " returned %" PRIuPTR, x, (uintptr_t)v);
			st->err = -EPROTO;
			break;
		}
		if (++st->done == st->total)
			st->t_last = bench_now_ns();
	}
	return NULL;
}

/* EXEC_INFLIGHT coroutines share `total` jobs; the wall time from before
 * the first spawn to the last result in *ns, the CPU time in *cpu. */
static int uco_thr_run(const char *impl, uco_loop *loop, uco_executor *ex,
                       uint64_t total,
                       int64_t *ns, double *cpu)
{
	struct uco_thr st = {.impl = impl, .ex = ex, .total = total};
	double c0 = cpu_seconds();
	int64_t t0 = bench_now_ns();
	int ret = 0;

	for (unsigned i = 0; i < EXEC_INFLIGHT; i++) {
		ret = uco_spawn(loop, NULL, uco_thr_worker, &st);
		if (ret < 0) {
			bench_fail("executor", impl, "uco_spawn: %s",
			           strerror(-ret));
			st.total = st.issued; /* the others stop at once */
			break;
		}
	}
	int r = uco_loop_run(loop);
	*cpu = cpu_seconds() - c0;
	if (ret < 0)
		return ret;
	if (r != 0) {
		bench_fail("executor", impl, "uco_loop_run returned %d", r);
		return r < 0 ? r : -EINTR;
	}
	if (st.err)
		return st.err;
	if (st.done != total) {
		bench_fail("executor", impl, "%" PRIu64 " of %" PRIu64
		           " jobs done", st.done, total);
		return -EPROTO;
	}
	*ns = st.t_last - t0;
	return 0;
}

static int executor_uco(const char *impl, const struct exec_counts *c)
{
	uco_loop_opts lo;
	uco_loop *loop;
	uco_executor_opts eo;
	uco_executor *ex = NULL;
	double *lat;
	int ret;

	lat = calloc(c->rt_jobs > c->rt_warmup ? c->rt_jobs : c->rt_warmup,
	             sizeof *lat);
	if (!lat) {
		bench_fail("executor", impl, "out of memory");
		return -ENOMEM;
	}
	/* Keep every coroutine's stack warm between the warm-up and the
	 * timed throughput run. */
	memset(&lo, 0, sizeof lo);
	lo.stack_keep_warm = EXEC_INFLIGHT + 1;
	ret = bench_uco_loop_create(&loop, "executor", impl, &lo);
	if (ret < 0) {
		free(lat);
		return ret == -EOPNOTSUPP ? 0 : ret; /* skipped: said why */
	}
	memset(&eo, 0, sizeof eo);
	eo.threads = EXEC_WORKERS; /* spin_us, flags: the defaults */
	ret = uco_executor_create(&ex, &eo);
	if (ret < 0) {
		bench_fail("executor", impl, "uco_executor_create: %s",
		           strerror(-ret));
		ex = NULL;
		goto out;
	}

	struct uco_rt rt = {.impl = impl, .ex = ex, .n = c->rt_warmup, .lat_ns = lat};
	ret = uco_rt_run(loop, &rt);
	if (ret < 0)
		goto out;
	rt.n = c->rt_jobs;
	ret = uco_rt_run(loop, &rt);
	if (ret < 0)
		goto out;

	int64_t ns;
	double cpu_thr;
	ret = uco_thr_run(impl, loop, ex, c->thr_warmup, &ns, &cpu_thr);
	if (ret < 0)
		goto out;
	ret = uco_thr_run(impl, loop, ex, c->thr_jobs, &ns, &cpu_thr);
	if (ret < 0)
		goto out;

	report(impl, lat, c->rt_jobs, rt.cpu, c->thr_jobs, ns, cpu_thr);
out:
	if (ex) {
		int r = uco_executor_shutdown(ex, 0);
		if (r < 0)
			bench_note("executor/%s: uco_executor_shutdown: %s",
			           impl, strerror(-r));
	}
	if (uco_loop_close(loop) < 0)
		bench_note("executor/%s: uco_loop_close failed", impl);
	free(lat);
	return ret;
}

/* ------------------------------------------------------------ libuv */

#if defined(UCO_BENCH_HAVE_LIBUV)

struct uv_job {
	uv_work_t req;
	uintptr_t x, v;
	void *st;
};

static void uv_job_work(uv_work_t *req)
{
	struct uv_job *j = (struct uv_job *)req;

	j->v = (uintptr_t)add_one((void *)j->x);
}

struct uv_rt {
	struct uv_job job;
	uint64_t n, i;
	int64_t t_submit;
	double *lat_ns;
	int err;
};

static void uv_rt_after(uv_work_t *req, int status);

static int uv_rt_submit(uv_loop_t *loop, struct uv_rt *st)
{
	st->job.x = (uintptr_t)st->i;
	st->job.v = 0;
	st->t_submit = bench_now_ns();
	int r = uv_queue_work(loop, &st->job.req, uv_job_work, uv_rt_after);
	if (r < 0) {
		bench_fail("executor", "libuv", "uv_queue_work: %s",
		           uv_strerror(r));
		st->err = r;
	}
	return r;
}

static void uv_rt_after(uv_work_t *req, int status)
{
	int64_t t1 = bench_now_ns();
	struct uv_rt *st = ((struct uv_job *)req)->st;

	if (status < 0) {
		bench_fail("executor", "libuv", "after_work: %s",
		           uv_strerror(status));
		st->err = status;
		return;
	}
	if (st->job.v != st->i + 1) {
		bench_fail("executor", "libuv", "job %" PRIu64 " returned %"
		           PRIuPTR, st->i, st->job.v);
		st->err = -EPROTO;
		return;
	}
	st->lat_ns[st->i] = (double)(t1 - st->t_submit);
	if (++st->i < st->n)
		uv_rt_submit(req->loop, st);
}

static int uv_rt_run(uv_loop_t *loop, uint64_t n, double *lat_ns,
                     double *cpu)
{
	struct uv_rt st = {.n = n, .lat_ns = lat_ns};
	double c0 = cpu_seconds();

	st.job.st = &st;
	if (uv_rt_submit(loop, &st) < 0)
		return st.err;
	int r = uv_run(loop, UV_RUN_DEFAULT);
	*cpu = cpu_seconds() - c0;
	if (st.err)
		return st.err;
	if (r != 0 || st.i != n) {
		bench_fail("executor", "libuv", "uv_run returned %d after %"
		           PRIu64 " of %" PRIu64 " jobs", r, st.i, n);
		return -EPROTO;
	}
	return 0;
}

struct uv_thr {
	uint64_t total, issued, done;
	int64_t t_last;
	int err;
};

static void uv_thr_after(uv_work_t *req, int status);

static int uv_thr_submit(uv_loop_t *loop, struct uv_job *j)
{
	struct uv_thr *st = j->st;

	j->x = (uintptr_t)st->issued++;
	j->v = 0;
	int r = uv_queue_work(loop, &j->req, uv_job_work, uv_thr_after);
	if (r < 0) {
		if (!st->err)
			bench_fail("executor", "libuv", "uv_queue_work: %s",
			           uv_strerror(r));
		st->err = r;
	}
	return r;
}

static void uv_thr_after(uv_work_t *req, int status)
{
	struct uv_job *j = (struct uv_job *)req;
	struct uv_thr *st = j->st;

	if (status < 0 || j->v != j->x + 1) {
		if (!st->err)
			bench_fail("executor", "libuv", "job %" PRIuPTR ": status "
			           "%d, returned %" PRIuPTR, j->x, status, j->v);
		st->err = status < 0 ? status : -EPROTO;
		return;
	}
	if (++st->done == st->total)
		st->t_last = bench_now_ns();
	if (st->issued < st->total && !st->err)
		uv_thr_submit(req->loop, j);
}

static int uv_thr_run(uv_loop_t *loop, struct uv_job *jobs, uint64_t total,
                      int64_t *ns, double *cpu)
{
	struct uv_thr st = {.total = total};
	double c0 = cpu_seconds();
	int64_t t0 = bench_now_ns();

	for (unsigned i = 0; i < EXEC_INFLIGHT && st.issued < total; i++) {
		jobs[i].st = &st;
		if (uv_thr_submit(loop, &jobs[i]) < 0)
			break;
	}
	int r = uv_run(loop, UV_RUN_DEFAULT);
	*cpu = cpu_seconds() - c0;
	if (st.err)
		return st.err;
	if (r != 0 || st.done != total) {
		bench_fail("executor", "libuv", "uv_run returned %d after %"
		           PRIu64 " of %" PRIu64 " jobs", r, st.done, total);
		return -EPROTO;
	}
	*ns = st.t_last - t0;
	return 0;
}

static int executor_libuv(const struct exec_counts *c)
{
	uv_loop_t loop;
	struct uv_job *jobs;
	double *lat, cpu_rt, cpu_thr;
	int64_t ns;
	int ret;

	/* libuv sizes its pool from the environment once, when the first
	 * work is queued: set it before any libuv call. */
	if (setenv("UV_THREADPOOL_SIZE", "4", 1) < 0) {
		int err = errno;
		bench_fail("executor", "libuv", "setenv: %s", strerror(err));
		return -err;
	}
	lat = calloc(c->rt_jobs > c->rt_warmup ? c->rt_jobs : c->rt_warmup,
	             sizeof *lat);
	jobs = calloc(EXEC_INFLIGHT, sizeof *jobs);
	if (!lat || !jobs) {
		bench_fail("executor", "libuv", "out of memory");
		free(lat);
		free(jobs);
		return -ENOMEM;
	}
	ret = uv_loop_init(&loop);
	if (ret < 0) {
		bench_fail("executor", "libuv", "uv_loop_init: %s",
		           uv_strerror(ret));
		free(lat);
		free(jobs);
		return ret;
	}
	ret = uv_rt_run(&loop, c->rt_warmup, lat, &cpu_rt);
	if (ret == 0)
		ret = uv_rt_run(&loop, c->rt_jobs, lat, &cpu_rt);
	if (ret == 0)
		ret = uv_thr_run(&loop, jobs, c->thr_warmup, &ns, &cpu_thr);
	if (ret == 0)
		ret = uv_thr_run(&loop, jobs, c->thr_jobs, &ns, &cpu_thr);
	if (ret == 0)
		report("libuv", lat, c->rt_jobs, cpu_rt, c->thr_jobs, ns, cpu_thr);
	if (uv_loop_close(&loop) < 0)
		bench_note("executor/libuv: uv_loop_close: requests left");
	free(lat);
	free(jobs);
	return ret;
}

#endif /* UCO_BENCH_HAVE_LIBUV */

/* ------------------------------------------------------------ the child */

int bench_executor_child(const char *impl, const struct bench_opts *opts)
{
	struct exec_counts c = exec_counts(opts);
	int ret;

	if (strcmp(impl, "uco") == 0 || bench_is_uco_epoll(impl)) {
		ret = executor_uco(impl, &c);
#if defined(UCO_BENCH_HAVE_LIBUV)
	} else if (strcmp(impl, "libuv") == 0) {
		ret = executor_libuv(&c);
#endif
	} else {
		fprintf(stderr, "uco-bench: executor: no implementation %s here\n",
		        impl);
		return 2;
	}
	return ret < 0 ? 1 : 0;
}

/* ------------------------------------------------------------ the parent */

int bench_executor_run(const struct bench_opts *opts)
{
	const int processes = BENCH_PICK(opts, 1, 3, 5);
	struct exec_counts c = exec_counts(opts);
	char *python = bench_find_in_path("python3");
	char *script = bench_find_peer_file("executor_asyncio.py");
	char rt_jobs[24], rt_warmup[24], thr_jobs[24], thr_warmup[24];
	char inflight[16], workers[16];
	static const char *const uco_impls[] = {"uco", "uco-epoll"};
	bool uco_ok[2];
	int ret = 0;

	for (size_t u = 0; u < 2; u++)
		uco_ok[u] = bench_uco_impl_available("executor", uco_impls[u]);

#if !defined(UCO_BENCH_HAVE_LIBUV)
	bench_skip("executor", "libuv", "libuv (libuv1-dev) was not found at "
	           "build time");
#endif
	if (!python)
		bench_skip("executor", "asyncio", "python3 is not in PATH");
	else if (!script)
		bench_skip("executor", "asyncio", "peers/executor_asyncio.py is "
		           "neither next to uco-bench nor in the data directory");

	snprintf(rt_jobs, sizeof rt_jobs, "%" PRIu64, c.rt_jobs);
	snprintf(rt_warmup, sizeof rt_warmup, "%" PRIu64, c.rt_warmup);
	snprintf(thr_jobs, sizeof thr_jobs, "%" PRIu64, c.thr_jobs);
	snprintf(thr_warmup, sizeof thr_warmup, "%" PRIu64, c.thr_warmup);
	snprintf(inflight, sizeof inflight, "%d", EXEC_INFLIGHT);
	snprintf(workers, sizeof workers, "%d", EXEC_WORKERS);

	for (int p = 0; p < processes; p++) {
		char what[32];
		int st;

		snprintf(what, sizeof what, "process %d/%d", p + 1, processes);

		for (size_t u = 0; u < sizeof uco_impls / sizeof uco_impls[0]; u++) {
			if (!uco_ok[u])
				continue;
			bench_progress("executor", uco_impls[u], what);
			st = bench_run_self("executor", uco_impls[u], opts);
			if (st != 0)
				ret = -EPROTO;
		}
#if defined(UCO_BENCH_HAVE_LIBUV)
		bench_progress("executor", "libuv", what);
		st = bench_run_self("executor", "libuv", opts);
#endif
		if (python && script) {
			char *argv[] = {python, script,
			                (char *)"--rt-jobs", rt_jobs,
			                (char *)"--rt-warmup", rt_warmup,
			                (char *)"--jobs", thr_jobs,
			                (char *)"--warmup", thr_warmup,
			                (char *)"--inflight", inflight,
			                (char *)"--workers", workers,
			                NULL};
			bench_progress("executor", "asyncio", what);
			st = bench_run_child("executor", "asyncio", argv);
		}
	}
	free(python);
	free(script);
	return ret;
}
