/* SPDX-License-Identifier: MIT */
/*
 * A buffered stream, as its two halves see it: stream.c opens, writes and
 * closes it, stream_read.c reads it.
 */
#ifndef UCO_STREAM_H
#define UCO_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

/* The most one SQE moves (read/write's own cap). */
#define IO_MAX 0x7ffff000u

struct wbuf {
	char *data;
	size_t off, len, cap; /* unsent bytes: [off, len) */
};

struct uco_stream {
	struct uco__completion sent; /* the background send */
	struct uco__resource resource;
	uco_loop *loop;
	int fd;
	bool is_socket, keep_fd;
	size_t limit, hwm, lwm;

	/* Read side: bytes [rhead, rtail) of rbuf are buffered. */
	char *rbuf;
	size_t rcap, rhead, rtail;
	bool eof;
	/* With opts.bufring on a socket: the multishot receive whose chunks
	 * are copied into rbuf (NULL: plain receives into rbuf). */
	uco_recv_stream *rs;
	bool rs_delivered; /* it has given data (so multishot works here) */
	const void *chunk; /* a chunk not copied yet (no memory), chunk_len > 0 */
	size_t chunk_len;
	uco_task *reader; /* the task inside a read call */

	/* Write side.  While `sending`, the kernel owns fly's unsent bytes
	 * and writes go to pend; when not sending, pend is empty. */
	struct wbuf fly, pend;
	size_t wbuffered; /* unsent bytes in fly and pend */
	bool sending, closing, in_close;
	int werr;         /* the send error that stopped the writer */
	struct uco__waitq waiters; /* in drain or close */

	/* Over TLS: the connection, and the task sending fly through it
	 * (our reference; the last one, finished, while not `sending`).
	 * Once it has started, it frees a stream closed under it. */
	uco_tls *tls;
	uco_task *sender;
	bool sender_started, keep_tls;
};

#endif
