/* SPDX-License-Identifier: MIT */
/* Buffered streams on real socket pairs and pipes: every boundary of
 * readuntil/readline (a separator split at each byte, the limit and one
 * over, end of file mid-record, empty lines), readexactly short at end of
 * file, cancels and deadlines at each step with every byte accounted for,
 * drain's back-pressure against a peer that does not read, close. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* Criterion passes a test whose worker LeakSanitizer reports at exit: ask
 * it once the loop is closed instead. */
static void close_checked(uco_loop *loop)
{
	test_close(loop);
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
}
#define test_close close_checked
#endif

/* Read tests run on each kind; BUFRING is a socket read through a ring of
 * small provided buffers (opts.bufring). */
enum kind { SOCKET, PIPE, BUFRING, KINDS };
static const char *const kind_name[] = { "socket", "pipe", "socket+bufring" };

/* fd[0]: the stream's end; fd[1]: the peer's.  A socket pair is both ways;
 * a pipe only one, so a write test makes the stream the writing end. */
static void make_pair(enum kind k, int fd[2], bool stream_writes)
{
	if (k != PIPE) {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
		return;
	}
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	fd[0] = stream_writes ? p[1] : p[0];
	fd[1] = stream_writes ? p[0] : p[1];
}

static void put(int fd, const void *data, size_t n)
{
	cr_assert_eq(write(fd, data, n), (ssize_t)n);
}

struct rec {
	enum kind kind;
	int fd[2];
	uco_stream *s;
	uco_stream_opts opts;
	const char *sep;
	size_t seplen, want;
	/* What the reader got. */
	char got[4][256];
	ssize_t n[4];
	int calls;
	int interrupted; /* -ECANCELED / -ETIMEDOUT returns seen */
	bool reader_waiting;
};

static void open_stream(struct rec *r, bool stream_writes)
{
	make_pair(r->kind, r->fd, stream_writes);
	if (r->kind == BUFRING) {
		/* Left to uco_loop_close() to free, with the stream's receive. */
		int err = uco_bufring_create(r->opts.loop, &r->opts.bufring, 8, 4096);
		if (err == -EOPNOTSUPP || err == -EINVAL)
			cr_skip_test("no provided buffer rings here");
		cr_assert_eq(err, 0, "uco_bufring_create: %d", err);
	}
	int err = uco_stream_open(&r->s, r->fd[0], &r->opts);
	cr_assert_eq(err, 0, "uco_stream_open: %d", err);
}

/* Run task(r) with r->kind = k on a fresh loop, to its end. */
static void run_on(struct rec *r, int k, uco_fn task)
{
	uco_loop *loop = test_loop();
	r->kind = (enum kind)k;
	cr_assert_eq(uco_spawn(loop, NULL, task, r), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	test_close(loop);
}

static void keep(struct rec *r, int i, const char *data, ssize_t n)
{
	r->n[i] = n;
	if (n > 0)
		memcpy(r->got[i], data, (size_t)n);
}

/* ------------------------------------------------------------ readline */

static void *lines_task(void *arg)
{
	struct rec *r = arg;
	open_stream(r, false);
	put(r->fd[1], "first\n\nlast", 11);
	close(r->fd[1]);
	for (int i = 0; i < 4; i++) {
		const char *line = NULL;
		ssize_t n = uco_stream_readline(r->s, &line);
		keep(r, i, line, n);
	}
	cr_assert_eq(uco_stream_close(r->s), 0);
	return NULL;
}

Test(stream, readline_gives_lines_an_empty_one_and_a_last_one_without_newline)
{
	for (int k = 0; k < KINDS; k++) {
		struct rec r = { 0 };
		run_on(&r, k, lines_task);
		cr_assert_eq(r.n[0], 6, "%s", kind_name[k]);
		cr_assert_arr_eq(r.got[0], "first\n", 6);
		cr_assert_eq(r.n[1], 1);
		cr_assert_arr_eq(r.got[1], "\n", 1);
		cr_assert_eq(r.n[2], 4, "at end of file the last line comes as it is");
		cr_assert_arr_eq(r.got[2], "last", 4);
		cr_assert_eq(r.n[3], 0, "then end of file");
		cr_assert_eq(fcntl(r.fd[0], F_GETFD), -1, "close closed the descriptor");
	}
}

/* ------------------------------------------------------------ split separators */

static void *split_reader(void *arg)
{
	struct rec *r = arg;
	const char *rec;
	ssize_t n = uco_stream_readuntil(r->s, r->sep, r->seplen, &rec);
	keep(r, 0, rec, n);
	r->calls++;
	return NULL;
}

/* record = "key=value" + sep, written in two parts split at `cut` (or one
 * byte at a time with cut 0), each part received on its own. */
static void run_split(enum kind k, const char *sep, size_t cut)
{
	uco_loop *loop = test_loop();
	struct rec r = { .kind = k, .sep = sep, .seplen = strlen(sep), .opts.loop = loop };
	open_stream(&r, false);
	char record[64];
	size_t len = (size_t)snprintf(record, sizeof record, "key=value%s", sep);
	cr_assert_eq(uco_spawn(loop, NULL, split_reader, &r), 0);
	/* The feeding happens here, between turns of the loop. */
	size_t at = 0;
	while (at < len) {
		size_t step = cut ? (at < cut ? cut - at : len - at) : 1;
		put(r.fd[1], record + at, step);
		at += step;
		/* Run the loop until the reader has buffered what was sent (or
		 * has returned, after the last part). */
		while (r.calls == 0 && uco_stream_buffered(r.s, NULL) < (ssize_t)at) {
			uco_loop_stop(loop);
			uco_loop_run(loop);
		}
	}
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(r.n[0], (ssize_t)len, "%s, sep %zu bytes, cut %zu: %zd", kind_name[k],
	             strlen(sep), cut, r.n[0]);
	cr_assert_arr_eq(r.got[0], record, len);
	cr_assert_eq(uco_stream_buffered(r.s, NULL), 0);
	uco_stream_close(r.s);
	close(r.fd[1]);
	test_close(loop);
}

Test(stream, a_separator_split_across_receives_at_every_byte_is_found)
{
	static const char *const seps[] = { "\n", "\r\n", "\r\n\r\n", "--END--" };
	for (int k = 0; k < KINDS; k++)
		for (size_t i = 0; i < sizeof seps / sizeof seps[0]; i++) {
			size_t len = strlen("key=value") + strlen(seps[i]);
			for (size_t cut = 0; cut < len; cut++)
				run_split((enum kind)k, seps[i], cut);
		}
}

/* ------------------------------------------------------------ the limit */

static void *limit_task(void *arg)
{
	struct rec *r = arg;
	open_stream(r, false);
	const char *rec;
	/* Exactly the limit (8) before the separator: fine. */
	put(r->fd[1], "12345678\r\n", 10);
	keep(r, 0, rec, uco_stream_readuntil(r->s, "\r\n", 2, &rec));
	/* One over: -EMSGSIZE, and every byte stays. */
	put(r->fd[1], "123456789\r\nok\r\n", 15);
	r->n[1] = uco_stream_readuntil(r->s, "\r\n", 2, &rec);
	const char *data;
	ssize_t b = uco_stream_buffered(r->s, &data);
	cr_assert_geq(b, 10);
	cr_assert_arr_eq(data, "123456789\r", 10, "the bytes over the limit are kept");
	/* No separator yet and limit + seplen bytes buffered: -EMSGSIZE
	 * without waiting for more. */
	cr_assert_eq(uco_stream_consume(r->s, 11), 0);
	keep(r, 2, rec, uco_stream_readuntil(r->s, "\r\n", 2, &rec));
	put(r->fd[1], "abcdefghij", 10);
	r->n[3] = uco_stream_readline(r->s, &rec);
	cr_assert_eq(uco_stream_buffered(r->s, &data), 10);
	cr_assert_arr_eq(data, "abcdefghij", 10);
	cr_assert_eq(uco_stream_consume(r->s, 11), -EINVAL);
	cr_assert_eq(uco_stream_consume(r->s, 10), 0);
	/* readline at the limit, and one over. */
	put(r->fd[1], "abcdefgh\nabcdefghi\n", 19);
	ssize_t n = uco_stream_readline(r->s, &rec);
	cr_assert_eq(n, 9);
	cr_assert_arr_eq(rec, "abcdefgh\n", 9);
	cr_assert_eq(uco_stream_readline(r->s, &rec), -EMSGSIZE);
	cr_assert_eq(uco_stream_buffered(r->s, &data), 10);
	cr_assert_arr_eq(data, "abcdefghi\n", 10);
	cr_assert_eq(uco_stream_close(r->s), 0);
	close(r->fd[1]);
	return NULL;
}

Test(stream, records_up_to_the_limit_pass_and_one_byte_over_is_EMSGSIZE_with_the_data_kept)
{
	for (int k = 0; k < KINDS; k++) {
		struct rec r = { .opts.limit = 8 };
		run_on(&r, k, limit_task);
		cr_assert_eq(r.n[0], 10, "%s: %zd", kind_name[k], r.n[0]);
		cr_assert_arr_eq(r.got[0], "12345678\r\n", 10);
		cr_assert_eq(r.n[1], -EMSGSIZE);
		cr_assert_eq(r.n[2], 4);
		cr_assert_arr_eq(r.got[2], "ok\r\n", 4);
		cr_assert_eq(r.n[3], -EMSGSIZE, "9 bytes and no newline: over the limit already");
	}
}

/* ------------------------------------------------------------ end of file */

static void *eof_task(void *arg)
{
	struct rec *r = arg;
	open_stream(r, false);
	put(r->fd[1], "hello", 5);
	close(r->fd[1]);
	char buf[16] = { 0 };
	const char *rec;
	cr_assert_eq(uco_stream_readexactly(r->s, buf, 3), 3);
	cr_assert_arr_eq(buf, "hel", 3);
	cr_assert_eq(uco_stream_readexactly(r->s, buf, 5), -ENODATA);
	const char *data;
	cr_assert_eq(uco_stream_buffered(r->s, &data), 2, "the partial bytes stay");
	cr_assert_arr_eq(data, "lo", 2);
	cr_assert_eq(uco_stream_readuntil(r->s, "\n", 1, &rec), -ENODATA);
	cr_assert_eq(uco_stream_buffered(r->s, NULL), 2);
	cr_assert_eq(uco_stream_read(r->s, buf, sizeof buf), 2);
	cr_assert_arr_eq(buf, "lo", 2);
	cr_assert_eq(uco_stream_readexactly(r->s, buf, 5), 0, "clean end of file");
	cr_assert_eq(uco_stream_readuntil(r->s, "\n", 1, &rec), 0);
	cr_assert_eq(uco_stream_readline(r->s, &rec), 0);
	cr_assert_eq(uco_stream_read(r->s, buf, sizeof buf), 0);
	cr_assert_eq(uco_stream_readexactly(r->s, buf, 0), 0);
	cr_assert_eq(uco_stream_close(r->s), 0);
	return NULL;
}

Test(stream, readexactly_short_at_end_of_file_is_ENODATA_and_keeps_the_bytes)
{
	for (int k = 0; k < KINDS; k++)
		run_on(&(struct rec){ 0 }, k, eof_task);
}

/* read(n) and large reads straight into the caller's buffer. */
static void *read_task(void *arg)
{
	struct rec *r = arg;
	open_stream(r, false);
	enum { BIG = 200 * 1024 };
	unsigned char *big = malloc(BIG), *back = malloc(BIG);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (unsigned char)(i * 7 + 1);
	/* The peer writes what fits, without blocking, between reads. */
	size_t sent = 0, got = 0;
	int fl = fcntl(r->fd[1], F_GETFL);
	fcntl(r->fd[1], F_SETFL, fl | O_NONBLOCK);
	while (got < BIG) {
		if (sent < BIG) {
			ssize_t n = write(r->fd[1], big + sent, BIG - sent);
			if (n > 0)
				sent += (size_t)n;
		}
		size_t want = got % 3 == 0 ? 100 : BIG - got; /* small and large reads */
		ssize_t n = uco_stream_read(r->s, back + got, want);
		cr_assert_gt(n, 0);
		got += (size_t)n;
	}
	cr_assert_arr_eq(back, big, BIG);
	free(big);
	free(back);
	cr_assert_eq(uco_stream_close(r->s), 0);
	close(r->fd[1]);
	return NULL;
}

Test(stream, read_returns_what_is_there_in_order)
{
	for (int k = 0; k < KINDS; k++)
		run_on(&(struct rec){ 0 }, k, read_task);
}

/* A read smaller than what one receive brought: the rest stays buffered
 * for every kind of call after it, whether the receive came through a
 * read, a readline or a readexactly. */
static void *short_reads_task(void *arg)
{
	struct rec *r = arg;
	open_stream(r, false);
	char buf[16];
	const char *data, *rec;
	for (int round = 0; round < 3; round++) {
		put(r->fd[1], "abcdef\nghij\n", 12);
		/* One small write: one receive brings it whole. */
		cr_assert_eq(uco_stream_readexactly(r->s, buf, 1), 1);
		cr_assert_eq(buf[0], 'a');
		cr_assert_eq(uco_stream_buffered(r->s, NULL), 11);
		cr_assert_eq(uco_stream_read(r->s, buf, 2), 2);
		cr_assert_arr_eq(buf, "bc", 2);
		cr_assert_eq(uco_stream_readline(r->s, &rec), 4);
		cr_assert_arr_eq(rec, "def\n", 4);
		/* Now nothing is buffered: the next read takes a fresh chunk
		 * and keeps its rest. */
		cr_assert_eq(uco_stream_buffered(r->s, NULL), 5);
		cr_assert_eq(uco_stream_read(r->s, buf, 5), 5);
		put(r->fd[1], "klmnop", 6);
		cr_assert_eq(uco_stream_read(r->s, buf, 2), 2);
		cr_assert_arr_eq(buf, "kl", 2);
		cr_assert_eq(uco_stream_buffered(r->s, &data), 4, "%s: the rest of the chunk",
		             kind_name[r->kind]);
		cr_assert_arr_eq(data, "mnop", 4);
		cr_assert_eq(uco_stream_readexactly(r->s, buf, 4), 4);
		cr_assert_arr_eq(buf, "mnop", 4);
	}
	cr_assert_eq(uco_stream_close(r->s), 0);
	close(r->fd[1]);
	return NULL;
}

Test(stream, a_read_smaller_than_a_receive_keeps_the_rest_buffered)
{
	for (int k = 0; k < KINDS; k++)
		run_on(&(struct rec){ 0 }, k, short_reads_task);
}

/* ------------------------------------------------------------ cancel and deadlines */

/* readuntil(sep), or readexactly(want) without a separator, called again
 * after each interruption: every odd call has a 1 ms deadline. */
static void *interrupted_reader(void *arg)
{
	struct rec *r = arg;
	for (;;) {
		const char *rec = NULL;
		int64_t deadline = r->calls % 2 ? uco_now() + MS(1) : UCO_FOREVER;
		r->reader_waiting = true;
		ssize_t n = r->sep ? uco_stream_readuntil_dl(r->s, r->sep, r->seplen, &rec, deadline)
		                   : uco_stream_readexactly_dl(r->s, r->got[0], r->want, deadline);
		r->reader_waiting = false;
		r->calls++;
		if (n == -ECANCELED || n == -ETIMEDOUT) {
			r->interrupted++;
			continue;
		}
		if (rec)
			keep(r, 0, rec, n);
		r->n[0] = n;
		return NULL;
	}
}

/* After every byte of a record: the reader is cancelled, or its deadline
 * passes, and the next call still gets the whole record. */
static void run_interrupts(enum kind k, const char *sep, const char *record)
{
	uco_loop *loop = test_loop();
	size_t len = strlen(record);
	struct rec r = { .kind = k, .sep = sep, .seplen = sep ? strlen(sep) : 0, .want = len,
	                 .opts.loop = loop };
	open_stream(&r, false);
	uco_task *reader;
	cr_assert_eq(uco_spawn(loop, &reader, interrupted_reader, &r), 0);
	for (size_t at = 0; at < len; at++) {
		put(r.fd[1], record + at, 1);
		if (at == len - 1)
			break;
		/* Until the byte is in the stream and the reader waits again. */
		while (uco_stream_buffered(r.s, NULL) < (ssize_t)(at + 1) || !r.reader_waiting) {
			uco_loop_stop(loop);
			uco_loop_run(loop);
		}
		int calls = r.calls, before = r.interrupted;
		if (calls % 2 == 0)
			cr_assert_eq(uco_task_cancel(reader), 0);
		/* (odd calls have a 1 ms deadline: it passes by itself) */
		while (r.calls == calls) {
			uco_loop_stop(loop);
			uco_loop_run(loop);
		}
		cr_assert_gt(r.interrupted, before, "%s: the reader was not interrupted",
		             kind_name[k]);
		cr_assert_eq(uco_stream_buffered(r.s, NULL), (ssize_t)(at + 1),
		             "an interrupted read kept every byte");
	}
	cr_assert_eq(uco_loop_run_until(loop, reader, NULL), 0);
	uco_task_release(reader);
	cr_assert_eq(r.n[0], (ssize_t)len, "%s: %zd", kind_name[k], r.n[0]);
	cr_assert_arr_eq(r.got[0], record, len);
	cr_assert_eq(uco_stream_close(r.s), 0);
	close(r.fd[1]);
	test_close(loop);
}

Test(stream, cancels_and_deadlines_at_each_byte_lose_nothing)
{
	for (int k = 0; k < KINDS; k++) {
		run_interrupts((enum kind)k, "\n", "SET key value\n");
		run_interrupts((enum kind)k, "\r\n", "SET key value\r\n");
	}
}

Test(stream, an_interrupted_readexactly_keeps_the_bytes)
{
	for (int k = 0; k < KINDS; k++)
		run_interrupts((enum kind)k, NULL, "abcdefgh");
}

/* A deadline already past with a record buffered: the record. */
static void *past_deadline(void *arg)
{
	struct rec *r = arg;
	open_stream(r, false);
	put(r->fd[1], "a\nb", 3);
	const char *rec;
	/* With a bufring, try-once sees what the multishot receive has
	 * delivered by the last turn of the loop: maybe nothing yet. */
	cr_assert_eq(uco_stream_readline_dl(r->s, &rec, r->kind == BUFRING ? UCO_FOREVER : 0), 2,
	             "data ready: try once gets it");
	cr_assert_eq(uco_stream_readline_dl(r->s, &rec, 0), -ETIMEDOUT);
	cr_assert_eq(uco_stream_readline_dl(r->s, &rec, uco_now() - 1), -ETIMEDOUT);
	cr_assert_eq(uco_stream_buffered(r->s, NULL), 1);
	put(r->fd[1], "\n", 1);
	cr_assert_eq(uco_stream_readline_dl(r->s, &rec, uco_now() + UCO_NS_PER_S), 2);
	cr_assert_arr_eq(rec, "b\n", 2);
	cr_assert_eq(uco_stream_close(r->s), 0);
	close(r->fd[1]);
	return NULL;
}

Test(stream, deadline_zero_tries_once)
{
	for (int k = 0; k < KINDS; k++)
		run_on(&(struct rec){ 0 }, k, past_deadline);
}

/* ------------------------------------------------------------ writing and drain */

enum { BULK = 1 << 20 };

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 31 + (i >> 11));
}

struct drain_case {
	enum kind kind;
	int fd[2];
	uco_stream *s;
	int timed_out, cancelled_drain, drained, closed;
	size_t unsent_after_cancel;
	size_t got;
	bool intact, peer_eof;
	bool go; /* the peer may read */
};

static void *drain_peer(void *arg)
{
	struct drain_case *c = arg;
	while (!c->go)
		uco_sleep(MS(1));
	unsigned char *buf = malloc(65536);
	c->intact = true;
	for (;;) {
		/* Wait through the ring, read with read(2): Valgrind sees what
		 * read(2) writes, not what io_uring does. */
		cr_assert_gt(uco_poll(c->fd[1], POLLIN), 0);
		ssize_t n = read(c->fd[1], buf, 65536);
		cr_assert_geq(n, 0, "peer read: %zd", n);
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern(c->got + (size_t)i))
				c->intact = false;
		c->got += (size_t)n;
	}
	c->peer_eof = true;
	free(buf);
	return NULL;
}

static void *drain_blocked(void *arg)
{
	struct drain_case *c = arg;
	c->cancelled_drain = uco_stream_drain(c->s);
	return NULL;
}

static void *drain_writer(void *arg)
{
	struct drain_case *c = arg;
	uco_stream_opts o = { .hwm = 64 * 1024 };
	int err = uco_stream_open(&c->s, c->fd[0], &o);
	cr_assert_eq(err, 0);
	unsigned char chunk[4096];
	size_t at;
	for (at = 0; at < BULK - sizeof chunk; at += sizeof chunk) {
		for (size_t i = 0; i < sizeof chunk; i++)
			chunk[i] = pattern(at + i);
		cr_assert_eq(uco_stream_write(c->s, chunk, sizeof chunk), (ssize_t)sizeof chunk);
	}
	/* The peer reads nothing: back-pressure. */
	c->timed_out = uco_stream_drain_dl(c->s, uco_now() + MS(20));
	cr_assert_gt(uco_stream_write_buffered(c->s), 64 * 1024 / 4);
	/* A drain in another task, cancelled. */
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, drain_blocked, c), 0);
	uco_yield(); /* it runs, and waits in drain */
	uco_yield();
	size_t before = uco_stream_write_buffered(c->s);
	cr_assert_eq(uco_stream_close(c->s), -EBUSY, "a task is in drain");
	uco_task_cancel(t);
	uco_await(t, NULL);
	uco_task_release(t);
	c->unsent_after_cancel = uco_stream_write_buffered(c->s);
	cr_assert_eq(c->unsent_after_cancel, before, "the cancel dropped nothing");
	/* Writes after the cancel queue behind (the peer checks the order). */
	cr_assert_eq(uco_stream_write(c->s, "", 0), 0);
	for (size_t i = 0; i < sizeof chunk; i++)
		chunk[i] = pattern(at + i);
	cr_assert_eq(uco_stream_write(c->s, chunk, sizeof chunk), (ssize_t)sizeof chunk);
	c->go = true;
	c->drained = uco_stream_drain(c->s);
	cr_assert_leq(uco_stream_write_buffered(c->s), 64 * 1024 / 4);
	c->closed = uco_stream_close(c->s);
	return NULL;
}

Test(stream, drain_applies_back_pressure_and_a_cancelled_drain_keeps_the_bytes)
{
	for (int k = 0; k < 2; k++) {
		uco_loop *loop = test_loop();
		struct drain_case c = { .kind = (enum kind)k };
		make_pair(c.kind, c.fd, true);
		if (k == SOCKET) {
			int small = 4096;
			setsockopt(c.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
			setsockopt(c.fd[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
		} else {
			fcntl(c.fd[0], F_SETPIPE_SZ, 4096);
		}
		cr_assert_eq(uco_spawn(loop, NULL, drain_writer, &c), 0);
		cr_assert_eq(uco_spawn(loop, NULL, drain_peer, &c), 0);
		cr_assert_eq(uco_loop_run(loop), 0);
		cr_assert_eq(c.timed_out, -ETIMEDOUT, "%s: %d", kind_name[k], c.timed_out);
		cr_assert_eq(c.cancelled_drain, -ECANCELED);
		cr_assert_eq(c.drained, 0);
		cr_assert_eq(c.closed, 0);
		cr_assert(c.peer_eof, "close closed the descriptor");
		cr_assert_eq(c.got, BULK, "%s: the peer got %zu bytes", kind_name[k], c.got);
		cr_assert(c.intact, "every byte in order");
		close(c.fd[1]);
		test_close(loop);
	}
}

/* close flushes, with the descriptor kept or not. */
static void *close_flushes(void *arg)
{
	struct rec *r = arg;
	open_stream(r, true);
	cr_assert_eq(uco_stream_write(r->s, "bye\n", 4), 4);
	cr_assert_eq(uco_stream_fd(r->s), r->fd[0]);
	cr_assert_eq(uco_stream_close(r->s), 0);
	return NULL;
}

Test(stream, close_flushes_and_closes_the_descriptor_unless_kept)
{
	for (int k = 0; k < 2; k++)
		for (int keep_fd = 0; keep_fd < 2; keep_fd++) {
			struct rec r = { .opts.flags = keep_fd ? UCO_STREAM_KEEP_FD : 0 };
			run_on(&r, k, close_flushes);
			char buf[8];
			cr_assert_eq(read(r.fd[1], buf, sizeof buf), 4);
			cr_assert_arr_eq(buf, "bye\n", 4);
			cr_assert_eq(fcntl(r.fd[0], F_GETFD) >= 0, keep_fd, "%s keep %d", kind_name[k],
			             keep_fd);
			if (keep_fd)
				close(r.fd[0]);
			close(r.fd[1]);
		}
}

/* A peer that is gone: the send error, once the writer finds out. */
static void *peer_gone(void *arg)
{
	struct rec *r = arg;
	open_stream(r, true);
	close(r->fd[1]);
	enum { CHUNK = 65536 };
	char *chunk = calloc(1, CHUNK);
	ssize_t n = 0;
	int drain = 0;
	for (int i = 0; i < 64 && n >= 0; i++) {
		n = uco_stream_write(r->s, chunk, CHUNK);
		if (n >= 0)
			drain = uco_stream_drain(r->s);
		if (drain < 0)
			break;
	}
	free(chunk);
	cr_assert(drain == -EPIPE || drain == -ECONNRESET || n == -EPIPE, "drain %d write %zd",
	          drain, n);
	cr_assert(uco_stream_write(r->s, "x", 1) < 0, "the writer stays stopped");
	int c = uco_stream_close(r->s);
	cr_assert(c == -EPIPE || c == -ECONNRESET, "close: %d", c);
	return NULL;
}

Test(stream, a_peer_that_is_gone_stops_the_writer_with_its_error)
{
	signal(SIGPIPE, SIG_IGN); /* the pipe's write raises it */
	for (int k = 0; k < 2; k++)
		run_on(&(struct rec){ 0 }, k, peer_gone);
}

/* A close whose flush cannot finish: -ETIMEDOUT, the handle is gone (the
 * send in flight is cancelled and the stream freed at its completion). */
static void *close_times_out(void *arg)
{
	struct rec *r = arg;
	open_stream(r, true);
	size_t n = 1 << 20;
	char *big = calloc(1, n);
	cr_assert_eq(uco_stream_write(r->s, big, n), (ssize_t)n);
	free(big);
	cr_assert_eq(uco_stream_close_dl(r->s, uco_now() + MS(5)), -ETIMEDOUT);
	return NULL;
}

Test(stream, a_close_that_cannot_flush_times_out_and_frees_the_stream)
{
	for (int k = 0; k < 2; k++) {
		uco_loop *loop = test_loop();
		struct rec r = { .kind = (enum kind)k };
		cr_assert_eq(uco_spawn(loop, NULL, close_times_out, &r), 0);
		cr_assert_eq(uco_loop_run(loop), 0);
		close(r.fd[1]); /* the cancelled send ends, if it had not */
		test_close(loop);
		/* The descriptor closes with the stream, at the send's end or
		 * with the loop. */
		cr_assert_eq(fcntl(r.fd[0], F_GETFD), -1);
	}
}

/* ------------------------------------------------------------ misuse */

static void *second_reader(void *arg)
{
	struct rec *r = arg;
	char c;
	r->n[1] = uco_stream_read(r->s, &c, 1);
	r->n[2] = uco_stream_close(r->s);
	return NULL;
}

static void *first_reader(void *arg)
{
	struct rec *r = arg;
	char c;
	r->n[0] = uco_stream_read(r->s, &c, 1);
	return NULL;
}

Test(stream, one_reader_at_a_time_and_no_close_under_a_reader)
{
	uco_loop *loop = test_loop();
	struct rec r = { .kind = SOCKET };
	make_pair(SOCKET, r.fd, false);
	cr_assert_eq(uco_stream_open(&r.s, r.fd[0], &(uco_stream_opts){ .loop = loop }), 0);
	uco_task *a;
	cr_assert_eq(uco_spawn(loop, &a, first_reader, &r), 0);
	cr_assert_eq(uco_spawn(loop, NULL, second_reader, &r), 0);
	uco_loop_stop(loop);
	uco_loop_run(loop);
	uco_loop_stop(loop);
	uco_loop_run(loop);
	cr_assert_eq(r.n[1], -EBUSY);
	cr_assert_eq(r.n[2], -EBUSY);
	put(r.fd[1], "x", 1);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_task_release(a);
	cr_assert_eq(r.n[0], 1);
	/* Outside a coroutine: reads refuse, close works (nothing to send). */
	char c;
	const char *line;
	cr_assert_eq(uco_stream_read(r.s, &c, 1), -EPERM);
	cr_assert_eq(uco_stream_readline(r.s, &line), -EPERM);
	cr_assert_eq(uco_stream_drain(r.s), -EPERM);
	cr_assert_eq(uco_stream_close(r.s), 0);
	close(r.fd[1]);
	test_close(loop);
}

Test(stream, bad_arguments)
{
	uco_loop *loop = test_loop();
	uco_stream *s;
	int fd[2];
	make_pair(SOCKET, fd, false);
	cr_assert_eq(uco_stream_open(NULL, fd[0], NULL), -EINVAL);
	cr_assert_eq(uco_stream_open(&s, -1, &(uco_stream_opts){ .loop = loop }), -EINVAL);
	cr_assert_eq(uco_stream_open(&s, fd[0], &(uco_stream_opts){ .loop = loop, .hwm = 10,
	                                                           .lwm = 11 }),
	             -EINVAL);
	cr_assert_eq(uco_stream_open(&s, fd[0], &(uco_stream_opts){ .loop = loop, .flags = 2 }),
	             -EINVAL);
	cr_assert_eq(uco_stream_open(&s, fd[0], &(uco_stream_opts){ .loop = loop,
	                                                           .reserved_[1] = 1 }),
	             -EINVAL);
	cr_assert_eq(uco_stream_open(&s, 1000, &(uco_stream_opts){ .loop = loop }), -EBADF);
	cr_assert_eq(uco_stream_open(&s, fd[0], NULL), -EINVAL, "no loop running here");
	cr_assert_eq(uco_stream_write(NULL, "x", 1), -EINVAL);
	cr_assert_eq(uco_stream_close(NULL), -EINVAL);
	cr_assert_eq(uco_stream_fd(NULL), -EINVAL);
	cr_assert_eq(uco_stream_buffered(NULL, NULL), -EINVAL);
	/* Left open: uco_loop_close frees it and closes its descriptor. */
	cr_assert_eq(uco_stream_open(&s, fd[0], &(uco_stream_opts){ .loop = loop }), 0);
	cr_assert_eq(uco_stream_write(s, "left", 4), 4);
	test_close(loop);
	cr_assert_eq(fcntl(fd[0], F_GETFD), -1);
	close(fd[1]);
}

/* After a cancelled read the task carries on: a write and a close that
 * flushes work (the cancellation was delivered once). */
static void *cancelled_then_closes(void *arg)
{
	struct rec *r = arg;
	open_stream(r, false);
	const char *line;
	r->n[0] = uco_stream_readline(r->s, &line);
	r->n[1] = uco_stream_write(r->s, "bye\n", 4);
	r->n[2] = uco_stream_close(r->s);
	return NULL;
}

Test(stream, a_task_cancelled_in_readline_can_still_write_and_close)
{
	uco_loop *loop = test_loop();
	struct rec r = { .kind = SOCKET };
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, cancelled_then_closes, &r), 0);
	uco_loop_stop(loop);
	uco_loop_run(loop); /* it waits in readline */
	cr_assert_eq(uco_task_cancel(t), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_task_release(t);
	cr_assert_eq(r.n[0], -ECANCELED);
	cr_assert_eq(r.n[1], 4);
	cr_assert_eq(r.n[2], 0);
	char buf[8];
	cr_assert_eq(read(r.fd[1], buf, sizeof buf), 4);
	cr_assert_arr_eq(buf, "bye\n", 4);
	cr_assert_eq(read(r.fd[1], buf, sizeof buf), 0, "and the socket is closed");
	close(r.fd[1]);
	test_close(loop);
}

/* Streams over TLS are tested in test_tls.c; here, what every build
 * says: a libuco without OpenSSL refuses them with -ENOTSUP. */
Test(stream, open_tls_is_enotsup_without_tls_and_wants_a_connection_with_it)
{
	uco_stream *s = NULL;
	cr_assert_eq(uco_stream_open_tls(&s, NULL, NULL), UCO_HAVE_TLS ? -EINVAL : -ENOTSUP);
	cr_assert_null(s);
}
