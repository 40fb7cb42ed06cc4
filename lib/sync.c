/* SPDX-License-Identifier: MIT */
/*
 * Mutex, event, condition variable, semaphore and channel for the
 * coroutines of one loop.  Waiters queue FIFO through uco__wait_in (which
 * gives them cancellation and deadlines); releases hand the resource to the
 * first waiter directly, so a woken waiter owns what it waited for and no
 * late-comer can overtake it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct mutex {
	uco_task *owner;
	struct uco__waitq waiters;
};

struct event {
	bool set;
	struct uco__waitq waiters;
};

struct cond {
	struct uco__waitq waiters;
};

struct sem {
	unsigned long value;
	struct uco__waitq waiters;
};

_Static_assert(sizeof(struct mutex) <= sizeof(uco_mutex), "uco_mutex storage");
_Static_assert(sizeof(struct event) <= sizeof(uco_event), "uco_event storage");
_Static_assert(sizeof(struct cond) <= sizeof(uco_cond), "uco_cond storage");
_Static_assert(sizeof(struct sem) <= sizeof(uco_sem), "uco_sem storage");

#define MUTEX(m) ((struct mutex *)(void *)(m))
#define EVENT(e) ((struct event *)(void *)(e))
#define COND(c) ((struct cond *)(void *)(c))
#define SEM(s) ((struct sem *)(void *)(s))

/* ------------------------------------------------------------ for dumps */

/* The primitive a parked task waits in: its queue is a member of it. */
#define WAITED_IN(t, type, member) UCO__CONTAINER_OF((t)->wait.queue, type, member)

static void describe_mutex(const uco_task *t, char *buf, size_t len)
{
	const struct mutex *mx = WAITED_IN(t, struct mutex, waiters);
	snprintf(buf, len, "%p, held by task %p", (const void *)mx, (void *)mx->owner);
}

static void describe_event(const uco_task *t, char *buf, size_t len)
{
	snprintf(buf, len, "%p", (void *)WAITED_IN(t, struct event, waiters));
}

static void describe_cond(const uco_task *t, char *buf, size_t len)
{
	snprintf(buf, len, "%p", (void *)WAITED_IN(t, struct cond, waiters));
}

static void describe_sem(const uco_task *t, char *buf, size_t len)
{
	snprintf(buf, len, "%p", (void *)WAITED_IN(t, struct sem, waiters));
}

static const struct uco__wait_kind mutex_kind = { "mutex", describe_mutex };
static const struct uco__wait_kind event_kind = { "event", describe_event };
static const struct uco__wait_kind cond_kind = { "condition", describe_cond };
static const struct uco__wait_kind sem_kind = { "semaphore", describe_sem };

/* ------------------------------------------------------------ mutex */

void uco_mutex_init(uco_mutex *m)
{
	memset(m, 0, sizeof *m);
}

int uco_mutex_lock_dl(uco_mutex *m, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	struct mutex *mx = MUTEX(m);
	if (mx->owner == self)
		return -EDEADLK;
	if (!mx->owner && uco__waitq_empty(&mx->waiters)) {
		if (uco__cancel_due(self))
			return -ECANCELED;
		mx->owner = self;
		return 0;
	}
	/* 0: uco_mutex_unlock handed it over. */
	return uco__wait_in(self, &mx->waiters, &mutex_kind, deadline);
}

int uco_mutex_lock(uco_mutex *m)
{
	return uco_mutex_lock_dl(m, UCO_FOREVER);
}

int uco_mutex_trylock(uco_mutex *m)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	struct mutex *mx = MUTEX(m);
	if (mx->owner || !uco__waitq_empty(&mx->waiters))
		return -EBUSY;
	mx->owner = self;
	return 0;
}

int uco_mutex_unlock(uco_mutex *m)
{
	struct mutex *mx = MUTEX(m);
	uco_task *self = uco__self();
	if (!self || mx->owner != self)
		return -EPERM;
	uco_task *next = uco__waitq_pop(&mx->waiters);
	mx->owner = next;
	if (next)
		uco__wake(next->loop, next, 0);
	return 0;
}

/* ------------------------------------------------------------ event */

void uco_event_init(uco_event *e)
{
	memset(e, 0, sizeof *e);
}

int uco_event_wait_dl(uco_event *e, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (EVENT(e)->set)
		return uco__cancel_due(self) ? -ECANCELED : 0;
	return uco__wait_in(self, &EVENT(e)->waiters, &event_kind, deadline);
}

int uco_event_wait(uco_event *e)
{
	return uco_event_wait_dl(e, UCO_FOREVER);
}

void uco_event_set(uco_event *e)
{
	struct event *ev = EVENT(e);
	ev->set = true;
	uco_task *t;
	while ((t = uco__waitq_pop(&ev->waiters)))
		uco__wake(t->loop, t, 0);
}

void uco_event_clear(uco_event *e)
{
	EVENT(e)->set = false;
}

int uco_event_is_set(const uco_event *e)
{
	return ((const struct event *)(const void *)e)->set;
}

/* ------------------------------------------------------------ condition */

void uco_cond_init(uco_cond *c)
{
	memset(c, 0, sizeof *c);
}

int uco_cond_wait_dl(uco_cond *c, uco_mutex *m, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (MUTEX(m)->owner != self)
		return -EPERM;
	uco_mutex_unlock(m);
	int r = uco__wait_in(self, &COND(c)->waiters, &cond_kind, deadline);
	/* The mutex comes back whatever happened; a cancel pending now is
	 * delivered by the next call, not by this relock. */
	bool cancel_pending = self->cancelling;
	self->cancelling = false;
	while (uco_mutex_lock(m) == -ECANCELED)
		cancel_pending = true; /* keep it for the caller's next call */
	self->cancelling = self->cancelling || cancel_pending;
	return r;
}

int uco_cond_wait(uco_cond *c, uco_mutex *m)
{
	return uco_cond_wait_dl(c, m, UCO_FOREVER);
}

void uco_cond_signal(uco_cond *c)
{
	uco_task *t = uco__waitq_pop(&COND(c)->waiters);
	if (t)
		uco__wake(t->loop, t, 0);
}

void uco_cond_broadcast(uco_cond *c)
{
	uco_task *t;
	while ((t = uco__waitq_pop(&COND(c)->waiters)))
		uco__wake(t->loop, t, 0);
}

/* ------------------------------------------------------------ semaphore */

void uco_sem_init(uco_sem *s, unsigned value)
{
	memset(s, 0, sizeof *s);
	SEM(s)->value = value;
}

int uco_sem_acquire_dl(uco_sem *s, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	struct sem *sm = SEM(s);
	if (sm->value && uco__waitq_empty(&sm->waiters)) {
		if (uco__cancel_due(self))
			return -ECANCELED;
		sm->value--;
		return 0;
	}
	return uco__wait_in(self, &sm->waiters, &sem_kind, deadline); /* 0: handed a unit */
}

int uco_sem_acquire(uco_sem *s)
{
	return uco_sem_acquire_dl(s, UCO_FOREVER);
}

int uco_sem_tryacquire(uco_sem *s)
{
	struct sem *sm = SEM(s);
	if (!sm->value || !uco__waitq_empty(&sm->waiters))
		return -EAGAIN;
	sm->value--;
	return 0;
}

void uco_sem_release(uco_sem *s)
{
	struct sem *sm = SEM(s);
	uco_task *t = uco__waitq_pop(&sm->waiters);
	if (t)
		uco__wake(t->loop, t, 0); /* the unit goes straight to it */
	else
		sm->value++;
}

/* ------------------------------------------------------------ channel */

struct uco_chan {
	void **ring;
	size_t cap, head, len;
	bool closed;
	struct uco__waitq senders, receivers;
};

/* What a parked sender offers or a parked receiver gets: on its stack,
 * reached through task->wait_data. */
struct slot {
	void *item;
};

static void describe_chan(const uco_chan *c, char *buf, size_t len)
{
	snprintf(buf, len, "%p, %zu of %zu buffered%s", (const void *)c, c->len, c->cap,
	         c->closed ? ", closed" : "");
}

static void describe_send(const uco_task *t, char *buf, size_t len)
{
	describe_chan(WAITED_IN(t, uco_chan, senders), buf, len);
}

static void describe_recv(const uco_task *t, char *buf, size_t len)
{
	describe_chan(WAITED_IN(t, uco_chan, receivers), buf, len);
}

static const struct uco__wait_kind chan_send_kind = { "channel send", describe_send };
static const struct uco__wait_kind chan_recv_kind = { "channel receive", describe_recv };

int uco_chan_create(uco_chan **out, size_t capacity)
{
	if (!out || capacity > ((size_t)1 << 32))
		return -EINVAL;
	uco_chan *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	if (capacity) {
		c->ring = malloc(capacity * sizeof *c->ring);
		if (!c->ring) {
			free(c);
			return -ENOMEM;
		}
	}
	c->cap = capacity;
	*out = c;
	return 0;
}

int uco_chan_send_dl(uco_chan *c, void *item, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (!c)
		return -EINVAL;
	if (c->closed)
		return -EPIPE;
	if (uco__cancel_due(self))
		return -ECANCELED;
	uco_task *r = uco__waitq_pop(&c->receivers);
	if (r) {
		/* A waiting receiver takes it directly (the buffer is empty
		 * whenever receivers wait). */
		((struct slot *)r->wait_data)->item = item;
		uco__wake(r->loop, r, 0);
		return 0;
	}
	if (c->len < c->cap) {
		c->ring[(c->head + c->len++) % c->cap] = item;
		return 0;
	}
	struct slot slot = { item };
	self->wait_data = &slot;
	int err = uco__wait_in(self, &c->senders, &chan_send_kind, deadline);
	/* 0: a receiver took the item (or put it in the buffer); -EPIPE: the
	 * channel closed; otherwise the item stayed with us. */
	return err;
}

int uco_chan_send(uco_chan *c, void *item)
{
	return uco_chan_send_dl(c, item, UCO_FOREVER);
}

int uco_chan_recv_dl(uco_chan *c, void **item, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (!c || !item)
		return -EINVAL;
	if (uco__cancel_due(self))
		return -ECANCELED;
	if (c->len) {
		*item = c->ring[c->head];
		c->head = (c->head + 1) % c->cap;
		c->len--;
		/* Room: the first waiting sender's item goes in. */
		uco_task *s = uco__waitq_pop(&c->senders);
		if (s) {
			c->ring[(c->head + c->len++) % c->cap] = ((struct slot *)s->wait_data)->item;
			uco__wake(s->loop, s, 0);
		}
		return 0;
	}
	uco_task *s = uco__waitq_pop(&c->senders);
	if (s) { /* unbuffered: straight from the sender */
		*item = ((struct slot *)s->wait_data)->item;
		uco__wake(s->loop, s, 0);
		return 0;
	}
	if (c->closed)
		return -EPIPE;
	struct slot slot = { NULL };
	self->wait_data = &slot;
	int err = uco__wait_in(self, &c->receivers, &chan_recv_kind, deadline);
	if (err == 0)
		*item = slot.item;
	return err;
}

int uco_chan_recv(uco_chan *c, void **item)
{
	return uco_chan_recv_dl(c, item, UCO_FOREVER);
}

int uco_chan_close(uco_chan *c)
{
	if (!c)
		return -EINVAL;
	if (c->closed)
		return -EALREADY;
	c->closed = true;
	uco_task *t;
	/* Receivers wait only when nothing is buffered: they see the end.
	 * Waiting senders keep their items. */
	while ((t = uco__waitq_pop(&c->receivers)))
		uco__wake(t->loop, t, -EPIPE);
	while ((t = uco__waitq_pop(&c->senders)))
		uco__wake(t->loop, t, -EPIPE);
	return 0;
}

int uco_chan_destroy(uco_chan *c)
{
	if (!c)
		return -EINVAL;
	if (!uco__waitq_empty(&c->senders) || !uco__waitq_empty(&c->receivers))
		return -EBUSY;
	free(c->ring);
	free(c);
	return 0;
}
