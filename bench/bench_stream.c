/* SPDX-License-Identifier: MIT */
/*
 * stream: readline throughput over a stream socket (AF_UNIX socket pair),
 * lines of STREAM_LINE_BYTES bytes (newline included), in lines/s.
 *
 * A producer thread of this process writes the lines in 64 KiB blocks as
 * fast as the socket takes them; the consumer reads them one at a time and
 * checks each (its length and its first byte, 'a' + i % 26), timed from
 * just before the first line to just after the last.
 *
 *   uco                uco_stream_readline() in a task;
 *   uco-bufring        the same, the stream receiving through a
 *                      uco_bufring (16 x 64 KiB; opts.bufring);
 *   recv-parse         hand-written: uco_recv() into a 64 KiB buffer and
 *                      memchr() for the newlines, in a task;
 *   recv-stream-parse  the same parsing over the provided-buffer receive
 *                      stream (uco_recv_stream on a uco_bufring of 16 x 64
 *                      KiB), partial lines carried between chunks: what a
 *                      stream built on it would cost (docs/streams.md);
 *   asyncio            peers/stream_asyncio.py: StreamReader.readline()
 *                      on the same socket, run by python3.
 * The rounds interleave the implementations, one figure per round each.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "uco.h"

#define STREAM_LINE_BYTES 64
#define BLOCK_LINES (26 * 40) /* a whole number of 'a'..'z' cycles */

/* ------------------------------------------------------------ the producer */

struct producer {
	int fd;
	size_t lines;
	pthread_t thread;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	size_t block_bytes = (size_t)BLOCK_LINES * STREAM_LINE_BYTES;
	char *block = malloc(block_bytes);
	if (!block)
		return NULL;
	for (size_t i = 0; i < BLOCK_LINES; i++) {
		char *l = block + i * STREAM_LINE_BYTES;
		memset(l, 'x', STREAM_LINE_BYTES - 1);
		l[0] = (char)('a' + i % 26);
		l[STREAM_LINE_BYTES - 1] = '\n';
	}
	size_t left = p->lines * STREAM_LINE_BYTES;
	while (left) {
		size_t n = left < block_bytes ? left : block_bytes;
		size_t off = 0;
		while (off < n) {
			ssize_t w = send(p->fd, block + off, n - off, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				goto out; /* the consumer is gone */
			}
			off += (size_t)w;
		}
		left -= n;
	}
out:
	shutdown(p->fd, SHUT_WR);
	free(block);
	return NULL;
}

/* A socket pair with a producer on sv[0]; the consumer gets sv[1]. */
static int start_producer(struct producer *p, int sv[2], size_t lines)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -errno;
	p->fd = sv[0];
	p->lines = lines;
	int err = pthread_create(&p->thread, NULL, produce, p);
	if (err) {
		close(sv[0]);
		close(sv[1]);
		return -err;
	}
	return 0;
}

static void stop_producer(struct producer *p, int sv[2])
{
	shutdown(sv[1], SHUT_RDWR); /* unblocks a producer whose reader quit */
	pthread_join(p->thread, NULL);
	close(sv[0]);
	close(sv[1]);
}

/* ------------------------------------------------------------ the uco consumers */

struct consumer {
	int fd;
	size_t lines;
	const char *impl;
	int64_t elapsed;
	const char *bad; /* what went wrong, or NULL */
	int err;
};

static bool line_ok(const char *line, size_t len, size_t i)
{
	return len == STREAM_LINE_BYTES && line[0] == (char)('a' + i % 26) &&
	       line[len - 1] == '\n';
}

static void *read_lines(struct consumer *c, uco_bufring *br)
{
	uco_stream *s;
	uco_stream_opts o = {.flags = UCO_STREAM_KEEP_FD, .bufring = br};
	c->err = uco_stream_open(&s, c->fd, &o);
	if (c->err) {
		c->bad = "uco_stream_open";
		return NULL;
	}
	int64_t t0 = bench_now_ns();
	for (size_t i = 0; i < c->lines; i++) {
		const char *line;
		ssize_t n = uco_stream_readline(s, &line);
		if (n <= 0 || !line_ok(line, (size_t)n, i)) {
			c->err = n < 0 ? (int)n : -EPROTO;
			c->bad = "a line is wrong or missing";
			break;
		}
	}
	c->elapsed = bench_now_ns() - t0;
	uco_stream_close(s);
	return NULL;
}

static void *read_stream(void *arg)
{
	return read_lines(arg, NULL);
}

#define RECV_BUF (64 * 1024)

static void *read_stream_bufring(void *arg)
{
	struct consumer *c = arg;
	uco_bufring *br; /* freed with the loop */
	c->err = uco_bufring_create(NULL, &br, 16, RECV_BUF);
	if (c->err) {
		c->bad = "uco_bufring_create";
		return NULL;
	}
	return read_lines(c, br);
}

static void *read_recv_parse(void *arg)
{
	struct consumer *c = arg;
	char *buf = malloc(RECV_BUF);
	if (!buf) {
		c->err = -ENOMEM;
		c->bad = "malloc";
		return NULL;
	}
	size_t head = 0, tail = 0, i = 0;
	int64_t t0 = bench_now_ns();
	while (i < c->lines) {
		char *nl = memchr(buf + head, '\n', tail - head);
		if (nl) {
			size_t len = (size_t)(nl - (buf + head)) + 1;
			if (!line_ok(buf + head, len, i)) {
				c->err = -EPROTO;
				c->bad = "a line is wrong";
				break;
			}
			head += len;
			i++;
			continue;
		}
		memmove(buf, buf + head, tail - head);
		tail -= head;
		head = 0;
		ssize_t n = uco_recv(c->fd, buf + tail, RECV_BUF - tail, 0);
		if (n <= 0) {
			c->err = n < 0 ? (int)n : -EPROTO;
			c->bad = "uco_recv: end of file or an error";
			break;
		}
		tail += (size_t)n;
	}
	c->elapsed = bench_now_ns() - t0;
	free(buf);
	return NULL;
}

static void *read_recv_stream_parse(void *arg)
{
	struct consumer *c = arg;
	uco_bufring *br;
	uco_recv_stream *rs;
	c->err = uco_bufring_create(NULL, &br, 16, RECV_BUF);
	if (c->err) {
		c->bad = "uco_bufring_create";
		return NULL;
	}
	c->err = uco_recv_stream_open(&rs, c->fd, br);
	if (c->err) {
		c->bad = "uco_recv_stream_open";
		uco_bufring_destroy(br);
		return NULL;
	}
	char carry[STREAM_LINE_BYTES * 2];
	size_t carried = 0, i = 0;
	int64_t t0 = bench_now_ns();
	while (i < c->lines && !c->bad) {
		const void *data;
		ssize_t n = uco_recv_stream_next(rs, &data);
		if (n <= 0) {
			c->err = n < 0 ? (int)n : -EPROTO;
			c->bad = "uco_recv_stream_next: end of file or an error";
			break;
		}
		const char *p = data, *end = p + n;
		if (carried) {
			/* A line split between chunks: copied together. */
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t take = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
			if (carried + take > sizeof carry) {
				c->err = -EPROTO;
				c->bad = "a line is too long";
				break;
			}
			memcpy(carry + carried, p, take);
			carried += take;
			p += take;
			if (!nl)
				continue;
			if (!line_ok(carry, carried, i++)) {
				c->err = -EPROTO;
				c->bad = "a line is wrong";
				break;
			}
			carried = 0;
		}
		while (p < end && i < c->lines) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl) {
				if ((size_t)(end - p) > sizeof carry) {
					c->err = -EPROTO;
					c->bad = "a line is too long";
					break;
				}
				carried = (size_t)(end - p);
				memcpy(carry, p, carried);
				break;
			}
			size_t len = (size_t)(nl - p) + 1;
			if (!line_ok(p, len, i++)) {
				c->err = -EPROTO;
				c->bad = "a line is wrong";
				break;
			}
			p = nl + 1;
		}
	}
	c->elapsed = bench_now_ns() - t0;
	uco_recv_stream_close(rs);
	return NULL;
}

static int run_uco(const char *impl, uco_fn fn, size_t lines, double *rate)
{
	struct producer p;
	int sv[2];
	int err = start_producer(&p, sv, lines);
	if (err) {
		bench_fail("stream", impl, "socket pair or thread: %s", strerror(-err));
		return err;
	}
	uco_loop *loop;
	err = uco_loop_create(&loop, NULL);
	if (err) {
		bench_fail("stream", impl, "uco_loop_create: %s", uco_loop_strerror(err));
		stop_producer(&p, sv);
		return err;
	}
	struct consumer c = {.fd = sv[1], .lines = lines, .impl = impl};
	uco_task *t;
	err = uco_spawn(loop, &t, fn, &c);
	if (!err) {
		err = uco_loop_run_until(loop, t, NULL);
		uco_task_release(t);
	}
	uco_loop_run(loop); /* the receive stream's cancel, if any */
	stop_producer(&p, sv);
	/* A bufring left by the recv-stream reader goes with the loop. */
	uco_loop_close(loop);
	if (err || c.bad) {
		bench_fail("stream", impl, "%s: %s", c.bad ? c.bad : "the task",
		           strerror(-(err ? err : c.err)));
		return err ? err : c.err ? c.err : -EPROTO;
	}
	*rate = (double)lines / ((double)c.elapsed / 1e9);
	return 0;
}

/* ------------------------------------------------------------ asyncio */

static int run_asyncio(const char *python, const char *script, size_t lines)
{
	struct producer p;
	int sv[2];
	int err = start_producer(&p, sv, lines);
	if (err) {
		bench_fail("stream", "asyncio", "socket pair or thread: %s", strerror(-err));
		return err;
	}
	char fd[16], count[32], bytes[16];
	snprintf(fd, sizeof fd, "%d", sv[1]);
	snprintf(count, sizeof count, "%zu", lines);
	snprintf(bytes, sizeof bytes, "%d", STREAM_LINE_BYTES);
	char *argv[] = {(char *)python, (char *)script, (char *)"--fd", fd,
	                (char *)"--lines", count, (char *)"--bytes", bytes, NULL};
	int st = bench_run_child("stream", "asyncio", argv);
	stop_producer(&p, sv);
	return st == 0 ? 0 : -EPROTO;
}

/* ------------------------------------------------------------ the parent */

int bench_stream_run(const struct bench_opts *opts)
{
	const int rounds = BENCH_PICK(opts, 1, 3, 5);
	const size_t lines = BENCH_PICK(opts, (size_t)200000, (size_t)1000000, (size_t)5000000);
	static const struct {
		const char *impl;
		uco_fn fn;
	} ucos[] = {
		{"uco", read_stream},
		{"uco-bufring", read_stream_bufring},
		{"recv-parse", read_recv_parse},
		{"recv-stream-parse", read_recv_stream_parse},
	};
	char *python = bench_find_in_path("python3");
	char *script = bench_find_peer_file("stream_asyncio.py");
	int ret = 0;

	if (!python)
		bench_skip("stream", "asyncio", "python3 is not in PATH");
	else if (!script)
		bench_skip("stream", "asyncio", "peers/stream_asyncio.py is neither "
		           "next to uco-bench nor in the data directory");

	for (int r = 0; r < rounds; r++) {
		char what[32];
		snprintf(what, sizeof what, "round %d/%d", r + 1, rounds);
		for (size_t i = 0; i < sizeof ucos / sizeof ucos[0]; i++) {
			double rate = 0;
			bench_progress("stream", ucos[i].impl, what);
			if (run_uco(ucos[i].impl, ucos[i].fn, lines, &rate) < 0)
				ret = -EPROTO;
			else
				bench_emit("stream", ucos[i].impl, "lines_per_s", rate, "lines/s");
		}
		if (python && script) {
			bench_progress("stream", "asyncio", what);
			if (run_asyncio(python, script, lines) < 0)
				ret = -EPROTO;
		}
	}
	free(python);
	free(script);
	return ret;
}
