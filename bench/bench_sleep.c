/* SPDX-License-Identifier: MIT */
/*
 * sleep: 100,000 concurrent 10 ms sleeps, from the first spawn to the last
 * wake-up.
 *
 * Every implementation runs in its own fresh process (peak RSS is one of
 * the figures), which does `rounds` rounds of the same work on one loop:
 *   wall_ms_cold  the first round (cold caches, cold stack pool);
 *   wall_ms       each later round (one line each; readers take the median);
 *   cpu_ms        the CPU time of the process in each later round (every
 *                 thread, user and system): on a quiet machine it is about
 *                 wall_ms less the 10 ms the sleeps overlap with, and on a
 *                 loaded one the figure that other processes do not inflate;
 *   peak_rss_mib  VmHWM of that process at its end.
 * The last task to wake takes the time (a countdown, no clock call per
 * task), and the first one checks that no sleep ended early.
 *
 *   uco      BENCH_SLEEP_TASKS detached tasks, each uco_sleep(10 ms), then
 *            uco_loop_run() until none is left (this file);
 *   uco-epoll  the same on a loop of the readiness backend
 *            (UCO_BACKEND_EPOLL; skipped where the loop does not run on it);
 *   libuv    one uv_timer_t per sleep, uv_run() until all fired
 *            (peers/sleep_libuv.c);
 *   asyncio  peers/sleep_asyncio.py run by python3: create_task of each
 *            asyncio.sleep(0.01) coroutine, then gather.
 * The parent interleaves the processes (uco, uco-epoll, libuv, asyncio,
 * uco, ...) so that a drift of the machine's speed spreads over all of
 * them.
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

struct sleep_state {
	uint64_t n, remaining;
	int64_t sleep_ns;
	int64_t first_wake, last_wake;
	int err;
};

static void *sleeper(void *arg)
{
	struct sleep_state *st = arg;
	int r = uco_sleep(st->sleep_ns);

	if (r < 0 && !st->err)
		st->err = r;
	if (st->remaining == st->n)
		st->first_wake = bench_now_ns();
	if (--st->remaining == 0)
		st->last_wake = bench_now_ns();
	return NULL;
}

int bench_uco_sleep_round(uco_loop *loop, uint64_t n, int64_t sleep_ns,
                          const char *bench, const char *impl, double *wall_ms)
{
	struct sleep_state st = {.n = n, .remaining = n, .sleep_ns = sleep_ns};
	int64_t t0 = bench_now_ns();
	int ret;

	for (uint64_t i = 0; i < n; i++) {
		ret = uco_spawn(loop, NULL, sleeper, &st);
		if (ret < 0) {
			bench_fail(bench, impl, "uco_spawn of task %" PRIu64
			           " of %" PRIu64 ": %s", i + 1, n, strerror(-ret));
			/* Let the tasks already spawned finish, then stop. */
			st.n = st.remaining = i;
			uco_loop_run(loop);
			return ret;
		}
	}
	ret = uco_loop_run(loop);
	if (ret != 0) {
		bench_fail(bench, impl, "uco_loop_run returned %d", ret);
		return ret < 0 ? ret : -EINTR;
	}
	if (st.err) {
		bench_fail(bench, impl, "uco_sleep: %s", strerror(-st.err));
		return st.err;
	}
	if (st.remaining != 0) {
		bench_fail(bench, impl, "uco_loop_run returned with %" PRIu64
		           " sleepers not woken", st.remaining);
		return -EPROTO;
	}
	if (st.first_wake - t0 < sleep_ns)
		bench_note("%s/%s: a sleep ended %.3f ms after the first spawn, "
		           "before its %.3f ms", bench, impl,
		           (double)(st.first_wake - t0) / 1e6, (double)sleep_ns / 1e6);
	*wall_ms = (double)(st.last_wake - t0) / 1e6;
	return 0;
}

static int sleep_uco(const char *impl, int rounds)
{
	uco_loop_opts lo;
	uco_loop *loop;
	uco_loop_stats before, after;
	int ret;

	/* The loop's defaults, stack_keep_warm included: the pool trims only
	 * stacks that no round needed for a whole trim period (about a
	 * second), so rounds 2..N take every stack warm from the pool as
	 * they would with stack_keep_warm = 100,000 (measured: no page fault
	 * in 12 rounds, the same CPU per round).  Round 1, wall_ms_cold, maps
	 * them. */
	memset(&lo, 0, sizeof lo);
	ret = bench_uco_loop_create(&loop, "sleep", impl, &lo);
	if (ret < 0)
		return ret;
	for (int r = 0; r < rounds; r++) {
		double ms = 0; /* set when the round succeeds (-O3 cannot see it) */
		int64_t cpu0 = bench_cpu_ns();
		ret = bench_uco_sleep_round(loop, BENCH_SLEEP_TASKS,
		                            BENCH_SLEEP_MS * UCO_NS_PER_MS,
		                            "sleep", impl, &ms);
		if (ret < 0)
			goto out;
		int64_t cpu = bench_cpu_ns() - cpu0;
		bench_emit("sleep", impl, r == 0 ? "wall_ms_cold" : "wall_ms",
		           ms, "ms");
		if (r > 0)
			bench_emit("sleep", impl, "cpu_ms", (double)cpu / 1e6, "ms");
		if (r == 0)
			uco_loop_stats_get(loop, &before);
	}
	uco_loop_stats_get(loop, &after);
	if (rounds > 1 && after.stacks_mapped != before.stacks_mapped)
		bench_note("sleep/%s: %" PRIu64 " stacks were mapped after the "
		           "first round (the pool did not keep them warm)", impl,
		           after.stacks_mapped - before.stacks_mapped);
out:
	if (uco_loop_close(loop) < 0)
		bench_note("sleep/%s: uco_loop_close failed", impl);
	return ret;
}

/* ------------------------------------------------------------ the child */

static int sleep_rounds(const struct bench_opts *opts)
{
	return BENCH_PICK(opts, 3, 5, 10);
}

int bench_sleep_child(const char *impl, const struct bench_opts *opts)
{
	int ret;

	if (strcmp(impl, "uco") == 0 || bench_is_uco_epoll(impl)) {
		ret = sleep_uco(impl, sleep_rounds(opts));
#if defined(UCO_BENCH_HAVE_LIBUV)
	} else if (strcmp(impl, "libuv") == 0) {
		ret = bench_sleep_libuv(sleep_rounds(opts));
#endif
	} else {
		fprintf(stderr, "uco-bench: sleep: no implementation %s here\n", impl);
		return 2;
	}
	if (ret == -EOPNOTSUPP)
		return 0; /* skipped: said why, no figure */
	if (ret < 0)
		return 1;
	double rss = bench_peak_rss_mib();
	if (rss < 0) {
		bench_fail("sleep", impl, "cannot read VmHWM in /proc/self/status");
		return 1;
	}
	bench_emit("sleep", impl, "peak_rss_mib", rss, "MiB");
	return 0;
}

/* ------------------------------------------------------------ the parent */

int bench_sleep_run(const struct bench_opts *opts)
{
	const int processes = BENCH_PICK(opts, 1, 3, 5);
	char *python = bench_find_in_path("python3");
	char *script = bench_find_peer_file("sleep_asyncio.py");
	char rounds[16], tasks[16], ms[16];
	int ret = 0;
	bool uco_ok = bench_uco_impl_available("sleep", "uco");
	bool epoll_ok = bench_uco_impl_available("sleep", "uco-epoll");

#if !defined(UCO_BENCH_HAVE_LIBUV)
	bench_skip("sleep", "libuv", "libuv (libuv1-dev) was not found at build time");
#endif
	if (!python)
		bench_skip("sleep", "asyncio", "python3 is not in PATH");
	else if (!script)
		bench_skip("sleep", "asyncio", "peers/sleep_asyncio.py is neither "
		           "next to uco-bench nor in the data directory");

	snprintf(rounds, sizeof rounds, "%d", sleep_rounds(opts));
	snprintf(tasks, sizeof tasks, "%d", BENCH_SLEEP_TASKS);
	snprintf(ms, sizeof ms, "%d", BENCH_SLEEP_MS);

	for (int p = 0; p < processes; p++) {
		char what[32];
		int st;

		snprintf(what, sizeof what, "process %d/%d", p + 1, processes);

		if (uco_ok) {
			bench_progress("sleep", "uco", what);
			st = bench_run_self("sleep", "uco", opts);
			if (st != 0)
				ret = -EPROTO;
		}
		if (epoll_ok) {
			bench_progress("sleep", "uco-epoll", what);
			st = bench_run_self("sleep", "uco-epoll", opts);
			if (st != 0)
				ret = -EPROTO;
		}
#if defined(UCO_BENCH_HAVE_LIBUV)
		bench_progress("sleep", "libuv", what);
		st = bench_run_self("sleep", "libuv", opts);
#endif
		if (python && script) {
			char *argv[] = {python, script, (char *)"--rounds", rounds,
			                (char *)"--tasks", tasks, (char *)"--ms", ms,
			                NULL};
			bench_progress("sleep", "asyncio", what);
			st = bench_run_child("sleep", "asyncio", argv);
		}
	}
	free(python);
	free(script);
	return ret;
}
