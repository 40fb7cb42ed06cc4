/* SPDX-License-Identifier: MIT */
/*
 * uco-lat: a latency load generator built on uco.
 *
 *   uco-lat [options] HOST:PORT              TCP echo ping-pong
 *   uco-lat [options] http://HOST[:PORT]/PATH  HTTP/1.1 GET
 *   https://HOST[:PORT]/PATH, tls://HOST:PORT   the same over TLS (uco_tls)
 *
 * Each connection is two coroutines: a sender that puts requests on the
 * wire (as fast as answers come back in a closed loop; at scheduled times
 * in an open loop) and a receiver that reads the answers in order, checks
 * them and records each latency; with one request in flight, one coroutine
 * does both in turn.  In an open loop (--rate) latency counts from the
 * time a request *should* have been sent, as wrk2 does, so a stalled
 * server cannot hide its stall by holding back the load (coordinated
 * omission).  The schedule is kept by one pacer per loop, which wakes on
 * one shared tick and hands each connection the requests that have come
 * due: a timer per tick, not one (or two) per request, which at tens of
 * thousands of requests a second cost the client more CPU than the server
 * it measured.  The target is resolved with uco_getaddrinfo(), on the
 * loop's executor.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uco.h>

#include "lat.h"

/* ---------------------------------------------------------------- the run */

/* https:// and tls:// targets: one client context for every thread
 * (--tls-ca, --tls-insecure). */
static uco_tls_ctx *tls_ctx;
static const char *tls_ca;
static bool tls_wanted, tls_insecure;

struct lat_thread;

struct run {
	struct lat_config cfg;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int64_t measure_from, end; /* uco_now() times */
	double ns_per_request;     /* open loop: 1e9 / rate */
	struct lat_thread *threads;
	int interrupted;           /* Ctrl-C, or a loop failed: __atomic */
	/* getrusage(RUSAGE_SELF) at the start and the end of the measured
	 * interval, taken by thread 0's controller. */
	struct rusage cpu_from, cpu_to;
};

struct lat_thread {
	struct run *run;
	unsigned index, first_conn, nconn;
	pthread_t thread;
	int err;                 /* of its loop: create, setup or run */
	const char *backend, *backend_why; /* uco_loop_backend() */
	uco_task **conns;
	/* Open loop: the pacer starts the schedule at t0, once every
	 * connection has tried its first connect (`connecting` left). */
	uco_task *pacer;
	uco_event connected;
	unsigned connecting;
	int64_t t0;
	struct conn *conn_mem; /* freed by main once the threads are done */
	bool stopping;
	hdr latency;
	/* Written by this thread only; read by thread 0's progress line. */
	uint64_t requests, errors, bad, bytes, bytes_sent, reconnects;
	uint64_t rng; /* churn draws */
	int64_t max_send_lag;
	/* Checked against the received echo bytes. */
	char *pattern;
	char *request; /* HTTP: the request, `pipeline` times over */
	size_t request_len;
};

/* One TCP connection: the schedule outlives reconnects, the rest does not. */
struct conn {
	struct lat_thread *th;
	unsigned index; /* among all connections */
	int fd;
	uco_tls *tls;        /* https:// and tls:// */
	/* Open loop: requests the pacer found due (released) that this
	 * connection has not sent yet, and how many it has taken. */
	uco_sem due;
	uint64_t scheduled;
	bool tried;          /* its first connect was attempted */
	uco_sem slots;       /* requests that may still be sent */
	int64_t *sent_at;    /* per slot, when its request was (due to be) sent */
	uint64_t sent, received;
	bool closing;        /* no more requests: the server said Connection:
	                      * close, or churn chose this connection */
	char *tx;
	struct rxbuf {
		char *p;
		size_t cap, head, tail;
	} rx;
};

static void count(uint64_t *counter, uint64_t n)
{
	__atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- receiving */

/* At least `need` bytes between head and tail: 0, or -ECONNRESET at
 * end-of-file, or the receive's error. */
static int rx_need(struct conn *c, struct rxbuf *b, size_t need)
{
	while (b->tail - b->head < need) {
		if (b->head == b->tail) {
			b->head = b->tail = 0;
		} else if (b->cap - b->head < need || b->tail == b->cap) {
			memmove(b->p, b->p + b->head, b->tail - b->head);
			b->tail -= b->head;
			b->head = 0;
		}
		if (need > b->cap)
			return -E2BIG;
		ssize_t n = c->tls ? uco_tls_read(c->tls, b->p + b->tail, b->cap - b->tail)
		                   : uco_recv(c->fd, b->p + b->tail, b->cap - b->tail, 0);
		if (n <= 0)
			return n ? (int)n : -ECONNRESET;
		b->tail += (size_t)n;
	}
	return 0;
}

/* Echo: the next message must be the one sent, byte for byte. */
static int receive_echo(struct conn *c)
{
	struct lat_thread *th = c->th;
	size_t size = th->run->cfg.size;
	int err = rx_need(c, &c->rx, size);
	if (err)
		return err;
	const char *got = c->rx.p + c->rx.head;
	uint64_t seq = c->received;
	size_t head = size < sizeof seq ? size : sizeof seq;
	if (memcmp(got, &seq, head) || memcmp(got + head, th->pattern + head, size - head))
		count(&th->bad, 1);
	c->rx.head += size;
	count(&th->bytes, size);
	return 0;
}

/* The header fields an answer is read by, in the order of `fields`. */
enum { F_TRANSFER_ENCODING, F_CONTENT_LENGTH, F_CONNECTION, F_COUNT };

/* One pass over the head [p, end): each field's value, or NULL. */
static void find_headers(const char *p, const char *end, const char *value[F_COUNT])
{
	static const struct {
		const char *name;
		size_t len;
	} fields[F_COUNT] = {
		[F_TRANSFER_ENCODING] = { "transfer-encoding", 17 },
		[F_CONTENT_LENGTH] = { "content-length", 14 },
		[F_CONNECTION] = { "connection", 10 },
	};
	for (int f = 0; f < F_COUNT; f++)
		value[f] = NULL;
	for (const char *line = p; line < end;) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			return;
		for (int f = 0; f < F_COUNT; f++) {
			size_t len = fields[f].len;
			if ((*line | 0x20) == fields[f].name[0] && (size_t)(eol - line) > len &&
			    line[len] == ':' && strncasecmp(line, fields[f].name, len) == 0) {
				const char *v = line + len + 1;
				while (*v == ' ' || *v == '\t')
					v++;
				value[f] = v;
				break;
			}
		}
		line = eol + 1;
	}
}

/* HTTP: one whole response (headers, then a Content-Length body, which is
 * read and dropped).  Chunked answers are refused rather than misread. */
static int receive_http(struct conn *c)
{
	struct lat_thread *th = c->th;
	struct rxbuf *b = &c->rx;
	const char *hend;
	for (size_t need = 1;; need = b->tail - b->head + 1) {
		int err = rx_need(c, b, need);
		if (err)
			return err;
		hend = memmem(b->p + b->head, b->tail - b->head, "\r\n\r\n", 4);
		if (hend)
			break;
	}
	const char *p = b->p + b->head;
	hend += 4;
	if (hend - p < 12 || memcmp(p, "HTTP/1.", 7))
		return -EPROTO;
	int status = atoi(p + 9);
	if (status < 200 || status > 299)
		count(&th->bad, 1);
	const char *value[F_COUNT];
	find_headers(p, hend, value);
	const char *te = value[F_TRANSFER_ENCODING];
	if (te && strncasecmp(te, "chunked", 7) == 0)
		return -EPROTONOSUPPORT;
	const char *cl = value[F_CONTENT_LENGTH];
	uint64_t left = cl ? strtoull(cl, NULL, 10) : 0;
	const char *conn = value[F_CONNECTION];
	if (conn && strncasecmp(conn, "close", 5) == 0)
		c->closing = true;
	b->head += (size_t)(hend - p);
	count(&th->bytes, left);
	while (left) {
		if (b->head == b->tail) {
			int err = rx_need(c, b, 1);
			if (err)
				return err;
		}
		size_t take = b->tail - b->head < left ? b->tail - b->head : (size_t)left;
		b->head += take;
		left -= take;
	}
	return 0;
}

/* xorshift64: a uniform draw in [0, 1) for churn. */
static double chance(struct lat_thread *th)
{
	uint64_t x = th->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	th->rng = x;
	return (double)(x >> 11) / (double)(UINT64_C(1) << 53);
}

static void record(struct conn *c)
{
	struct lat_thread *th = c->th;
	unsigned depth = th->run->cfg.pipeline;
	int64_t now = uco_now();
	int64_t sent = c->sent_at[c->received % depth];
	c->received++;
	uco_sem_release(&c->slots);
	if (now >= th->run->measure_from && now < th->run->end) {
		hdr_record(&th->latency, now - sent);
		count(&th->requests, 1);
	}
}

/* ---------------------------------------------------------------- sending */

/* uco_sleep_until() ends up to 1/32 of the sleep late.  Where that could
 * be more than `slack`, sleep most of the way first, so that the last
 * stretch is short and the wake-up lands close to its time (a second
 * timer, so only then). */
static int sleep_until_within(int64_t when, int64_t slack)
{
	int64_t left = when - uco_now();
	if (left > 64 * 1000 && left / 32 > slack) {
		int err = uco_sleep_until(when - left / 16);
		if (err)
			return err;
	}
	return uco_sleep_until(when);
}

/* Open loop: the k-th request of connection c is the (k * connections +
 * c->index)-th of the whole schedule, which runs at `rate` from its
 * loop's t0: the connections take turns, evenly spaced. */
static int64_t due_time(const struct conn *c, uint64_t k)
{
	const struct lat_thread *th = c->th;
	const struct run *run = th->run;
	double n = (double)k * run->cfg.connections + c->index;
	return th->t0 + (int64_t)(n * run->ns_per_request);
}

/*
 * One per loop in an open loop: wakes when the next request is due (at
 * least --tick after its last wake-up), releases every request due by now
 * to its connection, and sleeps again.  One timer per tick serves every
 * connection, and the sends it releases go to the kernel together in the
 * loop's next submission.  Nothing is released before its time, so a
 * request is never sent early; the tick bounds how late one can be sent
 * while the client keeps up, and that lateness counts in its latency.
 */
static void *pacer(void *arg)
{
	struct lat_thread *th = arg;
	struct conn *conns = th->conn_mem;
	int64_t tick = (int64_t)(th->run->cfg.tick_us * 1e3);
	if (uco_event_wait(&th->connected))
		return NULL;
	th->t0 = uco_now();
	uint64_t k = 0;    /* the round of the connections' turns */
	unsigned turn = 0; /* whose turn in it */
	for (;;) {
		int64_t now = uco_now(), next;
		while ((next = due_time(&conns[turn], k)) <= now) {
			uco_sem_release(&conns[turn].due);
			if (++turn == th->nconn) {
				turn = 0;
				k++;
			}
		}
		if (next < now + tick)
			next = now + tick;
		if (sleep_until_within(next, tick))
			return NULL;
	}
}

/* Open loop: the due time of the request the pacer released that this
 * connection takes now (its `due` acquired), noting how late it goes out
 * when it is due in the measured interval. */
static int64_t took_due(struct conn *c)
{
	struct lat_thread *th = c->th;
	int64_t when = due_time(c, c->scheduled++);
	int64_t lag = uco_now() - when;
	if (lag > th->max_send_lag && when >= th->run->measure_from && when < th->run->end)
		th->max_send_lag = lag;
	return when;
}

static int send_all(struct conn *c, const char *p, size_t len)
{
	if (c->tls) {
		ssize_t n = uco_tls_write(c->tls, p, len);
		return n < 0 ? (int)n : 0;
	}
	int fd = c->fd;
	while (len) {
		ssize_t n = uco_send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Put the next `batch` requests on the wire in one send; the caller has
 * stamped their sent_at slots. */
static int put_requests(struct conn *c, unsigned batch)
{
	struct lat_thread *th = c->th;
	const struct lat_config *cfg = &th->run->cfg;
	size_t len;
	if (cfg->mode == LAT_ECHO) {
		len = batch * cfg->size;
		for (unsigned i = 0; i < batch; i++) {
			char *msg = c->tx + i * cfg->size;
			uint64_t seq = c->sent + i;
			size_t head = cfg->size < sizeof seq ? cfg->size : sizeof seq;
			memcpy(msg, &seq, head);
		}
	} else {
		len = batch * (th->request_len / cfg->pipeline);
	}
	c->sent += batch;
	count(&th->bytes_sent, len);
	return send_all(c, cfg->mode == LAT_ECHO ? c->tx : th->request, len);
}

/* The i-th request of the next send counts its latency from `when`. */
static void stamp(struct conn *c, unsigned i, int64_t when)
{
	c->sent_at[(c->sent + i) % c->th->run->cfg.pipeline] = when;
}

/* Take the slots that are free now (at least one, waiting for it), stamp
 * them, and put their requests on the wire in one send.  In an open loop
 * each request also waits for its due time, and those already due (a
 * backlog) go out together. */
static void *sender(void *arg)
{
	struct conn *c = arg;
	struct lat_thread *th = c->th;
	const struct lat_config *cfg = &th->run->cfg;
	for (;;) {
		int err = uco_sem_acquire(&c->slots);
		if (err)
			return uco_fail(err);
		if (c->closing)
			return NULL;
		unsigned batch = 1;
		int64_t when;
		if (cfg->rate > 0) {
			if ((err = uco_sem_acquire(&c->due))) {
				uco_sem_release(&c->slots);
				return uco_fail(err);
			}
			stamp(c, 0, took_due(c));
			while (batch < cfg->pipeline && uco_sem_tryacquire(&c->slots) == 0) {
				if (uco_sem_tryacquire(&c->due)) {
					uco_sem_release(&c->slots);
					break;
				}
				stamp(c, batch++, took_due(c));
			}
		} else {
			while (batch < cfg->pipeline && uco_sem_tryacquire(&c->slots) == 0)
				batch++;
			when = uco_now();
			for (unsigned i = 0; i < batch; i++)
				stamp(c, i, when);
		}
		if ((err = put_requests(c, batch))) {
			/* Wake the receiver: the connection is finished. */
			shutdown(c->fd, SHUT_RDWR);
			return uco_fail(err);
		}
	}
}

/* One request at a time: no second coroutine, the same send-then-receive
 * a blocking client does (sockperf's ping-pong), which saves a hand-over
 * between coroutines and a loop turn per request.  In an open loop each
 * request first waits for its due time. */
static int lockstep(struct conn *c)
{
	struct lat_thread *th = c->th;
	const struct lat_config *cfg = &th->run->cfg;
	for (;;) {
		if (cfg->rate > 0) {
			int err = uco_sem_acquire(&c->due);
			if (err)
				return err;
			stamp(c, 0, took_due(c));
		} else {
			stamp(c, 0, uco_now());
		}
		int err = put_requests(c, 1);
		if (!err)
			err = cfg->mode == LAT_ECHO ? receive_echo(c) : receive_http(c);
		if (err)
			return err;
		record(c);
		if (c->closing || (cfg->churn > 0 && chance(th) < cfg->churn))
			return 0;
	}
}

/* ---------------------------------------------------------------- a connection */

static int connect_once(struct conn *c)
{
	struct run *run = c->th->run;
	int fd = uco_socket(run->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int err = uco_connect(fd, (const struct sockaddr *)&run->addr, run->addrlen);
	if (!err && tls_ctx) {
		err = uco_tls_open(&c->tls, tls_ctx, fd, run->cfg.host);
		if (!err && (err = uco_tls_handshake(c->tls))) {
			/* Say why once per thread (a certificate refused is no
			 * load figure). */
			static _Thread_local bool told;
			if (!told && err != -ECANCELED)
				fprintf(stderr, "uco-lat: TLS: %s\n", uco_tls_error(c->tls));
			told = true;
		}
		if (err) {
			uco_tls_close(c->tls);
			c->tls = NULL;
		}
	}
	if (err) {
		close(fd);
		return err;
	}
	c->fd = fd;
	return 0;
}

/* Connect, run sender and receiver until the connection breaks or the run
 * ends; reconnect after a break (counted as an error). */
static void *connection(void *arg)
{
	struct conn *c = arg;
	struct lat_thread *th = c->th;
	const struct lat_config *cfg = &th->run->cfg;
	while (!th->stopping) {
		int err = connect_once(c);
		if (!c->tried) {
			c->tried = true;
			if (--th->connecting == 0)
				uco_event_set(&th->connected); /* the schedule starts */
		}
		if (err) {
			if (err == -ECANCELED || th->stopping)
				break;
			count(&th->errors, 1);
			if (uco_sleep(10 * UCO_NS_PER_MS))
				break;
			continue;
		}
		uco_sem_init(&c->slots, cfg->pipeline);
		c->sent = c->received = 0;
		c->rx.head = c->rx.tail = 0;
		c->closing = false;
		uco_task *send_task = NULL;
		if (cfg->pipeline == 1)
			err = lockstep(c);
		else
			err = uco_spawn(uco_loop_current(), &send_task, sender, c);
		while (!err && send_task) {
			err = cfg->mode == LAT_ECHO ? receive_echo(c) : receive_http(c);
			if (err)
				break;
			record(c);
			if (cfg->churn > 0 && !c->closing && chance(th) < cfg->churn) {
				/* A client that leaves: stop sending, collect what is
				 * owed, close, come back. */
				c->closing = true;
				uco_sem_release(&c->slots); /* wake a sender waiting for a slot */
			}
			if (c->closing && c->received == c->sent)
				break;
		}
		if (send_task) {
			/* Its buffers are ours: it must have ended before they go. */
			uco_task_cancel(send_task);
			uco_await(send_task, NULL);
			uco_task_release(send_task);
		}
		if (c->tls && !err && !th->stopping) /* a clean leave: close_notify */
			uco_tls_shutdown_dl(c->tls, uco_now() + UCO_NS_PER_S);
		uco_tls_close(c->tls);
		c->tls = NULL;
		close(c->fd);
		c->fd = -1;
		if (th->stopping || err == -ECANCELED)
			break;
		if (err)
			count(&th->errors, 1);
		else
			count(&th->reconnects, 1);
	}
	return NULL;
}

/* ---------------------------------------------------------------- a thread's loop */

static uint64_t load(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* Thread 0 redraws one line on the terminal each second. */
static void progress(struct run *run, int64_t now, uint64_t *last, int64_t *last_at)
{
	uint64_t done = 0, errors = 0;
	for (unsigned i = 0; i < run->cfg.threads; i++) {
		done += load(&run->threads[i].requests);
		errors += load(&run->threads[i].errors);
	}
	double dt = (double)(now - *last_at) / 1e9;
	const char *phase = now < run->measure_from ? "warm-up" : "measuring";
	fprintf(stderr, "\r\033[K%s %5.1f s: %10.0f req/s, %" PRIu64 " requests, %" PRIu64
	        " errors", phase, (double)(now - run->measure_from) / 1e9,
	        dt > 0 ? (double)(done - *last) / dt : 0, done, errors);
	*last = done;
	*last_at = now;
}

static bool interrupted(struct run *run)
{
	return __atomic_load_n(&run->interrupted, __ATOMIC_RELAXED);
}

/* Ends the thread's part of the run at the end time (or on Ctrl-C, or when
 * another loop failed): every connection and the pacer are cancelled, and
 * the loop then runs out of tasks.  Thread 0's also reads the process's
 * CPU time when the measured interval begins and when it ends. */
static void *controller(void *arg)
{
	struct lat_thread *th = arg;
	struct run *run = th->run;
	bool first = th->index == 0, measuring = false;
	bool show = first && !run->cfg.quiet && isatty(STDERR_FILENO);
	uint64_t last = 0;
	int64_t last_at = uco_now();
	for (;;) {
		int64_t now = uco_now();
		if (first && !measuring && now >= run->measure_from) {
			getrusage(RUSAGE_SELF, &run->cpu_from);
			measuring = true;
		}
		if (now >= run->end || interrupted(run))
			break;
		int64_t next = now + (show ? UCO_NS_PER_S : 100 * UCO_NS_PER_MS);
		if (next > run->end)
			next = run->end;
		if (first && !measuring && next > run->measure_from)
			next = run->measure_from;
		if (uco_sleep_until(next))
			break;
		if (show)
			progress(run, uco_now(), &last, &last_at);
	}
	if (first) {
		getrusage(RUSAGE_SELF, &run->cpu_to);
		if (!measuring) /* stopped during the warm-up: nothing measured */
			run->cpu_from = run->cpu_to;
	}
	if (show)
		fputs("\r\033[K", stderr);
	th->stopping = true;
	for (unsigned i = 0; i < th->nconn; i++)
		uco_task_cancel(th->conns[i]);
	if (th->pacer)
		uco_task_cancel(th->pacer);
	return NULL;
}

static int thread_setup(uco_loop *loop, struct lat_thread *th)
{
	struct run *run = th->run;
	const struct lat_config *cfg = &run->cfg;
	struct conn *conns = th->conn_mem = calloc(th->nconn, sizeof *conns);
	th->conns = calloc(th->nconn, sizeof *th->conns);
	if (!conns || !th->conns)
		return -ENOMEM;
	size_t tx = cfg->mode == LAT_ECHO ? (size_t)cfg->pipeline * cfg->size : 0;
	size_t rx = cfg->mode == LAT_ECHO && 2 * cfg->size > 65536 ? 2 * cfg->size : 65536;
	for (unsigned i = 0; i < th->nconn; i++) {
		struct conn *c = &conns[i];
		*c = (struct conn){ .th = th, .index = th->first_conn + i, .fd = -1 };
		c->sent_at = calloc(cfg->pipeline, sizeof *c->sent_at);
		c->tx = tx ? malloc(tx) : NULL;
		c->rx.p = malloc(rx);
		c->rx.cap = rx;
		if (!c->sent_at || (tx && !c->tx) || !c->rx.p)
			return -ENOMEM;
		for (unsigned m = 0; m < cfg->pipeline && tx; m++)
			memcpy(c->tx + m * cfg->size, th->pattern, cfg->size);
		uco_sem_init(&c->due, 0);
	}
	uco_event_init(&th->connected);
	th->connecting = th->nconn;
	for (unsigned i = 0; i < th->nconn; i++) {
		int err = uco_spawn(loop, &th->conns[i], connection, &conns[i]);
		if (err)
			return err;
	}
	if (cfg->rate > 0) {
		int err = uco_spawn(loop, &th->pacer, pacer, th);
		if (err)
			return err;
	}
	/* The connections' memory outlives the loop (loop_thread closes it
	 * once every task has finished); main frees it. */
	return uco_spawn(loop, NULL, controller, th);
}

/*
 * One loop per thread, each made with the backend asked for (--backend:
 * uco_run_threads() makes its loops with the default options).  A loop
 * that fails stops the others through `interrupted`, which their
 * controllers watch.
 */
static void *loop_thread(void *arg)
{
	struct lat_thread *th = arg;
	struct run *run = th->run;
	uco_loop_opts opts = { .backend = run->cfg.backend };
	uco_loop *loop;
	int err = uco_loop_create(&loop, &opts);
	if (err) {
		fprintf(stderr, "uco-lat: %s\n", uco_loop_strerror(err));
		th->err = err;
		__atomic_store_n(&run->interrupted, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	th->backend = uco_loop_backend(loop, &th->backend_why);
	err = thread_setup(loop, th);
	if (!err) {
		int r = uco_loop_run(loop);
		err = r < 0 ? r : 0;
	}
	if (err) {
		fprintf(stderr, "uco-lat: %s\n", strerror(-err));
		__atomic_store_n(&run->interrupted, 1, __ATOMIC_RELAXED);
	}
	/* After a failed setup or run, tasks are left: cancel them and let
	 * them end so that the loop can close. */
	for (int tries = 0; uco_loop_close(loop) == -EBUSY && tries < 100; tries++) {
		uco_loop_cancel_all(loop);
		uco_loop_run(loop);
	}
	th->err = err;
	return NULL;
}

/* 0, or the first thread's error (said on stderr already). */
static int run_loops(struct run *run)
{
	unsigned started = 0;
	int err = 0;
	for (; started < run->cfg.threads; started++) {
		struct lat_thread *th = &run->threads[started];
		if ((err = -pthread_create(&th->thread, NULL, loop_thread, th))) {
			fprintf(stderr, "uco-lat: %s\n", strerror(-err));
			__atomic_store_n(&run->interrupted, 1, __ATOMIC_RELAXED);
			break;
		}
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(run->threads[i].thread, NULL);
		if (!err)
			err = run->threads[i].err;
	}
	return err;
}

/* ---------------------------------------------------------------- target */

static void *resolve(void *arg)
{
	struct run *run = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	int err = uco_getaddrinfo(run->cfg.host, run->cfg.port, &hints, &res);
	if (err) {
		fprintf(stderr, "uco-lat: cannot resolve %s port %s: %s\n", run->cfg.host,
		        run->cfg.port, uco_gai_strerror(err));
		return uco_fail(err);
	}
	memcpy(&run->addr, res->ai_addr, res->ai_addrlen);
	run->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return NULL;
}

/* The host name is looked up on a worker thread (getaddrinfo blocks), so
 * even this one-off step goes through a loop. */
static int resolve_target(struct run *run)
{
	uco_loop *loop;
	int err = uco_loop_create(&loop, NULL);
	if (err) {
		fprintf(stderr, "uco-lat: %s\n", uco_loop_strerror(err));
		return err;
	}
	uco_task *task;
	if (!(err = uco_spawn(loop, &task, resolve, run))) {
		err = uco_loop_run_until(loop, task, NULL);
		if (!err)
			err = uco_task_result(task, NULL); /* the resolver's own failure */
		uco_task_release(task);
	}
	uco_loop_close(loop);
	return err;
}

/* host:port, [v6]:port, tcp://host:port, http://host[:port][/path]. */
static int parse_target(struct lat_config *cfg, const char *t)
{
	const char *rest = t;
	cfg->mode = LAT_ECHO;
	snprintf(cfg->path, sizeof cfg->path, "/");
	if (strncmp(t, "http://", 7) == 0) {
		cfg->mode = LAT_HTTP;
		rest = t + 7;
		snprintf(cfg->port, sizeof cfg->port, "80");
	} else if (strncmp(t, "https://", 8) == 0) {
		cfg->mode = LAT_HTTP;
		tls_wanted = true;
		rest = t + 8;
		snprintf(cfg->port, sizeof cfg->port, "443");
	} else if (strncmp(t, "tls://", 6) == 0) {
		tls_wanted = true;
		rest = t + 6;
	} else if (strncmp(t, "tcp://", 6) == 0) {
		rest = t + 6;
	} else if (strstr(t, "://")) {
		return -EPROTONOSUPPORT;
	}
	size_t hostport = strcspn(rest, "/");
	if (rest[hostport]) {
		if (cfg->mode != LAT_HTTP ||
		    (size_t)snprintf(cfg->path, sizeof cfg->path, "%s", rest + hostport) >=
		            sizeof cfg->path)
			return -EINVAL;
	}
	const char *host = rest, *colon;
	size_t hostlen;
	if (*host == '[') {
		const char *close = memchr(host, ']', hostport);
		if (!close)
			return -EINVAL;
		host++;
		hostlen = (size_t)(close - host);
		colon = close + 1 < rest + hostport && close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = memchr(host, ':', hostport);
		hostlen = colon ? (size_t)(colon - host) : hostport;
	}
	if (!hostlen || hostlen >= sizeof cfg->host)
		return -EINVAL;
	memcpy(cfg->host, host, hostlen);
	cfg->host[hostlen] = 0;
	if (colon) {
		size_t portlen = (size_t)(rest + hostport - colon - 1);
		if (!portlen || portlen >= sizeof cfg->port)
			return -EINVAL;
		memcpy(cfg->port, colon + 1, portlen);
		cfg->port[portlen] = 0;
	} else if (cfg->mode == LAT_ECHO) {
		return -EINVAL; /* an echo server has no usual port */
	}
	return 0;
}

/* ---------------------------------------------------------------- main */

static struct run *the_run;

static void on_interrupt(int signo)
{
	(void)signo;
	__atomic_store_n(&the_run->interrupted, 1, __ATOMIC_RELAXED);
}

static void usage(FILE *f)
{
	fputs("usage: uco-lat [options] HOST:PORT | http://HOST[:PORT]/PATH\n"
	      "  HOST:PORT                TCP echo ping-pong (tcp://HOST:PORT too)\n"
	      "  http://HOST[:PORT]/PATH  HTTP/1.1 GET of PATH, keep-alive\n"
	      "  https://HOST[:PORT]/PATH, tls://HOST:PORT  the same over TLS; the\n"
	      "                       server's certificate is verified against HOST\n"
	      "options:\n"
	      "  -c, --connections N  connections (default 16)\n"
	      "  -t, --threads N      loops, one per thread (default 1)\n"
	      "  -d, --duration S     seconds measured (default 10)\n"
	      "  -w, --warmup S       seconds of load before measuring (default 1)\n"
	      "  -s, --size B         echo message size in bytes (default 64)\n"
	      "  -p, --pipeline N     requests in flight per connection (default 1)\n"
	      "  -r, --rate R         open loop: R requests/s in all, latency counted from\n"
	      "                       each request's scheduled send time (default: closed loop)\n"
	      "      --tick US        open loop: the pacer wakes at most once per US microseconds;\n"
	      "                       a send is at most that late while the client keeps up\n"
	      "                       (default 50)\n"
	      "      --churn P        after each answer, close and reconnect with probability P\n"
	      "                       (a clean leave, not an error)\n"
	      "      --hgrm FILE      percentile distribution, HdrHistogram .hgrm format (ms)\n"
	      "      --svg FILE       plot of latency by percentile\n"
	      "      --json           one JSON object on stdout instead of the summary\n"
	      "  -q, --quiet          no progress line\n"
	      "      --backend B      auto (default), io_uring or epoll: what runs the loops\n"
	      "      --tls-ca FILE    trust the CA certificates in FILE (PEM; default:\n"
	      "                       the system's)\n"
	      "      --tls-insecure   do not verify the server's certificate\n",
	      f);
}

static bool number(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max))
		return false;
	*out = v;
	return true;
}

static int parse_args(struct lat_config *cfg, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "connections", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "size", required_argument, NULL, 's' },
		{ "pipeline", required_argument, NULL, 'p' },
		{ "rate", required_argument, NULL, 'r' },
		{ "churn", required_argument, NULL, 'C' },
		{ "hgrm", required_argument, NULL, 'H' },
		{ "svg", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "tls-ca", required_argument, NULL, 'A' },
		{ "tls-insecure", no_argument, NULL, 'I' },
		{ "tick", required_argument, NULL, 'T' },
		{ "backend", required_argument, NULL, 'B' },
		{ 0 },
	};
	*cfg = (struct lat_config){ .connections = 16, .threads = 1, .pipeline = 1, .size = 64,
	                            .duration_s = 10, .warmup_s = 1, .tick_us = 50 };
	double v;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:t:d:w:s:p:r:qh", longs, NULL)) != -1) {
		const char *what = NULL;
		switch (opt) {
		case 'c':
			if (!number(optarg, 1, 1000000, &v) || v != (unsigned)v)
				what = "--connections wants a whole number from 1";
			cfg->connections = (unsigned)v;
			break;
		case 't':
			if (!number(optarg, 1, 1024, &v) || v != (unsigned)v)
				what = "--threads wants a whole number from 1 to 1024";
			cfg->threads = (unsigned)v;
			break;
		case 'd':
			if (!number(optarg, 0.001, 86400 * 365, &v))
				what = "--duration wants seconds > 0";
			cfg->duration_s = v;
			break;
		case 'w':
			if (!number(optarg, 0, 86400, &v))
				what = "--warmup wants seconds >= 0";
			cfg->warmup_s = v;
			break;
		case 's':
			if (!number(optarg, 1, 1 << 26, &v) || v != (size_t)v)
				what = "--size wants bytes from 1 to 64 MiB";
			cfg->size = (size_t)v;
			break;
		case 'p':
			if (!number(optarg, 1, 4096, &v) || v != (unsigned)v)
				what = "--pipeline wants a whole number from 1 to 4096";
			cfg->pipeline = (unsigned)v;
			break;
		case 'r':
			if (!number(optarg, 0.001, 1e9, &v))
				what = "--rate wants requests per second > 0";
			cfg->rate = v;
			break;
		case 'C':
			if (!number(optarg, 0, 1, &v))
				what = "--churn wants a fraction from 0 to 1";
			cfg->churn = v;
			break;
		case 'T':
			if (!number(optarg, 0, 1e6, &v))
				what = "--tick wants microseconds from 0 to 1000000";
			cfg->tick_us = v;
			break;
		case 'B':
			if (strcmp(optarg, "auto") == 0)
				cfg->backend = UCO_BACKEND_AUTO;
			else if (strcmp(optarg, "io_uring") == 0)
				cfg->backend = UCO_BACKEND_IO_URING;
			else if (strcmp(optarg, "epoll") == 0)
				cfg->backend = UCO_BACKEND_EPOLL;
			else
				what = "--backend wants auto, io_uring or epoll";
			break;
		case 'H': cfg->hgrm_path = optarg; break;
		case 'S': cfg->svg_path = optarg; break;
		case 'j': cfg->json = true; break;
		case 'q': cfg->quiet = true; break;
		case 'A': tls_ca = optarg; break;
		case 'I': tls_insecure = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
		if (what) {
			fprintf(stderr, "uco-lat: %s, not '%s'\n", what, optarg);
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "uco-lat: %s\n", optind < argc ? "one target only" : "no target");
		usage(stderr);
		return -EINVAL;
	}
	cfg->target = argv[optind];
	int err = parse_target(cfg, cfg->target);
	if (err) {
		fprintf(stderr, "uco-lat: '%s' is not HOST:PORT or http://HOST[:PORT]/PATH\n",
		        cfg->target);
		return err;
	}
	if (cfg->threads > cfg->connections) {
		fprintf(stderr, "uco-lat: %u threads need at least as many connections\n",
		        cfg->threads);
		return -EINVAL;
	}
	return 0;
}

static int prepare_threads(struct run *run)
{
	const struct lat_config *cfg = &run->cfg;
	run->threads = calloc(cfg->threads, sizeof *run->threads);
	if (!run->threads)
		return -ENOMEM;
	size_t pattern = cfg->mode == LAT_ECHO ? cfg->size : 0;
	char request[1400];
	int reqlen = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s%s%s\r\n\r\n",
	                      cfg->path, cfg->host, strcmp(cfg->port, "80") ? ":" : "",
	                      strcmp(cfg->port, "80") ? cfg->port : "");
	if (reqlen < 0 || (size_t)reqlen >= sizeof request)
		return -E2BIG;
	for (unsigned i = 0, first = 0; i < cfg->threads; i++) {
		struct lat_thread *th = &run->threads[i];
		th->run = run;
		th->index = i;
		th->nconn = cfg->connections / cfg->threads + (i < cfg->connections % cfg->threads);
		th->first_conn = first;
		first += th->nconn;
		hdr_init(&th->latency);
		th->rng = 0x9E3779B97F4A7C15u * (i + 1);
		if (pattern) {
			if (!(th->pattern = malloc(pattern)))
				return -ENOMEM;
			for (size_t b = 0; b < pattern; b++)
				th->pattern[b] = (char)(b * 31 + 7);
		} else {
			th->request_len = (size_t)reqlen * cfg->pipeline;
			if (!(th->request = malloc(th->request_len)))
				return -ENOMEM;
			for (unsigned r = 0; r < cfg->pipeline; r++)
				memcpy(th->request + (size_t)r * (size_t)reqlen, request, (size_t)reqlen);
		}
	}
	return 0;
}

/* Thousands of connections need more descriptors than the usual soft
 * limit of 1024: take what the hard limit allows, and say so when that is
 * still too few. */
static void raise_fd_limit(unsigned connections)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)connections + 64)
		fprintf(stderr, "uco-lat: %u connections, but only %llu descriptors allowed "
		        "(ulimit -n)\n", connections, (unsigned long long)rl.rlim_cur);
}

/* After the run: the counters are read, everything else goes. */
static void free_threads(struct run *run)
{
	for (unsigned i = 0; i < run->cfg.threads; i++) {
		struct lat_thread *th = &run->threads[i];
		for (unsigned k = 0; th->conn_mem && k < th->nconn; k++) {
			free(th->conn_mem[k].sent_at);
			free(th->conn_mem[k].tx);
			free(th->conn_mem[k].rx.p);
		}
		for (unsigned k = 0; th->conns && k < th->nconn; k++)
			if (th->conns[k])
				uco_task_release(th->conns[k]);
		if (th->pacer)
			uco_task_release(th->pacer);
		free(th->conn_mem);
		free(th->conns);
		free(th->pattern);
		free(th->request);
	}
}

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	static struct run run;
	if (parse_args(&run.cfg, argc, argv))
		return 2;
	the_run = &run;
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(run.cfg.connections);
	if (resolve_target(&run))
		return 1;
	if (tls_wanted) {
		uco_tls_ctx_opts o = { .flags = tls_insecure ? UCO_TLS_NO_VERIFY : 0,
		                       .ca_file = tls_ca,
		                       .alpn = run.cfg.mode == LAT_HTTP ? "http/1.1" : NULL };
		char why[256];
		int e = uco_tls_ctx_create(&tls_ctx, &o, why, sizeof why);
		if (e) {
			fprintf(stderr, "uco-lat: TLS: %s\n", why[0] ? why : strerror(-e));
			return 1;
		}
	}
	int err = prepare_threads(&run);
	if (err) {
		fprintf(stderr, "uco-lat: %s\n", strerror(-err));
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_interrupt };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	int64_t start = uco_now();
	run.measure_from = start + (int64_t)(run.cfg.warmup_s * 1e9);
	run.end = run.measure_from + (int64_t)(run.cfg.duration_s * 1e9);
	run.ns_per_request = run.cfg.rate > 0 ? 1e9 / run.cfg.rate : 0;
	err = run_loops(&run);
	int64_t stopped = uco_now();
	if (err)
		return 1;

	struct lat_result res = { 0 };
	hdr *all = malloc(sizeof *all);
	if (!all)
		return 1;
	hdr_init(all);
	for (unsigned i = 0; i < run.cfg.threads; i++) {
		struct lat_thread *th = &run.threads[i];
		hdr_merge(all, &th->latency);
		res.requests += th->requests;
		res.errors += th->errors;
		res.bad += th->bad;
		res.bytes += th->bytes;
		res.bytes_sent += th->bytes_sent;
		res.reconnects += th->reconnects;
		if (th->max_send_lag > res.max_send_lag_ns)
			res.max_send_lag_ns = th->max_send_lag;
	}
	res.latency = all;
	res.cpu_user_s = seconds(run.cpu_to.ru_utime) - seconds(run.cpu_from.ru_utime);
	res.cpu_sys_s = seconds(run.cpu_to.ru_stime) - seconds(run.cpu_from.ru_stime);
	res.backend = run.threads[0].backend;
	res.backend_why = run.threads[0].backend_why;
	free_threads(&run);
	int64_t measured_end = stopped < run.end ? stopped : run.end;
	res.elapsed_s = measured_end > run.measure_from
	                        ? (double)(measured_end - run.measure_from) / 1e9 : 0;
	if (!res.requests && !interrupted(&run))
		fprintf(stderr, "uco-lat: no answer came back from %s\n", run.cfg.target);
	int ret = lat_report(&run.cfg, &res) ? 1 : res.errors || res.bad || !res.requests ? 3 : 0;
	free(all);
	free(run.threads);
	uco_tls_ctx_destroy(tls_ctx);
	return ret;
}
