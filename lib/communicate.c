/* SPDX-License-Identifier: MIT */
/*
 * uco_process_communicate: feed a child's stdin and drain its stdout and
 * stderr at the same time, then wait for it.
 *
 * Done in the calling task without helper tasks: up to three operations in
 * the ring at once (a write, two reads), each resubmitted from its own
 * completion until its pipe is done, the task parked until all are.  Doing
 * them one after another would deadlock as soon as the child blocks
 * writing a full stdout pipe while we block writing its stdin.  The read
 * buffers grow only between two reads (from a completion), never under a
 * read in flight; a cancel or deadline asks the kernel to cancel what is
 * in flight and the task resumes at the last CQE (the buffer rule of
 * io.c).
 *
 * SIGPIPE: a write to a pipe whose reader has gone raises SIGPIPE in the
 * thread that does it, which for an io_uring write is the loop's thread
 * (inline at submit, or in task work), and its default action kills the
 * program.  While a write is in flight SIGPIPE is blocked in the thread,
 * and one raised meanwhile is consumed before it is unblocked: -EPIPE
 * reaches us, the signal does not (the "SIGPIPE dance" of libcurl and git).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "park.h"
#include "process.h"

#define MAX_IO (1u << 30)
#define MIN_ROOM 4096
#define FIRST_CAP (64u * 1024)

/* ------------------------------------------------------------ SIGPIPE */

static __thread unsigned sigpipe_holds;
static __thread bool sigpipe_was_blocked, sigpipe_was_pending;

static bool sigpipe_pending(void)
{
	sigset_t pending;
	return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

static void hold_sigpipe(void)
{
	if (sigpipe_holds++)
		return;
	sigset_t one, old;
	sigemptyset(&one);
	sigaddset(&one, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &one, &old);
	sigpipe_was_blocked = sigismember(&old, SIGPIPE) == 1;
	sigpipe_was_pending = sigpipe_pending();
}

static void unhold_sigpipe(void)
{
	if (--sigpipe_holds)
		return;
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, SIGPIPE);
	if (!sigpipe_was_pending && sigpipe_pending()) {
		static const struct timespec now = { 0, 0 };
		sigtimedwait(&one, NULL, &now);
	}
	if (!sigpipe_was_blocked)
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

/* ------------------------------------------------------------ the three pipes */

struct comm;

struct chan {
	struct uco__completion done;
	struct comm *c;
	int which;                /* 0 stdin, 1 stdout, 2 stderr */
	bool active, inflight, finished;
	uco_process_output *buf;  /* stdout, stderr */
	size_t cap;               /* bytes buf->data holds, NUL aside */
};

struct comm {
	uco_process *p;
	uco_task *task;
	const char *in;
	size_t inlen;
	struct chan ch[3];
	unsigned inflight;
	bool stopping, woken;
	int err;                  /* the first failure */
};

static int submit(struct chan *ch)
{
	struct comm *c = ch->c;
	uco_process *p = c->p;
	void *addr;
	size_t len;
	if (ch->which == 0) {
		addr = (char *)(uintptr_t)c->in + p->in_done;
		len = c->inlen - p->in_done;
	} else {
		uco_process_output *b = ch->buf;
		if (ch->cap - b->len < MIN_ROOM) {
			size_t cap = ch->cap * 2 > b->len + FIRST_CAP ? ch->cap * 2
			                                               : b->len + FIRST_CAP;
			char *data = realloc(b->data, cap + 1);
			if (!data)
				return -ENOMEM;
			b->data = data;
			ch->cap = cap;
		}
		addr = b->data + b->len;
		len = ch->cap - b->len;
	}
	struct io_uring_sqe *sqe = uco__sqe_get(p->loop, &ch->done);
	if (!sqe)
		return -EAGAIN;
	/* Offset -1: the pipe has no position. */
	io_uring_prep_rw(ch->which == 0 ? IORING_OP_WRITE : IORING_OP_READ, sqe,
	                 p->fds[ch->which], addr, (unsigned)(len > MAX_IO ? MAX_IO : len),
	                 (uint64_t)-1);
	ch->inflight = true;
	c->inflight++;
	return 0;
}

static void finish(struct chan *ch)
{
	uco_process *p = ch->c->p;
	ch->finished = true;
	/* Closing stdin is the child's end of input; a drained pipe is of
	 * no more use. */
	close(p->fds[ch->which]);
	p->fds[ch->which] = -1;
}

static void stop(struct comm *c)
{
	if (c->stopping)
		return;
	c->stopping = true;
	for (int i = 0; i < 3; i++) {
		if (!c->ch[i].inflight)
			continue;
		/* No SQE: the operation completes on its own. */
		struct io_uring_sqe *sqe = uco__sqe_get(c->p->loop, NULL);
		if (sqe)
			io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&c->ch[i].done, 0);
	}
}

static void maybe_wake(struct comm *c)
{
	if (c->woken || c->inflight)
		return;
	bool all = true;
	for (int i = 0; i < 3; i++)
		all = all && (!c->ch[i].active || c->ch[i].finished);
	if (!all && !c->stopping)
		return;
	c->woken = true;
	uco__wake(c->p->loop, c->task, c->err ? c->err : all ? 0 : -ECANCELED);
}

static void chan_done(uco_loop *loop, struct uco__completion *done,
                      const struct io_uring_cqe *cqe)
{
	(void)loop;
	struct chan *ch = UCO__CONTAINER_OF(done, struct chan, done);
	struct comm *c = ch->c;
	uco_process *p = c->p;
	int res = cqe->res;
	ch->inflight = false;
	c->inflight--;
	if (res > 0 && ch->which == 0) {
		p->in_done += (size_t)res;
		if (p->in_done == c->inlen)
			finish(ch);
	} else if (res > 0) {
		ch->buf->len += (size_t)res;
		ch->buf->data[ch->buf->len] = '\0';
	} else if (res == 0 && ch->which != 0) {
		finish(ch); /* end of file */
	} else if (ch->which == 0 && (res == -EPIPE || res == -ECONNRESET)) {
		/* The child exited or closed its stdin without reading it
		 * all: as asyncio, not an error; the rest is dropped. */
		p->in_done = c->inlen;
		finish(ch);
	} else if (res != -ECANCELED && res != -EINTR && res != -EAGAIN) {
		if (!c->err)
			c->err = res;
		stop(c);
	}
	if (!ch->finished && !c->stopping) {
		int err = submit(ch);
		if (err) {
			if (!c->err)
				c->err = err;
			stop(c);
		}
	}
	maybe_wake(c);
}

/* uco_task_cancel() or the deadline: cancel what is in flight; the task
 * resumes once the last of it has completed. */
static void cancel_comm(uco_task *t)
{
	struct comm *c = t->wait_data;
	stop(c);
	maybe_wake(c);
}

static void describe_comm(const uco_task *t, char *buf, size_t len)
{
	const struct comm *c = t->wait_data;
	snprintf(buf, len, "pid %ld, %u pipe operations in flight", (long)c->p->pid, c->inflight);
}

static const struct uco__wait_kind comm_kind = { "communicate", describe_comm };

/* Move data through the pipes until each is done: 0 or -errno. */
static int pump(struct comm *c, uco_task *self, int64_t deadline)
{
	int r = deadline >= 0 ? uco__timer_arm(self, deadline) : 0;
	if (r)
		return r;
	for (int i = 0; i < 3 && !c->stopping; i++) {
		if (!c->ch[i].active || c->ch[i].finished)
			continue;
		int err = submit(&c->ch[i]);
		if (err) {
			c->err = err;
			stop(c);
		}
	}
	if (c->inflight) {
		self->wait_data = c;
		r = uco__park(c->p->loop, self, &comm_kind, cancel_comm);
	} else {
		r = c->err;
	}
	return deadline >= 0 ? uco__timer_disarm(self, r) : r;
}

int uco_process_communicate_dl(uco_process *p, const void *in, size_t inlen,
                               uco_process_output *out, uco_process_output *err,
                               int64_t deadline)
{
	if (!p || (inlen && !in))
		return -EINVAL;
	uco_task *self;
	int r = uco__process_caller(p, &self);
	if (r)
		return r;
	if (p->in_done < inlen && p->fds[0] < 0)
		return -EINVAL;
	if (p->communicating)
		return -EBUSY; /* two readers of one pipe would split its bytes */
	if (uco__cancel_due(self))
		return -ECANCELED;

	uco_process_output discard[3] = { { NULL, 0 }, { NULL, 0 }, { NULL, 0 } };
	struct comm c = { .p = p, .task = self, .in = in, .inlen = inlen };
	uco_process_output *bufs[3] = { NULL, out ? out : &discard[1], err ? err : &discard[2] };
	bool any = false;
	for (int i = 0; i < 3; i++) {
		struct chan *ch = &c.ch[i];
		*ch = (struct chan){ .done.complete = chan_done, .c = &c, .which = i,
		                     .buf = bufs[i], .cap = bufs[i] ? bufs[i]->len : 0 };
		if (p->fds[i] < 0)
			continue;
		if (i == 0 && p->in_done >= inlen) {
			finish(ch); /* nothing (left) to write: end of input now */
			continue;
		}
		ch->active = any = true;
	}

	if (any) {
		bool writes = c.ch[0].active;
		if (writes)
			hold_sigpipe();
		p->communicating = true;
		r = pump(&c, self, deadline);
		p->communicating = false;
		if (writes)
			unhold_sigpipe();
	}
	free(discard[1].data);
	free(discard[2].data);
	return r < 0 ? r : uco_process_wait_dl(p, deadline);
}

int uco_process_communicate(uco_process *p, const void *in, size_t inlen,
                            uco_process_output *out, uco_process_output *err)
{
	return uco_process_communicate_dl(p, in, inlen, out, err, UCO_FOREVER);
}
