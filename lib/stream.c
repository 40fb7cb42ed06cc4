/* SPDX-License-Identifier: MIT */
/*
 * Buffered streams (asyncio's StreamReader and StreamWriter) over a
 * connected socket or a pipe: opening and closing one, and its write side.
 * The read side is in stream_read.c; both see struct uco_stream in
 * stream.h.
 *
 * The write side sends in the background, as an asyncio transport does:
 * uco_stream_write() copies into the stream and starts a send if none is
 * in flight; the send's completion starts the next one.  The bytes of the
 * send in flight (`fly`) are never moved or freed while the kernel holds
 * them; writes made meanwhile go to a second buffer (`pend`), which the
 * completion swaps in once `fly` is sent.  drain() and close() only wait
 * for the completions, so cancelling them leaves the bytes queued.
 *
 * Over TLS (uco_stream_open_tls) the bytes go through uco_tls_read_dl and
 * uco_tls_write_dl, which run OpenSSL from a coroutine: the background send
 * cannot be an SQE there, so it is a task of the stream's (`sender`),
 * spawned when bytes are queued and ending when none are left.  It plays
 * the SQE's part exactly: it owns fly while it sends, writes with no
 * deadline, and wakes drainers and closers; so a drain that is cancelled
 * or times out only stops waiting and never cuts a TLS record (a record
 * cut short would leave the connection unable to write, docs/tls.md).
 * Only close, giving up on its flush, cancels the sender.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "stream.h"

#define DEFAULT_LIMIT (64u * 1024)
#define DEFAULT_HWM (64u * 1024)
/* Plaintext per uco_tls_write_dl of the TLS sender (the TLS layer's own
 * chunk): drainers see progress at this grain. */
#define TLS_CHUNK (64u * 1024)

/* ------------------------------------------------------------ lifetime */

/* Close the descriptor behind SQEs still queued for it (the receive
 * stream's re-arm and cancel): the ring takes them in order, so its number
 * cannot be reused by anything before they are issued.  Only while the
 * loop runs: its turn submits the close, where a loop that is not running
 * might be closed with the SQE never submitted (a leaked descriptor). */
static void close_after_queued(uco_stream *s)
{
	struct io_uring_sqe *sqe = s->loop->running && uco__has_op(s->loop, IORING_OP_CLOSE)
	                           ? uco__sqe_get(s->loop, NULL) : NULL;
	if (sqe)
		io_uring_prep_close(sqe, s->fd);
	else
		close(s->fd);
}

static void free_stream(uco_stream *s, bool loop_closing)
{
	bool had_rs = s->rs && !loop_closing;
	/* At loop close the loop frees the receive stream itself. */
	if (had_rs)
		uco_recv_stream_close(s->rs);
	uco__resource_remove(s->loop, &s->resource);
	if (!s->keep_fd && had_rs)
		close_after_queued(s);
	else if (!s->keep_fd)
		close(s->fd);
	uco_task_release(s->sender);
	if (s->tls && !s->keep_tls)
		uco_tls_close(s->tls);
	free(s->rbuf);
	free(s->fly.data);
	free(s->pend.data);
	free(s);
}

/* At loop close: the ring is gone, no send is in flight any more. */
static void destroy_stream(struct uco__resource *r)
{
	free_stream(UCO__CONTAINER_OF(r, uco_stream, resource), true);
}

static void sent(uco_loop *loop, struct uco__completion *c, const struct io_uring_cqe *cqe);

static int open_stream(uco_stream **out, int fd, uco_tls *tls, const uco_stream_opts *opts)
{
	uco_stream_opts none;
	if (!opts) {
		memset(&none, 0, sizeof none);
		opts = &none;
	}
	unsigned known = UCO_STREAM_KEEP_FD | (tls ? UCO_STREAM_KEEP_TLS : 0);
	if (!out || fd < 0 || (fd & UCO_FIXED_FD) ||
	    !uco__all_zero(opts->reserved_, sizeof opts->reserved_ / sizeof opts->reserved_[0]) ||
	    (opts->flags & ~known) || (tls && opts->bufring))
		return -EINVAL;
	size_t hwm = opts->hwm ? opts->hwm : DEFAULT_HWM;
	size_t lwm = opts->lwm ? opts->lwm : hwm / 4;
	if (lwm > hwm || (opts->limit && opts->limit > SIZE_MAX / 4))
		return -EINVAL;
	uco_loop *loop = opts->loop;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	struct stat st;
	if (fstat(fd, &st))
		return -errno;
	uco_stream *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->sent.complete = sent;
	s->loop = loop;
	s->fd = fd;
	/* recv/send on sockets (send with MSG_NOSIGNAL: no SIGPIPE), read and
	 * write on anything else: send(2) on a pipe is ENOTSOCK. */
	s->is_socket = S_ISSOCK(st.st_mode);
	s->tls = tls;
	s->keep_tls = opts->flags & UCO_STREAM_KEEP_TLS;
	/* The socket goes with the connection it carries. */
	s->keep_fd = (opts->flags & UCO_STREAM_KEEP_FD) || s->keep_tls;
	s->limit = opts->limit ? opts->limit : DEFAULT_LIMIT;
	s->hwm = hwm;
	s->lwm = lwm;
	if (opts->bufring && s->is_socket && !tls) {
		err = uco_recv_stream_open(&s->rs, fd, opts->bufring);
		if (err) {
			free(s);
			return err;
		}
	}
	s->resource.destroy = destroy_stream;
	uco__resource_add(loop, &s->resource);
	*out = s;
	return 0;
}

int uco_stream_open(uco_stream **out, int fd, const uco_stream_opts *opts)
{
	return open_stream(out, fd, NULL, opts);
}

int uco_stream_open_tls(uco_stream **out, uco_tls *conn, const uco_stream_opts *opts)
{
	int fd = uco__tls_fd(conn); /* -ENOTSUP without TLS */
	return fd < 0 ? fd : open_stream(out, fd, conn, opts);
}

int uco_stream_fd(const uco_stream *s)
{
	return s ? s->fd : -EINVAL;
}

/* ------------------------------------------------------------ writing */

static int start_sender(uco_stream *s);

/* Start sending fly's unsent bytes.  0, or -EAGAIN without an SQE (-ENOMEM
 * without a sender task; the bytes stay; the next write, drain or close
 * tries again). */
static int kick(uco_stream *s)
{
	size_t len = s->fly.len - s->fly.off;
	if (!len || s->sending)
		return 0;
	if (s->tls)
		return start_sender(s);
	struct io_uring_sqe *sqe = uco__sqe_get(s->loop, &s->sent);
	if (!sqe)
		return -EAGAIN;
	if (len > IO_MAX)
		len = IO_MAX;
	const char *p = s->fly.data + s->fly.off;
	if (s->is_socket)
		io_uring_prep_send(sqe, s->fd, p, len, MSG_NOSIGNAL);
	else
		io_uring_prep_write(sqe, s->fd, p, (unsigned)len, (uint64_t)-1);
	s->sending = true;
	return 0;
}

static void wake_waiters(uco_stream *s, int result)
{
	uco_task *t;
	while ((t = uco__waitq_pop(&s->waiters)))
		uco__wake(s->loop, t, result);
}

static void drop_unsent(uco_stream *s)
{
	s->fly.off = s->fly.len = 0;
	s->pend.off = s->pend.len = 0;
	s->wbuffered = 0;
}

/* A send failed: the peer is gone (-EPIPE, -ECONNRESET ...), what is
 * unsent can never arrive; writes report the error from now on. */
static void stop_writer(uco_stream *s, int err)
{
	s->werr = err;
	drop_unsent(s);
	wake_waiters(s, 0);
}

/* n bytes of fly were sent: once all are, pend's turn comes. */
static void advance(uco_stream *s, size_t n)
{
	s->fly.off += n;
	s->wbuffered -= n;
	if (s->fly.off == s->fly.len) {
		struct wbuf t = s->fly;
		t.off = t.len = 0;
		s->fly = s->pend;
		s->pend = t;
	}
}

static void sent(uco_loop *loop, struct uco__completion *c, const struct io_uring_cqe *cqe)
{
	(void)loop;
	uco_stream *s = UCO__CONTAINER_OF(c, uco_stream, sent);
	s->sending = false;
	if (s->closing) {
		free_stream(s, false); /* closed while this send was in flight */
		return;
	}
	int res = cqe->res;
	if (res == 0)
		res = -EIO; /* nothing moved and nothing said why: do not spin */
	if (res == -EINTR || res == -EAGAIN) {
		res = 0; /* send the same bytes again */
	} else if (res < 0) {
		stop_writer(s, res);
		return;
	}
	advance(s, (size_t)res);
	kick(s);
	/* Drainers wait for the low-water mark, closers for nothing left;
	 * without a send in flight (no SQE) they retry the kick themselves. */
	if (!uco__list_empty(&s->waiters.tasks) && (s->wbuffered <= s->lwm || !s->sending))
		wake_waiters(s, 0);
}

/* The TLS sender: fly through uco_tls_write_dl until nothing is queued.
 * No deadline: a record is cut only when close gives up (`closing`: the
 * stream is this task's to free then) or the task is cancelled by someone
 * else (uco_loop_cancel_all), after which it tries again: the TLS layer
 * says -EPIPE if the cancel did cut a record, and the writer stops. */
static void *tls_sender(void *arg)
{
	uco_stream *s = arg;
	s->sender_started = true;
	while (!s->closing && s->fly.off < s->fly.len) {
		size_t len = s->fly.len - s->fly.off;
		if (len > TLS_CHUNK)
			len = TLS_CHUNK;
		ssize_t n = uco_tls_write_dl(s->tls, s->fly.data + s->fly.off, len, UCO_FOREVER);
		if (s->closing || n == -ECANCELED)
			continue;
		if (n < 0) {
			stop_writer(s, (int)n);
			break;
		}
		advance(s, len);
		if (!uco__list_empty(&s->waiters.tasks) && s->wbuffered <= s->lwm)
			wake_waiters(s, 0);
	}
	s->sending = false;
	if (s->closing)
		free_stream(s, false); /* closed while this task sent */
	else
		wake_waiters(s, 0); /* all sent: closers too */
	return NULL;
}

static int start_sender(uco_stream *s)
{
	uco_task *t;
	int err = uco_spawn(s->loop, &t, tls_sender, s);
	if (err)
		return err;
	uco_task_release(s->sender); /* the last one, which has ended */
	s->sender = t;
	s->sender_started = false;
	s->sending = true;
	return 0;
}

static int append(struct wbuf *b, const void *data, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2)
				return -ENOMEM;
			cap *= 2;
		}
		char *d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	return 0;
}

ssize_t uco_stream_write(uco_stream *s, const void *data, size_t n)
{
	if (!s || (!data && n) || n > SSIZE_MAX)
		return -EINVAL;
	if (s->werr)
		return s->werr;
	if (!n)
		return 0;
	/* fly may grow (move) only while the kernel is not sending from it. */
	int err = append(s->sending ? &s->pend : &s->fly, data, n);
	if (err)
		return err;
	s->wbuffered += n;
	kick(s); /* without an SQE now, drain or close sends it */
	return (ssize_t)n;
}

size_t uco_stream_write_buffered(const uco_stream *s)
{
	return s ? s->wbuffered : 0;
}

static void describe_stream(const uco_task *t, char *buf, size_t len)
{
	const uco_stream *s = UCO__CONTAINER_OF(t->wait.queue, uco_stream, waiters);
	snprintf(buf, len, "%p, fd %d, %zu bytes unsent", (const void *)s, s->fd, s->wbuffered);
}

static const struct uco__wait_kind drain_kind = { "stream drain", describe_stream };

/* Wait until at most `mark` bytes are unsent (or the writer failed). */
static int wait_sent(uco_stream *s, uco_task *self, size_t mark, int64_t deadline)
{
	while (s->wbuffered > mark && !s->werr) {
		int r = kick(s);
		if (r && !s->sending)
			return r;
		r = uco__wait_in(self, &s->waiters, &drain_kind, deadline);
		if (r < 0)
			return r;
	}
	return s->werr;
}

int uco_stream_drain_dl(uco_stream *s, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (!s)
		return -EINVAL;
	if (s->werr)
		return s->werr;
	/* As asyncio: only a writer above the high-water mark is paused. */
	if (s->wbuffered <= s->hwm)
		return 0;
	return wait_sent(s, self, s->lwm, deadline);
}

int uco_stream_drain(uco_stream *s)
{
	return uco_stream_drain_dl(s, UCO_FOREVER);
}

/* ------------------------------------------------------------ closing */

int uco_stream_close_dl(uco_stream *s, int64_t deadline)
{
	if (!s)
		return -EINVAL;
	if (s->reader || !uco__list_empty(&s->waiters.tasks) || s->in_close)
		return -EBUSY;
	uco_task *self = uco__self();
	/* KEEP_TLS hands the connection back, so its sender must have left
	 * it: only a coroutine can wait for that. */
	if (!self && s->keep_tls && s->sending && s->sender_started)
		return -EBUSY;
	int err = s->werr;
	if (!err && s->wbuffered) {
		s->in_close = true;
		/* Outside a coroutine nothing can wait: as deadline 0. */
		err = self ? wait_sent(s, self, 0, deadline) : -ETIMEDOUT;
		s->in_close = false;
	}
	if (!err && s->tls && !s->keep_tls) {
		/* All sent, the sender gone: close_notify, so that the peer
		 * sees a clean end rather than a truncation. */
		s->in_close = true;
		err = self ? uco_tls_shutdown_dl(s->tls, deadline) : -ETIMEDOUT;
		s->in_close = false;
		if (err == -ENOTCONN)
			err = 0; /* no handshake, nothing to end */
	}
	drop_unsent(s);
	if (!s->sending) {
		free_stream(s, false);
		return err;
	}
	if (s->tls) {
		/* The flush failed or timed out with the sender in a write:
		 * cancel it (the record it was writing is cut; the
		 * connection is closing anyway). */
		uco_task *t = uco_task_retain(s->sender);
		s->closing = true;
		uco_task_cancel(t);
		if (!s->sender_started) {
			/* It ends without running, never touching s. */
			free_stream(s, false);
		} else if (s->keep_tls) {
			/* It frees s; conn is the caller's once it has ended.
			 * An await returns only then, cancelled or not. */
			uco_await(t, NULL);
		}
		uco_task_release(t);
		return err;
	}
	/* A send is still in flight (the flush failed or timed out): its
	 * completion frees the stream, and closes the descriptor only then,
	 * so that the number is never reused under a send not yet issued. */
	s->closing = true;
	struct io_uring_sqe *sqe = uco__sqe_get(s->loop, NULL);
	if (sqe)
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&s->sent, 0);
	return err;
}

int uco_stream_close(uco_stream *s)
{
	return uco_stream_close_dl(s, UCO_FOREVER);
}
