/* SPDX-License-Identifier: MIT */
/*
 * Waiting: how a task waits for something and is woken.  It holds the
 * park (suspend the running task until woken, with the hook that
 * interrupts the wait), the delivery of a pending cancellation, the
 * park-until-deadline that every timed wait goes through, waiting in a
 * wait queue, the run queue's growth (so that waking never fails),
 * uco_yield and uco_sleep.  Waking itself, the wait queues and the
 * interrupt are inline in internal.h, the park in park.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "park.h"

/* Room for n tasks in the run queue: reserved at spawn for every task the
 * loop holds (a task is in it at most once), so pushing never fails. */
int uco__ready_reserve(uco_loop *loop, size_t n)
{
	struct uco__taskq *q = &loop->ready;
	if (n <= q->cap)
		return 0;
	size_t cap = q->cap ? q->cap : 256;
	while (cap < n)
		cap *= 2;
	uco_task **slots = malloc(cap * sizeof *slots);
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < q->len; i++)
		slots[i] = q->slots[(q->head + i) & (q->cap - 1)];
	free(q->slots);
	q->slots = slots;
	q->head = 0;
	q->cap = cap;
	return 0;
}

int uco__deadline_set(uco_task *t, int64_t deadline)
{
	return deadline >= 0 ? uco__timer_arm(t, deadline) : 0;
}

int uco__park_until(uco_task *t, const struct uco__wait_kind *why,
                    void (*cancel)(uco_task *t))
{
	return uco__timer_disarm(t, uco__park(t->loop, t, why, cancel));
}

static void leave_waitq(uco_task *t)
{
	uco__waitq_remove(t);
	uco__wake(t->loop, t, -ECANCELED);
}

int uco__wait_in(uco_task *self, struct uco__waitq *q, const struct uco__wait_kind *why,
                 int64_t deadline)
{
	if (uco__cancel_due(self))
		return -ECANCELED;
	int r = uco__deadline_set(self, deadline);
	if (r)
		return r;
	uco__waitq_push(q, self);
	return uco__park_until(self, why, leave_waitq);
}

int uco_yield(void)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (uco__cancel_due(self))
		return -ECANCELED;
	uco__wake(self->loop, self, 0);
	uco__coro_park(self->loop, self);
	return 0;
}

/* ------------------------------------------------------------ sleeps */

static void describe_sleep(const uco_task *t, char *buf, size_t len)
{
	char left[32];
	uco__format_ns(uco__timer_sleep_left(t, uco_now()), left, sizeof left);
	snprintf(buf, len, "at least %s left", left);
}

static const struct uco__wait_kind sleep_kind = { "sleep", describe_sleep };

/* uco_task_cancel() on a sleeper: it leaves its bucket and wakes with
 * -ECANCELED. */
static void cancel_sleep(uco_task *t)
{
	uco__timer_unsleep(t);
	uco__wake(t->loop, t, -ECANCELED);
}

int uco_sleep(int64_t ns)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (ns < 0)
		return -EINVAL;
	if (ns == 0)
		return uco_yield(); /* asyncio.sleep(0): let the others run */
	if (uco__cancel_due(self))
		return -ECANCELED;
	int err = uco__timer_sleep(self, ns);
	if (err)
		return err;
	return uco__park(self->loop, self, &sleep_kind, cancel_sleep);
}

int uco_sleep_until(int64_t deadline)
{
	if (!uco__self())
		return -EPERM;
	/* The relative timer starts after this call: never early. */
	int64_t ns = deadline - uco_now();
	return uco_sleep(ns > 0 ? ns : 0);
}
