/* SPDX-License-Identifier: MIT */
/*
 * uco-echo: a TCP and UDP echo server on uco, the server side of latency
 * benchmarks.
 *
 *   uco-echo [--addr A] [--port P] [--tcp] [--udp] [--threads N] [--sockperf]
 *            [--backend auto|io_uring|epoll]
 *
 * Each thread runs one loop (uco_run_threads) with its own SO_REUSEPORT
 * TCP listener and UDP socket on the same port, so the kernel spreads
 * connections and datagram flows over the loops.  TCP: a multishot
 * acceptor, one coroutine per connection, which receives with a multishot
 * recv into the loop's provided buffers (uco_recv_stream), or with plain
 * uco_recv where the kernel cannot register a buffer ring.  UDP: a few
 * coroutines per socket, each a uco_recvmsg / uco_sendmsg loop.
 *
 * With --sockperf the server speaks the part of sockperf's protocol that
 * its server side needs (see "sockperf" below): it answers only the
 * messages that ask for an answer, so that `sockperf ping-pong`,
 * `throughput` and `under-load` count the replies.
 *
 * With --tls CERT KEY, TCP speaks TLS (uco_tls over plain receives): what
 * each connection decrypts is echoed back encrypted.
 *
 * SIGINT or SIGTERM cancels every task of every loop; the loops then run
 * dry and the process exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <uco.h>

#define DEFAULT_PORT 11111 /* sockperf's */
#define MAX_THREADS 1024
#define LISTEN_BACKLOG 1024
#define UDP_WORKERS 8       /* receives kept in flight per UDP socket */
#define UDP_BUF 65536       /* any UDP datagram fits */
#define PLAIN_BUF 16384     /* uco_recv's buffer, on the coroutine's stack */
#define SEND_STALL_NS (2 * UCO_NS_PER_S) /* see send_all() */

/* Provided buffers, per loop: 1024 x 8 KiB (8 MiB).  Every connection of
 * the loop shares them; one holds a buffer only while data waits for it. */
#define RING_BUFS 1024
#define RING_BUF_SIZE 8192

/* ---------------------------------------------------------------- sockperf */

/*
 * sockperf's message header (src/message.h of sockperf 3.x, checked
 * against what Debian's sockperf 3.7 sends and its `sockperf sr` answers),
 * 14 bytes, all fields big-endian, followed by the payload:
 *   0  u64 sequence number
 *   8  u16 flags: 1 client (sent by the client), 2 pong request (answer
 *          this one), 4 warm-up (multicast only; never answered)
 *   10 u32 length of the whole message, header included
 * Its server answers a message only if the client and pong-request bits
 * are set and the warm-up bit is not, with the same bytes and the client
 * bit cleared.  Over TCP the stream is cut into messages by the length
 * field.  sockperf's server closes a connection whose length field
 * exceeds 65507 (its MAX_PAYLOAD_SIZE); this one does too, and also for a
 * length below 14, which could never move the stream forward.
 */
#define SP_HDR 14
#define SP_MAX 65507
#define SP_CLIENT 1u
#define SP_PONG 2u
#define SP_WARMUP 4u

static unsigned sp_flags(const unsigned char *m)
{
	return (unsigned)m[8] << 8 | m[9];
}

/* The length field, or 0 when it cannot be a sockperf message's. */
static size_t sp_len(const unsigned char *m)
{
	uint32_t len = (uint32_t)m[10] << 24 | (uint32_t)m[11] << 16 |
	               (uint32_t)m[12] << 8 | m[13];
	return len >= SP_HDR && len <= SP_MAX ? len : 0;
}

static bool sp_wants_reply(const unsigned char *m)
{
	return (sp_flags(m) & (SP_CLIENT | SP_PONG | SP_WARMUP)) == (SP_CLIENT | SP_PONG);
}

/* The server's answer is the message with the client bit cleared (the low
 * byte of the big-endian flags). */
static void sp_make_reply(unsigned char *m)
{
	m[9] &= (unsigned char)~SP_CLIENT;
}

/* Cuts one TCP stream into sockperf messages and collects the replies. */
struct framer {
	unsigned char *part; /* a message split across receives (SP_MAX bytes) */
	size_t have;         /* bytes of it so far */
	unsigned char *out;  /* replies to the bytes fed since the last send */
	size_t out_len, out_cap;
};

static int framer_reply(struct framer *f, const unsigned char *m, size_t len)
{
	if (f->out_len + len > f->out_cap) {
		size_t cap = f->out_cap ? f->out_cap : 4096;
		while (cap < f->out_len + len)
			cap *= 2;
		unsigned char *out = realloc(f->out, cap);
		if (!out)
			return -ENOMEM;
		f->out = out;
		f->out_cap = cap;
	}
	memcpy(f->out + f->out_len, m, len);
	sp_make_reply(f->out + f->out_len);
	f->out_len += len;
	return 0;
}

/* Feed n received bytes; whole messages that want an answer append it to
 * f->out.  -EPROTO for a length sockperf would refuse, -ENOMEM. */
static int framer_feed(struct framer *f, const unsigned char *p, size_t n)
{
	while (n) {
		size_t len;
		/* The usual case: whole messages inside this receive, answered
		 * without copying them anywhere else first. */
		if (!f->have && n >= SP_HDR) {
			if (!(len = sp_len(p)))
				return -EPROTO;
			if (len <= n) {
				if (sp_wants_reply(p) && framer_reply(f, p, len) < 0)
					return -ENOMEM;
				p += len;
				n -= len;
				continue;
			}
		}
		/* A message split across receives: gather it in f->part. */
		if (!f->part && !(f->part = malloc(SP_MAX)))
			return -ENOMEM;
		size_t want = f->have < SP_HDR ? SP_HDR : sp_len(f->part);
		size_t take = want - f->have < n ? want - f->have : n;
		memcpy(f->part + f->have, p, take);
		f->have += take;
		p += take;
		n -= take;
		if (f->have < SP_HDR)
			continue; /* n is 0: the header's rest comes later */
		if (!(len = sp_len(f->part)))
			return -EPROTO;
		if (f->have == len) {
			if (sp_wants_reply(f->part) && framer_reply(f, f->part, len) < 0)
				return -ENOMEM;
			f->have = 0;
		}
	}
	return 0;
}

/* One UDP datagram: the length of the answer to send back, or 0. */
static size_t sp_datagram(unsigned char *m, size_t n)
{
	if (n < SP_HDR)
		return 0;
	size_t len = sp_len(m);
	if (!len || len > n || !sp_wants_reply(m))
		return 0;
	sp_make_reply(m);
	return len;
}

/* ---------------------------------------------------------------- the server */

static struct server {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tcp, udp, sockperf;
	bool plain_recv;         /* --plain-recv: no buffer ring even if possible */
	uco_tls_ctx *tls;        /* --tls CERT KEY */
	double chaos_cancel;     /* --chaos-cancel: see chaos() */
	unsigned threads;
	bool use_ring;           /* a probe loop could make a buffer ring */
	char backend[16];        /* what the probe loop ran on: io_uring, epoll */
	struct shard *shards;    /* one per thread */
	pthread_mutex_t lock;    /* guards stopping, status and shards[].loop */
	bool stopping;
	int status;              /* the exit status */
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* One thread's loop and sockets. */
struct shard {
	unsigned index;
	uco_loop *loop;          /* NULL unless running and reachable */
	int tcp_fd, udp_fd;
	uco_acceptor *acc;
	uco_bufring *ring;       /* NULL: connections use plain uco_recv */
	uco_event never;         /* the sentinel's; never set */
	bool stopping;           /* on the loop's thread: cancels are for real */
	struct conn *conns;      /* live connections, for --chaos-cancel */
	uint64_t chaos_cancels;  /* cancels it made (read at exit) */
};

struct conn {
	struct shard *sh;
	int fd;
	uco_tls *tls;            /* --tls */
	struct framer f;
	uco_task *task;
	struct conn *prev, *next; /* sh->conns */
};

/* A cancellation that --chaos-cancel sent rather than a shutdown: the
 * operation it interrupted must have lost nothing, so serving goes on. */
static bool chaos_only(const struct conn *c, int err)
{
	return err == -ECANCELED && !c->sh->stopping;
}

static void cancel_loop(void *arg)
{
	struct shard *sh = arg;
	sh->stopping = true;
	uco_loop_cancel_all(uco_loop_current());
}

/* From any thread: cancel every task of every loop, once.  Each loop is
 * reached through its inbox (uco_loop_call), on its own thread. */
static void request_stop(int status)
{
	pthread_mutex_lock(&srv.lock);
	if (status > srv.status)
		srv.status = status;
	if (!srv.stopping) {
		srv.stopping = true;
		for (unsigned i = 0; i < srv.threads; i++) {
			uco_loop *loop = srv.shards[i].loop;
			if (loop && uco_loop_call(loop, cancel_loop, &srv.shards[i]) < 0) {
				/* That loop would serve forever. */
				fprintf(stderr, "uco-echo: cannot reach thread %u to "
				        "stop it: exiting at once\n", i);
				_exit(1);
			}
		}
	}
	pthread_mutex_unlock(&srv.lock);
}

static void on_signal(int signo, void *user)
{
	(void)signo;
	(void)user;
	request_stop(0);
}

/* Keeps a loop running (and reachable by request_stop) until cancelled:
 * a loop's shard stays registered exactly as long as this task lives, so
 * uco_loop_call never targets a closed loop. */
static void *sentinel(void *arg)
{
	struct shard *sh = arg;

	uco_event_wait(&sh->never); /* only a cancellation ends it */
	pthread_mutex_lock(&srv.lock);
	sh->loop = NULL;
	pthread_mutex_unlock(&srv.lock);
	return NULL;
}

/* Send len bytes: 0, or -errno (-ETIMEDOUT: the client read nothing for
 * SEND_STALL_NS).  While a connection waits to send, the kernel goes on
 * receiving its bytes into the loop's shared buffers, so a client that
 * sends without reading would end up holding all of them, and every other
 * connection of the loop would wait.  Such a client is dropped.  The first
 * try is MSG_DONTWAIT (-EAGAIN rather than a wait), so that only a send
 * that has to wait pays for a deadline (a timeout SQE). */
static int send_all(struct conn *c, const void *buf, size_t len)
{
	const char *p = buf;
	if (c->tls) {
		/* Whole or not at all: after a cancelled write a TLS
		 * connection writes no more (uco_tls_write). */
		ssize_t w = uco_tls_write_dl(c->tls, buf, len, uco_now() + SEND_STALL_NS);
		return w < 0 ? (int)w : 0;
	}
	ssize_t w = uco_send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	while (w != (ssize_t)len) {
		if (w < 0 && w != -EAGAIN && !chaos_only(c, (int)w))
			return (int)w;
		if (w > 0) {
			p += w;
			len -= (size_t)w;
		}
		w = uco_send_dl(c->fd, p, len, MSG_NOSIGNAL, uco_now() + SEND_STALL_NS);
	}
	return 0;
}

/* What one connection does with n received bytes. */
static int answer(struct conn *c, const void *data, size_t n)
{
	if (!srv.sockperf)
		return send_all(c, data, n);
	int err = framer_feed(&c->f, data, n);
	if (!err && c->f.out_len) {
		err = send_all(c, c->f.out, c->f.out_len);
		c->f.out_len = 0;
	}
	return err;
}

static int serve_plain(struct conn *c)
{
	unsigned char buf[PLAIN_BUF];

	for (;;) {
		ssize_t n = uco_recv(c->fd, buf, sizeof buf, 0);
		if (chaos_only(c, (int)n))
			continue;
		if (n <= 0)
			return (int)n;
		int err = answer(c, buf, (size_t)n);
		if (err)
			return err;
	}
}

/* TLS: a heap buffer, for OpenSSL wants much of the coroutine's stack. */
static int serve_tls(struct conn *c)
{
	int err = uco_tls_open(&c->tls, srv.tls, c->fd, NULL);
	while (!err && (err = uco_tls_handshake_dl(c->tls, uco_now() + SEND_STALL_NS)) &&
	       chaos_only(c, err))
		err = 0;
	unsigned char *buf = err ? NULL : malloc(PLAIN_BUF);
	if (!err && !buf)
		err = -ENOMEM;
	while (!err) {
		ssize_t n = uco_tls_read(c->tls, buf, PLAIN_BUF);
		if (chaos_only(c, (int)n))
			continue;
		if (n <= 0) {
			err = (int)n;
			if (n == 0) /* close_notify: ours back */
				uco_tls_shutdown_dl(c->tls, uco_now() + SEND_STALL_NS);
			break;
		}
		err = answer(c, buf, (size_t)n);
	}
	if (err && err != -ECANCELED && err != -ETIMEDOUT && uco_tls_error(c->tls))
		fprintf(stderr, "uco-echo: TLS: %s\n", uco_tls_error(c->tls));
	free(buf);
	uco_tls_close(c->tls);
	return err == -EPROTO || err == -EKEYREJECTED ? -ECONNRESET : err;
}

static int serve_stream(struct conn *c)
{
	uco_recv_stream *s;
	int err = uco_recv_stream_open(&s, c->fd, c->sh->ring);

	if (err)
		return serve_plain(c); /* no memory or SQE for it: this one reads plainly */
	for (;;) {
		const void *data;
		ssize_t n = uco_recv_stream_next(s, &data);
		if (chaos_only(c, (int)n))
			continue;
		if (n <= 0) {
			err = (int)n;
			break;
		}
		/* data is the ring's buffer, ours until the next call. */
		if ((err = answer(c, data, (size_t)n)))
			break;
	}
	uco_recv_stream_close(s);
	return err;
}

static void *tcp_conn(void *arg)
{
	struct conn *c = arg;
	int err = srv.tls ? serve_tls(c) : c->sh->ring ? serve_stream(c) : serve_plain(c);

	if (err == -EPROTO)
		fprintf(stderr, "uco-echo: closed a connection that does not "
		        "speak sockperf's framing (a length below %d or above %d)\n",
		        SP_HDR, SP_MAX);
	else if (err == -ETIMEDOUT)
		fprintf(stderr, "uco-echo: dropped a client that sends but has read "
		        "nothing for %d s\n", (int)(SEND_STALL_NS / UCO_NS_PER_S));
	else if (err && err != -ECANCELED && err != -ECONNRESET && err != -EPIPE)
		fprintf(stderr, "uco-echo: closed a connection: %s\n", strerror(-err));
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->sh->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uco_task_release(c->task);
	free(c->f.part);
	free(c->f.out);
	free(c);
	return NULL;
}

static void start_conn(struct shard *sh, int fd)
{
	int one = 1;
	struct conn *c = calloc(1, sizeof *c);
	int err = -ENOMEM;

	/* Answers go out at once: Nagle would hold a small echo back until
	 * the client acknowledged the previous one. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (c) {
		c->sh = sh;
		c->fd = fd;
		err = uco_spawn(NULL, &c->task, tcp_conn, c);
	}
	if (!err) {
		c->next = sh->conns;
		if (sh->conns)
			sh->conns->prev = c;
		sh->conns = c;
	}
	if (err) {
		fprintf(stderr, "uco-echo: refused a connection: %s\n", strerror(-err));
		free(c);
		close(fd);
	}
}

/* Out of descriptors, every accept fails at once, and the acceptor tries
 * again at our next call: pause instead, while connections end and the
 * clients wait in the listen backlog. */
#define ACCEPT_PAUSE_NS (100 * UCO_NS_PER_MS)

static void *tcp_acceptor(void *arg)
{
	struct shard *sh = arg;
	bool short_of_fds = false;
	int err = 0;

	for (;;) {
		int fd = uco_acceptor_next(sh->acc);
		if (fd >= 0) {
			short_of_fds = false;
			start_conn(sh, fd);
			continue;
		}
		if (fd == -ECANCELED || fd == -ESHUTDOWN)
			break;
		if (fd == -ECONNABORTED || fd == -EINTR || fd == -EAGAIN || fd == -EPERM)
			continue; /* that connection is gone; the next may come */
		if (fd != -EMFILE && fd != -ENFILE && fd != -ENOBUFS && fd != -ENOMEM) {
			err = fd;
			break;
		}
		if (!short_of_fds)
			fprintf(stderr, "uco-echo: accept: %s: pausing new connections\n",
			        strerror(-fd));
		short_of_fds = true;
		if (uco_sleep(ACCEPT_PAUSE_NS) < 0)
			break; /* cancelled */
	}
	uco_acceptor_close(sh->acc);
	if (err) {
		fprintf(stderr, "uco-echo: accept: %s: stopping\n", strerror(-err));
		request_stop(1);
	}
	return NULL;
}

static void *udp_worker(void *arg)
{
	struct shard *sh = arg;
	unsigned char *buf = malloc(UDP_BUF);

	if (!buf) {
		fprintf(stderr, "uco-echo: udp: %s\n", strerror(ENOMEM));
		return NULL; /* the socket's other workers go on */
	}
	for (;;) {
		struct sockaddr_storage peer;
		struct iovec iov = { buf, UDP_BUF };
		struct msghdr msg = { .msg_name = &peer, .msg_namelen = sizeof peer,
		                      .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = uco_recvmsg(sh->udp_fd, &msg, 0);
		if (n == -ECANCELED)
			break;
		if (n < 0) {
			/* A peer's ICMP error or a short memory shortage: the
			 * socket itself is fine. */
			if (n == -ECONNREFUSED || n == -EINTR || n == -EAGAIN ||
			    n == -ENOMEM || n == -ENOBUFS)
				continue;
			fprintf(stderr, "uco-echo: udp receive: %s: stopping\n",
			        strerror((int)-n));
			request_stop(1);
			break;
		}
		size_t len = srv.sockperf ? sp_datagram(buf, (size_t)n) : (size_t)n;
		if (srv.sockperf && !len)
			continue;
		iov.iov_len = len;
		/* A failed answer (the peer's buffer full, a route gone) is a lost
		 * datagram, as UDP allows. */
		if (uco_sendmsg(sh->udp_fd, &msg, 0) == -ECANCELED)
			break;
	}
	free(buf);
	return NULL;
}

/* --chaos-cancel P (for the soak): every millisecond, each connection's
 * task is cancelled with probability P, wherever it waits (a receive, a
 * send, a buffer).  Each connection takes that as "go on", so a client
 * that checks every byte proves that cancelled operations lose nothing. */
static void *chaos(void *arg)
{
	struct shard *sh = arg;
	uint64_t x = 0x9E3779B97F4A7C15u * (sh->index + 1);
	while (uco_sleep(UCO_NS_PER_MS) == 0) {
		for (struct conn *c = sh->conns; c; c = c->next) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if ((double)(x >> 11) / (double)(UINT64_C(1) << 53) < srv.chaos_cancel &&
			    uco_task_cancel(c->task) == 0)
				sh->chaos_cancels++;
		}
	}
	return NULL;
}

/* uco_run_threads calls this on each new loop's thread.  Once the sentinel
 * is spawned it returns 0, even on later failures, which stop the server
 * instead: a loop with tasks must run before it can be closed. */
static int setup(uco_loop *loop, unsigned index, void *arg)
{
	struct shard *sh = &srv.shards[index];
	int err = uco_spawn(loop, NULL, sentinel, sh);
	(void)arg;

	if (err) {
		fprintf(stderr, "uco-echo: thread %u: %s\n", index, strerror(-err));
		request_stop(1);
		return err;
	}
	pthread_mutex_lock(&srv.lock);
	bool stopping = srv.stopping;
	if (!stopping)
		sh->loop = loop;
	pthread_mutex_unlock(&srv.lock);
	if (stopping) {
		uco_loop_cancel_all(loop);
		return 0;
	}
	const char *what = "signal handler";
	if (index == 0 && ((err = uco_loop_on_signal(loop, SIGINT, on_signal, NULL)) ||
	                   (err = uco_loop_on_signal(loop, SIGTERM, on_signal, NULL))))
		goto fail;
	if (srv.tcp) {
		if (srv.use_ring &&
		    (err = uco_bufring_create(loop, &sh->ring, RING_BUFS, RING_BUF_SIZE))) {
			fprintf(stderr, "uco-echo: thread %u: no provided buffers (%s): "
			        "its connections use uco_recv\n", index, strerror(-err));
			sh->ring = NULL;
		}
		what = "tcp acceptor";
		if ((err = uco_acceptor_open(loop, &sh->acc, sh->tcp_fd, SOCK_CLOEXEC)))
			goto fail;
		if ((err = uco_spawn(loop, NULL, tcp_acceptor, sh))) {
			uco_acceptor_close(sh->acc);
			goto fail;
		}
	}
	what = "chaos";
	if (srv.chaos_cancel > 0 && (err = uco_spawn(loop, NULL, chaos, sh)))
		goto fail;
	what = "udp";
	for (unsigned i = 0; srv.udp && i < UDP_WORKERS; i++)
		if ((err = uco_spawn(loop, NULL, udp_worker, sh)))
			goto fail;
	return 0;
fail:
	fprintf(stderr, "uco-echo: thread %u: %s: %s\n", index, what, strerror(-err));
	request_stop(1);
	return 0;
}

/* ---------------------------------------------------------------- start-up */

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static uint16_t get_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
	                                      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static int udp_socket(const struct sockaddr *addr, socklen_t len)
{
	int one = 1;
	int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
	    bind(fd, addr, len)) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static void close_sockets(void)
{
	for (unsigned i = 0; i < srv.threads; i++) {
		if (srv.shards[i].tcp_fd >= 0)
			close(srv.shards[i].tcp_fd);
		if (srv.shards[i].udp_fd >= 0)
			close(srv.shards[i].udp_fd);
		srv.shards[i].tcp_fd = srv.shards[i].udp_fd = -1;
	}
}

/* Port 0 asks the kernel for a port: then the others must bind that one. */
static int learn_port(int fd, struct sockaddr_storage *a)
{
	socklen_t len = sizeof *a;

	if (get_port(a) != 0)
		return 0;
	return getsockname(fd, (struct sockaddr *)a, &len) < 0 ? -errno : 0;
}

/* Every thread's sockets, before any thread starts, so that a bad address
 * or a busy port is one clear error.  On failure, *what names the socket. */
static int open_sockets(const char **what)
{
	struct sockaddr_storage a = srv.addr;
	const struct sockaddr *sa = (const struct sockaddr *)&a;
	int err = 0;

	for (unsigned i = 0; i < srv.threads && !err; i++) {
		struct shard *sh = &srv.shards[i];
		if (srv.tcp) {
			*what = "tcp";
			sh->tcp_fd = uco_listen_reuseport(sa, srv.addrlen, LISTEN_BACKLOG);
			err = sh->tcp_fd < 0 ? sh->tcp_fd : learn_port(sh->tcp_fd, &a);
		}
		if (srv.udp && !err) {
			*what = "udp";
			sh->udp_fd = udp_socket(sa, srv.addrlen);
			err = sh->udp_fd < 0 ? sh->udp_fd : learn_port(sh->udp_fd, &a);
		}
	}
	if (err) {
		close_sockets();
		return err;
	}
	srv.addr = a;
	return 0;
}

/* Whether this kernel lets a loop register a buffer ring, tried once on a
 * loop of the main thread, so that the path is known (and said) before the
 * threads start, and io_uring's absence is one clear error: 0, or what
 * uco_loop_create returned. */
static int probe(void)
{
	uco_loop *loop;
	uco_bufring *ring;
	int err = uco_loop_create(&loop, NULL);

	if (err)
		return err;
	const char *fell_back = NULL;
	snprintf(srv.backend, sizeof srv.backend, "%s", uco_loop_backend(loop, &fell_back));
	if (fell_back)
		fprintf(stderr, "uco-echo: backend %s: %s\n", srv.backend, fell_back);
	if (srv.tcp && !srv.plain_recv && !srv.tls) {
		err = uco_bufring_create(loop, &ring, RING_BUFS, RING_BUF_SIZE);
		if (!err)
			uco_bufring_destroy(ring);
		srv.use_ring = !err;
	}
	uco_loop_close(loop);
	if (srv.use_ring)
		fprintf(stderr, "uco-echo: tcp receive: multishot uco_recv_stream into "
		        "provided buffers (%d x %d bytes per thread)\n", RING_BUFS,
		        RING_BUF_SIZE);
	else if (srv.tls)
		fprintf(stderr, "uco-echo: tcp receive: TLS (uco_tls_read)\n");
	else if (srv.tcp)
		fprintf(stderr, "uco-echo: tcp receive: uco_recv into a %d-byte buffer "
		        "per connection (%s%s)\n", PLAIN_BUF,
		        srv.plain_recv ? "--plain-recv" : "no provided buffer ring: ",
		        srv.plain_recv ? "" : strerror(-err));
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: uco-echo [options]\n"
	        "A TCP and UDP echo server on uco.\n"
	        "\n"
	        "  -p, --port P      port to listen on (default %d, sockperf's; 0 picks a\n"
	        "                    free one, printed at start-up)\n"
	        "  -a, --addr A      IPv4 or IPv6 address to listen on (default 0.0.0.0)\n"
	        "      --tcp         serve TCP\n"
	        "      --udp         serve UDP (default: both, unless one is named)\n"
	        "  -t, --threads N   N threads, one loop and one SO_REUSEPORT listener\n"
	        "                    and UDP socket each (default 1)\n"
	        "      --sockperf    answer sockperf clients (ping-pong, throughput,\n"
	        "                    under-load) instead of echoing every byte\n"
	        "      --tls CERT KEY  TCP speaks TLS with this certificate chain and\n"
	        "                    key (PEM files); a cancelled write (--chaos-cancel)\n"
	        "                    ends a TLS connection\n"
	        "      --plain-recv  receive TCP with uco_recv even where provided\n"
	        "                    buffers work (the fallback path, for comparison)\n"
	        "      --backend B   auto (default), io_uring or epoll: the loops' backend\n"
	        "                    (the same as UCO_BACKEND=B in the environment,\n"
	        "                    which this overrides)\n"
	        "      --chaos-cancel P  every millisecond, cancel each TCP connection's\n"
	        "                    pending operation with probability P; connections\n"
	        "                    carry on (a soak test: nothing may be lost)\n"
	        "  -h, --help        this text\n"
	        "\n"
	        "It says on stderr how TCP receives and where it listens, then serves\n"
	        "until SIGINT or SIGTERM, and exits 0.  Exit status 2: bad options;\n"
	        "1: the server could not start or failed.\n", DEFAULT_PORT);
}

/* A whole decimal number in [lo, hi], or -1. */
static long parse_num(const char *s, long lo, long hi)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	return errno || *end || v < lo || v > hi ? -1 : v;
}

static int parse_args(int argc, char **argv)
{
	enum { OPT_TCP = 256, OPT_UDP, OPT_SOCKPERF, OPT_PLAIN_RECV, OPT_CHAOS, OPT_TLS,
	       OPT_BACKEND };
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "addr", required_argument, NULL, 'a' },
		{ "threads", required_argument, NULL, 't' },
		{ "tcp", no_argument, NULL, OPT_TCP },
		{ "udp", no_argument, NULL, OPT_UDP },
		{ "sockperf", no_argument, NULL, OPT_SOCKPERF },
		{ "plain-recv", no_argument, NULL, OPT_PLAIN_RECV },
		{ "chaos-cancel", required_argument, NULL, OPT_CHAOS },
		{ "tls", required_argument, NULL, OPT_TLS },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = "0.0.0.0";
	const char *tls_cert = NULL, *tls_key = NULL;
	long port = DEFAULT_PORT, v;
	int c;

	srv.threads = 1;
	while ((c = getopt_long(argc, argv, "p:a:t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if ((port = parse_num(optarg, 0, 65535)) < 0) {
				fprintf(stderr, "uco-echo: --port: '%s' is not a port "
				        "(0 to 65535)\n", optarg);
				return -EINVAL;
			}
			break;
		case 'a':
			addr = optarg;
			break;
		case 't':
			if ((v = parse_num(optarg, 1, MAX_THREADS)) < 0) {
				fprintf(stderr, "uco-echo: --threads: '%s' is not a "
				        "number from 1 to %d\n", optarg, MAX_THREADS);
				return -EINVAL;
			}
			srv.threads = (unsigned)v;
			break;
		case OPT_TCP: srv.tcp = true; break;
		case OPT_UDP: srv.udp = true; break;
		case OPT_SOCKPERF: srv.sockperf = true; break;
		case OPT_PLAIN_RECV: srv.plain_recv = true; break;
		case OPT_CHAOS: {
			char *end;
			srv.chaos_cancel = strtod(optarg, &end);
			if (end == optarg || *end || !(srv.chaos_cancel >= 0 && srv.chaos_cancel <= 1)) {
				fprintf(stderr, "uco-echo: --chaos-cancel: '%s' is not a "
				        "probability (0 to 1)\n", optarg);
				return -EINVAL;
			}
			break;
		}
		case OPT_TLS:
			/* Two arguments: CERT, then KEY. */
			if (optind >= argc || argv[optind][0] == '-') {
				fprintf(stderr, "uco-echo: --tls: want CERT KEY\n");
				return -EINVAL;
			}
			tls_cert = optarg;
			tls_key = argv[optind++];
			break;
		case OPT_BACKEND:
			/* uco_run_threads makes the loops with default options,
			 * and UCO_BACKEND overrides the default: the operator's
			 * own switch, set here for them. */
			if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "io_uring") != 0 &&
			    strcmp(optarg, "epoll") != 0) {
				fprintf(stderr, "uco-echo: --backend: '%s' is not auto, "
				        "io_uring or epoll\n", optarg);
				return -EINVAL;
			}
			setenv("UCO_BACKEND", optarg, 1);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fputs("Try 'uco-echo --help'.\n", stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "uco-echo: unexpected argument '%s'\n"
		        "Try 'uco-echo --help'.\n", argv[optind]);
		return -EINVAL;
	}
	if (!srv.tcp && !srv.udp)
		srv.tcp = srv.udp = true;

	struct sockaddr_in *in = (struct sockaddr_in *)&srv.addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&srv.addr;
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		srv.addrlen = sizeof *in;
	} else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		srv.addrlen = sizeof *in6;
	} else {
		fprintf(stderr, "uco-echo: --addr: '%s' is not an IPv4 or IPv6 "
		        "address\n", addr);
		return -EINVAL;
	}
	set_port(&srv.addr, (uint16_t)port);
	if (tls_cert) {
		uco_tls_ctx_opts o = { .flags = UCO_TLS_SERVER, .cert_file = tls_cert,
		                       .key_file = tls_key };
		char why[256];
		int err = uco_tls_ctx_create(&srv.tls, &o, why, sizeof why);
		if (err) {
			fprintf(stderr, "uco-echo: --tls: %s\n", why[0] ? why : strerror(-err));
			return -EINVAL;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv))
		return 2;
	srv.shards = calloc(srv.threads, sizeof *srv.shards);
	if (!srv.shards) {
		fprintf(stderr, "uco-echo: %s\n", strerror(ENOMEM));
		return 1;
	}
	for (unsigned i = 0; i < srv.threads; i++) {
		srv.shards[i].index = i;
		srv.shards[i].tcp_fd = srv.shards[i].udp_fd = -1;
		uco_event_init(&srv.shards[i].never);
	}

	int err = probe();
	if (err) {
		fprintf(stderr, "uco-echo: %s\n", uco_loop_strerror(err));
		return 1;
	}
	/* Port 0 takes the kernel's pick for TCP, which UDP may hold already:
	 * then pick again. */
	bool any_port = get_port(&srv.addr) == 0;
	const char *what = "";
	for (int tries = 0; tries < 16; tries++)
		if (!(err = open_sockets(&what)) || !any_port || err != -EADDRINUSE)
			break;
	char host[INET6_ADDRSTRLEN] = "?";
	const void *ip = srv.addr.ss_family == AF_INET
	                 ? (const void *)&((struct sockaddr_in *)&srv.addr)->sin_addr
	                 : (const void *)&((struct sockaddr_in6 *)&srv.addr)->sin6_addr;
	inet_ntop(srv.addr.ss_family, ip, host, sizeof host);
	const char *fmt = srv.addr.ss_family == AF_INET ? "%s:%u" : "[%s]:%u";
	char where[INET6_ADDRSTRLEN + 16];
	snprintf(where, sizeof where, fmt, host, get_port(&srv.addr));
	if (err) {
		fprintf(stderr, "uco-echo: %s socket on %s: %s\n", what, where,
		        strerror(-err));
		return 1;
	}

	/* Blocked in every thread (they inherit the mask), so that they reach
	 * the first loop's signalfd and nothing else; a broken connection is
	 * an error from the send, not a signal. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	fprintf(stderr, "uco-echo: listening on %s (%s, %u thread%s, %s, backend %s)\n",
	        where, srv.tcp && srv.udp ? "tcp and udp" : srv.tcp ? "tcp" : "udp",
	        srv.threads, srv.threads == 1 ? "" : "s",
	        srv.sockperf ? "sockperf replies" : srv.tls ? "echo, TLS" : "echo",
	        srv.backend);
	err = uco_run_threads(srv.threads, 0, setup, NULL);
	close_sockets();
	uco_tls_ctx_destroy(srv.tls);
	if (srv.chaos_cancel > 0) {
		uint64_t n = 0;
		for (unsigned i = 0; i < srv.threads; i++)
			n += srv.shards[i].chaos_cancels;
		fprintf(stderr, "uco-echo: --chaos-cancel: %llu cancels\n", (unsigned long long)n);
	}
	if (err) {
		fprintf(stderr, "uco-echo: %s\n", err == -ENOSYS || err == -EPERM
		        ? uco_loop_strerror(err) : strerror(-err));
		return 1;
	}
	return srv.status;
}
