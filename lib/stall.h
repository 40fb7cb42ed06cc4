/* SPDX-License-Identifier: MIT */
/*
 * The live stall report's state (stall.c), and its hooks on the loop's hot
 * path: while the report is on, the loop thread counts its switches into
 * and out of tasks, one relaxed store each, for the watchdog thread to
 * read.  Off, each hook is one test of a pointer the scheduler already
 * has in cache.
 */
#ifndef UCO_STALL_H
#define UCO_STALL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

struct uco__stall {
	/* Bumped at each switch into a task and back, so odd while a task
	 * runs.  Written by the loop thread only: no read-modify-write. */
	_Atomic uint64_t run;
	_Atomic int64_t threshold_ns;
	/* What the watchdog hands the signal handler: the run to report
	 * (the handler checks that it still goes on), for how long it has
	 * gone on, and how many stalls went unreported before it. */
	_Atomic uint64_t report_run;
	_Atomic int64_t report_ns;
	_Atomic uint64_t report_skipped;
	uco_loop *loop;
	pthread_t loop_thread, watchdog;
	pthread_mutex_t lock;  /* stop, and the wakeup of the watchdog */
	pthread_cond_t wake;
	bool stop;
};

static inline void uco__stall_tick(uco_loop *loop)
{
	struct uco__stall *s = loop->stall;
	if (__builtin_expect(s != NULL, 0))
		atomic_store_explicit(&s->run, atomic_load_explicit(&s->run, memory_order_relaxed) + 1,
		                      memory_order_relaxed);
}

/* Around running a task: the run starts / the task yielded or ended. */
static inline void uco__stall_enter(uco_loop *loop)
{
	uco__stall_tick(loop);
}

static inline void uco__stall_leave(uco_loop *loop)
{
	uco__stall_tick(loop);
}

/* At uco_loop_close(): the watchdog stops and is joined. */
void uco__stall_stop(uco_loop *loop);

#endif
