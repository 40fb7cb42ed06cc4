/* SPDX-License-Identifier: MIT */
/*
 * The read side of buffered streams (asyncio's StreamReader): read,
 * readexactly, readuntil, readline, and the bytes buffered.
 *
 * The read side keeps one buffer per stream, which only the stream's own
 * reads (uco_recv/uco_read, in the reading coroutine) ever fill: a read
 * returns only at its operation's CQE, even when cancelled or timed out,
 * so the kernel never writes into the buffer once the call has returned,
 * and whatever the kernel did deliver stays in the buffer for the next
 * call.  That is how a cancelled readline loses no byte.
 *
 * Why plain receives by default, and the provided-buffer receive stream
 * (uco_recv_stream) only on request (opts.bufring): a multishot receive
 * lands in a ring buffer that must go back to the kernel, and a line may
 * span two of them, so the stream copies each chunk into its own buffer:
 * the bytes cross memory twice.  Measured (bench `stream`), readline costs
 * about 10% more that way, while hand-written parsing in place costs the
 * same on both paths.  What the bufring buys is memory: a stream waiting
 * with nothing buffered holds none (docs/streams.md).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "stream.h"

#ifdef UCO_VALGRIND
#include <valgrind/memcheck.h>
/* Valgrind does not see the kernel write through io_uring: say that the
 * bytes received are defined, or every search of them is reported. */
#define RECEIVED(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define RECEIVED(p, n) ((void)0)
#endif

/* What one receive asks the kernel for, at least (asyncio reads 64 KiB). */
#define READ_CHUNK (64u * 1024)

/* Enter a read call: one reader at a time (asyncio refuses a second one
 * too), and only from a coroutine. */
static int enter_read(uco_stream *s, uco_task **self)
{
	*self = uco__self();
	if (!*self)
		return -EPERM;
	if (!s)
		return -EINVAL;
	if (s->reader)
		return -EBUSY;
	s->reader = *self;
	return 0;
}

static size_t buffered(const uco_stream *s)
{
	return s->rtail - s->rhead;
}

/*
 * fill() through the provided-buffer receive stream: the next chunk is
 * copied behind the buffered bytes (rbuf is never the kernel's here, so it
 * may move at any time).  While the reader waits with nothing buffered it
 * holds no memory at all: rbuf is freed first, and the ring's buffer of
 * the previous chunk went back with the call.
 */
static ssize_t fill(uco_stream *s, size_t want, int64_t deadline);

/* One plain receive into p, which stays the kernel's until it returns. */
static ssize_t receive(uco_stream *s, void *p, size_t len, int64_t deadline)
{
	/* uco_tls_read_dl decrypts into p in this coroutine (no kernel
	 * write there), and keeps what a cancel interrupted for the next. */
	ssize_t n = s->tls         ? uco_tls_read_dl(s->tls, p, len, deadline)
	            : s->is_socket ? uco_recv_dl(s->fd, p, len, 0, deadline)
	                           : uco_read_dl(s->fd, p, len, -1, deadline);
	if (n == 0)
		s->eof = true;
	else if (n > 0)
		RECEIVED(p, (size_t)n);
	return n;
}

static ssize_t fill_from_chunks(uco_stream *s, int64_t deadline)
{
	const void *data = s->chunk;
	ssize_t n = (ssize_t)s->chunk_len;
	if (!n) {
		if (s->rhead == s->rtail) {
			free(s->rbuf);
			s->rbuf = NULL;
			s->rcap = s->rhead = s->rtail = 0;
		}
		n = uco_recv_stream_next_dl(s->rs, &data, deadline);
		if (n == -EINVAL && !s->rs_delivered) {
			/* A kernel before 6.0 refuses the multishot receive:
			 * plain receives from now on. */
			uco_recv_stream_close(s->rs);
			s->rs = NULL;
			return fill(s, 0, deadline);
		}
		if (n <= 0) {
			if (n == 0)
				s->eof = true;
			return n;
		}
		s->rs_delivered = true;
	}
	size_t have = buffered(s);
	if (s->rhead && s->rcap - s->rtail < (size_t)n) {
		memmove(s->rbuf, s->rbuf + s->rhead, have);
		s->rhead = 0;
		s->rtail = have;
	}
	if (s->rcap - s->rtail < (size_t)n) {
		size_t cap = s->rtail + (size_t)n;
		char *b = realloc(s->rbuf, cap);
		if (!b) {
			/* The chunk stays the receive stream's until its next
			 * call: copied by the next fill, not lost. */
			s->chunk = data;
			s->chunk_len = (size_t)n;
			return -ENOMEM;
		}
		s->rbuf = b;
		s->rcap = cap;
	}
	RECEIVED(data, (size_t)n);
	memcpy(s->rbuf + s->rtail, data, (size_t)n);
	s->rtail += (size_t)n;
	s->chunk_len = 0;
	return n;
}

/*
 * Receive more bytes into the buffer, which is first made able to hold
 * `want` buffered bytes (and at least READ_CHUNK).  The bytes received, 0 at
 * end of file (remembered), or -errno; what was buffered stays.
 */
static ssize_t fill(uco_stream *s, size_t want, int64_t deadline)
{
	if (s->eof)
		return 0;
	if (s->rs)
		return fill_from_chunks(s, deadline);
	size_t have = buffered(s);
	if (!have)
		s->rhead = s->rtail = 0;
	size_t cap = want > READ_CHUNK ? want : READ_CHUNK;
	if (cap < have + 1)
		cap = have + 1;
	if (s->rcap < cap) {
		/* No kernel operation can be using rbuf here: only this
		 * coroutine reads into it, and it is here. */
		char *b = realloc(s->rbuf, cap);
		if (!b)
			return -ENOMEM;
		s->rbuf = b;
		s->rcap = cap;
	}
	/* Slide the buffered bytes to the front when the room behind them
	 * has become the smaller part: one memmove per buffer's worth. */
	if (s->rhead && s->rcap - s->rtail < s->rcap / 2) {
		memmove(s->rbuf, s->rbuf + s->rhead, have);
		s->rhead = 0;
		s->rtail = have;
	}
	size_t room = s->rcap - s->rtail;
	if (room > IO_MAX)
		room = IO_MAX;
	ssize_t n = receive(s, s->rbuf + s->rtail, room, deadline);
	if (n > 0)
		s->rtail += (size_t)n;
	return n;
}

ssize_t uco_stream_read_dl(uco_stream *s, void *buf, size_t n, int64_t deadline)
{
	uco_task *self;
	int err = enter_read(s, &self);
	if (err)
		return err;
	ssize_t r = 0;
	if (!buf && n) {
		r = -EINVAL;
	} else if (n && !buffered(s) && !s->eof) {
		if (n >= READ_CHUNK && !s->rs) {
			/* A large read goes straight into the caller's buffer
			 * (uco_recv returns only once the kernel is done with
			 * it), saving a copy. */
			r = receive(s, buf, n > IO_MAX ? IO_MAX : n, deadline);
			s->reader = NULL;
			return r;
		}
		r = fill(s, 0, deadline);
	}
	if (r >= 0) {
		size_t len = buffered(s) < n ? buffered(s) : n;
		if (len)
			memcpy(buf, s->rbuf + s->rhead, len);
		s->rhead += len;
		r = (ssize_t)len;
	}
	s->reader = NULL;
	return r;
}

ssize_t uco_stream_read(uco_stream *s, void *buf, size_t n)
{
	return uco_stream_read_dl(s, buf, n, UCO_FOREVER);
}

ssize_t uco_stream_readexactly_dl(uco_stream *s, void *buf, size_t n, int64_t deadline)
{
	uco_task *self;
	int err = enter_read(s, &self);
	if (err)
		return err;
	ssize_t r = 0;
	if ((!buf && n) || n > SSIZE_MAX)
		r = -EINVAL;
	while (r == 0 && buffered(s) < n) {
		r = fill(s, n, deadline);
		if (r > 0)
			r = 0;
		else if (r == 0)
			r = buffered(s) ? -ENODATA : 1; /* 1: clean end of file */
	}
	if (r == 0) {
		if (n)
			memcpy(buf, s->rbuf + s->rhead, n);
		s->rhead += n;
		r = (ssize_t)n;
	} else if (r == 1) {
		r = 0;
	}
	s->reader = NULL;
	return r;
}

ssize_t uco_stream_readexactly(uco_stream *s, void *buf, size_t n)
{
	return uco_stream_readexactly_dl(s, buf, n, UCO_FOREVER);
}

static const char *find(const char *p, size_t len, const char *sep, size_t seplen)
{
	if (seplen == 1)
		return memchr(p, sep[0], len);
	return memmem(p, len, sep, seplen);
}

/*
 * readuntil and readline: the record is consumed and *out points at it in
 * the buffer.  At end of file, `partial_ok` returns what is left as the
 * last record (readline, as asyncio's), else -ENODATA keeps it.
 */
static ssize_t read_record(uco_stream *s, const char *sep, size_t seplen, const char **out,
                           bool partial_ok, int64_t deadline)
{
	uco_task *self;
	int err = enter_read(s, &self);
	if (err)
		return err;
	if (!out || !sep || !seplen || seplen > s->limit) {
		s->reader = NULL;
		return -EINVAL;
	}
	/* A record is at most limit bytes before its separator, as asyncio's
	 * LimitOverrunError: so the separator must start by offset limit. */
	size_t most = s->limit + seplen;
	size_t scanned = 0; /* bytes known to hold no separator start */
	ssize_t r;
	for (;;) {
		size_t have = buffered(s);
		const char *base = s->rbuf + s->rhead;
		const char *hit = have > scanned ? find(base + scanned, have - scanned, sep, seplen)
		                                 : NULL;
		if (hit) {
			size_t at = (size_t)(hit - base);
			if (at > s->limit) {
				r = -EMSGSIZE;
				break;
			}
			*out = base;
			s->rhead += at + seplen;
			r = (ssize_t)(at + seplen);
			break;
		}
		if (have >= most) {
			r = -EMSGSIZE;
			break;
		}
		/* A separator split across receives starts in the last
		 * seplen - 1 bytes: search those again with the new ones. */
		scanned = have >= seplen ? have - seplen + 1 : 0;
		r = fill(s, most, deadline);
		if (r < 0)
			break;
		if (r == 0) {
			if (have && partial_ok) {
				*out = s->rbuf + s->rhead;
				s->rhead += have;
				r = (ssize_t)have;
			} else {
				r = have ? -ENODATA : 0;
			}
			break;
		}
	}
	s->reader = NULL;
	return r;
}

ssize_t uco_stream_readuntil_dl(uco_stream *s, const void *sep, size_t seplen,
                                const char **record, int64_t deadline)
{
	return read_record(s, sep, seplen, record, false, deadline);
}

ssize_t uco_stream_readuntil(uco_stream *s, const void *sep, size_t seplen, const char **record)
{
	return read_record(s, sep, seplen, record, false, UCO_FOREVER);
}

ssize_t uco_stream_readline_dl(uco_stream *s, const char **line, int64_t deadline)
{
	return read_record(s, "\n", 1, line, true, deadline);
}

ssize_t uco_stream_readline(uco_stream *s, const char **line)
{
	return read_record(s, "\n", 1, line, true, UCO_FOREVER);
}

ssize_t uco_stream_buffered(const uco_stream *s, const char **data)
{
	if (!s)
		return -EINVAL;
	if (data)
		*data = s->rbuf ? s->rbuf + s->rhead : NULL;
	return (ssize_t)buffered(s);
}

int uco_stream_consume(uco_stream *s, size_t n)
{
	if (!s || n > buffered(s))
		return -EINVAL;
	if (s->reader)
		return -EBUSY;
	s->rhead += n;
	return 0;
}
