/* SPDX-License-Identifier: MIT */
/*
 * Timer handles (asyncio's call_later/call_at, libuv's uv_timer): run a
 * callback on the loop's thread at a time, without a task.
 *
 * A loop keeps its pending handles in a min-heap ordered by (when, seq), and
 * one absolute CLOCK_MONOTONIC IORING_OP_TIMEOUT armed for the earliest of
 * them.  When it fires, every handle due by then runs, earliest first and in
 * call order among equal times, and the timeout is armed again for the next.
 * One kernel timer per handle would cost an SQE and ~350 bytes of kernel
 * memory each (see time.c), leave the order of handles due together to the
 * order the kernel posts their CQEs in, and make a cancel cost an SQE; with
 * the heap a cancel is O(log n) in user space.
 *
 * Never early: a handle runs only once uco_now() >= its time, whatever
 * woke the loop.  A handle added with an earlier time than the armed
 * timeout arms a new timeout and asks the kernel to drop the old one
 * ("superseded": its CQE is then only freed).
 *
 * The timeouts count as work in flight, so a task parked for something a
 * callback will do is not taken for deadlocked; but, as uco_loop_call()
 * posts and signal handlers, a pending handle does not keep uco_loop_run()
 * running: a loop runs while it has tasks.  uco_loop_close() discards the
 * handles still pending (their callbacks never run).
 *
 * Lifetime: a handle holds a reference for the loop while it is pending or
 * running and one for the user if uco_call_later() returned it; it is
 * freed when both are gone.
 */
#include <errno.h>
#include <stdlib.h>

#include "heap.h"
#include "internal.h"

enum { PENDING, RUNNING, DONE, CANCELLED };

struct uco_timer {
	uco_loop *loop;           /* NULL once the loop is closed */
	void (*cb)(void *arg);
	void *arg;
	/* In the heap while PENDING: when = the uco_now() time it is due
	 * at, seq = call order, for equal times. */
	struct uco__heap_node node;
	uint8_t state;
	uint8_t refs;
};

/* One kernel timeout for the earliest pending handle. */
struct arm {
	struct uco__completion done;
	struct uco__call_timers *owner;
	struct arm *prev, *next;  /* every arm in the ring */
	int64_t when;
	struct __kernel_timespec ts; /* read by the kernel at submit */
	bool embedded;            /* one of the set's own two */
	bool busy;                /* in the ring */
};

struct uco__call_timers {
	struct uco__resource resource;
	uco_loop *loop;
	struct uco__heap heap;
	uint64_t next_seq;
	struct arm *current;      /* the timeout for heap[0], if armed */
	struct arm *arms;         /* every arm in the ring */
	/* Two arms of its own: the one that just fired is always free to
	 * re-arm with, so that firing never needs memory.  More (several
	 * superseded ones in flight) come from malloc. */
	struct arm own[2];
	bool running;             /* in run_due(): arm afterwards */
};

static uco_timer *earliest(const struct uco__call_timers *ct)
{
	struct uco__heap_node *n = uco__heap_min(&ct->heap);
	return n ? UCO__CONTAINER_OF(n, uco_timer, node) : NULL;
}

/* ------------------------------------------------------------ the kernel timeout */

static void arm_fired(uco_loop *loop, struct uco__completion *c,
                      const struct io_uring_cqe *cqe);

static void free_arm(struct arm *a)
{
	if (a->embedded)
		a->busy = false;
	else
		free(a);
}

static void unlink_arm(struct uco__call_timers *ct, struct arm *a)
{
	if (a->prev)
		a->prev->next = a->next;
	else
		ct->arms = a->next;
	if (a->next)
		a->next->prev = a->prev;
}

/* Ask the kernel to drop a's timeout (its CQE, -ECANCELED, frees it).
 * Without an SQE it simply expires, uselessly but harmlessly. */
static void drop_current(struct uco__call_timers *ct)
{
	struct arm *a = ct->current;
	ct->current = NULL;
	struct io_uring_sqe *sqe = uco__sqe_get(ct->loop, NULL);
	if (sqe)
		io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&a->done, 0);
}

/* Make sure a timeout fires by heap[0]'s time: 0, or -ENOMEM/-EAGAIN. */
static int ensure_armed(struct uco__call_timers *ct)
{
	if (ct->running || ct->heap.n == 0)
		return 0;
	int64_t when = earliest(ct)->node.when;
	if (ct->current && ct->current->when <= when)
		return 0;
	struct arm *a = !ct->own[0].busy ? &ct->own[0] : !ct->own[1].busy ? &ct->own[1] : NULL;
	bool embedded = a != NULL;
	if (!a && !(a = malloc(sizeof *a)))
		return -ENOMEM;
	*a = (struct arm){ .done.complete = arm_fired, .owner = ct, .when = when,
	                   .embedded = embedded, .busy = true };
	struct io_uring_sqe *sqe = uco__sqe_get(ct->loop, &a->done);
	if (!sqe) {
		free_arm(a);
		return -EAGAIN;
	}
	a->ts.tv_sec = when / UCO_NS_PER_S;
	a->ts.tv_nsec = when % UCO_NS_PER_S;
	/* Absolute on CLOCK_MONOTONIC, uco_now()'s clock: no clock read or
	 * rounding between the caller's time and the kernel's. */
	io_uring_prep_timeout(sqe, &a->ts, 0, IORING_TIMEOUT_ABS);
	if (ct->current)
		drop_current(ct); /* superseded by the earlier one */
	a->next = ct->arms;
	if (a->next)
		a->next->prev = a;
	ct->arms = a;
	ct->current = a;
	return 0;
}

static void unref(uco_timer *t)
{
	if (--t->refs == 0)
		free(t);
}

/* Run every handle due now and queued before this started (a callback that
 * calls uco_call_later(0) runs its handle on a later turn, not in a loop
 * here). */
static void run_due(struct uco__call_timers *ct)
{
	int64_t now = uco_now();
	uint64_t limit = ct->next_seq;
	ct->running = true;
	uco_timer *t;
	while ((t = earliest(ct)) && t->node.when <= now && t->node.seq < limit) {
		uco__heap_remove(&ct->heap, &t->node);
		t->state = RUNNING;
		t->cb(t->arg);
		t->state = DONE;
		unref(t);
	}
	ct->running = false;
}

static void arm_fired(uco_loop *loop, struct uco__completion *c,
                      const struct io_uring_cqe *cqe)
{
	(void)loop;
	(void)cqe; /* expired or not, the clock decides what is due */
	struct arm *a = UCO__CONTAINER_OF(c, struct arm, done);
	struct uco__call_timers *ct = a->owner;
	bool current = ct->current == a;
	unlink_arm(ct, a);
	free_arm(a);
	if (current) {
		ct->current = NULL;
		run_due(ct);
	}
	/* Armed again with the arm just freed, so no memory is needed.  If
	 * the ring refuses the SQE, the handles wait for the next arm to
	 * fire or the next uco_call_later (late, never early). */
	ensure_armed(ct);
}

/* ------------------------------------------------------------ the loop's set */

/* At uco_loop_close(), after the ring is gone: the kernel holds no arm. */
static void destroy_call_timers(struct uco__resource *r)
{
	struct uco__call_timers *ct = UCO__CONTAINER_OF(r, struct uco__call_timers, resource);
	while (ct->arms) {
		struct arm *a = ct->arms;
		ct->arms = a->next;
		free_arm(a);
	}
	for (size_t i = 0; i < ct->heap.n; i++) {
		uco_timer *t = UCO__CONTAINER_OF(ct->heap.v[i], uco_timer, node);
		t->state = CANCELLED;
		t->loop = NULL;
		unref(t);
	}
	ct->loop->call_timers = NULL;
	uco__heap_free(&ct->heap);
	free(ct);
}

static struct uco__call_timers *call_timers(uco_loop *loop)
{
	struct uco__call_timers *ct = loop->call_timers;
	if (ct)
		return ct;
	ct = calloc(1, sizeof *ct);
	if (!ct)
		return NULL;
	ct->loop = loop;
	ct->resource.destroy = destroy_call_timers;
	uco__resource_add(loop, &ct->resource);
	loop->call_timers = ct;
	return ct;
}

/* ------------------------------------------------------------ public */

int uco_call_at(uco_loop *loop, int64_t when, void (*cb)(void *arg), void *arg,
                uco_timer **out)
{
	if (!cb || when < 0)
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	struct uco__call_timers *ct = call_timers(loop);
	if (!ct)
		return -ENOMEM;
	err = uco__heap_reserve(&ct->heap, 1);
	if (err)
		return err;
	uco_timer *t = malloc(sizeof *t);
	if (!t)
		return -ENOMEM;
	*t = (uco_timer){ .loop = loop, .cb = cb, .arg = arg,
	                  .node = { .when = when, .seq = ct->next_seq++ },
	                  .state = PENDING, .refs = out ? 2 : 1 };
	uco__heap_push(&ct->heap, &t->node);
	err = ensure_armed(ct);
	if (err) {
		uco__heap_remove(&ct->heap, &t->node);
		free(t);
		return err;
	}
	if (out)
		*out = t;
	return 0;
}

int uco_call_later(uco_loop *loop, int64_t delay_ns, void (*cb)(void *arg), void *arg,
                   uco_timer **out)
{
	if (delay_ns < 0)
		return -EINVAL;
	/* The time is read here: the delay counts from this call, and the
	 * absolute timeout cannot end it early. */
	return uco_call_at(loop, uco_now() + delay_ns, cb, arg, out);
}

int uco_timer_cancel(uco_timer *t)
{
	if (!t)
		return -EINVAL;
	if (t->state != PENDING)
		return -EALREADY;
	if (t->loop->owner != uco__thread_token())
		return -EPERM;
	struct uco__call_timers *ct = t->loop->call_timers;
	uco__heap_remove(&ct->heap, &t->node);
	t->state = CANCELLED;
	/* Nothing left to wait for: do not let the loop wake for nothing. */
	if (ct->heap.n == 0 && ct->current)
		drop_current(ct);
	unref(t);
	return 0;
}

void uco_timer_release(uco_timer *t)
{
	if (t)
		unref(t);
}
