/* SPDX-License-Identifier: MIT */
/*
 * spawn: spawn + run + join of an empty task, with pooled stacks.
 *
 * A driver coroutine spawns a batch of BATCH empty tasks (each with a
 * handle), awaits each one and releases its handle, and repeats until
 * `tasks` tasks have been through; ns_per_task = elapsed / tasks, timed
 * inside the driver.  The loop is created with stack_keep_warm = BATCH + 1
 * (what a program that spawns batches of this size would configure), and
 * one untimed pass warms the pool first, so every timed spawn takes its
 * stack from the pool; the loop's own counter stacks_mapped checks that.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "uco.h"

#define BATCH 1024

struct spawn_state {
	uco_task *h[BATCH];
	uint64_t tasks;
	int64_t elapsed;
	int err;
};

/* How many tasks actually ran: checked against the count spawned, so that
 * a figure is never reported for work that did not happen. */
static uint64_t ran;

static void *empty_task(void *arg)
{
	ran++;
	return arg;
}

static void *driver(void *arg)
{
	struct spawn_state *st = arg;
	int64_t t0 = bench_now_ns();

	for (uint64_t done = 0; done < st->tasks && !st->err; done += BATCH) {
		size_t n = 0;
		for (; n < BATCH; n++) {
			int r = uco_spawn(NULL, &st->h[n], empty_task, NULL);
			if (r < 0) {
				st->err = r;
				break;
			}
		}
		for (size_t i = 0; i < n; i++) {
			int r = uco_await(st->h[i], NULL);
			if (r < 0 && !st->err)
				st->err = r;
			uco_task_release(st->h[i]);
		}
	}
	st->elapsed = bench_now_ns() - t0;
	return NULL;
}

/* One pass of st->tasks tasks; 0 or a negative errno. */
static int one_pass(uco_loop *loop, struct spawn_state *st)
{
	uco_task *drv;
	int ret;

	st->err = 0;
	ran = 0;
	ret = uco_spawn(loop, &drv, driver, st);
	if (ret < 0)
		return ret;
	ret = uco_loop_run_until(loop, drv, NULL);
	if (!ret)
		ret = uco_task_result(drv, NULL);
	uco_task_release(drv);
	if (ret < 0)
		return ret;
	if (!st->err && ran != st->tasks) {
		bench_fail("spawn", "uco", "%" PRIu64 " tasks spawned, %" PRIu64
		           " ran", st->tasks, ran);
		return -EPROTO;
	}
	return st->err;
}

int bench_spawn_run(const struct bench_opts *opts)
{
	const int repeats = BENCH_PICK(opts, 3, 7, 15);
	uco_loop_opts lo;
	uco_loop *loop;
	uco_loop_stats before, after;
	struct spawn_state *st;
	int ret;

	st = calloc(1, sizeof *st);
	if (!st)
		return -ENOMEM;
	st->tasks = (uint64_t)BENCH_PICK(opts, 50, 200, 500) * BATCH;

	memset(&lo, 0, sizeof lo);
	lo.stack_keep_warm = BATCH + 1; /* the batch and the driver */
	ret = uco_loop_create(&loop, &lo);
	if (ret < 0) {
		bench_fail("spawn", "uco", "uco_loop_create: %s",
		           uco_loop_strerror(ret));
		free(st);
		return ret;
	}

	bench_progress("spawn", "uco", "warming the stack pool");
	ret = one_pass(loop, st);
	if (ret < 0) {
		bench_fail("spawn", "uco", "warm-up pass: %s", strerror(-ret));
		goto out;
	}
	uco_loop_stats_get(loop, &before);

	bench_progress("spawn", "uco", "");
	for (int r = 0; r < repeats; r++) {
		ret = one_pass(loop, st);
		if (ret < 0) {
			bench_fail("spawn", "uco", "%s", strerror(-ret));
			goto out;
		}
		bench_emit("spawn", "uco", "ns_per_task",
		           (double)st->elapsed / (double)st->tasks, "ns");
	}

	uco_loop_stats_get(loop, &after);
	if (after.stacks_mapped != before.stacks_mapped)
		bench_note("spawn/uco: the stack pool missed %" PRIu64
		           " times in the timed passes (stacks_mapped grew)",
		           after.stacks_mapped - before.stacks_mapped);
out:
	uco_loop_close(loop);
	free(st);
	return ret < 0 ? ret : 0;
}
