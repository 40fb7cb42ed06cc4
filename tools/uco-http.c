/* SPDX-License-Identifier: MIT */
/*
 * uco-http: a small, fast HTTP/1.1 server on uco.
 *
 *   GET /plaintext   200 "Hello, World!" (text/plain: TechEmpower's test)
 *   GET /bytes/N     N bytes of 'x' (N <= 64 MiB, else 400)
 *   GET /any/path    the file under --root, index.html for a directory
 *
 * HEAD works on every route; any other method is 405.  Keep-alive and
 * pipelining: the requests of one read are answered in order, and their
 * responses leave in one send.
 *
 * One loop per thread (uco_run_threads), each with its own SO_REUSEPORT
 * listener, multishot acceptor and provided-buffer ring.  A connection is
 * one task: it waits for bytes (uco_recv_stream_next_dl, or uco_recv_dl
 * where the kernel has no buffer rings), parses every complete request in
 * them, answers into one output buffer and sends it.  Every wait has a
 * deadline, so no client holds a connection for longer than it is allowed
 * to: --idle-timeout between requests and per send or body read,
 * --header-timeout from the first byte of a request head to its end.
 *
 * With --tls CERT KEY it speaks HTTPS (uco_tls: OpenSSL's records over
 * the same ring), plain receives into the connection's buffer instead of
 * the shared ring, and files read and sent instead of spliced; the
 * handshake has --header-timeout to end.  --ktls asks for kernel TLS:
 * where the kernel takes the sending side over, files are spliced again
 * (the kernel makes the records).
 *
 * --backend auto|io_uring|epoll chooses the loops' backend (through
 * UCO_BACKEND, as uco_run_threads makes its loops with default options);
 * the start-up line says which one runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif
#include <linux/tcp.h> /* glibc's tcp_info lacks tcpi_bytes_received */
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <uco.h>

#include "http_parse.h"

/* Headers older than the kernel: openat2 is 5.6, RESOLVE_CACHED 5.12
 * (the number is the same on every architecture). */
#ifndef RESOLVE_BENEATH
struct open_how {
	uint64_t flags, mode, resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
#endif
#ifndef RESOLVE_CACHED
#define RESOLVE_CACHED 0x20
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define PROG "uco-http"

/* Bytes of a /bytes/N answer at most. */
#define BYTES_MAX (64u << 20)
/* Body bytes a request may carry (uco-http reads and drops them); above, 413. */
#define BODY_MAX (1u << 20)
/* A connection's output buffer: the responses of one read leave together,
 * and a small file goes out in the same send as its headers. */
#define OUT_CAP (16u << 10)
/* The buffer ring of a loop: buffers of BUF_SIZE, taken by the kernel only
 * when data arrives (idle connections hold none), and given back as soon
 * as their bytes are parsed.  The kernel takes them in ring order, so in
 * time each one is touched, but small requests touch only its first page:
 * 16 MiB resident, while a client flooding the loop has 64 MiB to fill
 * before it can starve the others (see too_far_ahead). */
#define BUF_COUNT 4096
#define BUF_SIZE (16u << 10)
/* How long a connection waits for a starved receive stream to be armed
 * again (see conn_recv). */
#define STARVED_SLICE_NS (500 * UCO_NS_PER_MS)
/* A send blocked on a client that does not read is checked this often
 * for a client that sends ever more meanwhile (see too_far_ahead). */
#define SEND_SLICE_NS (100 * UCO_NS_PER_MS)
#define READ_AHEAD_MAX (2u << 20)
/* Closing: how long to read and drop what the client still sends, so that
 * our last response is not destroyed by a reset (nginx's lingering close). */
#define LINGER_NS (1 * UCO_NS_PER_S)
#define LINGER_BYTES (256u << 10)
/* Splicing a file: bytes per round trip through the connection's pipe. */
#define SPLICE_CHUNK (64u << 10)

struct config {
	const char *addr;
	int port;
	unsigned threads;
	const char *root;
	int root_fd;
	int64_t idle_ns, header_ns;
	/* Test hooks, from the environment: UCO_HTTP_RECV=plain takes the
	 * path of kernels without buffer rings; UCO_HTTP_OPEN=walk the one
	 * of kernels without openat2, UCO_HTTP_OPEN=executor the one of a
	 * lookup that would block. */
	bool plain_recv;
	int open_mode;
	/* --tls CERT KEY: HTTPS (one context for every thread). */
	const char *tls_cert, *tls_key, *tls_suites, *tls_groups;
	uco_tls_ctx *tls;
	bool ktls;              /* --ktls */
};

static struct config cfg = {
	.addr = "0.0.0.0",
	.port = 8080,
	.threads = 1,
	.root_fd = -1,
	.idle_ns = 60 * UCO_NS_PER_S,
	.header_ns = 10 * UCO_NS_PER_S,
};

struct worker {
	unsigned index;
	int lfd;
	uco_loop *loop;
	uco_acceptor *acc;
	uco_bufring *br;        /* NULL: plain receives */
	bool registered;        /* reachable by stop_all() */
	bool stopping;
};

static struct worker *workers;
static pthread_mutex_t workers_lock = PTHREAD_MUTEX_INITIALIZER;
static bool stopping;           /* under workers_lock */
static atomic_int fatal_error;  /* the first error that stopped the server */

/* openat2 support, learnt on first use (shared by the threads). */
enum { OPENAT2_UNKNOWN, OPENAT2_CACHED, OPENAT2_UNCACHED, OPENAT2_NONE };
static atomic_int openat2_mode = OPENAT2_UNKNOWN;

/* /bytes/N is cut from this. */
static char xs[64 << 10];

/* ------------------------------------------------------------ per thread */

/* The Date header and the whole /plaintext answer, rebuilt once a second
 * by each thread, so that the answer is one memcpy. */
static _Thread_local struct {
	time_t sec;
	char date[40];
	char plain[256];
	size_t plain_len, plain_head_len;
} tl;

static void refresh_date(void)
{
	time_t now = time(NULL);
	if (now == tl.sec)
		return;
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(tl.date, sizeof tl.date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	int n = snprintf(tl.plain, sizeof tl.plain,
	                 "HTTP/1.1 200 OK\r\nServer: " PROG "\r\nDate: %s\r\n"
	                 "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n",
	                 tl.date);
	tl.plain_head_len = (size_t)n;
	memcpy(tl.plain + n, "Hello, World!", 13);
	tl.plain_len = (size_t)n + 13;
	tl.sec = now;
}

/* ------------------------------------------------------------ connections */

enum { C_HEAD, C_BODY, C_CHUNKED };

struct conn {
	struct worker *w;
	int fd;
	uco_recv_stream *rs;
	uco_tls *tls;           /* --tls */
	int state;              /* C_*: what the next bytes are */
	bool close;             /* stop after the responses queued */
	bool failed;            /* the socket broke: no more sends */
	uint64_t body_left;     /* C_BODY */
	struct http_chunked chunked;
	int64_t head_deadline;  /* of the head whose start is in `in` */
	int pipe[2];            /* for splice, made on first use */
	uint64_t consumed;      /* bytes received from the stream so far */
	size_t in_len, out_len;
	char in[HTTP_MAX_HEAD]; /* an incomplete head, kept across reads */
	char out[OUT_CAP];
	char path[HTTP_MAX_PATH];
	char rbuf[];            /* BUF_SIZE bytes, for plain receives only */
};

/*
 * While a send waits for a client that does not read, that client may go
 * on sending, and the connection's multishot receive goes on taking the
 * loop's shared buffers for those bytes: nothing pushes back, since this
 * task is not consuming them.  One such client could take every buffer
 * and stall all the other connections of the loop.  So a blocked send is
 * checked every SEND_SLICE_NS, and a client more than READ_AHEAD_MAX
 * bytes ahead of what it was answered is dropped (a pipelining client
 * that reads its responses never is).
 */
static bool too_far_ahead(const struct conn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	if (!c->rs || getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
		return false;
	return ti.tcpi_bytes_received - c->consumed > READ_AHEAD_MAX;
}

/* Wait for a send (or a splice into the socket, with splice set) in
 * slices: its result, or -ETIMEDOUT once the client took nothing for the
 * idle timeout, or -EPIPE when it is too far ahead. */
static ssize_t send_sliced(struct conn *c, const void *buf, size_t len, int flags, int pipe_fd)
{
	int64_t deadline = uco_now() + cfg.idle_ns;
	for (;;) {
		int64_t slice = uco_now() + SEND_SLICE_NS;
		if (slice > deadline)
			slice = deadline;
		ssize_t n = pipe_fd >= 0
		            ? uco_splice_dl(pipe_fd, -1, c->fd, -1, len, SPLICE_F_MOVE, slice)
		            : uco_send_dl(c->fd, buf, len, MSG_NOSIGNAL | flags, slice);
		if (n == -EAGAIN && pipe_fd >= 0 && c->tls) {
			/* --ktls: OpenSSL made the socket non-blocking, and a
			 * splice into it says so rather than wait. */
			n = uco_poll_dl(c->fd, POLLOUT, slice);
			if (n >= 0)
				continue;
		}
		if (n != -ETIMEDOUT || slice == deadline)
			return n;
		if (too_far_ahead(c))
			return -EPIPE;
	}
}

/*
 * Send len bytes.  0, or -errno (the connection is then dead).
 *
 * The first attempt is MSG_DONTWAIT: the ring then returns -EAGAIN rather
 * than wait, so it needs no linked timeout, which would cost an hrtimer
 * armed and cancelled and a second completion for every response.  Only
 * a send that has to wait (the client's window is full) takes a deadline.
 */
static int send_all(struct conn *c, const char *buf, size_t len, int flags)
{
	bool first = true;
	if (c->failed)
		return -EPIPE;
	if (c->tls) {
		/* Records are whole or the connection is done (uco_tls_write). */
		ssize_t n = uco_tls_write_dl(c->tls, buf, len, uco_now() + cfg.idle_ns);
		if (n < 0)
			c->failed = true;
		return n < 0 ? (int)n : 0;
	}
	while (len) {
		ssize_t n = -EAGAIN;
		if (first)
			n = uco_send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT | flags);
		first = false;
		if (n == -EAGAIN)
			n = send_sliced(c, buf, len, flags, -1);
		if (n <= 0) {
			c->failed = true;
			return n < 0 ? (int)n : -EPIPE;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send everything queued.  0, or -errno (the connection is then dead). */
static int flush(struct conn *c, int flags)
{
	int err = send_all(c, c->out, c->out_len, flags);
	c->out_len = 0;
	return err;
}

/* Room for `n` more bytes in the output buffer, sending what it holds if
 * need be.  n <= OUT_CAP. */
static int reserve(struct conn *c, size_t n)
{
	return c->out_len + n <= OUT_CAP ? 0 : flush(c, 0);
}

/* Queue a response head. */
static int put_head(struct conn *c, int status, const char *type, int64_t length,
                    bool keep, int minor, const char *extra)
{
	int err = reserve(c, 512 + (extra ? strlen(extra) : 0));
	if (err)
		return err;
	refresh_date();
	char *p = c->out + c->out_len;
	size_t room = OUT_CAP - c->out_len;
	int n = snprintf(p, room, "HTTP/1.1 %d %s\r\nServer: " PROG "\r\nDate: %s\r\n"
	                 "Content-Type: %s\r\nContent-Length: %lld\r\n%s%s\r\n",
	                 status, http_reason(status), tl.date, type, (long long)length,
	                 !keep ? "Connection: close\r\n"
	                       : minor == 0 ? "Connection: keep-alive\r\n" : "",
	                 extra ? extra : "");
	if (n < 0 || (size_t)n >= room)
		return -ENOSPC; /* cannot happen: reserve() made room */
	c->out_len += (size_t)n;
	return 0;
}

/* A short text answer (errors, 404, 405), its body "Reason\n". */
static int put_simple(struct conn *c, int status, bool keep, int minor,
                      bool head_only, const char *extra)
{
	const char *reason = http_reason(status);
	size_t len = strlen(reason) + 1;
	int err = put_head(c, status, "text/plain; charset=utf-8", (int64_t)len, keep,
	                   minor, extra);
	if (err || head_only)
		return err;
	memcpy(c->out + c->out_len, reason, len - 1); /* put_head left 512 */
	c->out[c->out_len + len - 1] = '\n';
	c->out_len += len;
	return 0;
}

/* /bytes/N: N bytes of 'x', the first ones in the same send as the head. */
static int serve_bytes(struct conn *c, uint64_t n, bool head_only, bool keep, int minor)
{
	int err = put_head(c, 200, "application/octet-stream", (int64_t)n, keep, minor, NULL);
	if (err || head_only)
		return err;
	while (n) {
		if (c->out_len == 0 && n >= sizeof xs) {
			/* Straight from xs, no copy. */
			if ((err = send_all(c, xs, sizeof xs, 0)))
				return err;
			n -= sizeof xs;
			continue;
		}
		size_t room = OUT_CAP - c->out_len;
		size_t k = n < room ? (size_t)n : room;
		memset(c->out + c->out_len, 'x', k);
		c->out_len += k;
		n -= k;
		if (n && (err = flush(c, 0)))
			return err;
	}
	return 0;
}

/* ------------------------------------------------------------ files */

struct open_job {
	int root;
	const char *path;
	struct open_how how;
	int result;
};

static int sys_openat2(int dirfd, const char *path, struct open_how *how)
{
	long r = syscall(SYS_openat2, dirfd, path, how, sizeof *how);
	return r < 0 ? -errno : (int)r;
}

static void *open_job_run(void *arg)
{
	struct open_job *j = arg;
	j->result = sys_openat2(j->root, j->path, &j->how);
	return NULL;
}

/* Without openat2 (before 5.6): one component at a time, each opened with
 * O_NOFOLLOW relative to the last, so that no symbolic link is followed
 * at all (stricter than openat2's RESOLVE_BENEATH, which follows the ones
 * that stay beneath the root).  http_decode_path() left no "..", "." nor
 * empty component. */
static int open_walk(char *path, int flags)
{
	int dir = cfg.root_fd;
	if (!*path)
		return uco_openat(dir, ".", flags | O_DIRECTORY, 0);
	for (char *comp = path;;) {
		char *slash = strchr(comp, '/');
		if (slash)
			*slash = 0;
		int fd = uco_openat(dir, comp,
		                    slash ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
		                          : flags | O_NOFOLLOW, 0);
		if (slash)
			*slash = '/';
		if (dir != cfg.root_fd)
			close(dir);
		if (fd < 0 || !slash)
			return fd;
		dir = fd;
		comp = slash + 1;
	}
}

/*
 * Open `path` (relative, as http_decode_path() made it) beneath the root,
 * never outside it: openat2() with RESOLVE_BENEATH refuses "..", absolute
 * symbolic links and relative ones that climb out (-EXDEV), and
 * RESOLVE_NO_MAGICLINKS the /proc kind.  It first tries RESOLVE_CACHED
 * (5.12+), which never blocks the loop; a lookup that would go to the disk
 * goes to the executor instead.
 */
static int open_beneath(char *path, int flags)
{
	const char *p = *path ? path : ".";
	struct open_job j = {
		.root = cfg.root_fd,
		.path = p,
		.how = { .flags = (uint64_t)flags,
		         .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS },
		.result = -ECANCELED,
	};
	int mode = cfg.open_mode != OPENAT2_UNKNOWN
	           ? cfg.open_mode : atomic_load_explicit(&openat2_mode, memory_order_relaxed);
	if (mode == OPENAT2_NONE)
		return open_walk(path, flags);
	if (mode != OPENAT2_UNCACHED) {
		j.how.resolve |= RESOLVE_CACHED;
		int fd = sys_openat2(j.root, p, &j.how);
		j.how.resolve &= ~(uint64_t)RESOLVE_CACHED;
		if (fd == -ENOSYS) {
			atomic_store(&openat2_mode, OPENAT2_NONE);
			return open_walk(path, flags);
		}
		if (fd == -EINVAL && mode == OPENAT2_UNKNOWN) {
			/* 5.6 to 5.11: openat2 without RESOLVE_CACHED. */
			atomic_store(&openat2_mode, OPENAT2_UNCACHED);
		} else if (fd != -EAGAIN) {
			if (mode == OPENAT2_UNKNOWN)
				atomic_store(&openat2_mode, OPENAT2_CACHED);
			return fd;
		}
	}
	int err = uco_run_in_executor(NULL, open_job_run, &j, NULL);
	if (err < 0) {
		/* Cancelled: a job that ran anyway opened a file nobody will
		 * read (the job was waited for, so j is settled). */
		if (j.result >= 0)
			close(j.result);
		return err;
	}
	if (j.result == -ENOSYS) {
		atomic_store(&openat2_mode, OPENAT2_NONE);
		return open_walk(path, flags);
	}
	return j.result;
}

static int errno_status(int err)
{
	switch (err) {
	case -ENOENT: case -ENOTDIR: case -ELOOP: case -EXDEV: case -ENAMETOOLONG:
		return 404; /* escapes look like what is missing */
	case -EACCES: case -EPERM:
		return 403;
	}
	return 500;
}

/* Open and stat the file a path names: its descriptor (blocking reads)
 * and size, or the negated status to answer. */
static int open_file(struct conn *c, size_t len, bool trailing_slash, uint64_t *size)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	struct statx stx;
	int fd = open_beneath(c->path, flags);
	if (fd < 0)
		return fd == -ECANCELED ? fd : -errno_status(fd);
	int err = uco_statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &stx);
	if (!err && S_ISDIR(stx.stx_mode)) {
		close(fd);
		static const char index[] = "index.html";
		if (len + sizeof index + 1 > sizeof c->path)
			return -414;
		if (len)
			c->path[len++] = '/';
		memcpy(c->path + len, index, sizeof index);
		fd = open_beneath(c->path, flags);
		if (fd < 0)
			return fd == -ECANCELED ? fd : -errno_status(fd);
		trailing_slash = false;
		err = uco_statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &stx);
	}
	/* Only regular files; "file/" is not a directory. */
	int status = err ? -500 : !S_ISREG(stx.stx_mode) || trailing_slash ? -404 : 0;
	/* Blocking reads from here: with O_NONBLOCK the ring would report
	 * -EAGAIN for a page-cache miss instead of reading. */
	if (!status && fcntl(fd, F_SETFL, 0) < 0)
		status = -500;
	if (status) {
		close(fd);
		return status;
	}
	*size = stx.stx_size;
	return fd;
}

/* Send `size` bytes of fd after what is queued: through a pipe with
 * splice (no copy), else read and send. */
static int send_file_body(struct conn *c, int fd, uint64_t size)
{
	uint64_t off = 0;
	int err;
	if (size <= OUT_CAP - c->out_len) {
		/* Small: in the same send as the head and the answers before. */
		ssize_t n = uco_read_full(fd, c->out + c->out_len, (size_t)size, UCO_FOREVER);
		if (n != (ssize_t)size)
			return n < 0 ? (int)n : -EIO; /* it shrank: the length is a lie */
		c->out_len += (size_t)size;
		return 0;
	}
	if ((err = flush(c, MSG_MORE)))
		return err;
	/* TLS: the records are made here, unless the kernel makes them. */
	bool records_here = c->tls && !(uco_tls_ktls(c->tls) & UCO_TLS_KTLS_SEND);
	if (c->pipe[0] < 0 && (records_here || pipe2(c->pipe, O_CLOEXEC) < 0))
		c->pipe[0] = c->pipe[1] = -1;
	while (off < size && c->pipe[0] >= 0) {
		size_t want = size - off < SPLICE_CHUNK ? (size_t)(size - off) : SPLICE_CHUNK;
		ssize_t n = uco_splice(fd, (int64_t)off, c->pipe[1], -1, want, SPLICE_F_MOVE);
		if (n == -EINVAL && off == 0)
			break; /* this file system cannot splice: read and send */
		if (n <= 0)
			return n < 0 ? (int)n : -EIO;
		off += (uint64_t)n;
		while (n > 0) {
			ssize_t m = send_sliced(c, NULL, (size_t)n, 0, c->pipe[0]);
			if (m <= 0) {
				c->failed = true;
				return m < 0 ? (int)m : -EPIPE;
			}
			n -= m;
		}
	}
	while (off < size) {
		size_t want = size - off < OUT_CAP ? (size_t)(size - off) : OUT_CAP;
		ssize_t n = uco_read(fd, c->out, want, (int64_t)off);
		if (n <= 0)
			return n < 0 ? (int)n : -EIO;
		c->out_len = (size_t)n;
		off += (uint64_t)n;
		if ((err = flush(c, 0)))
			return err;
	}
	return 0;
}

static int serve_file(struct conn *c, size_t len, bool slash, bool head_only, bool keep,
                      int minor)
{
	if (cfg.root_fd < 0)
		return put_simple(c, 404, keep, minor, head_only, NULL);
	uint64_t size = 0; /* set when open_file succeeds (-Os cannot see it) */
	int fd = open_file(c, len, slash, &size);
	if (fd == -ECANCELED)
		return fd;
	if (fd < 0)
		return put_simple(c, -fd, keep, minor, head_only, NULL);
	int err = put_head(c, 200, http_mime_type(c->path, strlen(c->path)), (int64_t)size,
	                   keep, minor, NULL);
	if (!err && !head_only)
		err = send_file_body(c, fd, size);
	close(fd);
	return err;
}

/* ------------------------------------------------------------ requests */

/* "bytes/N": N, or -1 when it is not a number up to BYTES_MAX. */
static int64_t bytes_count(const char *s)
{
	uint64_t n = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
		if (n > BYTES_MAX)
			return -1;
	}
	return (int64_t)n;
}

/* Answer one request (its head just parsed), and set up the reading of
 * its body.  0, or -errno when the connection broke. */
static int handle(struct conn *c, const struct http_request *req)
{
	bool head_only = req->method == HTTP_METHOD_HEAD;
	bool has_body = req->chunked || req->content_length;
	bool keep = req->keep_alive;
	int minor = req->version_minor;

	/* An answer before the body, to a client waiting for 100 Continue:
	 * it may never send the body, so the connection cannot go on. */
	if (has_body && req->expect_continue)
		keep = false;
	if (req->chunked) {
		c->state = C_CHUNKED;
		http_chunked_init(&c->chunked);
	} else if (req->content_length) {
		c->state = C_BODY;
		c->body_left = req->content_length;
	}
	if (!keep)
		c->close = true;

	if (req->method == HTTP_METHOD_OTHER)
		return put_simple(c, 405, keep, minor, false, "Allow: GET, HEAD\r\n");

	bool slash;
	int len = http_decode_path(req->path, req->path_len, c->path, sizeof c->path, &slash);
	if (len < 0) {
		c->close = true;
		return put_simple(c, -len, false, minor, head_only, NULL);
	}
	if (len == 9 && memcmp(c->path, "plaintext", 9) == 0 && keep && minor == 1) {
		/* The hot path: one copy of the ready answer. */
		size_t n = head_only ? tl.plain_head_len : tl.plain_len;
		int err = reserve(c, n);
		if (!err) {
			memcpy(c->out + c->out_len, tl.plain, n);
			c->out_len += n;
		}
		return err;
	}
	if (len == 9 && memcmp(c->path, "plaintext", 9) == 0) {
		int err = put_head(c, 200, "text/plain", 13, keep, minor, NULL);
		if (!err && !head_only) {
			memcpy(c->out + c->out_len, "Hello, World!", 13);
			c->out_len += 13;
		}
		return err;
	}
	if (len > 6 && memcmp(c->path, "bytes/", 6) == 0) {
		int64_t n = bytes_count(c->path + 6);
		if (n < 0)
			return put_simple(c, 400, keep, minor, head_only, NULL);
		return serve_bytes(c, (uint64_t)n, head_only, keep, minor);
	}
	return serve_file(c, (size_t)len, slash, head_only, keep, minor);
}

/*
 * Consume the requests in buf[0, len): answer each one whose head is
 * complete, drop bodies.  Returns the bytes consumed (the rest is the
 * start of a head), or -errno when the connection broke.  Stops early
 * once a response ends the connection (c->close).
 */
static ssize_t process(struct conn *c, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len && !c->close && !c->w->stopping) {
		if (c->state == C_BODY) {
			size_t n = len - off < c->body_left ? len - off : (size_t)c->body_left;
			off += n;
			c->body_left -= n;
			if (!c->body_left)
				c->state = C_HEAD;
			continue;
		}
		if (c->state == C_CHUNKED) {
			ssize_t n = http_chunked_feed(&c->chunked, buf + off, len - off, BODY_MAX);
			if (n < 0) {
				c->close = true;
				int err = put_simple(c, (int)-n, false, 1, false, NULL);
				return err ? err : (ssize_t)len;
			}
			off += (size_t)n;
			if (http_chunked_done(&c->chunked))
				c->state = C_HEAD;
			continue;
		}
		struct http_request req;
		int r = http_parse_request(buf + off, len - off, BODY_MAX, &req);
		if (r == HTTP_PARSE_MORE)
			break;
		if (r < 0) {
			/* The stream cannot be trusted past a bad head. */
			c->close = true;
			int err = put_simple(c, -r, false, 1, false, NULL);
			return err ? err : (ssize_t)len;
		}
		off += (size_t)r;
		int err = handle(c, &req);
		if (err)
			return err;
	}
	return (ssize_t)off;
}

/* Feed newly received bytes through process(), keeping an incomplete
 * head in c->in.  0, or -errno. */
static int feed(struct conn *c, const char *data, size_t n)
{
	refresh_date();
	while (n && !c->close) {
		if (c->in_len == 0) {
			/* Nothing pending: parse the received buffer in place. */
			ssize_t r = process(c, data, n);
			if (r < 0)
				return (int)r;
			data += r;
			n -= (size_t)r;
			if (n && !c->close) {
				/* The start of a head (process() refused any head
				 * of HTTP_MAX_HEAD bytes or more, so it fits). */
				memcpy(c->in, data, n);
				c->in_len = n;
				c->head_deadline = uco_now() + cfg.header_ns;
			}
			return 0;
		}
		size_t k = sizeof c->in - c->in_len;
		if (k > n)
			k = n;
		memcpy(c->in + c->in_len, data, k);
		/* The head can only end, or fail, with a new line: parsing it
		 * again for anything less would be quadratic in a client that
		 * sends one byte at a time. */
		bool line = memchr(data, '\n', k) != NULL;
		c->in_len += k;
		data += k;
		n -= k;
		if (!line && c->in_len < sizeof c->in)
			continue;
		ssize_t r = process(c, c->in, c->in_len);
		if (r < 0)
			return (int)r;
		c->in_len -= (size_t)r;
		memmove(c->in, c->in + r, c->in_len);
		/* Left: nothing, or the start of a head (any body bytes
		 * were consumed); a new head if one ended in these bytes. */
		if (c->in_len && r)
			c->head_deadline = uco_now() + cfg.header_ns;
	}
	return 0;
}

/*
 * The next received bytes: > 0 of them at *data, 0 at the end of the
 * stream, or -errno.
 *
 * A receive stream whose multishot ended for want of buffers (-ENOBUFS) is
 * armed again only by the next uco_recv_stream_next() call, so a task
 * already waiting in one would wait until its deadline (lib/bufring.c),
 * however soon buffers came back.  Waiting in slices of STARVED_SLICE_NS
 * arms such a stream again soon after.  And a deadline that passes with
 * bytes in the socket is no idle client but a starved stream: it gets one
 * more slice.
 */
static ssize_t conn_recv(struct conn *c, const char **data, int64_t now, int64_t deadline)
{
	bool extended = false;
	if (c->tls) {
		*data = c->rbuf;
		return uco_tls_read_dl(c->tls, c->rbuf, BUF_SIZE, deadline);
	}
	if (!c->rs) {
		*data = c->rbuf;
		return uco_recv_dl(c->fd, c->rbuf, BUF_SIZE, 0, deadline);
	}
	for (;; now = uco_now()) {
		int64_t slice = now + STARVED_SLICE_NS;
		bool last = deadline <= slice;
		ssize_t n = uco_recv_stream_next_dl(c->rs, (const void **)data,
		                                    last ? deadline : slice);
		if (n > 0)
			c->consumed += (uint64_t)n;
		if (n != -ETIMEDOUT)
			return n;
		int queued = 0;
		if (last && !extended && ioctl(c->fd, FIONREAD, &queued) == 0 && queued > 0) {
			extended = true;
			deadline = uco_now() + STARVED_SLICE_NS;
			continue;
		}
		if (last)
			return n;
	}
}

/* Read and drop what the client still sends, for a while, after our
 * last response: closing with unread data would send a reset, which may
 * destroy that response before the client has read it. */
static void linger(struct conn *c)
{
	if (c->failed || c->w->stopping)
		return;
	/* TLS: our close_notify first, so that the client knows the
	 * stream ended here. */
	if (c->tls && uco_tls_shutdown_dl(c->tls, uco_now() + LINGER_NS) < 0)
		return;
	if (uco_shutdown(c->fd, SHUT_WR) < 0)
		return;
	int64_t now = uco_now(), deadline = now + LINGER_NS;
	size_t total = 0;
	while (total < LINGER_BYTES) {
		const char *data;
		ssize_t n = conn_recv(c, &data, now, deadline);
		now = uco_now();
		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

static void serve(struct conn *c)
{
	while (!c->close && !c->w->stopping) {
		/* Between requests the idle timeout; within a head, what is
		 * left of the header timeout; in a body, idle per read. */
		int64_t now = uco_now();
		int64_t deadline = c->in_len ? c->head_deadline : now + cfg.idle_ns;
		const char *data;
		ssize_t n = conn_recv(c, &data, now, deadline);
		if (n == -ETIMEDOUT && c->in_len) {
			c->close = true;
			put_simple(c, 408, false, 1, false, NULL);
			break;
		}
		if (n <= 0)
			return;
		/* Whatever else is already queued joins this batch, and each
		 * buffer goes back to the ring once parsed (a try-once call,
		 * deadline 0, returns it): a connection holds no buffer while
		 * its answers are sent. */
		while (n > 0) {
			if (feed(c, data, (size_t)n) < 0)
				return;
			if (c->close || !c->rs)
				break;
			n = uco_recv_stream_next_dl(c->rs, (const void **)&data, 0);
			if (n > 0)
				c->consumed += (uint64_t)n;
		}
		if (flush(c, 0) < 0)
			return;
		if (n == 0 || (n < 0 && n != -ETIMEDOUT))
			return; /* the client is gone, its answers sent */
	}
	if (flush(c, 0) == 0)
		linger(c);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	int err = 0;
	if (cfg.tls) {
		/* A client that does not finish its handshake in time is
		 * dropped, as one that does not finish its request head. */
		err = uco_tls_open(&c->tls, cfg.tls, c->fd, NULL);
		if (err)
			fprintf(stderr, PROG ": uco_tls_open: %s\n", strerror(-err));
		else if (uco_tls_handshake_dl(c->tls, uco_now() + cfg.header_ns) == 0)
			serve(c);
	} else {
		if (c->w->br)
			err = uco_recv_stream_open(&c->rs, c->fd, c->w->br);
		if (err)
			fprintf(stderr, PROG ": uco_recv_stream_open: %s\n", strerror(-err));
		else
			serve(c);
	}
	if (c->rs)
		uco_recv_stream_close(c->rs);
	uco_tls_close(c->tls);
	c->tls = NULL;
	if (c->pipe[0] >= 0) {
		close(c->pipe[0]);
		close(c->pipe[1]);
	}
	close(c->fd);
	c->fd = -1;
	return NULL;
}

/* After the task, however it ended: a task cancelled before it ever ran
 * (the server stopping in the turn that spawned it) still holds the
 * descriptor. */
static void conn_done(uco_task *task, void *user)
{
	struct conn *c = user;
	(void)task;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* ------------------------------------------------------------ workers */

static void worker_stop(void *arg)
{
	struct worker *w = arg;
	w->stopping = true;
	if (w->acc)
		uco_acceptor_close(w->acc);
	w->acc = NULL;
	uco_loop_cancel_all(w->loop);
}

/* Stop every loop (once): each closes its acceptor and cancels its
 * connections, so that uco_run_threads() returns. */
static void stop_all(int err)
{
	int none = 0;
	if (err)
		atomic_compare_exchange_strong(&fatal_error, &none, err);
	pthread_mutex_lock(&workers_lock);
	if (!stopping) {
		stopping = true;
		for (unsigned i = 0; i < cfg.threads; i++) {
			struct worker *w = &workers[i];
			if (!w->registered)
				continue;
			if (w->loop == uco_loop_current())
				worker_stop(w);
			else
				uco_loop_call(w->loop, worker_stop, w);
		}
	}
	pthread_mutex_unlock(&workers_lock);
}

static void on_signal(int signo, void *user)
{
	(void)signo;
	(void)user;
	stop_all(0);
}

static void *accept_main(void *arg)
{
	struct worker *w = arg;
	bool told = false;
	while (!w->stopping) {
		int fd = uco_acceptor_next(w->acc);
		if (fd == -ESHUTDOWN || fd == -ECANCELED)
			break;
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
			/* Wait for descriptors or memory to come back rather
			 * than spin. */
			if (!told)
				fprintf(stderr, PROG ": accept: %s\n", strerror(-fd));
			told = true;
			if (uco_sleep(100 * UCO_NS_PER_MS) == -ECANCELED)
				break;
			continue;
		}
		if (fd < 0)
			continue; /* the client gave up first (-ECONNABORTED ...) */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		/* Not calloc: the buffers need no zeroing. */
		struct conn *c = malloc(sizeof *c + (w->br && !cfg.tls ? 0 : BUF_SIZE));
		if (!c) {
			close(fd);
			continue;
		}
		memset(c, 0, offsetof(struct conn, in));
		c->w = w;
		c->fd = fd;
		c->pipe[0] = c->pipe[1] = -1;
		uco_task *task;
		int err = uco_spawn(w->loop, &task, conn_main, c);
		if (!err) {
			err = uco_task_add_done_callback(task, conn_done, c);
			if (err)
				uco_task_cancel(task); /* not run yet: it never will */
			uco_task_release(task);
		}
		if (err) {
			if (!told)
				fprintf(stderr, PROG ": uco_spawn: %s\n", strerror(-err));
			told = true;
			close(fd);
			free(c);
		}
	}
	return NULL;
}

static int setup(uco_loop *loop, unsigned index, void *arg)
{
	struct worker *w = &workers[index];
	int err = 0;
	(void)arg;
	w->loop = loop;
	if (!cfg.plain_recv && !cfg.tls) {
		err = uco_bufring_create(loop, &w->br, BUF_COUNT, BUF_SIZE);
		if (err == -EOPNOTSUPP) {
			w->br = NULL; /* before 5.19: one receive at a time */
			err = 0;
		}
	}
	if (!err)
		err = uco_acceptor_open(loop, &w->acc, w->lfd, SOCK_CLOEXEC);
	if (!err)
		err = uco_spawn(loop, NULL, accept_main, w);
	if (!err && index == 0) {
		err = uco_loop_on_signal(loop, SIGINT, on_signal, NULL);
		if (!err)
			err = uco_loop_on_signal(loop, SIGTERM, on_signal, NULL);
	}
	pthread_mutex_lock(&workers_lock);
	bool late = stopping;
	w->registered = !err && !late;
	pthread_mutex_unlock(&workers_lock);
	if (err) {
		fprintf(stderr, PROG ": thread %u: %s\n", index, strerror(-err));
		stop_all(err);
	}
	if (late || err)
		worker_stop(w); /* the loop ends with nothing left to run */
	return 0;
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: " PROG " [options]\n"
	        "\n"
	        "A small HTTP/1.1 server on uco: keep-alive and pipelining, one event\n"
	        "loop per thread.\n"
	        "\n"
	        "  GET /plaintext   \"Hello, World!\" (text/plain)\n"
	        "  GET /bytes/N     N bytes of 'x', N <= %u\n"
	        "  GET /PATH        the file PATH under --root (index.html for a directory)\n"
	        "  HEAD on each; other methods get 405.\n"
	        "\n"
	        "options:\n"
	        "  -p, --port P            TCP port (default 8080; 0: any free port)\n"
	        "  -a, --addr A            address to listen on (default 0.0.0.0)\n"
	        "  -t, --threads N         event loops, one per thread (default 1)\n"
	        "  -r, --root DIR          serve the files under DIR (default: none)\n"
	        "      --tls CERT KEY      HTTPS with this certificate chain and key (PEM)\n"
	        "      --tls-ciphers LIST  TLS 1.3 cipher suites (OpenSSL's names, ':')\n"
	        "      --tls-groups LIST   key exchange groups (\"P-256:X25519\")\n"
	        "      --ktls              kernel TLS where the kernel has it (files are\n"
	        "                          then spliced)\n"
	        "      --idle-timeout S    close a connection idle for S seconds, between\n"
	        "                          requests or in a send (default 60)\n"
	        "      --header-timeout S  seconds a client has to send a request head\n"
	        "                          once it has begun (default 10; 408 after)\n"
	        "      --backend B         auto (default), io_uring or epoll: the loops'\n"
	        "                          backend (the same as UCO_BACKEND=B in the\n"
	        "                          environment, which this overrides)\n"
	        "  -h, --help              this help\n"
	        "\n"
	        "Limits: request head %d bytes (414, 431), %d fields (431), body %u bytes\n"
	        "(413; bodies are read and dropped).  SIGINT or SIGTERM stops the server.\n",
	        BYTES_MAX, HTTP_MAX_HEAD, HTTP_MAX_HEADERS, BODY_MAX);
}

static bool parse_seconds(const char *s, int64_t *ns)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1e6)
		return false;
	*ns = (int64_t)(v * 1e9);
	return true;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return false;
	*out = v;
	return true;
}

static int listen_all(int *fds)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                          .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	char port[16];
	snprintf(port, sizeof port, "%d", cfg.port);
	int gai = getaddrinfo(cfg.addr, port, &hints, &res);
	if (gai) {
		fprintf(stderr, PROG ": --addr %s: %s\n", cfg.addr, gai_strerror(gai));
		return -1;
	}
	struct sockaddr_storage sa;
	socklen_t salen = res->ai_addrlen;
	memcpy(&sa, res->ai_addr, salen);
	freeaddrinfo(res);
	for (unsigned i = 0; i < cfg.threads; i++) {
		fds[i] = uco_listen_reuseport((struct sockaddr *)&sa, salen, 4096);
		if (fds[i] < 0) {
			fprintf(stderr, PROG ": listen on %s port %d: %s\n", cfg.addr, cfg.port,
			        strerror(-fds[i]));
			while (i--)
				close(fds[i]);
			return -1;
		}
		if (i == 0 && cfg.port == 0) {
			/* Port 0: the others join the port the kernel chose. */
			socklen_t len = sizeof sa;
			getsockname(fds[0], (struct sockaddr *)&sa, &len);
			cfg.port = ntohs(sa.ss_family == AF_INET6
			                 ? ((struct sockaddr_in6 *)&sa)->sin6_port
			                 : ((struct sockaddr_in *)&sa)->sin_port);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_IDLE = 256, OPT_HEADER, OPT_TLS, OPT_TLS_CIPHERS, OPT_TLS_GROUPS, OPT_KTLS,
	       OPT_BACKEND };
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "addr", required_argument, NULL, 'a' },
		{ "threads", required_argument, NULL, 't' },
		{ "root", required_argument, NULL, 'r' },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "header-timeout", required_argument, NULL, OPT_HEADER },
		{ "tls", required_argument, NULL, OPT_TLS },
		{ "tls-ciphers", required_argument, NULL, OPT_TLS_CIPHERS },
		{ "tls-groups", required_argument, NULL, OPT_TLS_GROUPS },
		{ "ktls", no_argument, NULL, OPT_KTLS },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt;
	unsigned long v;
	while ((opt = getopt_long(argc, argv, "p:a:t:r:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (!parse_uint(optarg, 65535, &v)) {
				fprintf(stderr, PROG ": --port: not a port number: %s\n", optarg);
				return 2;
			}
			cfg.port = (int)v;
			break;
		case 'a':
			cfg.addr = optarg;
			break;
		case 't':
			if (!parse_uint(optarg, 1024, &v) || v == 0) {
				fprintf(stderr, PROG ": --threads: want 1 to 1024: %s\n", optarg);
				return 2;
			}
			cfg.threads = (unsigned)v;
			break;
		case 'r':
			cfg.root = optarg;
			break;
		case OPT_IDLE:
		case OPT_HEADER:
			if (!parse_seconds(optarg, opt == OPT_IDLE ? &cfg.idle_ns : &cfg.header_ns)) {
				fprintf(stderr, PROG ": --%s: want seconds > 0: %s\n",
				        opt == OPT_IDLE ? "idle-timeout" : "header-timeout", optarg);
				return 2;
			}
			break;
		case OPT_TLS:
			/* Two arguments: CERT, then KEY. */
			if (optind >= argc || argv[optind][0] == '-') {
				fprintf(stderr, PROG ": --tls: want CERT KEY\n");
				return 2;
			}
			cfg.tls_cert = optarg;
			cfg.tls_key = argv[optind++];
			break;
		case OPT_TLS_CIPHERS:
			cfg.tls_suites = optarg;
			break;
		case OPT_TLS_GROUPS:
			cfg.tls_groups = optarg;
			break;
		case OPT_KTLS:
			cfg.ktls = true;
			break;
		case OPT_BACKEND:
			/* uco_run_threads makes the loops with default options,
			 * and UCO_BACKEND overrides the default: the operator's
			 * own switch, set here for them. */
			if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "io_uring") != 0 &&
			    strcmp(optarg, "epoll") != 0) {
				fprintf(stderr, PROG ": --backend: want auto, io_uring or epoll: "
				        "%s\n", optarg);
				return 2;
			}
			setenv("UCO_BACKEND", optarg, 1);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument: %s (see --help)\n", argv[optind]);
		return 2;
	}
	const char *hook = getenv("UCO_HTTP_RECV");
	cfg.plain_recv = hook && strcmp(hook, "plain") == 0;
	hook = getenv("UCO_HTTP_OPEN");
	if (hook && strcmp(hook, "walk") == 0)
		cfg.open_mode = OPENAT2_NONE;
	else if (hook && strcmp(hook, "executor") == 0)
		cfg.open_mode = OPENAT2_UNCACHED;
	memset(xs, 'x', sizeof xs);
	if (cfg.tls_cert) {
		uco_tls_ctx_opts o = { .flags = UCO_TLS_SERVER | (cfg.ktls ? UCO_TLS_KTLS : 0),
		                       .cert_file = cfg.tls_cert,
		                       .key_file = cfg.tls_key, .alpn = "http/1.1",
		                       .ciphersuites = cfg.tls_suites, .groups = cfg.tls_groups };
		char why[256];
		int err = uco_tls_ctx_create(&cfg.tls, &o, why, sizeof why);
		if (err) {
			fprintf(stderr, PROG ": --tls: %s\n", why[0] ? why : strerror(-err));
			return 1;
		}
	}

	if (cfg.root) {
		cfg.root_fd = open(cfg.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (cfg.root_fd < 0) {
			fprintf(stderr, PROG ": --root %s: %s\n", cfg.root, strerror(errno));
			return 1;
		}
	}
	/* A descriptor per connection: as many as we may have (the soft
	 * limit is often 1024, far below the hard one). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Say why io_uring is missing once, here, rather than per thread. */
	uco_loop *probe;
	int err = uco_loop_create(&probe, NULL);
	if (err) {
		fprintf(stderr, PROG ": %s\n", uco_loop_strerror(err));
		return 1;
	}
	/* And which backend the loops run on (AUTO may have fallen back). */
	const char *fell_back = NULL;
	char backend[16];
	snprintf(backend, sizeof backend, "%s", uco_loop_backend(probe, &fell_back));
	if (fell_back)
		fprintf(stderr, PROG ": backend %s: %s\n", backend, fell_back);
	uco_loop_close(probe);

	workers = calloc(cfg.threads, sizeof *workers);
	int *fds = calloc(cfg.threads, sizeof *fds);
	if (!workers || !fds) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	if (listen_all(fds) < 0) {
		free(fds);
		free(workers);
		return 1;
	}
	for (unsigned i = 0; i < cfg.threads; i++) {
		workers[i].index = i;
		workers[i].lfd = fds[i];
	}
	/* A peer gone mid-send must be an error, not a signal; SIGINT and
	 * SIGTERM go to loop 0's signalfd, so every thread blocks them. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	fprintf(stderr, PROG ": listening on %s port %d, %u thread%s%s%s%s, backend %s\n",
	        cfg.addr, cfg.port, cfg.threads, cfg.threads == 1 ? "" : "s",
	        cfg.root ? ", root " : "", cfg.root ? cfg.root : "", cfg.tls ? ", TLS" : "",
	        backend);
	err = uco_run_threads(cfg.threads, 0, setup, NULL);
	for (unsigned i = 0; i < cfg.threads; i++)
		close(fds[i]);
	free(fds);
	free(workers);
	uco_tls_ctx_destroy(cfg.tls);
	if (!err)
		err = atomic_load(&fatal_error);
	if (err) {
		fprintf(stderr, PROG ": %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
