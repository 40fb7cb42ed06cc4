/* SPDX-License-Identifier: MIT */
/*
 * sleep, the libuv peer: BENCH_SLEEP_TASKS concurrent 10 ms sleeps as
 * libuv programs write them: for each one, a heap-allocated uv_timer_t
 * started with a 10 ms timeout; its callback does the task's work (here the
 * countdown) and closes the handle, whose close callback frees it.
 * uv_run() returns when every timer has fired and been closed.
 *
 * libuv counts a timeout from the loop's cached time, so the round starts
 * with uv_update_time() (which is also t0): without it a round started
 * after a pause would count from a stale time and fire early.  Every timer
 * is then due 10 ms after t0, however long arming them took; uco's and
 * asyncio's sleeps count from when each task first runs.
 *
 * Compiled only when meson found libuv (UCO_BENCH_HAVE_LIBUV); run in a
 * fresh process by uco-bench --internal-child sleep libuv.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench.h"

struct uv_sleep_state {
	uint64_t n, remaining;
	int64_t first_wake, last_wake;
};

static void on_close(uv_handle_t *h)
{
	free(h);
}

static void on_timer(uv_timer_t *t)
{
	struct uv_sleep_state *st = t->data;

	if (st->remaining == st->n)
		st->first_wake = bench_now_ns();
	if (--st->remaining == 0)
		st->last_wake = bench_now_ns();
	uv_close((uv_handle_t *)t, on_close);
}

static int one_round(uv_loop_t *loop, double *wall_ms, double *cpu_ms)
{
	struct uv_sleep_state st = {.n = BENCH_SLEEP_TASKS,
	                            .remaining = BENCH_SLEEP_TASKS};

	uv_update_time(loop);
	int64_t cpu0 = bench_cpu_ns();
	int64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < st.n; i++) {
		uv_timer_t *t = malloc(sizeof *t);
		if (!t) {
			bench_fail("sleep", "libuv", "out of memory");
			st.n = st.remaining = i;
			uv_run(loop, UV_RUN_DEFAULT);
			return -ENOMEM;
		}
		uv_timer_init(loop, t);
		t->data = &st;
		uv_timer_start(t, on_timer, BENCH_SLEEP_MS, 0);
	}
	int r = uv_run(loop, UV_RUN_DEFAULT);
	*cpu_ms = (double)(bench_cpu_ns() - cpu0) / 1e6;
	if (r != 0 || st.remaining != 0) {
		bench_fail("sleep", "libuv", "uv_run returned %d with %llu timers "
		           "not fired", r, (unsigned long long)st.remaining);
		return -EPROTO;
	}
	/* libuv's loop clock counts whole milliseconds from a coarse clock
	 * (CLOCK_MONOTONIC_COARSE where its resolution is <= 1 ms), so a
	 * timer may fire up to a millisecond before the full 10 ms by our
	 * clock: that is libuv's contract, not an error.  Say it only beyond. */
	if (st.first_wake - t0 < (BENCH_SLEEP_MS - 1) * INT64_C(1000000))
		bench_note("sleep/libuv: a timer fired %.3f ms after the first "
		           "start, before its %d ms", (double)(st.first_wake - t0) / 1e6,
		           BENCH_SLEEP_MS);
	*wall_ms = (double)(st.last_wake - t0) / 1e6;
	return 0;
}

int bench_sleep_libuv(int rounds)
{
	uv_loop_t loop;
	int ret = uv_loop_init(&loop);

	if (ret < 0) {
		bench_fail("sleep", "libuv", "uv_loop_init: %s", uv_strerror(ret));
		return ret;
	}
	for (int r = 0; r < rounds; r++) {
		double ms, cpu;
		ret = one_round(&loop, &ms, &cpu);
		if (ret < 0)
			break;
		bench_emit("sleep", "libuv", r == 0 ? "wall_ms_cold" : "wall_ms",
		           ms, "ms");
		if (r > 0)
			bench_emit("sleep", "libuv", "cpu_ms", cpu, "ms");
	}
	if (uv_loop_close(&loop) < 0)
		bench_note("sleep/libuv: uv_loop_close: handles left open");
	return ret;
}
