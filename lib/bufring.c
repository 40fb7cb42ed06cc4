/* SPDX-License-Identifier: MIT */
/*
 * Provided buffer rings and multishot receive streams.
 *
 * A buffer ring lends `count` buffers to the kernel (IORING_REGISTER_PBUF_RING,
 * 5.19+); a receive stream keeps one multishot IORING_OP_RECV armed on a
 * socket, and the kernel picks a buffer only when data arrives: thousands
 * of idle connections hold no buffer each.  The consumer gets one buffer at
 * a time from uco_recv_stream_next() and gives it back on its next call.
 *
 * A stream holds at most hold_max buffers unconsumed.  One client that
 * sends without reading its replies blocks its task (in a send) while a
 * multishot receive would go on taking buffers from the ring every
 * connection shares until it ran dry, and from then on no other
 * connection would get a byte.  So the multishot receive is armed only
 * while the task keeps up (nothing queued), with a byte limit of half the
 * bound in full buffers after which the kernel ends it (Linux 6.17; a
 * burst of data waiting in the socket would otherwise fill dozens of
 * buffers, or the whole ring on a plain ring, before any cancel could
 * reach it).  It is also cancelled once the task falls behind by more than
 * half the bound (small chunks arriving one by one).  From then on one
 * single-shot receive at a time (one buffer at most each) fills up to the
 * bound, and the stream stops there until the task takes chunks.
 *
 * liburing 2.3 has no io_uring_setup_buf_ring() (2.4+): the ring memory is
 * mapped and registered here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend.h"

struct uco_bufring {
	struct uco__resource resource;
	uco_loop *loop;
	struct io_uring_buf_ring *ring;
	size_t ring_bytes;
	char *buffers;
	unsigned count, size, mask;
	unsigned hold_max;       /* buffers a stream may hold unconsumed */
	bool no_mshot_limit;     /* the kernel refused a multishot's byte limit */
	uint16_t bgid;
	unsigned streams;        /* open streams using it */
	/* Streams whose receive ended with -ENOBUFS, oldest first: each
	 * buffer that comes back re-arms one, so that a stream whose task is
	 * already waiting is not left waiting after the drought. */
	struct uco_recv_stream *starved;
};

static void rearm_starved(uco_bufring *br);

static void give_back(uco_bufring *br, unsigned bid)
{
	io_uring_buf_ring_add(br->ring, br->buffers + (size_t)bid * br->size, br->size,
	                      (unsigned short)bid, (int)br->mask, 0);
	io_uring_buf_ring_advance(br->ring, 1);
	if (br->starved)
		rearm_starved(br);
}

static void free_bufring(uco_bufring *br, bool registered)
{
	if (registered)
		br->loop->backend->buf_ring_unregister(br->loop, br->bgid);
	munmap(br->ring, br->ring_bytes);
	munmap(br->buffers, (size_t)br->count * br->size);
	free(br);
}

static void destroy_bufring(struct uco__resource *r)
{
	free_bufring(UCO__CONTAINER_OF(r, uco_bufring, resource), false); /* ring gone */
}

/* The loop's setting, else an eighth of the ring (2 to 16, at most all of
 * it): eight stalled streams then hold about the whole ring. */
static unsigned hold_max(const uco_loop *loop, unsigned count)
{
	if (loop->recv_stream_hold)
		return loop->recv_stream_hold;
	unsigned n = count / 8;
	n = n < 2 ? 2 : n > 16 ? 16 : n;
	return n < count ? n : count;
}

int uco_bufring_create(uco_loop *loop, uco_bufring **out, unsigned count, unsigned size)
{
	if (!out || !count || count > 32768 || (count & (count - 1)) || !size)
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	uco_bufring *br = calloc(1, sizeof *br);
	if (!br)
		return -ENOMEM;
	br->loop = loop;
	br->count = count;
	br->size = size;
	br->mask = (unsigned)io_uring_buf_ring_mask(count);
	br->ring_bytes = count * sizeof(struct io_uring_buf);
	br->ring = mmap(NULL, br->ring_bytes, PROT_READ | PROT_WRITE,
	                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	br->buffers = mmap(NULL, (size_t)count * size, PROT_READ | PROT_WRITE,
	                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (br->ring == MAP_FAILED || br->buffers == MAP_FAILED) {
		if (br->ring != MAP_FAILED)
			munmap(br->ring, br->ring_bytes);
		if (br->buffers != MAP_FAILED)
			munmap(br->buffers, (size_t)count * size);
		free(br);
		return -ENOMEM;
	}
	io_uring_buf_ring_init(br->ring);
	br->hold_max = hold_max(loop, count);
	br->bgid = loop->next_bgid++;
	struct io_uring_buf_reg reg = {
		.ring_addr = (uint64_t)(uintptr_t)br->ring,
		.ring_entries = count,
		.bgid = br->bgid,
	};
	err = loop->backend->buf_ring_register(loop, &reg);
	if (err) {
		free_bufring(br, false);
		return err;
	}
	for (unsigned bid = 0; bid < count; bid++)
		io_uring_buf_ring_add(br->ring, br->buffers + (size_t)bid * size, size,
		                      (unsigned short)bid, (int)br->mask, (int)bid);
	io_uring_buf_ring_advance(br->ring, (int)count);
	br->resource.destroy = destroy_bufring;
	uco__resource_add(loop, &br->resource);
	*out = br;
	return 0;
}

int uco_bufring_destroy(uco_bufring *br)
{
	if (!br)
		return -EINVAL;
	if (br->streams)
		return -EBUSY;
	uco__resource_remove(br->loop, &br->resource);
	free_bufring(br, true);
	return 0;
}

/* ------------------------------------------------------------ streams */

struct chunk {
	int res;        /* bytes (> 0), 0 for end of stream, or -errno */
	unsigned bid;
};

struct uco_recv_stream {
	struct uco__completion done;
	struct uco__resource resource;
	uco_bufring *br;
	int fd;
	bool armed, closing, ended, starved;
	bool multishot;         /* what is armed: multishot, or one receive */
	bool limited;           /* ... a multishot with a byte limit */
	bool stopping;          /* the multishot was cancelled for the bound */
	unsigned buffers;       /* queued chunks holding a buffer */
	struct uco_recv_stream *next_starved; /* br->starved list, while starved */
	int lost;               /* -ENOMEM: a chunk could not be queued */
	int held;               /* buffer handed out, or -1 */
	struct chunk *queue;
	size_t head, len, cap;
	struct uco__waitq waiters;
};

static void starve(uco_recv_stream *s)
{
	if (s->starved)
		return;
	s->starved = true;
	s->next_starved = NULL;
	uco_recv_stream **p = &s->br->starved;
	while (*p)
		p = &(*p)->next_starved;
	*p = s;
}

static void unstarve(uco_recv_stream *s)
{
	if (!s->starved)
		return;
	s->starved = false;
	for (uco_recv_stream **p = &s->br->starved; *p; p = &(*p)->next_starved)
		if (*p == s) {
			*p = s->next_starved;
			break;
		}
}

/* What a multishot receive may take in all before the kernel ends it
 * (sqe->optlen, Linux 6.17): half the bound in full buffers. */
static unsigned mshot_limit(const uco_bufring *br)
{
	uint64_t bytes = (uint64_t)(br->hold_max / 2 ? br->hold_max / 2 : 1) * br->size;
	return bytes > INT32_MAX ? INT32_MAX : (unsigned)bytes;
}

/* A multishot receive while the task keeps up, else one receive (one
 * buffer at most). */
static int arm_receive(uco_recv_stream *s, bool multishot)
{
	struct io_uring_sqe *sqe = uco__sqe_get(s->br->loop, &s->done);
	if (!sqe)
		return -EAGAIN;
	s->multishot = multishot;
	if (multishot) {
		io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
		s->limited = !s->br->no_mshot_limit;
		if (s->limited)
			sqe->file_index = mshot_limit(s->br); /* the kernel's optlen */
	} else {
		io_uring_prep_recv(sqe, s->fd, NULL, s->br->size, 0);
	}
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = s->br->bgid;
	s->armed = true;
	unstarve(s);
	return 0;
}

static int arm_stream(uco_recv_stream *s)
{
	return arm_receive(s, s->buffers == 0);
}

/* A buffer came back: the oldest starved stream gets to receive again.
 * Without an SQE it stays listed, and its next call arms it. */
static void rearm_starved(uco_bufring *br)
{
	uco_recv_stream *s = br->starved;
	if (!s->armed && !s->closing && !s->ended && s->buffers < br->hold_max)
		arm_stream(s);
	else
		unstarve(s); /* at its bound: its task's next call arms it */
}

/* Receive again if the stream is below its bound and nothing is armed:
 * multishot if the task keeps up (the chunk a woken task is about to take
 * aside, nothing is queued).  Without an SQE the next chunk taken tries
 * again. */
static int refill(uco_recv_stream *s, bool woken)
{
	if (s->armed || s->ended || s->closing || s->buffers >= s->br->hold_max)
		return 0;
	return arm_receive(s, s->buffers <= (woken ? 1u : 0u));
}

static void free_stream(uco_recv_stream *s, bool give_buffers)
{
	unstarve(s);
	if (give_buffers) {
		if (s->held >= 0)
			give_back(s->br, (unsigned)s->held);
		for (size_t i = 0; i < s->len; i++) {
			struct chunk *c = &s->queue[(s->head + i) % s->cap];
			if (c->res > 0)
				give_back(s->br, c->bid);
		}
		s->buffers = 0;
	}
	s->br->streams--;
	uco__resource_remove(s->br->loop, &s->resource);
	free(s->queue);
	free(s);
}

static void destroy_stream(struct uco__resource *r)
{
	free_stream(UCO__CONTAINER_OF(r, uco_recv_stream, resource), false);
}

static int push_chunk(uco_recv_stream *s, struct chunk c)
{
	if (s->len == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct chunk *q = malloc(cap * sizeof *q);
		if (!q)
			return -ENOMEM;
		for (size_t i = 0; i < s->len; i++)
			q[i] = s->queue[(s->head + i) % s->cap];
		free(s->queue);
		s->queue = q;
		s->head = 0;
		s->cap = cap;
	}
	s->queue[(s->head + s->len++) % s->cap] = c;
	if (c.res > 0)
		s->buffers++;
	return 0;
}

static void received(uco_loop *loop, struct uco__completion *c, const struct io_uring_cqe *cqe)
{
	uco_recv_stream *s = UCO__CONTAINER_OF(c, uco_recv_stream, done);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	bool has_buffer = cqe->flags & IORING_CQE_F_BUFFER;
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	bool stopped = false; /* the end of a multishot cancelled for the bound */
	if (!more) {
		s->armed = false;
		stopped = s->stopping;
		s->stopping = false;
	}
	if (s->closing) {
		if (has_buffer)
			give_back(s->br, bid);
		if (!more)
			free_stream(s, true);
		return;
	}
	if (cqe->res == -ENOBUFS) {
		/* Every buffer is out: arm again when one comes back (the
		 * kernel has ended this receive). */
		if (!s->ended && !more)
			starve(s);
		return;
	}
	if (cqe->res == -ECANCELED && stopped) {
		refill(s, false); /* the task may have taken chunks meanwhile */
		return;
	}
	if (cqe->res == -EINVAL && !more && s->multishot && s->limited) {
		/* A kernel before 6.17 refuses the byte limit: without it,
		 * only the cancel at half the bound holds the stream back. */
		s->br->no_mshot_limit = true;
		refill(s, false);
		return;
	}
	if (s->ended) {
		/* After a loss (below), until the cancel lands: dropped. */
		if (has_buffer)
			give_back(s->br, bid);
		return;
	}
	struct chunk ch = { cqe->res, bid };
	if (push_chunk(s, ch) < 0) {
		/* No memory to queue it: these bytes are lost, so the stream
		 * ends here, with -ENOMEM once what was queued has been read
		 * (silently going on would hand out data with a hole in it),
		 * and stops receiving. */
		if (has_buffer)
			give_back(s->br, bid);
		s->lost = -ENOMEM;
		s->ended = true;
		if (more)
			uco__cancel_request(loop, &s->done);
	} else if (cqe->res <= 0) {
		/* EOF, or an error (-ENOMEM from a kernel short of memory):
		 * the stream ends, and after the error it keeps saying it,
		 * never a false EOF. */
		s->ended = true;
		s->lost = cqe->res;
	}
	uco_task *t = uco__waitq_pop(&s->waiters);
	if (t)
		uco__wake(loop, t, 0);
	if (more && !s->stopping && s->buffers > s->br->hold_max / 2) {
		/* The task is falling behind: stop the multishot (see the top
		 * of the file). */
		s->stopping = true;
		uco__cancel_request(loop, &s->done);
	}
	if (!more)
		refill(s, t != NULL);
}

int uco_recv_stream_open(uco_recv_stream **out, int fd, uco_bufring *br)
{
	if (!out || !br || fd < 0)
		return -EINVAL;
	uco_loop *loop = br->loop;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	uco_recv_stream *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->done.complete = received;
	s->br = br;
	s->fd = fd;
	s->held = -1;
	err = arm_stream(s);
	if (err) {
		free(s);
		return err;
	}
	br->streams++;
	s->resource.destroy = destroy_stream;
	uco__resource_add(loop, &s->resource);
	*out = s;
	return 0;
}

ssize_t uco_recv_stream_next(uco_recv_stream *s, const void **data)
{
	return uco_recv_stream_next_dl(s, data, UCO_FOREVER);
}

static void describe_stream(const uco_task *t, char *buf, size_t len)
{
	const uco_recv_stream *s = UCO__CONTAINER_OF(t->wait.queue, uco_recv_stream, waiters);
	snprintf(buf, len, "%p, fd %d", (const void *)s, s->fd);
}

static const struct uco__wait_kind stream_kind = { "recv stream", describe_stream };

ssize_t uco_recv_stream_next_dl(uco_recv_stream *s, const void **data, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (!s || !data)
		return -EINVAL;
	if (s->held >= 0) {
		give_back(s->br, (unsigned)s->held);
		s->held = -1;
	}
	if (s->starved && !s->armed && !s->ended && s->buffers < s->br->hold_max) {
		int err = arm_stream(s); /* a buffer just came back */
		if (err && !s->len)
			return err;
	}
	for (;;) {
		if (s->len) {
			struct chunk c = s->queue[s->head];
			s->head = (s->head + 1) % s->cap;
			s->len--;
			if (c.res > 0) {
				s->held = (int)c.bid;
				*data = s->br->buffers + (size_t)c.bid * s->br->size;
				s->buffers--;
				refill(s, false); /* below the bound again */
			}
			return c.res;
		}
		if (s->ended)
			return s->lost;
		int r = uco__wait_in(self, &s->waiters, &stream_kind, deadline);
		if (r < 0)
			return r;
	}
}

int uco_recv_stream_close(uco_recv_stream *s)
{
	if (!s)
		return -EINVAL;
	if (s->closing)
		return -EALREADY;
	s->closing = true;
	uco_task *t;
	while ((t = uco__waitq_pop(&s->waiters)))
		uco__wake(s->br->loop, t, -ESHUTDOWN);
	if (!s->armed) {
		free_stream(s, true);
		return 0;
	}
	uco__cancel_request(s->br->loop, &s->done);
	return 0;
}
