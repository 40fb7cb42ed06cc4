/* SPDX-License-Identifier: MIT */
/*
 * The multishot acceptor: one IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT
 * posts a CQE per connection (IORING_CQE_F_MORE while it stays armed); the
 * descriptors queue here until coroutines take them.  When the kernel ends
 * the multishot (an error, or a kernel before 5.19 that refuses the flag
 * with -EINVAL), the acceptor arms again, one-shot accepts from then on if
 * multishot was refused.
 *
 * After an error it arms again only when a coroutine asks for the next
 * connection.  The kernel answers -EMFILE/-ENFILE at once while the
 * descriptor table is full (it takes a descriptor before it looks for a
 * connection), so arming again at once would spin the loop and queue one
 * error per turn until descriptors are freed.  Waiting for the consumer
 * lets the server handle the error (close something, back off) while the
 * clients wait in the listen backlog.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#ifndef IORING_ACCEPT_MULTISHOT
#define IORING_ACCEPT_MULTISHOT (1U << 0) /* 5.19 */
#endif

struct uco_acceptor {
	struct uco__completion done;
	struct uco__resource resource;
	uco_loop *loop;
	int listen_fd, flags;
	bool multishot;          /* the kernel takes IORING_ACCEPT_MULTISHOT */
	bool armed, closing;
	int unqueued;            /* an error no room was found for: reported next */
	/* Accepted descriptors (>= 0) and errors (< 0), in arrival order. */
	int *queue;
	size_t head, len, cap;
	struct uco__waitq waiters;
};

static int arm(uco_acceptor *a)
{
	struct io_uring_sqe *sqe = uco__sqe_get(a->loop, &a->done);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_accept(sqe, a->listen_fd, NULL, NULL, a->flags);
	if (a->multishot)
		sqe->ioprio |= IORING_ACCEPT_MULTISHOT;
	a->armed = true;
	return 0;
}

static void free_acceptor(uco_acceptor *a)
{
	uco__resource_remove(a->loop, &a->resource);
	for (size_t i = 0; i < a->len; i++) {
		int fd = a->queue[(a->head + i) % a->cap];
		if (fd >= 0)
			close(fd);
	}
	free(a->queue);
	free(a);
}

/* At loop close: the ring is gone, nothing more will complete. */
static void destroy_acceptor(struct uco__resource *r)
{
	free_acceptor(UCO__CONTAINER_OF(r, uco_acceptor, resource));
}

static int push(uco_acceptor *a, int res)
{
	if (a->len == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		int *q = malloc(cap * sizeof *q);
		if (!q)
			return -ENOMEM;
		for (size_t i = 0; i < a->len; i++)
			q[i] = a->queue[(a->head + i) % a->cap];
		free(a->queue);
		a->queue = q;
		a->head = 0;
		a->cap = cap;
	}
	a->queue[(a->head + a->len++) % a->cap] = res;
	return 0;
}

static void accepted(uco_loop *loop, struct uco__completion *c, const struct io_uring_cqe *cqe)
{
	uco_acceptor *a = UCO__CONTAINER_OF(c, uco_acceptor, done);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (!more)
		a->armed = false;
	if (a->closing) {
		if (cqe->res >= 0)
			close(cqe->res);
		if (!more)
			free_acceptor(a);
		return;
	}
	if (!more && a->multishot && cqe->res == -EINVAL) {
		a->multishot = false; /* before 5.19: one accept at a time */
		arm(a);
		return;
	}
	if (cqe->res != -ECANCELED && push(a, cqe->res) < 0) {
		/* No memory to queue it: refuse the connection, and say so
		 * rather than leave the consumer waiting for it. */
		if (cqe->res >= 0)
			close(cqe->res);
		a->unqueued = cqe->res < 0 ? cqe->res : -ENOMEM;
	}
	uco_task *t = uco__waitq_pop(&a->waiters);
	if (t)
		uco__wake(loop, t, 0);
	if (!more && (cqe->res >= 0 || cqe->res == -ECANCELED))
		arm(a); /* after an error: at the next uco_acceptor_next() */
}

int uco_acceptor_open(uco_loop *loop, uco_acceptor **out, int listen_fd, int flags)
{
	if (!out || listen_fd < 0)
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	if (!uco__has_op(loop, IORING_OP_ACCEPT))
		return -EOPNOTSUPP;
	uco_acceptor *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	a->done.complete = accepted;
	a->done.res_is_fd = true;
	a->loop = loop;
	a->listen_fd = listen_fd;
	a->flags = flags;
	a->multishot = true;
	err = arm(a);
	if (err) {
		free(a);
		return err;
	}
	a->resource.destroy = destroy_acceptor;
	uco__resource_add(loop, &a->resource);
	*out = a;
	return 0;
}

int uco_acceptor_next(uco_acceptor *a)
{
	return uco_acceptor_next_dl(a, UCO_FOREVER);
}

static void describe_acceptor(const uco_task *t, char *buf, size_t len)
{
	const uco_acceptor *a = UCO__CONTAINER_OF(t->wait.queue, uco_acceptor, waiters);
	snprintf(buf, len, "%p, listening fd %d", (const void *)a, a->listen_fd);
}

static const struct uco__wait_kind acceptor_kind = { "acceptor", describe_acceptor };

int uco_acceptor_next_dl(uco_acceptor *a, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (!a)
		return -EINVAL;
	for (;;) {
		if (a->closing)
			return -ESHUTDOWN;
		if (a->len) {
			int res = a->queue[a->head];
			a->head = (a->head + 1) % a->cap;
			a->len--;
			return res;
		}
		if (a->unqueued) {
			int err = a->unqueued;
			a->unqueued = 0;
			return err;
		}
		if (!a->armed) {
			/* Stopped at an error (or no SQE could be had then). */
			int err = arm(a);
			if (err)
				return err;
		}
		int r = uco__wait_in(self, &a->waiters, &acceptor_kind, deadline);
		if (r < 0)
			return r;
	}
}

int uco_acceptor_close(uco_acceptor *a)
{
	if (!a)
		return -EINVAL;
	if (a->closing)
		return -EALREADY;
	a->closing = true;
	uco_task *t;
	while ((t = uco__waitq_pop(&a->waiters)))
		uco__wake(a->loop, t, -ESHUTDOWN);
	if (!a->armed) {
		free_acceptor(a);
		return 0;
	}
	uco__cancel_request(a->loop, &a->done);
	return 0;
}
