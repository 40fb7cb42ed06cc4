/* SPDX-License-Identifier: MIT */
/*
 * cancel: cancel + reap of BENCH_CANCEL_TASKS tasks blocked in socket reads.
 *
 * Each task blocks in uco_recv() on its own UDP socket (unbound, so no
 * datagram ever comes): one descriptor per task, which keeps 10,000 tasks
 * within the 20,000 open files a container typically allows (a socketpair
 * each needed 20,100 and could not be had here).  Once every task is
 * blocked (all have called uco_recv and the loop has submitted and waited
 * since), the clock starts: uco_task_cancel() on each task, from the loop's
 * thread outside any coroutine, then uco_loop_run() until no task is left
 * (each one's uco_recv returns -ECANCELED once the kernel has given the
 * read back, and the task ends with it).  us_per_cancel = elapsed / tasks.
 * Every task's uco_recv result and final state are checked afterwards.
 *
 *   uco        the default loop (io_uring);
 *   uco-epoll  the same on a loop of the readiness backend
 *              (UCO_BACKEND_EPOLL; skipped where the loop does not run on it).
 *
 * Each runs in a fresh process (uco-bench --internal-child cancel IMPL), which
 * raises its RLIMIT_NOFILE to tasks + 100 (or skips, saying so, if it
 * cannot), makes the sockets once and reuses them for every round, and
 * does one untimed warm-up round, then `rounds` timed ones (one JSON line
 * each; readers take the median).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "uco.h"

struct cancel_state {
	const char *impl;  /* "uco" or "uco-epoll" */
	size_t n;
	int (*fds)[2];     /* n sockets; tasks read fds[i][0] ([1] unused) */
	uco_task **tasks;  /* n handles */
	ssize_t *res;      /* uco_recv's result, per task */
	size_t started;    /* tasks that reached uco_recv */
};

struct cancel_arg {
	struct cancel_state *st;
	size_t i;
};

static void *reader(void *arg)
{
	struct cancel_arg *a = arg;
	struct cancel_state *st = a->st;
	char buf[16];

	st->started++;
	ssize_t r = uco_recv(st->fds[a->i][0], buf, sizeof buf, 0);
	st->res[a->i] = r;
	return r == -ECANCELED ? uco_fail(-ECANCELED) : NULL;
}

/* Ends once every reader has called uco_recv and the loop has submitted
 * their reads and waited in the kernel since (a sleep is a ring timeout). */
static void *settle(void *arg)
{
	struct cancel_state *st = arg;

	while (st->started < st->n)
		if (uco_sleep(0) < 0)
			return NULL;
	uco_sleep(UCO_NS_PER_MS);
	return NULL;
}

/* One round; 0 and the time in *us_per_cancel, or a negative errno after
 * bench_fail (the loop may then hold tasks still blocked: do not reuse). */
static int cancel_round(uco_loop *loop, struct cancel_state *st,
                        struct cancel_arg *args, double *us_per_cancel)
{
	uco_task *s;
	size_t spawned = 0;
	int ret;

	st->started = 0;
	for (size_t i = 0; i < st->n; i++)
		st->res[i] = 1; /* neither a byte count we could get nor an error */
	for (; spawned < st->n; spawned++) {
		ret = uco_spawn(loop, &st->tasks[spawned], reader, &args[spawned]);
		if (ret < 0) {
			bench_fail("cancel", st->impl, "uco_spawn of task %zu of %zu: %s",
			           spawned + 1, st->n, strerror(-ret));
			goto undo;
		}
	}
	ret = uco_spawn(loop, &s, settle, st);
	if (ret < 0) {
		bench_fail("cancel", st->impl, "uco_spawn: %s", strerror(-ret));
		goto undo;
	}
	ret = uco_loop_run_until(loop, s, NULL);
	if (!ret)
		ret = uco_task_result(s, NULL);
	uco_task_release(s);
	if (ret < 0 || st->started != st->n) {
		bench_fail("cancel", st->impl, "waiting for the readers to block: %s "
		           "(%zu of %zu started)", ret < 0 ? strerror(-ret) : "",
		           st->started, st->n);
		ret = ret < 0 ? ret : -EPROTO;
		goto undo;
	}
	for (size_t i = 0; i < st->n; i++) {
		if (uco_task_state_get(st->tasks[i]) != UCO_TASK_PENDING) {
			bench_fail("cancel", st->impl, "task %zu ended before the cancel "
			           "(uco_recv returned %zd)", i, st->res[i]);
			ret = -EPROTO;
			goto undo;
		}
	}

	/* The timed part. */
	int64_t t0 = bench_now_ns();
	for (size_t i = 0; i < st->n; i++) {
		ret = uco_task_cancel(st->tasks[i]);
		if (ret < 0) {
			bench_fail("cancel", st->impl, "uco_task_cancel of task %zu: %s",
			           i, strerror(-ret));
			goto undo;
		}
	}
	ret = uco_loop_run(loop);
	int64_t elapsed = bench_now_ns() - t0;

	if (ret != 0) {
		bench_fail("cancel", st->impl, "uco_loop_run returned %d", ret);
		ret = ret < 0 ? ret : -EPROTO;
		goto undo;
	}
	for (size_t i = 0; i < st->n; i++) {
		int state = uco_task_state_get(st->tasks[i]);
		if (st->res[i] != -ECANCELED || state != UCO_TASK_CANCELLED) {
			bench_fail("cancel", st->impl, "task %zu: uco_recv returned %zd "
			           "(%s), state %d, not -ECANCELED and cancelled", i,
			           st->res[i], st->res[i] < 0 ?
			           strerror((int)-st->res[i]) : "data", state);
			ret = -EPROTO;
			goto undo;
		}
	}
	for (size_t i = 0; i < st->n; i++)
		uco_task_release(st->tasks[i]);
	*us_per_cancel = (double)elapsed / 1e3 / (double)st->n;
	return 0;

undo:
	/* Cancel whatever is left, let it end, and drop the handles. */
	for (size_t i = 0; i < spawned; i++)
		uco_task_cancel(st->tasks[i]);
	uco_loop_run(loop);
	for (size_t i = 0; i < spawned; i++)
		uco_task_release(st->tasks[i]);
	return ret < 0 ? ret : -EPROTO;
}

/* RLIMIT_NOFILE of at least `need`: 0, or a negative errno after saying
 * why the benchmark is skipped. */
static int raise_nofile(const char *impl, rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		int e = errno;
		bench_skip("cancel", impl, "getrlimit(RLIMIT_NOFILE): %s", strerror(e));
		return -e;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	struct rlimit want = rl;
	want.rlim_cur = need;
	if (want.rlim_max != RLIM_INFINITY && want.rlim_max < need)
		want.rlim_max = need;
	if (setrlimit(RLIMIT_NOFILE, &want) < 0) {
		int e = errno;
		bench_skip("cancel", impl, "needs %llu open files, and RLIMIT_NOFILE "
		           "is %llu (hard %llu) and cannot be raised: %s (raise it "
		           "with ulimit -n, or limits.conf)",
		           (unsigned long long)need, (unsigned long long)rl.rlim_cur,
		           (unsigned long long)rl.rlim_max, strerror(e));
		return -e;
	}
	return 0;
}

static int cancel_uco(const char *impl, int rounds)
{
	struct cancel_state st = {.impl = impl, .n = BENCH_CANCEL_TASKS};
	struct cancel_arg *args = NULL;
	uco_loop_opts lo;
	uco_loop *loop = NULL;
	size_t made = 0;
	int ret;

	ret = raise_nofile(impl, (rlim_t)st.n + 100);
	if (ret < 0)
		return 0; /* skipped, not failed */

	ret = -ENOMEM;
	st.fds = calloc(st.n, sizeof *st.fds);
	st.tasks = calloc(st.n, sizeof *st.tasks);
	st.res = calloc(st.n, sizeof *st.res);
	args = calloc(st.n, sizeof *args);
	if (!st.fds || !st.tasks || !st.res || !args) {
		bench_fail("cancel", impl, "out of memory");
		goto out;
	}
	for (; made < st.n; made++) {
		st.fds[made][0] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		st.fds[made][1] = -1;
		if (st.fds[made][0] < 0) {
			ret = -errno;
			bench_fail("cancel", impl, "socket %zu of %zu: %s",
			           made + 1, st.n, strerror(errno));
			goto out;
		}
		args[made].st = &st;
		args[made].i = made;
	}

	/* Every stack of a round stays warm, as in gather and sleep. */
	memset(&lo, 0, sizeof lo);
	lo.stack_keep_warm = st.n + 16;
	ret = bench_uco_loop_create(&loop, "cancel", impl, &lo);
	if (ret < 0) {
		loop = NULL;
		if (ret == -EOPNOTSUPP)
			ret = 0; /* skipped, not failed */
		goto out;
	}
	for (int r = 0; r <= rounds; r++) {
		double us = 0;
		ret = cancel_round(loop, &st, args, &us);
		if (ret < 0)
			goto out;
		if (r > 0) /* round 0 is the warm-up */
			bench_emit("cancel", impl, "us_per_cancel", us, "us");
	}
	ret = 0;
out:
	if (loop && uco_loop_close(loop) < 0)
		bench_note("cancel/%s: uco_loop_close failed", impl);
	for (size_t i = 0; i < made; i++)
		close(st.fds[i][0]);
	free(st.fds);
	free(st.tasks);
	free(st.res);
	free(args);
	return ret;
}

/* ------------------------------------------------------------ the child */

static int cancel_rounds(const struct bench_opts *opts)
{
	return BENCH_PICK(opts, 3, 15, 40);
}

int bench_cancel_child(const char *impl, const struct bench_opts *opts)
{
	if (strcmp(impl, "uco") != 0 && !bench_is_uco_epoll(impl)) {
		fprintf(stderr, "uco-bench: cancel: no implementation %s here\n", impl);
		return 2;
	}
	return cancel_uco(impl, cancel_rounds(opts)) < 0 ? 1 : 0;
}

/* ------------------------------------------------------------ the parent */

int bench_cancel_run(const struct bench_opts *opts)
{
	static const char *const impls[] = {"uco", "uco-epoll"};
	int ret = 0;

	for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
		if (!bench_uco_impl_available("cancel", impls[i]))
			continue;
		bench_progress("cancel", impls[i], "");
		/* A failure is reported by bench_run_self. */
		if (bench_run_self("cancel", impls[i], opts) != 0)
			ret = -EPROTO;
	}
	return ret;
}
