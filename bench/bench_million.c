/* SPDX-License-Identifier: MIT */
/*
 * million: 1,000,000 concurrent coroutines, each sleeping 1 s, from the
 * first spawn to the last wake-up (--full only, or when named).
 *
 * One round in a fresh child process (uco-bench --internal-child million
 * uco), on a loop with default options: every task gets the default stack
 * size (UCO_STACK_SIZE_DEFAULT, 64 KiB of address space, of which only the
 * pages it touches become resident) and the pool starts cold, so wall_ms
 * includes mapping a million stacks.  Figures: wall_ms, and peak_rss_mib
 * (VmHWM of the child at its end).
 */
#include <string.h>

#include "bench.h"
#include "uco.h"

#define MILLION_TASKS 1000000
#define MILLION_SLEEP_NS UCO_NS_PER_S

int bench_million_child(const char *impl, const struct bench_opts *opts)
{
	uco_loop *loop;
	double ms;
	int ret;

	(void)opts;
	if (strcmp(impl, "uco") != 0)
		return 2;
	ret = uco_loop_create(&loop, NULL); /* default options, stack size */
	if (ret < 0) {
		bench_fail("million", "uco", "uco_loop_create: %s",
		           uco_loop_strerror(ret));
		return 1;
	}
	ret = bench_uco_sleep_round(loop, MILLION_TASKS, MILLION_SLEEP_NS,
	                            "million", "uco", &ms);
	if (uco_loop_close(loop) < 0)
		bench_note("million/uco: uco_loop_close failed");
	if (ret < 0)
		return 1;
	bench_emit("million", "uco", "wall_ms", ms, "ms");

	double rss = bench_peak_rss_mib();
	if (rss < 0) {
		bench_fail("million", "uco", "cannot read VmHWM in /proc/self/status");
		return 1;
	}
	bench_emit("million", "uco", "peak_rss_mib", rss, "MiB");
	return 0;
}

int bench_million_run(const struct bench_opts *opts)
{
	bench_progress("million", "uco", "1,000,000 tasks, default stack size");
	int st = bench_run_self("million", "uco", opts);
	return st != 0 ? -1 : 0; /* a failure is reported by bench_run_self */
}
