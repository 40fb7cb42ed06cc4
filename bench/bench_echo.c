/* SPDX-License-Identifier: MIT */
/*
 * echo: 64-byte ping-pong over TCP on 127.0.0.1.
 *
 * Figures (BENCH.md), with 64 connections, and the same with the suffix
 * _c1 for one connection:
 *   rt_per_s   round trips per second (all connections together);
 *   p50_us, p99_us, p999_us
 *              percentiles of the round-trip times, in microseconds (every
 *              sample is kept and sorted: exact order statistics);
 *   server_cpu_us_per_rt (extra, not in BENCH.md's table)
 *              the server process's CPU time (user + system, from wait4()
 *              once it is killed) over every round trip it served, warm-up
 *              included.  With 64 connections the one client core is the
 *              bottleneck (every server reaches about the same rt_per_s),
 *              so this is where the servers' own costs show.
 *   switches_per_rt (extra, the uco servers only)
 *              the server loop's coroutine switches (uco_loop_stats: 2 per
 *              resume of a task) over every round trip, warm-up included:
 *              asked for with SIGUSR1 once the client is done, answered on
 *              the pipe that carried the port.
 *
 * UCO_BENCH_ECHO_IMPLS (comma-separated names) and UCO_BENCH_ECHO_CONNS
 * (64 or 1) run only those, for A/B runs by hand.
 *
 * Every server is single-threaded and runs in its own child process,
 * forked for each measurement: it makes a listening socket on 127.0.0.1
 * port 0 (backlog 1024; blocking for the io_uring servers, non-blocking
 * for epoll and libuv), tells the parent the port through a pipe, sets
 * TCP_NODELAY on every connection it accepts and echoes until it is
 * killed (SIGKILL once the client is done).
 *
 *   uco       one loop (default options); an acceptor task doing uco_accept
 *             in a loop, spawning one detached task per connection that
 *             does uco_recv (4 KiB buffer on its stack) then uco_send of
 *             what came (again for a short send) until EOF (this file);
 *   uco-epoll the same code as uco on a loop of the readiness backend
 *             (UCO_BACKEND_EPOLL; skipped where the loop does not run on
 *             it): against epoll below, what the fallback costs;
 *   uco-multishot
 *             the optional server paths of uco against the plain one above:
 *             uco_acceptor_open + uco_acceptor_next (multishot accept), one
 *             detached task per connection reading with a uco_recv_stream
 *             (multishot recv) over one uco_bufring shared by every
 *             connection (1024 buffers of 2 KiB, sized for the 64
 *             connections: 16 each, where one holds at most two), and
 *             uco_send of each chunk straight from the ring's buffer
 *             (this file);
 *   uco-stream
 *             the same acceptor and ring, each connection a uco_stream
 *             with opts.bufring (its multishot receive): uco_stream_read
 *             into a 4 KiB buffer on the stack, then uco_stream_write, which
 *             copies the bytes and sends them in the background, so the
 *             task parks only to wait for the next message, never for a
 *             send (then uco_stream_drain, which returns at once below its
 *             64 KiB mark) (this file);
 *   epoll     level-triggered epoll, non-blocking sockets, one recv per
 *             readiness then send; a short send keeps the rest and waits
 *             for EPOLLOUT (this file);
 *   liburing  plain liburing, accept/recv/send SQEs on one ring
 *             (SINGLE_ISSUER | DEFER_TASKRUN), io_uring_submit_and_wait
 *             per turn (peers/echo_liburing.c);
 *   libuv     uv_tcp: uv_read_start, and per read uv_try_write, falling back
 *             to uv_write of a copy for what did not go (this file).
 *
 * The client is the same for every server (this file), in the uco-bench
 * process itself: single-threaded epoll (level-triggered), N blocking-mode
 * connect()s then non-blocking sockets with TCP_NODELAY; each connection
 * keeps exactly one 64-byte message in flight: send it, wait for all 64
 * bytes back, check them (a sequence number, the connection's index and a
 * pattern), record the round-trip time (CLOCK_MONOTONIC from before the
 * send to after the last recv), send the next.  It runs a warm-up, then
 * the timed run; the round trips that complete inside the timed window
 * are counted and sampled.
 *
 * CPU placement: the machine this was written on has 2 cores, and one
 * client core is saturated at about 230k round trips/s, so the server
 * child is pinned to CPU 0 and the client (this process, for the time of
 * the run; its mask is restored afterwards) to CPU 1 with
 * sched_setaffinity(), so that they never share a core.  With fewer than 2
 * CPUs allowed, nothing is pinned (said on stderr).
 *
 * The parent interleaves: for each round, for 64 then 1 connection(s),
 * uco, uco-epoll, uco-multishot, uco-stream, epoll, liburing, libuv, so a
 * drift of the machine's speed spreads over all of them.  One line per
 * figure per round (readers take the median).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "uco.h"

#if defined(UCO_BENCH_HAVE_LIBUV)
#include <uv.h>
#endif

#define ECHO_MSG 64
#define ECHO_SERVER_CPU 0
#define ECHO_CLIENT_CPU 1

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ------------------------------------------------------------ switches */

/* The uco servers' coroutine switches, for switches_per_rt: once the
 * client is done the parent sends ECHO_STATS_SIGNAL, and the loop answers
 * with its uco_loop_stats.switches on the pipe that carried the port. */
#define ECHO_STATS_SIGNAL SIGUSR1

static int stats_fd = -1;

static void stats_send(int signo, void *user)
{
	uco_loop_stats st;

	(void)signo;
	if (uco_loop_stats_get(user, &st) == 0 &&
	    write(stats_fd, &st.switches, sizeof st.switches) != sizeof st.switches)
		fprintf(stderr, "uco-bench: echo: the switch count was not sent\n");
}

static int stats_on_signal(uco_loop *loop)
{
	int ret = uco_loop_on_signal(loop, ECHO_STATS_SIGNAL, stats_send, loop);

	if (ret < 0)
		fprintf(stderr, "uco-bench: echo: uco_loop_on_signal: %s\n",
		        strerror(-ret));
	return ret;
}

/* ------------------------------------------------------------ uco server */

static void *uco_echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];

	for (;;) {
		ssize_t n = uco_recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		ssize_t off = 0;
		while (off < n) {
			ssize_t w = uco_send(fd, buf + off, (size_t)(n - off), 0);
			if (w < 0)
				goto out;
			off += w;
		}
	}
out:
	close(fd);
	return NULL;
}

static void *uco_echo_acceptor(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		int fd = uco_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (fd == -EINTR || fd == -ECONNABORTED || fd == -EAGAIN)
				continue;
			fprintf(stderr, "uco-bench: echo/uco: uco_accept: %s\n",
			        strerror(-fd));
			return uco_fail(fd);
		}
		set_nodelay(fd);
		int ret = uco_spawn(NULL, NULL, uco_echo_conn, (void *)(intptr_t)fd);
		if (ret < 0) {
			fprintf(stderr, "uco-bench: echo/uco: uco_spawn: %s\n",
			        strerror(-ret));
			close(fd);
		}
	}
	return NULL;
}

static int serve_uco(const char *impl, int lfd)
{
	uco_loop *loop;
	int ret = bench_uco_loop_create(&loop, "echo", impl, NULL);

	if (ret < 0)
		return ret;
	if ((ret = stats_on_signal(loop)) < 0 ||
	    (ret = uco_spawn(loop, NULL, uco_echo_acceptor, (void *)(intptr_t)lfd)) < 0)
		return ret;
	ret = uco_loop_run(loop);
	fprintf(stderr, "uco-bench: echo/%s: uco_loop_run returned %d\n", impl, ret);
	return -EIO;
}

/* ------------------------------------------------------ uco-multishot server */

/* One provided-buffer ring shared by every connection, sized for the 64
 * connections of the run: 1024 buffers of 2 KiB (2 MiB), 16 per connection.
 * A connection holds one buffer while it sends the echo back, plus what
 * arrived meanwhile; with one 64-byte message in flight per connection it
 * never needs more than two, so the ring is never starved (-ENOBUFS). */
#define ECHO_MS_BUFS 1024
#define ECHO_MS_BUF_SIZE 2048

struct ms_server {
	const char *impl;
	uco_acceptor *acc;
	uco_bufring *br;
	void *(*conn)(void *arg); /* the task of one connection */
};

struct ms_conn {
	int fd;
	uco_bufring *br;
};

static void *uco_ms_conn(void *arg)
{
	struct ms_conn *c = arg;
	int fd = c->fd;
	uco_recv_stream *s;
	int ret = uco_recv_stream_open(&s, fd, c->br);

	free(c);
	if (ret < 0) {
		fprintf(stderr, "uco-bench: echo/uco-multishot: "
		        "uco_recv_stream_open: %s\n", strerror(-ret));
		close(fd);
		return NULL;
	}
	for (;;) {
		const void *data;
		ssize_t n = uco_recv_stream_next(s, &data);
		if (n <= 0)
			break;
		/* data stays valid until the next uco_recv_stream_next(). */
		ssize_t off = 0;
		while (off < n) {
			ssize_t w = uco_send(fd, (const char *)data + off,
			                     (size_t)(n - off), 0);
			if (w < 0)
				goto out;
			off += w;
		}
	}
out:
	uco_recv_stream_close(s);
	close(fd);
	return NULL;
}

/* uco-stream: the same reads through a uco_stream over the same ring
 * (opts.bufring: its multishot receive), and the replies queued with
 * uco_stream_write, which copies them and sends in the background: the
 * task parks only to wait for the next message, never for a send. */
static void *uco_stream_conn(void *arg)
{
	struct ms_conn *c = arg;
	int fd = c->fd;
	uco_stream_opts o = {.bufring = c->br};
	uco_stream *s;
	int ret = uco_stream_open(&s, fd, &o);
	char buf[4096];

	free(c);
	if (ret < 0) {
		fprintf(stderr, "uco-bench: echo/uco-stream: uco_stream_open: %s\n",
		        strerror(-ret));
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t n = uco_stream_read(s, buf, sizeof buf);
		if (n <= 0)
			break;
		/* A send error comes back from the next write (or drain). */
		if (uco_stream_write(s, buf, (size_t)n) < 0)
			break;
		/* Back-pressure, as a real server must: returns at once
		 * unless 64 KiB are unsent (never here). */
		if (uco_stream_drain(s) < 0)
			break;
	}
	uco_stream_close(s); /* flushes, then closes fd */
	return NULL;
}

static void *uco_ms_acceptor(void *arg)
{
	struct ms_server *srv = arg;

	for (;;) {
		int fd = uco_acceptor_next(srv->acc);
		if (fd < 0) {
			if (fd == -EINTR || fd == -ECONNABORTED || fd == -EAGAIN)
				continue;
			fprintf(stderr, "uco-bench: echo/%s: uco_acceptor_next: %s\n",
			        srv->impl, strerror(-fd));
			return uco_fail(fd);
		}
		set_nodelay(fd);
		struct ms_conn *c = malloc(sizeof *c);
		int ret = -ENOMEM;
		if (c) {
			c->fd = fd;
			c->br = srv->br;
			ret = uco_spawn(NULL, NULL, srv->conn, c);
		}
		if (ret < 0) {
			fprintf(stderr, "uco-bench: echo/%s: uco_spawn: %s\n",
			        srv->impl, strerror(-ret));
			free(c);
			close(fd);
			continue;
		}
	}
	return NULL;
}

/* uco-multishot and uco-stream: the acceptor, one ring shared by every
 * connection, and conn() per connection. */
static int serve_uco_ring(const char *impl, int lfd, void *(*conn)(void *))
{
	static struct ms_server srv;
	uco_loop *loop;
	int ret = uco_loop_create(&loop, NULL);

	if (ret < 0) {
		fprintf(stderr, "uco-bench: echo/%s: uco_loop_create: %s\n", impl,
		        uco_loop_strerror(ret));
		return ret;
	}
	srv.impl = impl;
	srv.conn = conn;
	ret = uco_bufring_create(loop, &srv.br, ECHO_MS_BUFS, ECHO_MS_BUF_SIZE);
	if (ret < 0) {
		fprintf(stderr, "uco-bench: echo/%s: uco_bufring_create: %s\n", impl,
		        strerror(-ret));
		return ret;
	}
	ret = uco_acceptor_open(loop, &srv.acc, lfd, SOCK_CLOEXEC);
	if (ret < 0) {
		fprintf(stderr, "uco-bench: echo/%s: uco_acceptor_open: %s\n", impl,
		        strerror(-ret));
		return ret;
	}
	if ((ret = stats_on_signal(loop)) < 0 ||
	    (ret = uco_spawn(loop, NULL, uco_ms_acceptor, &srv)) < 0)
		return ret;
	ret = uco_loop_run(loop);
	fprintf(stderr, "uco-bench: echo/%s: uco_loop_run returned %d\n", impl, ret);
	return -EIO;
}

/* ------------------------------------------------------------ epoll server */

struct epconn {
	int fd;
	unsigned pend_len, pend_off; /* bytes not yet sent back */
	unsigned char *pend;
};

static int serve_epoll(int lfd)
{
	static unsigned char buf[65536];
	struct epoll_event evs[256];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		return -errno;
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
		return -errno;
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct epconn *c = evs[i].data.ptr;

			if (!c) {
				for (;;) {
					int fd = accept4(lfd, NULL, NULL,
					                 SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					set_nodelay(fd);
					c = calloc(1, sizeof *c);
					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					struct epoll_event ev = {.events = EPOLLIN,
					                         .data.ptr = c};
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
						close(fd);
						free(c);
					}
				}
				continue;
			}
			if (c->pend) {
				/* Waiting for EPOLLOUT to send the rest. */
				ssize_t w = send(c->fd, c->pend + c->pend_off,
				                 c->pend_len - c->pend_off, MSG_NOSIGNAL);
				if (w < 0 && errno != EAGAIN)
					goto drop;
				if (w > 0)
					c->pend_off += (unsigned)w;
				if (c->pend_off == c->pend_len) {
					free(c->pend);
					c->pend = NULL;
					struct epoll_event ev = {.events = EPOLLIN,
					                         .data.ptr = c};
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
				continue;
			}
			ssize_t r = recv(c->fd, buf, sizeof buf, 0);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				goto drop;
			if (r < 0)
				continue;
			ssize_t w = send(c->fd, buf, (size_t)r, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN)
				goto drop;
			if (w < 0)
				w = 0;
			if (w < r) {
				c->pend = malloc((size_t)(r - w));
				if (!c->pend)
					goto drop;
				memcpy(c->pend, buf + w, (size_t)(r - w));
				c->pend_len = (unsigned)(r - w);
				c->pend_off = 0;
				struct epoll_event ev = {.events = EPOLLOUT,
				                         .data.ptr = c};
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
			continue;
drop:
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			free(c->pend);
			free(c);
		}
	}
}

/* ------------------------------------------------------------ libuv server */

#if defined(UCO_BENCH_HAVE_LIBUV)
struct uvconn {
	uv_tcp_t tcp;
	char buf[65536];
};

struct uvwrite {
	uv_write_t req;
	char data[];
};

static void uv_conn_closed(uv_handle_t *h)
{
	free(h);
}

static void uv_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct uvconn *c = (struct uvconn *)h;

	(void)suggested;
	*buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void uv_conn_written(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static void uv_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	if (nread < 0) {
		uv_close((uv_handle_t *)s, uv_conn_closed);
		return;
	}
	if (nread == 0)
		return;
	uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
	int w = uv_try_write(s, &b, 1);
	if (w == nread)
		return;
	if (w < 0 && w != UV_EAGAIN) {
		uv_close((uv_handle_t *)s, uv_conn_closed);
		return;
	}
	if (w < 0)
		w = 0;
	/* The rest, queued behind anything libuv still holds. */
	size_t rest = (size_t)nread - (size_t)w;
	struct uvwrite *wr = malloc(sizeof *wr + rest);
	if (!wr) {
		uv_close((uv_handle_t *)s, uv_conn_closed);
		return;
	}
	memcpy(wr->data, buf->base + w, rest);
	b = uv_buf_init(wr->data, (unsigned)rest);
	if (uv_write(&wr->req, s, &b, 1, uv_conn_written) < 0) {
		free(wr);
		uv_close((uv_handle_t *)s, uv_conn_closed);
	}
}

static void uv_on_connection(uv_stream_t *server, int status)
{
	if (status < 0)
		return;
	struct uvconn *c = malloc(sizeof *c);
	if (!c)
		return;
	uv_tcp_init(server->loop, &c->tcp);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, uv_conn_closed);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, uv_conn_alloc, uv_conn_read);
}

static int serve_libuv(int lfd)
{
	uv_loop_t loop;
	uv_tcp_t server;
	int ret = uv_loop_init(&loop);

	if (ret < 0)
		return ret;
	uv_tcp_init(&loop, &server);
	ret = uv_tcp_open(&server, lfd);
	if (ret == 0)
		ret = uv_listen((uv_stream_t *)&server, 1024, uv_on_connection);
	if (ret < 0) {
		fprintf(stderr, "uco-bench: echo/libuv: %s\n", uv_strerror(ret));
		return ret;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	return -EIO;
}
#endif

/* ------------------------------------------------------------ processes */

static const char *const echo_impls[] = {"uco", "uco-epoll", "uco-multishot", "uco-stream",
                                          "epoll", "liburing", "libuv"};
#define N_ECHO_IMPLS (sizeof echo_impls / sizeof echo_impls[0])

static int listen_socket(bool nonblock)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
	                (nonblock ? SOCK_NONBLOCK : 0), 0);
	int one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(fd, 1024) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* The server child: never returns. */
static void server_child(const char *impl, int port_fd, bool pin)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (pin && bench_pin_to(ECHO_SERVER_CPU) < 0)
		fprintf(stderr, "uco-bench: echo/%s: sched_setaffinity: %s\n",
		        impl, strerror(errno));
	bool nonblock = strcmp(impl, "epoll") == 0 || strcmp(impl, "libuv") == 0;
	int lfd = listen_socket(nonblock);
	uint16_t port = 0;
	if (lfd >= 0) {
		struct sockaddr_in a;
		socklen_t len = sizeof a;
		if (getsockname(lfd, (struct sockaddr *)&a, &len) == 0)
			port = ntohs(a.sin_port);
	}
	bool is_uco = strncmp(impl, "uco", 3) == 0;
	if (is_uco) {
		/* Blocked from the start: the loop's signalfd takes it. */
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, ECHO_STATS_SIGNAL);
		sigprocmask(SIG_BLOCK, &set, NULL);
	}
	if (write(port_fd, &port, sizeof port) != sizeof port || port == 0)
		_exit(1);
	if (is_uco)
		stats_fd = port_fd; /* for the switch count */
	else
		close(port_fd);

	int ret = -ENOSYS;
	if (strcmp(impl, "uco") == 0 || bench_is_uco_epoll(impl))
		ret = serve_uco(impl, lfd);
	else if (strcmp(impl, "uco-multishot") == 0)
		ret = serve_uco_ring(impl, lfd, uco_ms_conn);
	else if (strcmp(impl, "uco-stream") == 0)
		ret = serve_uco_ring(impl, lfd, uco_stream_conn);
	else if (strcmp(impl, "epoll") == 0)
		ret = serve_epoll(lfd);
	else if (strcmp(impl, "liburing") == 0)
		ret = bench_echo_liburing_serve(lfd);
#if defined(UCO_BENCH_HAVE_LIBUV)
	else if (strcmp(impl, "libuv") == 0)
		ret = serve_libuv(lfd);
#endif
	fprintf(stderr, "uco-bench: echo/%s: the server stopped: %s\n", impl,
	        strerror(ret < 0 ? -ret : EIO));
	_exit(1);
}

/* ------------------------------------------------------------ the client */

struct cconn {
	int fd;
	unsigned idx;
	unsigned got;
	uint64_t seq;
	int64_t t_send;
	unsigned char out[ECHO_MSG], in[ECHO_MSG];
};

struct echo_result {
	uint64_t rts;
	uint64_t all_rts; /* warm-up included: for the server's CPU per rt */
	double secs;
	double p50_us, p99_us, p999_us;
};

static void fill_msg(struct cconn *c)
{
	memcpy(c->out, &c->seq, 8);
	memcpy(c->out + 8, &c->idx, 4);
	for (int i = 12; i < ECHO_MSG; i++)
		c->out[i] = (unsigned char)(c->seq * 31 + c->idx * 7 + (unsigned)i);
}

static int send_msg(struct cconn *c)
{
	c->seq++;
	fill_msg(c);
	c->got = 0;
	c->t_send = bench_now_ns();
	ssize_t w = send(c->fd, c->out, ECHO_MSG, MSG_NOSIGNAL);
	if (w != ECHO_MSG)
		return w < 0 ? -errno : -EPROTO; /* 64 bytes always fit */
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static double pct_us(const uint32_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t k = (size_t)(p * (double)(n - 1) + 0.5);
	if (k >= n)
		k = n - 1;
	return (double)v[k] / 1e3;
}

static int echo_client(const char *impl, uint16_t port, unsigned nconn,
                       int64_t warm_ns, int64_t run_ns,
                       struct echo_result *res)
{
	struct cconn *cs = calloc(nconn, sizeof *cs);
	size_t cap = 1u << 20, n_samples = 0;
	uint32_t *samples = malloc(cap * sizeof *samples);
	struct epoll_event evs[256];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int ret = 0;
	unsigned opened = 0;

	if (!cs || !samples || ep < 0) {
		ret = -ENOMEM;
		goto out;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (unsigned i = 0; i < nconn; i++, opened++) {
		struct cconn *c = &cs[i];
		c->idx = i;
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 ||
		    connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
			ret = -errno;
			bench_fail("echo", impl, "connect to 127.0.0.1:%u: %s",
			           port, strerror(errno));
			if (c->fd >= 0)
				close(c->fd);
			goto out;
		}
		set_nodelay(c->fd);
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
			ret = -errno;
			close(c->fd);
			goto out;
		}
	}

	int64_t t_start = bench_now_ns();
	int64_t t_meas = t_start + warm_ns, t_end = t_meas + run_ns;
	uint64_t rts = 0, all_rts = 0;
	for (unsigned i = 0; i < nconn; i++)
		if ((ret = send_msg(&cs[i])) < 0)
			goto io_err;
	for (;;) {
		int n = epoll_wait(ep, evs, 256, 1000);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto io_err;
		}
		if (n == 0) {
			bench_fail("echo", impl, "no answer for 1 s");
			ret = -ETIMEDOUT;
			goto out;
		}
		int64_t now = 0;
		for (int i = 0; i < n; i++) {
			struct cconn *c = evs[i].data.ptr;
			ssize_t r = recv(c->fd, c->in + c->got, ECHO_MSG - c->got, 0);
			if (r <= 0) {
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				ret = r == 0 ? -ECONNRESET : -errno;
				goto io_err;
			}
			c->got += (unsigned)r;
			if (c->got < ECHO_MSG)
				continue;
			now = bench_now_ns();
			if (memcmp(c->in, c->out, ECHO_MSG) != 0) {
				bench_fail("echo", impl, "connection %u: the echo of "
				           "message %" PRIu64 " differs", c->idx, c->seq);
				ret = -EPROTO;
				goto out;
			}
			if (now >= t_meas && now < t_end) {
				if (n_samples == cap) {
					uint32_t *ns = realloc(samples, 2 * cap * sizeof *ns);
					if (!ns) {
						ret = -ENOMEM;
						goto out;
					}
					samples = ns;
					cap *= 2;
				}
				int64_t rtt = now - c->t_send;
				samples[n_samples++] = rtt > UINT32_MAX ? UINT32_MAX
				                                        : (uint32_t)rtt;
				rts++;
			}
			all_rts++;
			if ((ret = send_msg(c)) < 0)
				goto io_err;
		}
		if (now >= t_end || (now == 0 && bench_now_ns() >= t_end))
			break;
	}
	qsort(samples, n_samples, sizeof *samples, cmp_u32);
	res->rts = rts;
	res->all_rts = all_rts;
	res->secs = (double)run_ns / 1e9;
	res->p50_us = pct_us(samples, n_samples, 0.50);
	res->p99_us = pct_us(samples, n_samples, 0.99);
	res->p999_us = pct_us(samples, n_samples, 0.999);
	if (rts == 0) {
		bench_fail("echo", impl, "no round trip in the timed window");
		ret = -EPROTO;
	}
	goto out;
io_err:
	bench_fail("echo", impl, "client: %s", strerror(-ret));
out:
	for (unsigned i = 0; i < opened; i++)
		close(cs[i].fd);
	if (ep >= 0)
		close(ep);
	free(cs);
	free(samples);
	return ret;
}

/* One measurement: fork the server, run the client, kill the server. */
static int echo_one(const char *impl, unsigned nconn, int64_t warm_ns,
                    int64_t run_ns, bool pin)
{
	int pfd[2];
	cpu_set_t saved;
	uint16_t port = 0;
	int ret;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return ret;
	}
	if (pid == 0) {
		close(pfd[0]);
		server_child(impl, pfd[1], pin);
	}
	close(pfd[1]);
	struct pollfd p = {.fd = pfd[0], .events = POLLIN};
	if (poll(&p, 1, 5000) != 1 ||
	    read(pfd[0], &port, sizeof port) != sizeof port || port == 0) {
		bench_fail("echo", impl, "the server did not start");
		close(pfd[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -EPROTO;
	}

	bool restore = pin && sched_getaffinity(0, sizeof saved, &saved) == 0;
	if (pin && bench_pin_to(ECHO_CLIENT_CPU) < 0)
		bench_note("echo: sched_setaffinity(client): %s", strerror(errno));

	struct echo_result r = { 0 }; /* filled when echo_client succeeds (-Os cannot see it) */
	ret = echo_client(impl, port, nconn, warm_ns, run_ns, &r);

	if (restore)
		sched_setaffinity(0, sizeof saved, &saved);
	int status;
	if (waitpid(pid, &status, WNOHANG) == pid) {
		bench_fail("echo", impl, "the server died during the run");
		close(pfd[0]);
		return -EPROTO;
	}
	uint64_t switches = 0;
	bool have_switches = false;
	if (ret == 0 && strncmp(impl, "uco", 3) == 0 && kill(pid, ECHO_STATS_SIGNAL) == 0 &&
	    poll(&p, 1, 2000) == 1)
		have_switches = read(pfd[0], &switches, sizeof switches) == sizeof switches;
	close(pfd[0]);
	kill(pid, SIGKILL);
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	wait4(pid, &status, 0, &ru);
	if (ret < 0)
		return ret;
	double server_cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	                      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;

	const char *sfx = nconn == 1 ? "_c1" : "";
	char m[32];
	snprintf(m, sizeof m, "rt_per_s%s", sfx);
	bench_emit("echo", impl, m, (double)r.rts / r.secs, "rt/s");
	snprintf(m, sizeof m, "p50_us%s", sfx);
	bench_emit("echo", impl, m, r.p50_us, "us");
	snprintf(m, sizeof m, "p99_us%s", sfx);
	bench_emit("echo", impl, m, r.p99_us, "us");
	snprintf(m, sizeof m, "p999_us%s", sfx);
	bench_emit("echo", impl, m, r.p999_us, "us");
	snprintf(m, sizeof m, "server_cpu_us_per_rt%s", sfx);
	bench_emit("echo", impl, m, server_cpu_s * 1e6 / (double)r.all_rts, "us");
	if (have_switches) {
		snprintf(m, sizeof m, "switches_per_rt%s", sfx);
		bench_emit("echo", impl, m, (double)switches / (double)r.all_rts, "switches");
	}
	return 0;
}

int bench_echo_run(const struct bench_opts *opts)
{
	/* Default: 3 rounds x (64, 1 conn) x 7 servers x (0.2 + 1.2 s) = 59 s
	 * (50 s while uco-epoll is skipped; before uco-multishot: 2 rounds of
	 * 0.3 + 2 s, 37 s).  Three shorter rounds rather than two long ones:
	 * the machine's speed drifts by 2x from one run to the next, and a
	 * median of three drops one outlier, where a median of two is their
	 * mean. */
	const int rounds = BENCH_PICK(opts, 1, 3, 5);
	const int64_t warm_ns = BENCH_PICK(opts, 100, 200, 500) * INT64_C(1000000);
	const int64_t run_ns = BENCH_PICK(opts, 250, 1200, 3000) * INT64_C(1000000);
	static const unsigned conns[] = {64, 1};
	bool pin = bench_two_cpus(ECHO_SERVER_CPU, ECHO_CLIENT_CPU);
	int ret = 0;

	/* Said (and decided) here: the servers are forked children. */
	bench_uco_impl_available("echo", "uco");
	bool epoll_ok = bench_uco_impl_available("echo", "uco-epoll");
	if (!pin)
		bench_note("echo: CPUs %d and %d are not both allowed; the server "
		           "and the client are not pinned", ECHO_SERVER_CPU,
		           ECHO_CLIENT_CPU);
#if !defined(UCO_BENCH_HAVE_LIBUV)
	bench_skip("echo", "libuv", "libuv (libuv1-dev) was not found at build time");
#endif
	for (int r = 0; r < rounds; r++) {
		for (size_t k = 0; k < sizeof conns / sizeof conns[0]; k++) {
			for (size_t i = 0; i < N_ECHO_IMPLS; i++) {
				const char *impl = echo_impls[i];
				char what[48];
#if !defined(UCO_BENCH_HAVE_LIBUV)
				if (strcmp(impl, "libuv") == 0)
					continue;
#endif
				if (bench_is_uco_epoll(impl) && !epoll_ok)
					continue;
				char nc[16];
				snprintf(nc, sizeof nc, "%u", conns[k]);
				/* For A/B runs by hand:
				 * UCO_BENCH_ECHO_IMPLS=uco,liburing runs only those
				 * servers, UCO_BENCH_ECHO_CONNS=64 only that
				 * connection count. */
				if (!bench_env_lists("UCO_BENCH_ECHO_IMPLS", impl) ||
				    !bench_env_lists("UCO_BENCH_ECHO_CONNS", nc))
					continue;
				snprintf(what, sizeof what, "%u conn, round %d/%d",
				         conns[k], r + 1, rounds);
				bench_progress("echo", impl, what);
				int st = echo_one(impl, conns[k], warm_ns, run_ns, pin);
				if (st < 0 && strncmp(impl, "uco", 3) == 0)
					ret = st;
			}
		}
	}
	return ret;
}
