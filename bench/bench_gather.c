/* SPDX-License-Identifier: MIT */
/*
 * gather: a coroutine spawns BENCH_GATHER_TASKS tasks and gathers them.
 *
 *   ms_sleep   each task uco_sleep(1 ms) and returns;
 *   ms_return  each task returns at once.
 *
 * Timed from just before the first spawn to just after gather returns, in
 * the gathering coroutine; releasing the handles afterwards is not timed.
 * Every value gathered is checked (task i returns i + 1), so that a figure
 * is never reported for work that did not happen.
 *
 * Every implementation runs in its own fresh process, which does one
 * untimed warm-up round of each metric (uco's stack pool and Python's
 * allocator get warm alike), then `rounds` timed rounds of each, the two
 * metrics alternating; one JSON line per timed round (readers take the
 * median).
 *
 *   uco      a driver task: uco_spawn() x n with handles, uco_gather(tasks,
 *            n, values, NULL, 0), uco_task_release() x n (this file);
 *   asyncio  peers/gather_asyncio.py run by python3: create_task() x n,
 *            then await asyncio.gather(*tasks).
 * The parent interleaves the processes (uco, asyncio, uco, ...) so that a
 * drift of the machine's speed spreads over both.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "uco.h"

/* ------------------------------------------------------------ uco */

struct gather_state {
	size_t n;
	bool sleep;         /* ms_sleep (else ms_return) */
	uco_task **tasks;   /* n handles (heap: not on a 64 KiB stack) */
	void **values;      /* n values */
	size_t spawned;
	int64_t elapsed;
	int err;            /* first failure: from uco_spawn or uco_gather */
	const char *where;  /* which call failed */
};

static void *gather_return(void *arg)
{
	return arg;
}

static void *gather_sleep(void *arg)
{
	int r = uco_sleep(BENCH_GATHER_SLEEP_MS * UCO_NS_PER_MS);

	if (r < 0)
		return uco_fail(r);
	return arg;
}

static void *gather_driver(void *arg)
{
	struct gather_state *st = arg;
	uco_fn fn = st->sleep ? gather_sleep : gather_return;
	int64_t t0 = bench_now_ns();
	int r;

	for (size_t i = 0; i < st->n; i++) {
		r = uco_spawn(NULL, &st->tasks[i], fn, (void *)(uintptr_t)(i + 1));
		if (r < 0) {
			st->err = r;
			st->where = "uco_spawn";
			break;
		}
		st->spawned++;
	}
	if (st->spawned == st->n) {
		r = uco_gather(st->tasks, st->n, st->values, NULL, 0);
		st->elapsed = bench_now_ns() - t0;
		if (r != 0) {
			st->err = r < 0 ? r : -EPROTO;
			st->where = "uco_gather";
		}
	} else {
		/* Let the tasks already spawned finish before releasing. */
		for (size_t i = 0; i < st->spawned; i++)
			uco_await(st->tasks[i], NULL);
	}
	for (size_t i = 0; i < st->spawned; i++)
		uco_task_release(st->tasks[i]);
	return NULL;
}

/* One round; 0 and the time in *ms, or a negative errno after bench_fail. */
static int gather_uco_round(uco_loop *loop, struct gather_state *st, bool sleep,
                            double *ms)
{
	const char *metric = sleep ? "ms_sleep" : "ms_return";
	uco_task *drv;
	int ret;

	st->sleep = sleep;
	st->spawned = 0;
	st->elapsed = 0;
	st->err = 0;
	st->where = NULL;
	memset(st->values, 0, st->n * sizeof *st->values);

	ret = uco_spawn(loop, &drv, gather_driver, st);
	if (ret < 0) {
		bench_fail("gather", "uco", "uco_spawn of the driver: %s",
		           strerror(-ret));
		return ret;
	}
	ret = uco_loop_run_until(loop, drv, NULL);
	if (!ret)
		ret = uco_task_result(drv, NULL);
	uco_task_release(drv);
	if (ret < 0) {
		bench_fail("gather", "uco", "%s: uco_loop_run_until: %s", metric,
		           strerror(-ret));
		return ret;
	}
	if (st->err) {
		bench_fail("gather", "uco", "%s: %s after %zu spawns: %s", metric,
		           st->where, st->spawned, strerror(-st->err));
		return st->err;
	}
	for (size_t i = 0; i < st->n; i++) {
		if (st->values[i] != (void *)(uintptr_t)(i + 1)) {
			bench_fail("gather", "uco", "%s: values[%zu] is %p, not %zu",
			           metric, i, st->values[i], i + 1);
			return -EPROTO;
		}
	}
	if (sleep && st->elapsed < BENCH_GATHER_SLEEP_MS * UCO_NS_PER_MS)
		bench_note("gather/uco: ms_sleep took %.3f ms, less than the "
		           "%d ms sleep", (double)st->elapsed / 1e6,
		           BENCH_GATHER_SLEEP_MS);
	*ms = (double)st->elapsed / 1e6;
	return 0;
}

static int gather_uco(int rounds)
{
	struct gather_state st = {.n = BENCH_GATHER_TASKS};
	uco_loop_opts lo;
	uco_loop *loop = NULL;
	int ret = -ENOMEM;

	st.tasks = calloc(st.n, sizeof *st.tasks);
	st.values = calloc(st.n, sizeof *st.values);
	if (!st.tasks || !st.values) {
		bench_fail("gather", "uco", "out of memory");
		goto out;
	}
	/* Keep every stack of a round warm (the tasks and the driver), as a
	 * program gathering this many tasks would configure its loop; the
	 * warm-up round maps them. */
	memset(&lo, 0, sizeof lo);
	lo.stack_keep_warm = st.n + 16;
	ret = uco_loop_create(&loop, &lo);
	if (ret < 0) {
		bench_fail("gather", "uco", "uco_loop_create: %s",
		           uco_loop_strerror(ret));
		loop = NULL;
		goto out;
	}
	for (int r = 0; r <= rounds; r++) {
		for (int s = 1; s >= 0; s--) {
			double ms = 0;
			ret = gather_uco_round(loop, &st, s, &ms);
			if (ret < 0)
				goto out;
			if (r > 0) /* round 0 is the warm-up */
				bench_emit("gather", "uco", s ? "ms_sleep" : "ms_return",
				           ms, "ms");
		}
	}
	ret = 0;
out:
	if (loop) {
		if (ret < 0)
			uco_loop_run(loop); /* tasks a failed gather left going */
		if (uco_loop_close(loop) < 0)
			bench_note("gather/uco: uco_loop_close failed");
	}
	free(st.tasks);
	free(st.values);
	return ret;
}

/* ------------------------------------------------------------ the child */

static int gather_rounds(const struct bench_opts *opts)
{
	return BENCH_PICK(opts, 3, 10, 20);
}

int bench_gather_child(const char *impl, const struct bench_opts *opts)
{
	if (strcmp(impl, "uco") != 0) {
		fprintf(stderr, "uco-bench: gather: no implementation %s here\n", impl);
		return 2;
	}
	return gather_uco(gather_rounds(opts)) < 0 ? 1 : 0;
}

/* ------------------------------------------------------------ the parent */

int bench_gather_run(const struct bench_opts *opts)
{
	const int processes = BENCH_PICK(opts, 1, 3, 5);
	char *python = bench_find_in_path("python3");
	char *script = bench_find_peer_file("gather_asyncio.py");
	char rounds[16], tasks[16], ms[16];
	int ret = 0;

	if (!python)
		bench_skip("gather", "asyncio", "python3 is not in PATH");
	else if (!script)
		bench_skip("gather", "asyncio", "peers/gather_asyncio.py is neither "
		           "next to uco-bench nor in the data directory");

	snprintf(rounds, sizeof rounds, "%d", gather_rounds(opts));
	snprintf(tasks, sizeof tasks, "%d", BENCH_GATHER_TASKS);
	snprintf(ms, sizeof ms, "%d", BENCH_GATHER_SLEEP_MS);

	for (int p = 0; p < processes; p++) {
		char what[32];
		int st;

		snprintf(what, sizeof what, "process %d/%d", p + 1, processes);

		bench_progress("gather", "uco", what);
		st = bench_run_self("gather", "uco", opts);
		if (st != 0)
			ret = -EPROTO;

		if (python && script) {
			char *argv[] = {python, script, (char *)"--rounds", rounds,
			                (char *)"--tasks", tasks, (char *)"--ms", ms,
			                NULL};
			bench_progress("gather", "asyncio", what);
			st = bench_run_child("gather", "asyncio", argv);
		}
	}
	free(python);
	free(script);
	return ret;
}
