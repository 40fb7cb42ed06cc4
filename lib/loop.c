/* SPDX-License-Identifier: MIT */
/*
 * The loop: creating and closing it (and the resources it frees at
 * close), the run queue of ready tasks and finished
 * tasks' done-callbacks, the turns that run it (timing tasks for debug
 * mode's slow-task warning), uco_loop_run / run_until / stop with their
 * rules (posted calls, stops that wait for cancellations, deadlocks), the
 * periodic trim of idle stacks, and the loop's stats and features.
 *
 * One turn:
 *   1. run what was ready when the turn began: tasks to resume, and
 *      finished tasks whose done-callbacks are due, in FIFO order as in
 *      asyncio's ready queue.  What becomes ready meanwhile waits for the
 *      next turn, so a yielding task cannot starve the reaper;
 *   2. submit every SQE prepared in 1 in one system call, blocking in that
 *      same call when nothing is runnable; then reap every CQE.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "coro.h"
#include "stall.h"

#define TRIM_PERIOD_NS UCO_NS_PER_S

/* ------------------------------------------------------------ run queue */

static uco_task *ready_pop(uco_loop *loop)
{
	struct uco__taskq *q = &loop->ready;
	uco_task *t = q->slots[q->head];
	q->head = (q->head + 1) & (q->cap - 1);
	q->len--;
	return t;
}

/* The task `k` places behind the head of the run queue (k < len). */
static inline uco_task *ready_peek(const struct uco__taskq *q, size_t k)
{
	return q->slots[(q->head + k) & (q->cap - 1)];
}

/* ------------------------------------------------------------ resources */

void uco__resource_add(uco_loop *loop, struct uco__resource *r)
{
	uco__list_push_front(&loop->resources, &r->link);
}

void uco__resource_remove(uco_loop *loop, struct uco__resource *r)
{
	/* Already unlinked (by the loop's close, which then destroys it): a
	 * no-op. */
	if (r->link.prev || loop->resources.head == &r->link)
		uco__list_remove(&loop->resources, &r->link);
}

/* ------------------------------------------------------------ create */

int uco_loop_create(uco_loop **out, const uco_loop_opts *opts)
{
	static const uco_loop_opts defaults;
	if (!out)
		return -EINVAL;
	if (!opts)
		opts = &defaults;
	if (!uco__all_zero(opts->reserved_, sizeof opts->reserved_ / sizeof opts->reserved_[0]) ||
	    opts->flags & ~(UCO_LOOP_PLAIN_RING | UCO_LOOP_SQPOLL | UCO_LOOP_NAPI))
		return -EINVAL;

	size_t page = uco__page_size();
	size_t stack_size = opts->stack_size ? opts->stack_size : UCO_STACK_SIZE_DEFAULT;
	if (stack_size < UCO_STACK_SIZE_MIN || stack_size > ((size_t)1 << 40))
		return -EINVAL;
	stack_size = (stack_size + page - 1) & ~(page - 1);
	unsigned entries = opts->ring_entries ? opts->ring_entries : 1024;
	if (entries > 32768)
		return -EINVAL;

	uco_loop *loop = calloc(1, sizeof *loop);
	if (!loop)
		return -ENOMEM;
	loop->busy_poll_us = opts->busy_poll_us;
	int err = uco__backend_init(loop, opts->backend, entries, opts->flags);
	if (err)
		goto fail_free;
	err = uco__timers_init(&loop->timers);
	if (err)
		goto fail_ring;
	err = uco__stack_pool_init(&loop->pool, stack_size,
	                           opts->stack_keep_warm ? opts->stack_keep_warm : 64);
	if (err) {
		uco__timers_destroy(&loop->timers);
		goto fail_ring;
	}
	/* Other threads reach the loop through its inbox (uco_loop_call, the
	 * executors): made now, so that they never race to make it. */
	err = uco__inbox_create(loop);
	if (err) {
		uco__timers_destroy(&loop->timers);
		goto fail_ring;
	}
	if (loop->pool.guard_madvise)
		loop->features |= UCO_RING_GUARD_MADVISE;
	loop->owner = uco__thread_token();
	loop->recv_stream_hold = opts->recv_stream_hold;
	loop->next_trim = uco_now() + TRIM_PERIOD_NS;
	/* Best effort: without it an overflow is a plain SIGSEGV. */
	uco__overflow_watch();
	*out = loop;
	return 0;

fail_ring:
	loop->backend->exit(loop);
fail_free:
	free(loop);
	return err;
}

/* ------------------------------------------------------------ running */

enum turn_result { TURN_OK = 0, TURN_NOTHING_TO_WAIT_FOR = 1 };

/*
 * Resuming a suspended task starts with loads from its stack, a page the
 * CPU has usually long forgotten: a TLB miss (a two-dimensional page walk
 * under virtualisation) and cache misses, ~380 ns a task measured here with
 * 100k tasks against ~70 ns with 10k.  The run queue says who runs next,
 * so start those misses early: the task objects two batches of WARM_BATCH
 * ahead, and one batch ahead (their objects are in cache by then) the
 * saved contexts and the frames above them (up to STACK_LINES cache lines,
 * not past the top of the stack), which each task returns through when it
 * resumes.
 *
 * With real loads, not prefetch instructions: a software prefetch that
 * misses the TLB is dropped on this machine (prefetching alone gained
 * nothing), while a load walks the page tables and fills the TLB.  The
 * loads' values are not used, so out-of-order execution runs on while they
 * are in flight.  But a load that misses holds up retirement once it is
 * the oldest instruction, and one task's run fills the reorder buffer: one
 * load a task, issued between runs, overlapped with little more than that
 * run, so the misses were paid nearly one after the other.  Issued a batch
 * at a time, back to back, the batch's misses and page walks overlap each
 * other (100k 10 ms sleeps, with the new tasks' lines below: CPU per warm
 * round 40.5 -> 28.1 ms; batches of 8 or 32 about the same as 16).
 * Prefetching a stack's other lines once its first load had filled the
 * TLB, instead of loading them all, was slower (docs/benchmarks.md).
 *
 * For a task that never ran, in a burst that has taken more than DIG
 * stacks from the pool this turn (their memory long unused, as 100k new
 * sleepers'), the stack is taken from the pool here, a batch or two before
 * the task runs; the line its first frame is about to be written to is
 * written (a read of a page never touched would map the shared zero page,
 * and the frame's write then fault again), and the lines below it, which
 * its first run writes down to its first park, are loaded.  Otherwise the
 * task takes its stack when it starts: the one the task before it just
 * gave back, in cache (spawn + run + join of 1024 at a time cycles through
 * one stack; warming every new task's lines there cost 6 ns of 32).
 */
#define WARM_BATCH 16
#define STACK_LINES 8
#define DIG 64

/* Exempt from ASan: it reads other coroutines' stacks, redzones and all,
 * on purpose, and uses nothing it reads. */
#ifdef UCO__ASAN
__attribute__((no_sanitize_address))
#endif
static inline void touch(const void *p)
{
	__asm__ volatile("" : : "r"(*(const volatile char *)p));
}

/* For a stack that never ran: a write (see above).  The first frame
 * overwrites this line anyway. */
static inline void touch_for_write(void *p)
{
	*(volatile char *)p = 0;
}

/* Start the misses of t's stack (its object is in cache); `deep`: a new
 * task's stack comes from deep in the pool. */
static inline void warm_stack(uco_loop *loop, uco_task *t, bool deep)
{
	/* A finished task is only here for its callbacks: its stack
	 * is gone (maybe unmapped) and its sp is stale. */
	if (t->run_state == UCO__FINISHED)
		return;
	const char *line = t->sp;
	if (!line) {
		if (!deep)
			return;
		/* A task that never ran gets its stack here. */
		if (!t->stack.base)
			uco__stack_pool_take(&loop->pool, &t->stack);
		char *top = uco__stack_top(&t->stack);
		touch_for_write(top - 64);
		/* The same page: uco__stack_top keeps top in the upper
		 * half of it. */
		for (int i = 2; i <= STACK_LINES; i++)
			touch(top - 64 * i);
		/* Its result line too (internal.h's layout): a short
		 * task writes its value there and finishes from it. */
		touch(&t->value);
		return;
	}
	const char *top = uco__stack_top(&t->stack);
	for (int i = 0; i < STACK_LINES && line < top; i++, line += 64)
		touch(line);
}

/* The stacks of the batch `from` places behind the head of the run queue,
 * and the objects of the batch after it; nfree_start: the pool's free
 * stacks when the turn began. */
static inline void warm_batch(uco_loop *loop, size_t from, size_t nfree_start)
{
	/* Read once: the stores below may alias anything. */
	const struct uco__taskq *q = &loop->ready;
	uco_task *const *slots = q->slots;
	size_t head = q->head, mask = q->cap - 1, len = q->len;
	bool deep = loop->pool.nfree + DIG < nfree_start;
	size_t end = from + 2 * WARM_BATCH < len ? from + 2 * WARM_BATCH : len;
	for (size_t k = from + WARM_BATCH; k < end; k++)
		touch(slots[(head + k) & mask]);
	end = from + WARM_BATCH < len ? from + WARM_BATCH : len;
	for (size_t k = from; k < end; k++)
		warm_stack(loop, slots[(head + k) & mask], deep);
}

/* Run t until it parks or ends: its first run, or a resume. */
static inline void run_task(uco_loop *loop, uco_task *t)
{
	if (t->run_state == UCO__NEW)
		uco__coro_start(loop, t);
	else
		uco__coro_resume(loop, t);
}

/* Debug mode: time the run (asyncio's slow_callback_duration), kept out
 * of line so that the default path pays only run_ready's test of
 * slow_ns, and here rather than in the switch so that coro.c depends on
 * nothing above it. */
__attribute__((noinline, cold)) static void run_timed(uco_loop *loop, uco_task *t)
{
	int64_t limit = loop->slow_ns; /* the task may change it meanwhile */
	int64_t start = uco_now();
	run_task(loop, t);
	int64_t ran = uco_now() - start;
	if (ran > limit) {
		uco__slow_report(loop, t, ran, limit);
		uco__sched_fpctl_note(loop); /* its arithmetic may raise flags */
	}
}

static void run_ready(uco_loop *loop)
{
	/* What ran on this stack since the last turn's tasks (the caller of
	 * uco_loop_run, completions' callbacks: signal handlers, loop calls,
	 * call_later handles) may have changed it; within the turn, the user
	 * code run between tasks says so itself (task.c, run_timed). */
	uco__sched_fpctl_note(loop);
	size_t n = loop->ready.len;
	/* The first batch, then each next one as the one before it starts. */
	for (size_t k = 0; k < WARM_BATCH && k < n; k++)
		touch(ready_peek(&loop->ready, k));
	size_t nfree_start = loop->pool.nfree;
	warm_batch(loop, 0, nfree_start);
	for (size_t i = 0; i < n; i++) {
		if (i % WARM_BATCH == 0)
			warm_batch(loop, WARM_BATCH, nfree_start);
		uco_task *t = ready_pop(loop);
		if (t->in_cb_queue) {
			uco__run_callbacks(t);
			continue;
		}
		uco__stall_enter(loop); /* the stall report's count (stall.h) */
		if (t->run_state == UCO__NEW && t->cancelling)
			t->run_state = UCO__FINISHED; /* cancelled before it ran */
		else if (__builtin_expect(loop->slow_ns != 0, 0))
			run_timed(loop, t);
		else
			run_task(loop, t);
		uco__stall_leave(loop);
		if (t->run_state == UCO__FINISHED)
			uco__task_finish(loop, t);
	}
}

/* Give idle warm stacks back, at most once per TRIM_PERIOD_NS.  Returns how
 * long the loop may block before the next trim is due (-1: forever). */
static int64_t maybe_trim(uco_loop *loop)
{
	struct uco__stack_pool *pool = &loop->pool;
	if (pool->nfree - pool->ncold <= pool->keep_warm)
		return -1;
	int64_t now = uco_now();
	if (now >= loop->next_trim) {
		uco__stack_pool_trim(pool);
		uco__task_cache_trim(loop, pool->keep_warm);
		loop->next_trim = now + TRIM_PERIOD_NS;
	}
	return pool->nfree - pool->ncold > pool->keep_warm ? loop->next_trim - now : -1;
}

static bool has_work(const uco_loop *loop)
{
	return loop->live || loop->ready.len;
}

/* Has `task` (NULL: the whole loop) nothing left to do? */
static bool finished(const uco_loop *loop, const uco_task *task)
{
	if (task)
		return task->state != UCO_TASK_PENDING && !task->in_cb_queue;
	return !has_work(loop);
}

/*
 * A stop takes effect once no task has a cancellation on its way: one
 * requested and not yet delivered, because the task still waits for the
 * kernel or a worker to let go of its memory (an executor job running, an
 * operation whose cancel has not completed), or has not run since.  So
 * asyncio's shutdown (cancel all, stop, run once more, close) finishes the
 * cancellations instead of returning with them half done.  Only while a
 * stop is pending does this walk the tasks.
 */
static bool stop_due(const uco_loop *loop)
{
	if (!loop->stop_requested)
		return false;
	for (const uco_task *t = loop->all_tasks; t; t = t->all_next)
		if (t->state == UCO_TASK_PENDING && t->cancelling)
			return false;
	return true;
}

/*
 * One turn.  It blocks in io_uring_enter only when nothing is ready, the
 * caller's goal (`until`) is not reached, and counted work is in flight:
 * standing listeners such as the executor inbox's read deliver only
 * counted work, so with none in flight nothing could ever wake a task.
 * SQEs prepared meanwhile are still submitted.
 */
static int turn(uco_loop *loop, const uco_task *until)
{
	run_ready(loop);
	if (loop->batch.head)
		uco__executor_flush(loop);

	bool idle = loop->ready.len == 0 && !stop_due(loop) &&
	            !finished(loop, until);
	bool stuck = idle && loop->inflight == 0;
	bool wait = idle && !stuck;
	int64_t timeout = wait ? maybe_trim(loop) : -1;
	int r = uco__ring_turn(loop, wait, timeout);
	if (r < 0)
		return r;
	return stuck && loop->ready.len == 0 ? TURN_NOTHING_TO_WAIT_FOR : TURN_OK;
}

/* Does a requested stop end the run after a turn that returned r?  A
 * stuck loop's cancellations can never be delivered: they do not hold the
 * stop back. */
static bool stop_now(const uco_loop *loop, int r)
{
	return stop_due(loop) || (loop->stop_requested && r == TURN_NOTHING_TO_WAIT_FOR);
}

static int enter_running(uco_loop *loop)
{
	if (!loop)
		return -EINVAL;
	if (loop->owner != uco__thread_token())
		return -EPERM;
	if (uco_loop_current())
		return -EBUSY;
	uco__running_set(loop);
	loop->running = true;
	return 0;
}

static void leave_running(uco_loop *loop)
{
	/* A stop is consumed by the run it ended (or that found no work). */
	loop->stop_requested = false;
	loop->running = false;
	uco__running_set(NULL);
}

int uco_loop_run(uco_loop *loop)
{
	int ret = enter_running(loop);
	if (ret)
		return ret;
	/* Calls other threads posted count as work until taken, so that a
	 * spawn into a loop with no task runs (asyncio's call_soon_threadsafe
	 * wakes its loop).  Nothing live and nothing posted: done. */
	while (has_work(loop) || uco__inbox_take(loop)) {
		int r = turn(loop, NULL);
		if (r < 0) {
			ret = r;
			break;
		}
		if (stop_now(loop, r)) {
			loop->stop_requested = false;
			ret = has_work(loop) ? 1 : 0;
			break;
		}
		if (r == TURN_NOTHING_TO_WAIT_FOR && has_work(loop) &&
		    !uco__inbox_take(loop)) {
			/* Tasks are left, all waiting for each other. */
			ret = -EDEADLK;
			break;
		}
	}
	leave_running(loop);
	return ret;
}

int uco_loop_run_until(uco_loop *loop, uco_task *task, void **value)
{
	if (!task)
		return -EINVAL;
	if (loop && task->loop != loop)
		return task->loop ? -EXDEV : -ESHUTDOWN;
	int ret = enter_running(loop);
	if (ret)
		return ret;
	/* A done-callback may release the caller's last reference. */
	task->refs++;
	while (!finished(loop, task)) {
		int r = turn(loop, task);
		if (r < 0) {
			ret = r;
			break;
		}
		if (finished(loop, task))
			break;
		if (stop_now(loop, r)) {
			loop->stop_requested = false;
			ret = -EINTR;
			break;
		}
		if (r == TURN_NOTHING_TO_WAIT_FOR && !uco__inbox_take(loop)) {
			ret = -EDEADLK;
			break;
		}
	}
	/* Finished, however: the task's own outcome is read from the task. */
	if (ret == 0 && value)
		*value = task->state == UCO_TASK_DONE ? task->value : NULL;
	uco__task_unref(task);
	leave_running(loop);
	return ret;
}

int uco_loop_stop(uco_loop *loop)
{
	if (!loop)
		return -EINVAL;
	loop->stop_requested = true;
	return 0;
}

int uco_loop_close(uco_loop *loop)
{
	if (!loop)
		return -EINVAL;
	if (loop->owner != uco__thread_token())
		return -EPERM;
	if (loop->running || has_work(loop))
		return -EBUSY;
	/* Handles the user still holds outlive the loop, detached from it. */
	for (uco_task *t = loop->all_tasks, *next; t; t = next) {
		next = t->all_next;
		t->loop = NULL;
		t->all_prev = t->all_next = NULL;
	}
	uco__stall_stop(loop); /* its watchdog thread, if any */
	/* Its own default executor has no job left (no task is). */
	uco__loop_executor_close(loop);
	/* Tear the ring down first: the kernel then holds no SQE that points
	 * at memory freed below. */
	uco__ring_drain(loop);
	loop->backend->exit(loop);
	free(loop->fixed_used);
	uco__inbox_destroy(loop->inbox);
	struct uco__link *l;
	while ((l = uco__list_pop(&loop->resources))) {
		/* Unlinked before it goes: some destroy functions unlink
		 * themselves (a receive stream), which is then a no-op. */
		struct uco__resource *r = UCO__LIST_ENTRY(l, struct uco__resource, link);
		r->destroy(r);
	}
	uco__timers_destroy(&loop->timers);
	uco__stack_pool_destroy(&loop->pool);
	uco__task_cache_trim(loop, 0);
	free(loop->ready.slots);
	free(loop);
	uco__overflow_unwatch();
	return 0;
}

int uco_loop_trim(uco_loop *loop)
{
	if (!loop)
		return -EINVAL;
	struct uco__stack_pool *pool = &loop->pool;
	pool->warm_low = pool->nfree - pool->ncold; /* all idle stacks count */
	uco__task_cache_trim(loop, pool->keep_warm);
	return (int)uco__stack_pool_trim(pool);
}

int uco_loop_stats_get(const uco_loop *loop, uco_loop_stats *out)
{
	if (!loop || !out)
		return -EINVAL;
	*out = loop->stats;
	out->stacks_mapped = loop->pool.mapped;
	out->stacks_trimmed = loop->pool.trimmed;
	out->tasks_live_now = loop->live;
	out->ready_now = loop->ready.len;
	return 0;
}

unsigned uco_loop_features(const uco_loop *loop)
{
	return loop ? loop->features : 0;
}
