/* SPDX-License-Identifier: MIT */
/*
 * uco_xchan: a channel whose ends live on different loops.  The buffer and the lists
 * of waiting senders and receivers sit under one mutex; items are handed
 * over under it, so each is delivered exactly once or stays in the
 * channel.  A waiter parks on its own loop, counted as work in flight there,
 * with its slot on its stack; whoever serves it (from any loop) fills the
 * slot, unlists it and posts its wake-up to its loop's inbox.  A waiter
 * cancelled or timed out after it was served still gets what it was given.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

struct xwaiter {
	struct uco__post post;   /* the wake-up, run on the waiter's loop */
	struct uco__link link;
	struct uco__list *list;  /* where it waits, while listed */
	uco_task *task;
	uco_xchan *chan;
	void *item;              /* offered (sender) or received (receiver) */
	int result;              /* 0, or -EPIPE: closed */
	bool served;             /* slot filled, wake-up sent */
};

struct uco_xchan {
	pthread_mutex_t lock;
	void **ring;
	size_t cap, head, len;
	bool closed;
	struct uco__list senders, receivers; /* struct xwaiter, FIFO */
};

static void xlist_push(struct uco__list *l, struct xwaiter *w)
{
	uco__list_push(l, &w->link);
	w->list = l;
}

static void xlist_remove(struct xwaiter *w)
{
	uco__list_remove(w->list, &w->link);
	w->list = NULL;
}

static struct xwaiter *xlist_pop(struct uco__list *l)
{
	struct uco__link *n = uco__list_pop(l);
	if (!n)
		return NULL;
	struct xwaiter *w = UCO__LIST_ENTRY(n, struct xwaiter, link);
	w->list = NULL;
	return w;
}

/* Under chan->lock: the waiter is unlisted and its slot filled; wake it
 * on its own loop. */
static void serve(struct xwaiter *w, int result)
{
	w->result = result;
	w->served = true;
	uco_loop *loop = w->task->loop;
	if (loop == uco_loop_current()) {
		/* Its own loop: wake it directly. */
		loop->inflight--;
		uco__wake(loop, w->task, 0);
	} else {
		uco__post_to(loop, &w->post);
	}
}

static void woken(uco_loop *loop, struct uco__completion *c, const struct io_uring_cqe *cqe)
{
	(void)cqe;
	struct xwaiter *w = UCO__CONTAINER_OF(c, struct xwaiter, post.done);
	/* Served: what it was given counts, even if a cancel came since. */
	uco__wake(loop, w->task, 0);
}

/* uco_task_cancel() or the deadline on a parked waiter. */
static void leave(uco_task *t)
{
	struct xwaiter *w = t->wait_data;
	uco_xchan *c = w->chan;
	pthread_mutex_lock(&c->lock);
	bool listed = w->list != NULL;
	if (listed)
		xlist_remove(w);
	pthread_mutex_unlock(&c->lock);
	if (listed) {
		t->loop->inflight--; /* no wake-up will be posted */
		uco__wake(t->loop, t, -ECANCELED);
	}
	/* Not listed: it was served, and its wake-up is on its way. */
}

int uco_xchan_create(uco_xchan **out, size_t capacity)
{
	if (!out || capacity > ((size_t)1 << 32))
		return -EINVAL;
	uco_xchan *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	if (capacity && !(c->ring = malloc(capacity * sizeof *c->ring))) {
		free(c);
		return -ENOMEM;
	}
	c->cap = capacity;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

static void describe_xwaiter(const uco_task *t, char *buf, size_t len)
{
	const struct xwaiter *w = t->wait_data;
	snprintf(buf, len, "%p", (void *)w->chan);
}

static const struct uco__wait_kind send_kind = { "xchan send", describe_xwaiter };
static const struct uco__wait_kind recv_kind = { "xchan receive", describe_xwaiter };

/* Wait in `list` (c->lock held on entry, released here): 0 when served,
 * -EPIPE if closed meanwhile, -ECANCELED, -ETIMEDOUT. */
static int wait_in(uco_xchan *c, struct uco__list *list, struct xwaiter *w, int64_t deadline)
{
	uco_task *self = w->task;
	int r = uco__deadline_set(self, deadline);
	if (r) {
		pthread_mutex_unlock(&c->lock);
		return r;
	}
	xlist_push(list, w);
	pthread_mutex_unlock(&c->lock);
	self->loop->inflight++; /* the wake-up that will be posted */
	self->wait_data = w;
	r = uco__park_until(self, list == &c->senders ? &send_kind : &recv_kind, leave);
	/* Served first: what it was given wins over a deadline that fired
	 * while the wake-up was on its way (the item would be lost), and a
	 * cancel stays pending for the next call. */
	return w->served ? w->result : r;
}

static int begin(uco_xchan *c, uco_task **self)
{
	*self = uco__self();
	if (!*self)
		return -EPERM;
	if (!c)
		return -EINVAL;
	return uco__cancel_due(*self) ? -ECANCELED : 0;
}

int uco_xchan_send_dl(uco_xchan *c, void *item, int64_t deadline)
{
	uco_task *self;
	int err = begin(c, &self);
	if (err)
		return err;
	pthread_mutex_lock(&c->lock);
	if (c->closed) {
		pthread_mutex_unlock(&c->lock);
		return -EPIPE;
	}
	struct xwaiter *r = xlist_pop(&c->receivers);
	if (r) {
		/* A receiver waits only when nothing is buffered: straight to it. */
		r->item = item;
		serve(r, 0);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (c->len < c->cap) {
		c->ring[(c->head + c->len++) % c->cap] = item;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	struct xwaiter w = { .post.done.complete = woken, .task = self, .chan = c, .item = item };
	return wait_in(c, &c->senders, &w, deadline);
}

int uco_xchan_send(uco_xchan *c, void *item)
{
	return uco_xchan_send_dl(c, item, UCO_FOREVER);
}

int uco_xchan_recv_dl(uco_xchan *c, void **item, int64_t deadline)
{
	uco_task *self;
	int err = begin(c, &self);
	if (err)
		return err;
	if (!item)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (c->len) {
		*item = c->ring[c->head];
		c->head = (c->head + 1) % c->cap;
		c->len--;
		struct xwaiter *s = xlist_pop(&c->senders);
		if (s) { /* room: the first waiting sender's item goes in */
			c->ring[(c->head + c->len++) % c->cap] = s->item;
			serve(s, 0);
		}
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	struct xwaiter *s = xlist_pop(&c->senders);
	if (s) { /* unbuffered: straight from the sender */
		*item = s->item;
		serve(s, 0);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (c->closed) {
		pthread_mutex_unlock(&c->lock);
		return -EPIPE;
	}
	struct xwaiter w = { .post.done.complete = woken, .task = self, .chan = c };
	err = wait_in(c, &c->receivers, &w, deadline);
	if (err == 0)
		*item = w.item;
	return err;
}

int uco_xchan_recv(uco_xchan *c, void **item)
{
	return uco_xchan_recv_dl(c, item, UCO_FOREVER);
}

int uco_xchan_close(uco_xchan *c)
{
	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (c->closed) {
		pthread_mutex_unlock(&c->lock);
		return -EALREADY;
	}
	c->closed = true;
	struct xwaiter *w;
	while ((w = xlist_pop(&c->receivers)))
		serve(w, -EPIPE);
	while ((w = xlist_pop(&c->senders)))
		serve(w, -EPIPE); /* their items stay with them */
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int uco_xchan_destroy(uco_xchan *c)
{
	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	bool busy = !uco__list_empty(&c->senders) || !uco__list_empty(&c->receivers);
	pthread_mutex_unlock(&c->lock);
	if (busy)
		return -EBUSY;
	pthread_mutex_destroy(&c->lock);
	free(c->ring);
	free(c);
	return 0;
}
