/* SPDX-License-Identifier: MIT */
/*
 * TLS over uco's IO: OpenSSL runs the protocol, uco moves the bytes.
 *
 * Each connection's SSL object talks to a BIO of our own that never does
 * a system call: its write appends ciphertext to the connection's output
 * buffer and its read takes ciphertext from the input buffer, or asks for
 * a retry when that is empty.  After every SSL_* call the output buffer
 * leaves through uco_send_dl(), and a "want read" becomes uco_recv_dl()
 * into the input buffer; so a TLS connection waits in the ring like any
 * other socket, costs no thread, and has the same deadlines and
 * cancellation.
 *
 * Cancellation and deadlines (see docs/tls.md):
 *   - ciphertext is never cut: what OpenSSL wrote stays in the output
 *     buffer until sent, and the next call sends it first; what the
 *     kernel received stays in the input buffer;
 *   - a read, the handshake and a shutdown may simply be called again;
 *     decrypted bytes a cancelled read had not returned are still inside
 *     OpenSSL and come with the next read;
 *   - a write that gave any plaintext to OpenSSL and then was cancelled or
 *     timed out leaves the connection unable to write (-EPIPE from then
 *     on; reads still work): the caller cannot know how much of it the
 *     peer will get, so writing on would duplicate or drop bytes in the
 *     middle of the stream (asyncio closes the transport instead).
 *
 * Kernel TLS (UCO_TLS_KTLS): OpenSSL hands the keys to the kernel only
 * for a socket BIO, so such a connection gives OpenSSL the descriptor
 * (non-blocking) and waits for readiness with uco_poll_dl(); after the
 * handshake the kernel encrypts what is sent (plain send and splice
 * included) where it has the TLS ULP, and OpenSSL's records are used
 * where it has not.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal.h"
#include "tls.h"

#ifdef UCO_VALGRIND
#include <valgrind/memcheck.h>
/* Valgrind does not see the kernel write through io_uring: what a
 * receive brought is defined. */
#define RECEIVED(p, n) VALGRIND_MAKE_MEM_DEFINED(p, n)
#else
#define RECEIVED(p, n) ((void)(p), (void)(n))
#endif

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* Ciphertext received at most per recv: two full records. */
#define IN_CAP (34u << 10)
/* Plaintext handed to OpenSSL per SSL_write: four full records, sent in
 * one uco_send. */
#define WRITE_CHUNK (64u << 10)
/* Output buffers larger than this are freed once sent. */
#define KEEP_OUT (16u << 10)

struct uco_tls {
	SSL *ssl;
	uco_tls_ctx *ctx;
	int fd;
	int broken;        /* a fatal error: every later call returns it */
	bool write_broken; /* a write was cut short (see the top of the file) */
	int write_err;     /* a send failed: later writes return it */
	bool read_closed;  /* close_notify received */
	bool eof;          /* the peer closed its side of the TCP connection */
	bool socket_bio;   /* UCO_TLS_KTLS: OpenSSL does the system calls */
	bool receiving;    /* a recv into in[in_len...] is in flight */
	/* One coroutine may read while another writes: each direction's
	 * system calls are made by one of them at a time.  recv_gen counts
	 * receives, so that a coroutine that waited for another's receive
	 * asks OpenSSL again before receiving more. */
	uco_mutex send_lock, recv_lock;
	uint64_t recv_gen;
	unsigned char *in;
	size_t in_off, in_len;
	/* OpenSSL appends to `out`; the sender owns `sending` (the kernel
	 * reads it during a send, so it never moves then) and swaps the two
	 * when it has sent all of `sending`. */
	unsigned char *out, *sending;
	size_t out_len, out_cap;
	size_t send_off, send_len, send_cap;
	char alpn[256];
	char why[200];
};

/* ------------------------------------------------------------ the BIO */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len)
{
	uco_tls *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (t->out_len + (size_t)len > t->out_cap) {
		size_t cap = t->out_cap ? t->out_cap : 4096;
		while (cap < t->out_len + (size_t)len)
			cap *= 2;
		unsigned char *p = realloc(t->out, cap);
		if (!p)
			return -1;
		t->out = p;
		t->out_cap = cap;
	}
	memcpy(t->out + t->out_len, data, (size_t)len);
	t->out_len += (size_t)len;
	return len;
}

static int bio_read(BIO *b, char *data, int len)
{
	uco_tls *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	size_t avail = t->in_len - t->in_off;
	if (!avail) {
		if (t->eof)
			return 0;
		BIO_set_retry_read(b);
		return -1;
	}
	size_t n = (size_t)len < avail ? (size_t)len : avail;
	memcpy(data, t->in + t->in_off, n);
	t->in_off += n;
	if (t->in_off == t->in_len && !t->receiving) {
		/* All taken: an idle connection holds no input buffer. */
		free(t->in);
		t->in = NULL;
		t->in_off = t->in_len = 0;
	}
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	uco_tls *t = BIO_get_data(b);
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1; /* the caller of SSL_* sends the output buffer */
	case BIO_CTRL_PENDING:
		return (long)(t->in_len - t->in_off);
	case BIO_CTRL_WPENDING:
		return (long)(t->out_len + t->send_len - t->send_off);
	case BIO_CTRL_EOF:
		return t->eof && t->in_len == t->in_off;
	}
	return 0;
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void make_bio_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "uco");
	if (m && (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
	          !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create))) {
		BIO_meth_free(m);
		m = NULL;
	}
	bio_method = m;
}

/* Our BIO's method, made once per process: 0 or -ENOMEM. */
static int bio_init(void)
{
	pthread_once(&bio_once, make_bio_method);
	return bio_method ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ connections */

int uco_tls_open(uco_tls **out, uco_tls_ctx *ctx, int fd, const char *server_name)
{
	if (!out || !ctx || fd < 0)
		return -EINVAL;
	*out = NULL;
	bool server = ctx->flags & UCO_TLS_SERVER;
	bool ktls = ctx->flags & UCO_TLS_KTLS;
	/* A client that verifies must know whom it verifies. */
	if (!server && !(ctx->flags & UCO_TLS_NO_VERIFY) && (!server_name || !*server_name))
		return -EINVAL;
	if (ktls && (fd & UCO_FIXED_FD))
		return -EINVAL; /* OpenSSL needs a real descriptor */
	uco_tls *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->fd = fd;
	t->socket_bio = ktls;
	uco_mutex_init(&t->send_lock);
	uco_mutex_init(&t->recv_lock);
	ERR_clear_error();
	t->ssl = SSL_new(ctx->ssl);
	BIO *b = NULL;
	if (t->ssl) {
		if (ktls) {
			int fl = fcntl(fd, F_GETFL);
			if (fl >= 0 && !(fl & O_NONBLOCK))
				fcntl(fd, F_SETFL, fl | O_NONBLOCK);
			b = BIO_new_socket(fd, BIO_NOCLOSE);
		} else if (bio_init() == 0) {
			b = BIO_new(bio_method);
			if (b)
				BIO_set_data(b, t);
		}
	}
	int err = t->ssl && b ? 0 : -ENOMEM;
	if (!err)
		SSL_set_bio(t->ssl, b, b); /* one reference, taken by ssl */
	else
		BIO_free(b);
	if (!err && server) {
		SSL_set_accept_state(t->ssl);
	} else if (!err) {
		SSL_set_connect_state(t->ssl);
		if (server_name && *server_name) {
			unsigned char ip[16];
			bool is_ip = inet_pton(AF_INET, server_name, ip) == 1 ||
			             inet_pton(AF_INET6, server_name, ip) == 1;
			/* SNI carries host names only (RFC 6066); the
			 * certificate is checked against either. */
			if (!is_ip && SSL_set_tlsext_host_name(t->ssl, server_name) != 1)
				err = -EINVAL;
			if (!err && !(ctx->flags & UCO_TLS_NO_VERIFY)) {
				int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl),
				                                               server_name)
				               : SSL_set1_host(t->ssl, server_name);
				if (ok != 1)
					err = -EINVAL;
			}
		}
	}
	ERR_clear_error();
	if (err) {
		SSL_free(t->ssl);
		free(t);
		return err;
	}
	uco__tls_ctx_ref(ctx);
	t->ctx = ctx;
	*out = t;
	return 0;
}

void uco_tls_close(uco_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	uco__tls_ctx_unref(t->ctx);
	free(t->in);
	free(t->out);
	free(t->sending);
	free(t);
}

static bool output_pending(const uco_tls *t)
{
	return t->out_len || t->send_off < t->send_len;
}

/* Drop the records not sent yet (the connection will write no more).
 * Under send_lock, or with no send in flight. */
static void drop_output(uco_tls *t)
{
	t->out_len = t->send_off = t->send_len = 0;
}

/*
 * Send what OpenSSL wrote.  0, or -errno with the unsent rest kept.  A
 * reader (if_free) leaves it to a send in flight, which sends what was
 * added meanwhile too: waiting for it could wait for our own peer, which
 * may be waiting for this very read.
 */
static int flush(uco_tls *t, int64_t deadline, bool if_free)
{
	int err = if_free ? uco_mutex_trylock(&t->send_lock)
	                  : uco_mutex_lock_dl(&t->send_lock, deadline);
	if (err)
		return if_free ? 0 : err;
	for (;;) {
		if (t->write_broken || t->write_err) {
			drop_output(t);
			err = t->write_err ? t->write_err : -EPIPE;
			break;
		}
		if (t->send_off == t->send_len) {
			if (!t->out_len)
				break;
			unsigned char *p = t->sending;
			size_t cap = t->send_cap;
			t->sending = t->out;
			t->send_cap = t->out_cap;
			t->send_off = 0;
			t->send_len = t->out_len;
			t->out = p;
			t->out_cap = cap;
			t->out_len = 0;
		}
		const void *p = t->sending + t->send_off;
		size_t len = t->send_len - t->send_off;
		ssize_t n = -EAGAIN;
		/* Try at once: a send that need not wait needs no linked
		 * timeout (which costs a timer and a completion). */
		if (deadline > 0)
			n = uco_send(t->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -EAGAIN)
			n = uco_send_dl(t->fd, p, len, MSG_NOSIGNAL, deadline);
		if (n == 0)
			n = -EPIPE;
		if (n < 0) {
			/* The peer may have gone, or shut down reading only:
			 * what it sent before can still be read. */
			if (n != -ECANCELED && n != -ETIMEDOUT && n != -EAGAIN) {
				t->write_err = (int)n;
				drop_output(t);
				snprintf(t->why, sizeof t->why, "send: %s", strerror((int)-n));
			}
			err = (int)n;
			break;
		}
		t->send_off += (size_t)n;
	}
	if (!err && t->send_cap > KEEP_OUT) {
		/* All sent: a big write's buffers go back. */
		free(t->sending);
		t->sending = NULL;
		t->send_cap = t->send_off = t->send_len = 0;
	}
	if (!err && !t->out_len && t->out_cap > KEEP_OUT) {
		free(t->out);
		t->out = NULL;
		t->out_cap = 0;
	}
	uco_mutex_unlock(&t->send_lock);
	return err;
}

/* More ciphertext, or (socket BIO) wait until the socket has some.
 * 0 (end of stream included: the BIO then reports it, and a receive
 * another coroutine made meanwhile too), or -errno. */
static int fill(uco_tls *t, int64_t deadline)
{
	if (t->socket_bio) {
		int r = uco_poll_dl(t->fd, POLLIN, deadline);
		return r < 0 ? r : 0;
	}
	uint64_t gen = t->recv_gen;
	int err = uco_mutex_lock_dl(&t->recv_lock, deadline);
	if (err)
		return err;
	if (gen != t->recv_gen || t->broken) {
		uco_mutex_unlock(&t->recv_lock);
		return t->broken;
	}
	if (!t->in && !(t->in = malloc(IN_CAP))) {
		uco_mutex_unlock(&t->recv_lock);
		return -ENOMEM;
	}
	if (t->in_off == t->in_len) {
		t->in_off = t->in_len = 0;
	} else if (t->in_len == IN_CAP) { /* OpenSSL took part of a record */
		memmove(t->in, t->in + t->in_off, t->in_len - t->in_off);
		t->in_len -= t->in_off;
		t->in_off = 0;
	}
	if (t->in_len == IN_CAP) {
		/* OpenSSL wants more while all we hold is unread: cannot
		 * happen (it drains the BIO before it asks), and a receive
		 * of 0 bytes would read as the end of the stream. */
		uco_mutex_unlock(&t->recv_lock);
		return -ENOBUFS;
	}
	t->receiving = true;
	ssize_t n = uco_recv_dl(t->fd, t->in + t->in_len, IN_CAP - t->in_len, 0, deadline);
	t->receiving = false;
	if (n == 0)
		t->eof = true;
	if (n >= 0) {
		RECEIVED(t->in + t->in_len, (size_t)n);
		t->in_len += (size_t)n;
		t->recv_gen++;
		n = 0;
	} else if (n != -ECANCELED && n != -ETIMEDOUT && n != -EAGAIN) {
		t->broken = (int)n;
		snprintf(t->why, sizeof t->why, "recv: %s", strerror((int)-n));
	}
	uco_mutex_unlock(&t->recv_lock);
	return (int)n;
}

/* A fatal error from OpenSSL: name it, and make it the connection's. */
static int fail(uco_tls *t, int e)
{
	unsigned long code = ERR_peek_last_error();
	long verify = SSL_get_verify_result(t->ssl);
	const char *reason = code ? ERR_reason_error_string(code) : NULL;
	int err;
	if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
	    (e == SSL_ERROR_SYSCALL && !code)) {
		err = t->socket_bio && errno && e == SSL_ERROR_SYSCALL ? -errno : -ECONNRESET;
		snprintf(t->why, sizeof t->why, "the peer closed the connection without "
		         "close_notify%s", SSL_is_init_finished(t->ssl) ? "" : " (in the handshake)");
	} else if (verify != X509_V_OK) {
		err = -EKEYREJECTED;
		snprintf(t->why, sizeof t->why, "certificate verify failed: %s",
		         X509_verify_cert_error_string(verify));
	} else {
		err = -EPROTO;
		snprintf(t->why, sizeof t->why, "%s", reason ? reason : "TLS protocol error");
	}
	ERR_clear_error();
	if (!t->broken)
		t->broken = err;
	/* The alert OpenSSL wrote tells the peer why: one try, no wait
	 * (unless a send is in flight: then it goes no more). */
	if (uco_mutex_trylock(&t->send_lock) == 0) {
		if (t->send_off == t->send_len && t->out_len)
			uco_send(t->fd, t->out, t->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		drop_output(t);
		uco_mutex_unlock(&t->send_lock);
	}
	return t->broken;
}

enum { OP_HANDSHAKE, OP_READ, OP_WRITE, OP_SHUTDOWN };
#define CLOSED 1 /* drive(): close_notify received */

/*
 * Call OpenSSL for `op` until it is done: send what it wrote, receive
 * what it wants, wait for the socket (socket BIO).  0, CLOSED, or -errno.
 * *done is what SSL_read/SSL_write moved.
 */
static int drive(uco_tls *t, int op, void *buf, size_t len, size_t *done, int64_t deadline)
{
	for (;;) {
		int r;
		ERR_clear_error();
		switch (op) {
		case OP_HANDSHAKE:
			r = SSL_do_handshake(t->ssl);
			break;
		case OP_READ:
			r = SSL_read_ex(t->ssl, buf, len, done);
			break;
		case OP_WRITE:
			r = SSL_write_ex(t->ssl, buf, len, done);
			break;
		default:
			/* 0: our close_notify is out, the peer's not in yet. */
			r = SSL_shutdown(t->ssl);
			if (r == 0)
				r = 1;
			break;
		}
		int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
		if (e != SSL_ERROR_NONE && e != SSL_ERROR_ZERO_RETURN &&
		    e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return fail(t, e);
		/* Records OpenSSL wrote (handshake messages, a write's
		 * records, a key update, an alert) leave now.  A read's
		 * data is returned even when that send fails: the rest is
		 * sent by the next call. */
		int f = output_pending(t) ? flush(t, deadline, op == OP_READ) : 0;
		if (e == SSL_ERROR_NONE)
			return op == OP_READ ? 0 : f;
		if (e == SSL_ERROR_ZERO_RETURN)
			return CLOSED;
		/* A reader goes on after a failed or broken write. */
		if (f < 0 && op != OP_READ)
			return f;
		if (e == SSL_ERROR_WANT_READ)
			f = fill(t, deadline);
		else if (t->socket_bio)
			f = uco_poll_dl(t->fd, POLLOUT, deadline);
		if (f < 0)
			return f;
	}
}

int uco_tls_handshake_dl(uco_tls *t, int64_t deadline)
{
	if (!t)
		return -EINVAL;
	if (t->broken)
		return t->broken;
	size_t done;
	int r = drive(t, OP_HANDSHAKE, NULL, 0, &done, deadline);
	return r == CLOSED ? -ECONNRESET : r;
}

int uco_tls_handshake(uco_tls *t)
{
	return uco_tls_handshake_dl(t, UCO_FOREVER);
}

ssize_t uco_tls_read_dl(uco_tls *t, void *buf, size_t len, int64_t deadline)
{
	if (!t || (!buf && len))
		return -EINVAL;
	if (t->broken)
		return t->broken;
	if (t->read_closed || !len)
		return 0;
	size_t n = 0;
	int r = drive(t, OP_READ, buf, len, &n, deadline);
	if (r == CLOSED)
		t->read_closed = true;
	return n ? (ssize_t)n : r == CLOSED ? 0 : r;
}

ssize_t uco_tls_read(uco_tls *t, void *buf, size_t len)
{
	return uco_tls_read_dl(t, buf, len, UCO_FOREVER);
}

/* 0 if t may still write, else what a write or shutdown returns. */
static int cannot_write(const uco_tls *t)
{
	return t->broken ? t->broken : t->write_err ? t->write_err : t->write_broken ? -EPIPE : 0;
}

ssize_t uco_tls_write_dl(uco_tls *t, const void *buf, size_t len, int64_t deadline)
{
	if (!t || (!buf && len))
		return -EINVAL;
	int no = cannot_write(t);
	if (no)
		return no;
	/* What an earlier call left: nothing of this write is given to
	 * OpenSSL until it is out, so a cancel here costs nothing. */
	int r = output_pending(t) ? flush(t, deadline, false) : 0;
	size_t off = 0;
	while (!r && off < len) {
		size_t chunk = len - off < WRITE_CHUNK ? len - off : WRITE_CHUNK;
		size_t n = 0;
		r = drive(t, OP_WRITE, (char *)buf + off, chunk, &n, deadline);
		off += n;
		if (r == CLOSED)
			r = -EPIPE;
		if (r && (off || output_pending(t) || t->socket_bio)) {
			/* Nothing will follow the records left unsent, so
			 * they are dropped (now, or by the send in flight):
			 * a read must not wait to send them to a peer that
			 * does not read. */
			t->write_broken = true;
			if (uco_mutex_trylock(&t->send_lock) == 0) {
				drop_output(t);
				uco_mutex_unlock(&t->send_lock);
			}
		}
	}
	if ((r == -ECANCELED || r == -ETIMEDOUT) && t->write_broken)
		snprintf(t->why, sizeof t->why, "a write was cut short (%s): the connection "
		         "can no longer write", strerror(-r));
	return r ? r : (ssize_t)len;
}

ssize_t uco_tls_write(uco_tls *t, const void *buf, size_t len)
{
	return uco_tls_write_dl(t, buf, len, UCO_FOREVER);
}

int uco_tls_shutdown_dl(uco_tls *t, int64_t deadline)
{
	if (!t)
		return -EINVAL;
	int no = cannot_write(t);
	if (no)
		return no;
	if (!SSL_is_init_finished(t->ssl))
		return -ENOTCONN;
	size_t done;
	int r = drive(t, OP_SHUTDOWN, NULL, 0, &done, deadline);
	return r == CLOSED ? 0 : r;
}

int uco_tls_shutdown(uco_tls *t)
{
	return uco_tls_shutdown_dl(t, UCO_FOREVER);
}

/* ------------------------------------------------------------ about one */

const char *uco_tls_alpn(uco_tls *t)
{
	const unsigned char *p;
	unsigned len;
	if (!t)
		return NULL;
	SSL_get0_alpn_selected(t->ssl, &p, &len);
	if (!len)
		return NULL;
	memcpy(t->alpn, p, len); /* len < 256 */
	t->alpn[len] = 0;
	return t->alpn;
}

const char *uco_tls_server_name(uco_tls *t)
{
	return t ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

const char *uco_tls_verify_error(uco_tls *t)
{
	long v = t ? SSL_get_verify_result(t->ssl) : X509_V_OK;
	return v == X509_V_OK ? NULL : X509_verify_cert_error_string(v);
}

const char *uco_tls_error(uco_tls *t)
{
	return t && t->why[0] ? t->why : NULL;
}

int uco_tls_ktls(uco_tls *t)
{
	if (!t || !t->socket_bio)
		return 0;
	int r = 0;
	if (BIO_get_ktls_send(SSL_get_wbio(t->ssl)))
		r |= UCO_TLS_KTLS_SEND;
	if (BIO_get_ktls_recv(SSL_get_rbio(t->ssl)))
		r |= UCO_TLS_KTLS_RECV;
	return r;
}

int uco__tls_fd(const uco_tls *t)
{
	return t ? t->fd : -EINVAL;
}

void *uco_tls_native(uco_tls *t)
{
	return t ? t->ssl : NULL;
}

/*
 * Whether the kernel has the TLS upper-layer protocol.  On a socket that
 * is not connected, a kernel with it answers ENOTCONN (the ULP needs an
 * established connection); without CONFIG_TLS, ENOENT (no such ULP).
 */
int uco_tls_ktls_available(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") < 0 ? -errno : 0;
	close(fd);
	return r == -ENOTCONN ? 0 : r == 0 ? 0 : r;
}
