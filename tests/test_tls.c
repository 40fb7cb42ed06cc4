/* SPDX-License-Identifier: MIT */
/*
 * TLS (lib/tls.c): uco's server and client against each other, against
 * `openssl s_server`, and against bad input written by hand; what a
 * connection is good for after a cancelled or timed-out call; kernel TLS
 * where the kernel has it.  Certificates are made per test with the
 * `openssl` command (skipped without it).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

extern char **environ;

static char dir[64] = "/tmp/uco-tls-XXXXXX";
static char cert_a[128], key_a[128], cert_b[128], key_b[128];

static void make_cert(char *cert, char *key, const char *name, const char *cn,
                      const char *san)
{
	snprintf(cert, 128, "%s/%s.crt", dir, name);
	snprintf(key, 128, "%s/%s.key", dir, name);
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	         "-days 1 -subj /CN=%s -addext subjectAltName=%s -keyout %s -out %s "
	         ">/dev/null 2>&1", cn, san, key, cert);
	cr_assert_eq(system(cmd), 0, "openssl req failed: %s", cmd);
}

static void certs(void)
{
	if (system("openssl version >/dev/null 2>&1") != 0)
		cr_skip_test("the openssl command is not installed (Debian package openssl)");
	cr_assert_not_null(mkdtemp(dir));
	make_cert(cert_a, key_a, "a", "localhost", "DNS:localhost,IP:127.0.0.1");
	make_cert(cert_b, key_b, "b", "other.test", "DNS:other.test");
}

static void rm_certs(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (strcmp(dir, "/tmp/uco-tls-XXXXXX") != 0)
		(void)!system(cmd);
}

TestSuite(tls, .init = certs, .fini = rm_certs, .timeout = 60);

static uco_tls_ctx *server_ctx(const char *cert, const char *key, const char *alpn,
                               unsigned flags)
{
	uco_tls_ctx_opts o = { .flags = UCO_TLS_SERVER | flags, .cert_file = cert,
	                       .key_file = key, .alpn = alpn };
	uco_tls_ctx *ctx;
	char why[256];
	int err = uco_tls_ctx_create(&ctx, &o, why, sizeof why);
	cr_assert_eq(err, 0, "server context: %d %s", err, why);
	return ctx;
}

static uco_tls_ctx *client_ctx(const char *ca, const char *alpn, unsigned flags)
{
	uco_tls_ctx_opts o = { .flags = flags, .ca_file = ca, .alpn = alpn };
	uco_tls_ctx *ctx;
	char why[256];
	int err = uco_tls_ctx_create(&ctx, &o, why, sizeof why);
	cr_assert_eq(err, 0, "client context: %d %s", err, why);
	return ctx;
}

/* One end of a connection, as a task's argument and record. */
struct end {
	uco_tls_ctx *ctx;
	int fd;
	const char *name;      /* client: the server's name */
	int64_t timeout;       /* handshake deadline from now; 0: none */
	size_t bytes;          /* to send (client) */
	int handshake;         /* results */
	ssize_t io;
	char alpn[32], sni[64], error[200], verify[120];
	uco_tls *t;            /* kept open when keep is set */
	bool keep;
};

static void note(struct end *e, uco_tls *t)
{
	const char *s;
	if ((s = uco_tls_alpn(t)))
		snprintf(e->alpn, sizeof e->alpn, "%s", s);
	if ((s = uco_tls_server_name(t)))
		snprintf(e->sni, sizeof e->sni, "%s", s);
	if ((s = uco_tls_error(t)))
		snprintf(e->error, sizeof e->error, "%s", s);
	if ((s = uco_tls_verify_error(t)))
		snprintf(e->verify, sizeof e->verify, "%s", s);
}

static int64_t deadline_of(const struct end *e)
{
	return e->timeout ? uco_now() + e->timeout : UCO_FOREVER;
}

/* Server: handshake, echo everything back until close_notify, send ours. */
static void *tls_echo(void *arg)
{
	struct end *e = arg;
	uco_tls *t;
	cr_assert_eq(uco_tls_open(&t, e->ctx, e->fd, NULL), 0);
	e->handshake = uco_tls_handshake_dl(t, deadline_of(e));
	if (e->handshake == 0) {
		char *buf = malloc(20000);
		ssize_t n;
		e->io = 0;
		while ((n = uco_tls_read(t, buf, 20000)) > 0) {
			e->io += n;
			cr_assert_eq(uco_tls_write(t, buf, (size_t)n), n);
		}
		free(buf);
		if (n < 0)
			e->io = n;
		else
			cr_assert_eq(uco_tls_shutdown(t), 0);
	}
	note(e, t);
	uco_tls_close(t);
	close(e->fd);
	return NULL;
}

/* Client: handshake, send e->bytes of a pattern while reading the echo
 * back and checking it, close_notify, then the server's. */
static void *check_read(void *arg)
{
	struct end *e = arg;
	char buf[7000];
	size_t got = 0;
	while (got < e->bytes) {
		ssize_t n = uco_tls_read(e->t, buf, sizeof buf);
		cr_assert_gt(n, 0, "echo read: %zd %s", n, uco_tls_error(e->t));
		for (ssize_t i = 0; i < n; i++)
			cr_assert_eq(buf[i], (char)((got + (size_t)i) % 251), "byte %zu",
			             got + (size_t)i);
		got += (size_t)n;
	}
	return NULL;
}

static void *tls_client(void *arg)
{
	struct end *e = arg;
	uco_tls *t;
	cr_assert_eq(uco_tls_open(&t, e->ctx, e->fd, e->name), 0);
	e->t = t;
	e->handshake = uco_tls_handshake_dl(t, deadline_of(e));
	if (e->handshake == 0 && e->bytes) {
		uco_task *reader;
		cr_assert_eq(uco_spawn(NULL, &reader, check_read, e), 0);
		char *pattern = malloc(50000);
		size_t sent = 0;
		while (sent < e->bytes) {
			size_t k = e->bytes - sent < 50000 ? e->bytes - sent : 50000;
			for (size_t i = 0; i < k; i++)
				pattern[i] = (char)((sent + i) % 251);
			cr_assert_eq(uco_tls_write(t, pattern, k), (ssize_t)k);
			sent += k;
		}
		free(pattern);
		cr_assert_eq(uco_await(reader, NULL), 0);
		uco_task_release(reader);
		cr_assert_eq(uco_tls_shutdown(t), 0);
		char c;
		e->io = uco_tls_read(t, &c, 1); /* the server's close_notify: 0 */
	}
	note(e, t);
	if (!e->keep) {
		uco_tls_close(t);
		e->t = NULL;
		close(e->fd);
	}
	return NULL;
}

static void run2(uco_loop *loop, uco_fn a, void *x, uco_fn b, void *y)
{
	cr_assert_eq(uco_spawn(loop, NULL, a, x), 0);
	cr_assert_eq(uco_spawn(loop, NULL, b, y), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
}

Test(tls, a_megabyte_echoed_with_alpn_and_sni_then_close_notify)
{
	uco_loop *loop = test_loop();
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct end s = { .ctx = server_ctx(cert_a, key_a, "http/1.1,h2", 0), .fd = sv[0] };
	struct end c = { .ctx = client_ctx(cert_a, "h2,http/1.1", 0), .fd = sv[1],
	                 .name = "localhost", .bytes = 1 << 20 };
	run2(loop, tls_echo, &s, tls_client, &c);
	cr_assert_eq(s.handshake, 0, "server: %s", s.error);
	cr_assert_eq(c.handshake, 0, "client: %s", c.error);
	cr_assert_eq(s.io, 1 << 20, "server echoed %zd", s.io);
	cr_assert_eq(c.io, 0, "the client did not see close_notify: %zd", c.io);
	cr_assert_str_eq(s.alpn, "http/1.1"); /* the server's preference */
	cr_assert_str_eq(c.alpn, "http/1.1");
	cr_assert_str_eq(s.sni, "localhost");
	uco_tls_ctx_destroy(s.ctx);
	uco_tls_ctx_destroy(c.ctx);
	test_close(loop);
}

Test(tls, sni_picks_the_certificate_for_the_name)
{
	uco_loop *loop = test_loop();
	uco_tls_ctx *def = server_ctx(cert_a, key_a, NULL, 0);
	uco_tls_ctx *other = server_ctx(cert_b, key_b, NULL, 0);
	cr_assert_eq(uco_tls_ctx_add_server_name(def, "*.test", other), 0);
	uco_tls_ctx_destroy(other); /* def holds it */
	uco_tls_ctx *trust_b = client_ctx(cert_b, NULL, 0);
	for (int i = 0; i < 2; i++) {
		int sv[2];
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		struct end s = { .ctx = def, .fd = sv[0] };
		struct end c = { .ctx = trust_b, .fd = sv[1], .name = i ? "localhost" : "other.test",
		                 .bytes = 10 };
		run2(loop, tls_echo, &s, tls_client, &c);
		if (i == 0) {
			cr_assert_eq(c.handshake, 0, "client: %s", c.error);
			cr_assert_str_eq(s.sni, "other.test");
		} else {
			/* localhost gets certificate a, which b's trust refuses. */
			cr_assert_eq(c.handshake, -EKEYREJECTED, "%d %s", c.handshake, c.error);
		}
	}
	uco_tls_ctx_destroy(def);
	uco_tls_ctx_destroy(trust_b);
	test_close(loop);
}

Test(tls, a_certificate_that_fails_verification_says_why)
{
	uco_loop *loop = test_loop();
	uco_tls_ctx *srv = server_ctx(cert_a, key_a, NULL, 0);
	struct {
		const char *ca, *name, *verify;
	} cases[] = {
		{ cert_b, "localhost", "self-signed certificate" }, /* untrusted */
		{ cert_a, "example.com", "hostname mismatch" },
		{ cert_a, "127.0.0.2", "IP address mismatch" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int sv[2];
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		uco_tls_ctx *cli = client_ctx(cases[i].ca, NULL, 0);
		struct end s = { .ctx = srv, .fd = sv[0] };
		struct end c = { .ctx = cli, .fd = sv[1], .name = cases[i].name };
		run2(loop, tls_echo, &s, tls_client, &c);
		cr_assert_eq(c.handshake, -EKEYREJECTED, "case %zu: %d %s", i, c.handshake,
		             c.error);
		cr_assert_str_eq(c.verify, cases[i].verify);
		cr_assert(strstr(c.error, cases[i].verify), "%s", c.error);
		/* The server learns from the client's alert. */
		cr_assert_eq(s.handshake, -EPROTO, "server: %d %s", s.handshake, s.error);
		cr_assert(strstr(s.error, "alert"), "server: %s", s.error);
		uco_tls_ctx_destroy(cli);
	}
	/* And a client that does not verify takes any certificate. */
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	uco_tls_ctx *cli = client_ctx(NULL, NULL, UCO_TLS_NO_VERIFY);
	struct end s = { .ctx = srv, .fd = sv[0] };
	struct end c = { .ctx = cli, .fd = sv[1], .bytes = 100 };
	run2(loop, tls_echo, &s, tls_client, &c);
	cr_assert_eq(c.handshake, 0, "%s", c.error);
	uco_tls_ctx_destroy(cli);
	uco_tls_ctx_destroy(srv);
	test_close(loop);
}

Test(tls, contexts_refuse_bad_options_and_files_and_say_why)
{
	uco_tls_ctx *ctx = (uco_tls_ctx *)1;
	char why[256];
	uco_tls_ctx_opts o = { .flags = UCO_TLS_SERVER };
	cr_assert_eq(uco_tls_ctx_create(&ctx, &o, why, sizeof why), -EINVAL);
	cr_assert_null(ctx);
	cr_assert(strstr(why, "cert_file"), "%s", why);
	o.cert_file = "/nonexistent/cert.pem";
	o.key_file = key_a;
	cr_assert_eq(uco_tls_ctx_create(&ctx, &o, why, sizeof why), -ENOENT);
	cr_assert(strstr(why, "/nonexistent/cert.pem"), "%s", why);
	o.cert_file = cert_a;
	o.key_file = key_b;
	cr_assert_eq(uco_tls_ctx_create(&ctx, &o, why, sizeof why), -EINVAL);
	cr_assert(strstr(why, "does not match"), "%s", why);
	o.key_file = cert_a; /* a certificate is no key */
	cr_assert_eq(uco_tls_ctx_create(&ctx, &o, why, sizeof why), -EINVAL);
	cr_assert(strstr(why, "private key"), "%s", why);
	o.key_file = key_a;
	o.alpn = "h2,,x";
	cr_assert_eq(uco_tls_ctx_create(&ctx, &o, why, sizeof why), -EINVAL);
	o.alpn = NULL;
	o.ciphersuites = "TLS_NO_SUCH_SUITE";
	cr_assert_eq(uco_tls_ctx_create(&ctx, &o, why, sizeof why), -EINVAL);
	cr_assert(strstr(why, "TLS_NO_SUCH_SUITE"), "%s", why);
	o.ciphersuites = NULL;
	o.flags |= 1u << 20;
	cr_assert_eq(uco_tls_ctx_create(&ctx, &o, why, sizeof why), -EINVAL);
	/* A verifying client needs the name to verify. */
	uco_tls_ctx *cli = client_ctx(cert_a, NULL, 0);
	uco_tls *t;
	cr_assert_eq(uco_tls_open(&t, cli, 0, NULL), -EINVAL);
	uco_tls_ctx_destroy(cli);
}

/* ---- bad input: the server keeps serving the others */

struct raw {
	int fd;
	const void *bytes;
	size_t len;
	bool linger;   /* wait for the server to close before closing */
};

/* A peer that sends raw bytes, then closes (after the server did, with
 * linger). */
static void *raw_peer(void *arg)
{
	struct raw *r = arg;
	if (r->len)
		cr_assert_eq(uco_write_all(r->fd, r->bytes, r->len, UCO_FOREVER), (ssize_t)r->len);
	if (r->linger) {
		char buf[4096];
		while (uco_recv(r->fd, buf, sizeof buf, 0) > 0)
			;
	}
	close(r->fd);
	return NULL;
}

Test(tls, bad_input_gets_a_clear_error_and_the_server_serves_the_next)
{
	uco_loop *loop = test_loop();
	uco_tls_ctx *srv = server_ctx(cert_a, key_a, NULL, 0);
	uco_tls_ctx *cli = client_ctx(cert_a, NULL, 0);
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	static const unsigned char garbage[] = { 0x16, 0x03, 0x01, 0x00, 0x10, 0xde, 0xad, 0xbe,
	                                         0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	static const unsigned char truncated[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00 };
	struct {
		const void *bytes;
		size_t len;
		bool linger;
		int64_t timeout;
		int err;
		const char *why;
	} cases[] = {
		{ http, sizeof http - 1, true, 0, -EPROTO, "http request" },
		{ garbage, sizeof garbage, true, 0, -EPROTO, NULL },
		{ truncated, sizeof truncated, false, 0, -ECONNRESET, "without close_notify" },
		{ NULL, 0, false, 0, -ECONNRESET, "without close_notify" }, /* hangs up */
		{ NULL, 0, true, MS(200), -ETIMEDOUT, NULL }, /* never speaks: reaped */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int sv[2];
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		struct end s = { .ctx = srv, .fd = sv[0], .timeout = cases[i].timeout };
		struct raw r = { sv[1], cases[i].bytes, cases[i].len, cases[i].linger };
		run2(loop, tls_echo, &s, raw_peer, &r);
		cr_assert_eq(s.handshake, cases[i].err, "case %zu: %d (%s)", i, s.handshake,
		             s.error);
		if (cases[i].why)
			cr_assert(strstr(s.error, cases[i].why), "case %zu: %s", i, s.error);
		if (cases[i].err != -ETIMEDOUT)
			cr_assert(s.error[0], "case %zu: no reason given", i);
		/* The next client is served as if nothing happened. */
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		struct end s2 = { .ctx = srv, .fd = sv[0] };
		struct end c2 = { .ctx = cli, .fd = sv[1], .name = "localhost", .bytes = 3000 };
		run2(loop, tls_echo, &s2, tls_client, &c2);
		cr_assert_eq(s2.io, 3000, "after case %zu: %zd %s", i, s2.io, s2.error);
	}
	uco_tls_ctx_destroy(srv);
	uco_tls_ctx_destroy(cli);
	test_close(loop);
}

/* A client that completes the handshake, sends some data, and closes the
 * socket without close_notify: the server's read says so. */
static void *abrupt_client(void *arg)
{
	struct end *e = arg;
	uco_tls *t;
	cr_assert_eq(uco_tls_open(&t, e->ctx, e->fd, e->name), 0);
	cr_assert_eq(uco_tls_write(t, "abc", 3), 3);
	/* Take the echo (and the server's session tickets before it), so
	 * that nothing is sent into the closed socket. */
	char back[3];
	size_t got = 0;
	while (got < 3) {
		ssize_t n = uco_tls_read(t, back + got, 3 - got);
		cr_assert_gt(n, 0);
		got += (size_t)n;
	}
	uco_tls_close(t);
	close(e->fd);
	return NULL;
}

Test(tls, close_without_close_notify_is_econnreset_after_the_data)
{
	uco_loop *loop = test_loop();
	uco_tls_ctx *srv = server_ctx(cert_a, key_a, NULL, 0);
	uco_tls_ctx *cli = client_ctx(cert_a, NULL, 0);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct end s = { .ctx = srv, .fd = sv[0] };
	struct end c = { .ctx = cli, .fd = sv[1], .name = "localhost" };
	run2(loop, tls_echo, &s, abrupt_client, &c);
	cr_assert_eq(s.handshake, 0);
	cr_assert_eq(s.io, -ECONNRESET, "%zd %s", s.io, s.error);
	cr_assert(strstr(s.error, "without close_notify"), "%s", s.error);
	uco_tls_ctx_destroy(srv);
	uco_tls_ctx_destroy(cli);
	test_close(loop);
}

/* ---- cancellation and deadlines */

/* Forwards ciphertext from one socket to another, one record split in two
 * with a pause between the halves, to let a read time out mid-record. */
struct relay {
	int from, to;
	int64_t pause;
	size_t moved;
};

static void *relay_split(void *arg)
{
	struct relay *r = arg;
	char *buf = malloc(65536);
	ssize_t n;
	while ((n = uco_recv(r->from, buf, 65536, 0)) > 0) {
		size_t half = (size_t)n / 2;
		cr_assert_eq(uco_write_all(r->to, buf, half, UCO_FOREVER), (ssize_t)half);
		uco_sleep(r->pause);
		cr_assert_eq(uco_write_all(r->to, buf + half, (size_t)n - half, UCO_FOREVER),
		             (ssize_t)((size_t)n - half));
		r->moved += (size_t)n;
	}
	free(buf);
	shutdown(r->to, SHUT_WR);
	return NULL;
}

struct reader {
	uco_tls_ctx *ctx;
	int fd;
	int timeouts;
	char got[64];
	size_t len;
	uco_tls *t;
};

/* Server side: reads with a short deadline until the message is whole;
 * the deadlines fall while half a record is in. */
static void *impatient_reader(void *arg)
{
	struct reader *r = arg;
	cr_assert_eq(uco_tls_open(&r->t, r->ctx, r->fd, NULL), 0);
	cr_assert_eq(uco_tls_handshake(r->t), 0);
	while (r->len < 11) {
		ssize_t n = uco_tls_read_dl(r->t, r->got + r->len, 1, uco_now() + MS(20));
		if (n == -ETIMEDOUT) {
			r->timeouts++;
			continue;
		}
		cr_assert_gt(n, 0, "%zd %s", n, uco_tls_error(r->t));
		r->len += (size_t)n;
	}
	char c;
	cr_assert_eq(uco_tls_read(r->t, &c, 1), 0, "no close_notify");
	cr_assert_eq(uco_tls_shutdown(r->t), 0);
	uco_tls_close(r->t);
	close(r->fd);
	return NULL;
}

/* A client's end: close_notify, the server's (e->io: 0), then the
 * connection and the socket go. */
static void *close_both_ways(struct end *e, uco_tls *t)
{
	cr_assert_eq(uco_tls_shutdown(t), 0);
	char c;
	e->io = uco_tls_read(t, &c, 1);
	uco_tls_close(t);
	close(e->fd);
	return NULL;
}

static void *hello_sender(void *arg)
{
	struct end *e = arg;
	uco_tls *t;
	cr_assert_eq(uco_tls_open(&t, e->ctx, e->fd, e->name), 0);
	cr_assert_eq(uco_tls_write(t, "hello", 5), 5);
	uco_sleep(MS(50));
	cr_assert_eq(uco_tls_write(t, " world", 6), 6);
	return close_both_ways(e, t);
}

Test(tls, a_read_timed_out_mid_record_loses_nothing)
{
	uco_loop *loop = test_loop();
	uco_tls_ctx *srv = server_ctx(cert_a, key_a, NULL, 0);
	uco_tls_ctx *cli = client_ctx(cert_a, NULL, 0);
	int a[2], b[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	/* client a[1] -> a[0] -relay-> b[1] -> b[0] server; back directly
	 * through a second relay without pauses. */
	struct relay up = { .from = a[0], .to = b[1], .pause = MS(100) };
	struct relay down = { .from = b[1], .to = a[0], .pause = 0 };
	struct reader r = { .ctx = srv, .fd = b[0] };
	struct end c = { .ctx = cli, .fd = a[1], .name = "localhost" };
	cr_assert_eq(uco_spawn(loop, NULL, relay_split, &up), 0);
	cr_assert_eq(uco_spawn(loop, NULL, relay_split, &down), 0);
	run2(loop, impatient_reader, &r, hello_sender, &c);
	cr_assert_eq(r.len, 11);
	cr_assert_eq(memcmp(r.got, "hello world", 11), 0, "%.11s", r.got);
	cr_assert_gt(r.timeouts, 0, "no read timed out: the test proves nothing");
	cr_assert_eq(c.io, 0, "the client did not get close_notify: %zd", c.io);
	close(a[0]);
	close(b[1]);
	uco_tls_ctx_destroy(srv);
	uco_tls_ctx_destroy(cli);
	test_close(loop);
}

/* A pair of connected uco_tls over a socketpair, handshaken. */
struct pair {
	uco_tls_ctx *sctx, *cctx;
	int sv[2];
	uco_tls *s, *c;
};

static void *pair_accept(void *arg)
{
	struct pair *p = arg;
	cr_assert_eq(uco_tls_open(&p->s, p->sctx, p->sv[0], NULL), 0);
	cr_assert_eq(uco_tls_handshake(p->s), 0);
	return NULL;
}

static void *pair_connect(void *arg)
{
	struct pair *p = arg;
	cr_assert_eq(uco_tls_open(&p->c, p->cctx, p->sv[1], "localhost"), 0);
	cr_assert_eq(uco_tls_handshake(p->c), 0, "%s", uco_tls_error(p->c));
	return NULL;
}

static void pair_open(uco_loop *loop, struct pair *p, unsigned flags)
{
	p->sctx = server_ctx(cert_a, key_a, NULL, flags);
	p->cctx = client_ctx(cert_a, NULL, 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->sv), 0);
	run2(loop, pair_accept, p, pair_connect, p);
}

static void pair_close(struct pair *p)
{
	uco_tls_close(p->s);
	uco_tls_close(p->c);
	close(p->sv[0]);
	close(p->sv[1]);
	uco_tls_ctx_destroy(p->sctx);
	uco_tls_ctx_destroy(p->cctx);
}

struct io_arg {
	uco_tls *t;
	char buf[64];
	ssize_t n;
};

static void *read_some(void *arg)
{
	struct io_arg *a = arg;
	a->n = uco_tls_read(a->t, a->buf, sizeof a->buf);
	return NULL;
}

static void *write_hello(void *arg)
{
	struct io_arg *a = arg;
	a->n = uco_tls_write(a->t, "hello", 5);
	return NULL;
}

/* flags: the server's context's (UCO_TLS_KTLS: OpenSSL on the socket). */
static void cancelled_read(unsigned flags)
{
	uco_loop *loop = test_loop();
	struct pair p;
	pair_open(loop, &p, flags);
	struct io_arg r = { .t = p.s }, w = { .t = p.c };
	uco_task *task;
	cr_assert_eq(uco_spawn(loop, &task, read_some, &r), 0);
	uco_loop_stop(loop);
	cr_assert_eq(uco_loop_run(loop), 1); /* one turn: it parks in recv */
	cr_assert_eq(uco_task_cancel(task), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(r.n, -ECANCELED);
	uco_task_release(task);
	/* The same connection still reads, and writes. */
	run2(loop, read_some, &r, write_hello, &w);
	cr_assert_eq(r.n, 5);
	cr_assert_eq(memcmp(r.buf, "hello", 5), 0);
	struct io_arg w2 = { .t = p.s }, r2 = { .t = p.c };
	run2(loop, write_hello, &w2, read_some, &r2);
	cr_assert_eq(r2.n, 5);
	pair_close(&p);
	test_close(loop);
}

Test(tls, a_cancelled_read_loses_nothing_and_the_connection_goes_on)
{
	cancelled_read(0);
}

Test(tls, a_cancelled_read_on_the_ktls_path_loses_nothing)
{
	cancelled_read(UCO_TLS_KTLS);
}

static void *write_lots(void *arg)
{
	struct io_arg *a = arg;
	size_t len = 64 << 20;
	char *big = calloc(1, len);
	a->n = uco_tls_write_dl(a->t, big, len, uco_now() + MS(100));
	free(big);
	return NULL;
}

static void *write_then_read(void *arg)
{
	struct io_arg *a = arg;
	cr_assert_eq(uco_tls_write(a->t, "pong", 4), 4);
	/* Drain what the broken writer managed to send: whole records but
	 * the last, which the writer cut. */
	char *buf = malloc(65536);
	ssize_t n;
	while ((n = uco_tls_read(a->t, buf, 65536)) > 0)
		;
	free(buf);
	a->n = n;
	return NULL;
}

static void write_cut_short(unsigned flags)
{
	uco_loop *loop = test_loop();
	struct pair p;
	pair_open(loop, &p, flags);
	/* Nobody reads the server's writes: the socket fills, the deadline
	 * passes mid-write. */
	struct io_arg w = { .t = p.s };
	cr_assert_eq(uco_spawn(loop, NULL, write_lots, &w), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(w.n, -ETIMEDOUT);
	cr_assert_eq(uco_tls_write(p.s, "x", 1), -EPIPE);
	cr_assert_eq(uco_tls_shutdown(p.s), -EPIPE);
	cr_assert(strstr(uco_tls_error(p.s), "cut short"), "%s", uco_tls_error(p.s));
	/* It still reads what the client sends. */
	struct io_arg r = { .t = p.s }, c = { .t = p.c };
	uco_task *rt;
	cr_assert_eq(uco_spawn(loop, NULL, write_then_read, &c), 0);
	cr_assert_eq(uco_spawn(loop, &rt, read_some, &r), 0);
	cr_assert_eq(uco_loop_run_until(loop, rt, NULL), 0);
	uco_task_release(rt);
	cr_assert_eq(r.n, 4, "%zd %s", r.n, uco_tls_error(p.s));
	cr_assert_eq(memcmp(r.buf, "pong", 4), 0);
	/* The server goes away: the client sees the truncation as such. */
	uco_tls_close(p.s);
	p.s = NULL;
	shutdown(p.sv[0], SHUT_RDWR);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert(c.n == -EPROTO || c.n == -ECONNRESET, "%zd %s", c.n, uco_tls_error(p.c));
	pair_close(&p);
	test_close(loop);
}

Test(tls, a_write_cut_short_leaves_the_connection_unable_to_write_but_reading)
{
	write_cut_short(0);
}

Test(tls, a_write_cut_short_on_the_ktls_path_likewise)
{
	write_cut_short(UCO_TLS_KTLS);
}

/* ---- many at once on one loop */

enum { MANY = 64 };

Test(tls, sixty_four_handshakes_at_once_on_one_loop)
{
	uco_loop *loop = test_loop();
	uco_tls_ctx *srv = server_ctx(cert_a, key_a, NULL, 0);
	uco_tls_ctx *cli = client_ctx(cert_a, NULL, 0);
	static struct end s[MANY], c[MANY];
	for (int i = 0; i < MANY; i++) {
		int sv[2];
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		s[i] = (struct end){ .ctx = srv, .fd = sv[0] };
		c[i] = (struct end){ .ctx = cli, .fd = sv[1], .name = "localhost", .bytes = 5000 };
		cr_assert_eq(uco_spawn(loop, NULL, tls_echo, &s[i]), 0);
		cr_assert_eq(uco_spawn(loop, NULL, tls_client, &c[i]), 0);
	}
	cr_assert_eq(uco_loop_run(loop), 0);
	for (int i = 0; i < MANY; i++) {
		cr_assert_eq(s[i].io, 5000, "%d: %zd %s", i, s[i].io, s[i].error);
		cr_assert_eq(c[i].io, 0);
	}
	uco_tls_ctx_destroy(srv);
	uco_tls_ctx_destroy(cli);
	test_close(loop);
}

/* ---- uco's client against openssl s_server */

static pid_t s_server(int port, const char *extra)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
	         "exec openssl s_server -quiet -accept 127.0.0.1:%d -cert %s -key %s "
	         "-naccept 1 %s </dev/null >/dev/null 2>&1", port, cert_a, key_a, extra);
	char *argv[] = { "sh", "-c", cmd, NULL };
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ), 0);
	return pid;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

struct remote {
	int port;
	uco_tls_ctx *ctx;
	const char *name;
	char reply[64];
	char alpn[32];
	int err;
	char why[200];
};

/* Connect (retrying while s_server starts), say "hello\n", read the
 * reversed line back (s_server -rev). */
static void *remote_client(void *arg)
{
	struct remote *r = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)r->port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = -1;
	for (int tries = 0; tries < 500; tries++) {
		fd = uco_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (uco_connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
			break;
		close(fd);
		fd = -1;
		uco_sleep(MS(20));
	}
	cr_assert_geq(fd, 0, "openssl s_server did not start");
	uco_tls *t;
	cr_assert_eq(uco_tls_open(&t, r->ctx, fd, r->name), 0);
	r->err = uco_tls_handshake_dl(t, uco_now() + 10 * UCO_NS_PER_S);
	if (!r->err) {
		const char *p = uco_tls_alpn(t);
		snprintf(r->alpn, sizeof r->alpn, "%s", p ? p : "");
		cr_assert_eq(uco_tls_write(t, "hello\n", 6), 6);
		size_t got = 0;
		while (!memchr(r->reply, '\n', got) && got < sizeof r->reply - 1) {
			ssize_t n = uco_tls_read_dl(t, r->reply + got, sizeof r->reply - 1 - got,
			                            uco_now() + 10 * UCO_NS_PER_S);
			cr_assert_gt(n, 0, "%zd %s", n, uco_tls_error(t));
			got += (size_t)n;
		}
		uco_tls_shutdown(t);
	}
	const char *w = uco_tls_error(t);
	snprintf(r->why, sizeof r->why, "%s", w ? w : "");
	uco_tls_close(t);
	close(fd);
	return NULL;
}

Test(tls, client_against_openssl_s_server)
{
	uco_loop *loop = test_loop();
	int port = free_port();
	pid_t pid = s_server(port, "-rev -alpn http/1.1");
	struct remote r = { .port = port, .ctx = client_ctx(cert_a, "h2,http/1.1", 0),
	                    .name = "localhost" };
	cr_assert_eq(uco_spawn(loop, NULL, remote_client, &r), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	cr_assert_eq(r.err, 0, "%d %s", r.err, r.why);
	cr_assert_str_eq(r.reply, "olleh\n");
	cr_assert_str_eq(r.alpn, "http/1.1");
	/* The same server seen by a client that trusts something else. */
	port = free_port();
	pid = s_server(port, "-rev");
	struct remote bad = { .port = port, .ctx = client_ctx(cert_b, NULL, 0), .name = "localhost" };
	cr_assert_eq(uco_spawn(loop, NULL, remote_client, &bad), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	cr_assert_eq(bad.err, -EKEYREJECTED, "%d %s", bad.err, bad.why);
	cr_assert(strstr(bad.why, "self-signed"), "%s", bad.why);
	uco_tls_ctx_destroy(r.ctx);
	uco_tls_ctx_destroy(bad.ctx);
	test_close(loop);
}

/* ---- kernel TLS */

/* The socket-BIO path UCO_TLS_KTLS takes works with or without the
 * kernel's TLS: over TCP, echoed, checked. */
static void tcp_pair(int sv[2])
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
	sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(sv[1], (struct sockaddr *)&a, sizeof a), 0);
	sv[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(sv[0], 0);
	close(l);
}

Test(tls, the_ktls_path_echoes_with_or_without_the_kernel_tls)
{
	uco_loop *loop = test_loop();
	int sv[2];
	tcp_pair(sv);
	struct end s = { .ctx = server_ctx(cert_a, key_a, NULL, UCO_TLS_KTLS), .fd = sv[0] };
	struct end c = { .ctx = client_ctx(cert_a, NULL, 0), .fd = sv[1], .name = "localhost",
	                 .bytes = 300000 };
	run2(loop, tls_echo, &s, tls_client, &c);
	cr_assert_eq(s.handshake, 0, "%s", s.error);
	cr_assert_eq(s.io, 300000, "%zd %s", s.io, s.error);
	cr_assert_eq(c.io, 0);
	uco_tls_ctx_destroy(s.ctx);
	uco_tls_ctx_destroy(c.ctx);
	test_close(loop);
}

struct ktls_server {
	uco_tls_ctx *ctx;
	int fd;
	int ktls;
	int err;
};

static void *ktls_send_plain(void *arg)
{
	struct ktls_server *k = arg;
	uco_tls *t;
	cr_assert_eq(uco_tls_open(&t, k->ctx, k->fd, NULL), 0);
	k->err = uco_tls_handshake(t);
	k->ktls = uco_tls_ktls(t);
	if (!k->err && (k->ktls & UCO_TLS_KTLS_SEND))
		/* Plain send: the kernel makes the record. */
		cr_assert_eq(uco_send(k->fd, "kernel", 6, 0), 6);
	else
		uco_tls_write(t, "nokernel", 8);
	uco_tls_close(t);
	shutdown(k->fd, SHUT_WR);
	return NULL;
}

static void *read_six(void *arg)
{
	struct end *e = arg;
	uco_tls *t;
	cr_assert_eq(uco_tls_open(&t, e->ctx, e->fd, e->name), 0);
	e->io = uco_tls_read(t, e->alpn, 6);
	uco_tls_close(t);
	return NULL;
}

Test(tls, with_kernel_tls_a_plain_send_is_encrypted_by_the_kernel)
{
	int avail = uco_tls_ktls_available();
	if (avail)
		cr_skip_test("the kernel has no TLS ULP (CONFIG_TLS): setsockopt(TCP_ULP, \"tls\"): %s",
		             strerror(-avail));
	uco_loop *loop = test_loop();
	int sv[2];
	tcp_pair(sv);
	struct ktls_server k = { .ctx = server_ctx(cert_a, key_a, NULL, UCO_TLS_KTLS), .fd = sv[0] };
	struct end c = { .ctx = client_ctx(cert_a, NULL, 0), .fd = sv[1], .name = "localhost" };
	run2(loop, ktls_send_plain, &k, read_six, &c);
	cr_assert_eq(k.err, 0);
	if (!(k.ktls & UCO_TLS_KTLS_SEND))
		cr_skip_test("the kernel has the TLS ULP but OpenSSL kept the keys (cipher not "
		             "offloadable, or OpenSSL without kTLS)");
	cr_assert_eq(c.io, 6);
	cr_assert_eq(memcmp(c.alpn, "kernel", 6), 0);
	close(sv[0]);
	close(sv[1]);
	uco_tls_ctx_destroy(k.ctx);
	uco_tls_ctx_destroy(c.ctx);
	test_close(loop);
}

/* ---- a handshake that timed out goes on when called again */

static void *slow_accept(void *arg)
{
	struct pair *p = arg;
	uco_sleep(MS(150));
	cr_assert_eq(uco_tls_open(&p->s, p->sctx, p->sv[0], NULL), 0);
	cr_assert_eq(uco_tls_handshake(p->s), 0);
	return NULL;
}

static void *impatient_connect(void *arg)
{
	struct pair *p = arg;
	cr_assert_eq(uco_tls_open(&p->c, p->cctx, p->sv[1], "localhost"), 0);
	int timeouts = 0, r;
	while ((r = uco_tls_handshake_dl(p->c, uco_now() + MS(20))) == -ETIMEDOUT)
		timeouts++;
	cr_assert_eq(r, 0, "%d %s", r, uco_tls_error(p->c));
	cr_assert_gt(timeouts, 0, "the handshake never timed out: the test proves nothing");
	return NULL;
}

Test(tls, a_handshake_that_timed_out_goes_on_when_called_again)
{
	uco_loop *loop = test_loop();
	struct pair p = { .sctx = server_ctx(cert_a, key_a, NULL, 0),
	                  .cctx = client_ctx(cert_a, NULL, 0) };
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p.sv), 0);
	run2(loop, slow_accept, &p, impatient_connect, &p);
	struct io_arg r = { .t = p.s }, w = { .t = p.c };
	run2(loop, read_some, &r, write_hello, &w);
	cr_assert_eq(r.n, 5);
	pair_close(&p);
	test_close(loop);
}

/* ---- streams (uco_stream_open_tls) over a TLS connection */

/* The server side of the stream tests: records written one by one with
 * pauses, so that the client's stream sees lines split across them. */
struct records {
	struct pair *p;
	const char *const *parts;
	char got[64];   /* what the client's stream wrote */
	ssize_t got_len;
	ssize_t end;    /* the read after the client's close: 0 = close_notify */
};

static void *write_records(void *arg)
{
	struct records *r = arg;
	uco_tls *t = r->p->s;
	for (size_t i = 0; r->parts[i]; i++) {
		size_t n = strlen(r->parts[i]);
		cr_assert_eq(uco_tls_write(t, r->parts[i], n), (ssize_t)n);
		uco_sleep(MS(5));
	}
	/* The client answers before the tail comes. */
	r->got_len = 0;
	while (!memchr(r->got, '\n', (size_t)r->got_len)) {
		ssize_t n = uco_tls_read(t, r->got + r->got_len, sizeof r->got - 1 -
		                         (size_t)r->got_len);
		cr_assert_gt(n, 0, "%zd %s", n, uco_tls_error(t));
		r->got_len += n;
	}
	cr_assert_eq(uco_tls_write(t, "tail", 4), 4);
	cr_assert_eq(uco_tls_shutdown(t), 0);
	char c;
	r->end = uco_tls_read(t, &c, 1);
	return NULL;
}

static void *stream_lines(void *arg)
{
	struct records *r = arg;
	uco_stream *s;
	cr_assert_eq(uco_stream_open_tls(&s, r->p->c, NULL), 0);
	cr_assert_eq(uco_stream_fd(s), r->p->sv[1]);
	const char *line;
	ssize_t n = uco_stream_readline(s, &line);
	cr_assert_eq(n, 11, "%zd", n);
	cr_assert_eq(memcmp(line, "first line\n", 11), 0);
	n = uco_stream_readuntil(s, "\r\n", 2, &line);
	cr_assert_eq(n, 13, "%zd", n);
	cr_assert_eq(memcmp(line, "second line\r\n", 13), 0);
	char eight[8];
	cr_assert_eq(uco_stream_readexactly(s, eight, 8), 8);
	cr_assert_eq(memcmp(eight, "12345678", 8), 0);
	cr_assert_eq(uco_stream_write(s, "reply\n", 6), 6);
	/* The last line has no newline: it comes at close_notify. */
	n = uco_stream_readline(s, &line);
	cr_assert_eq(n, 4, "%zd", n);
	cr_assert_eq(memcmp(line, "tail", 4), 0);
	cr_assert_eq(uco_stream_readline(s, &line), 0);
	/* close: close_notify, the connection freed, the socket closed. */
	cr_assert_eq(uco_stream_close(s), 0);
	r->p->c = NULL;
	r->p->sv[1] = -1;
	return NULL;
}

Test(tls, a_stream_reads_lines_split_across_records_and_closes_with_close_notify)
{
	uco_loop *loop = test_loop();
	struct pair p;
	pair_open(loop, &p, 0);
	static const char *const parts[] = { "first li", "ne\nsecond line\r", "\n1234",
	                                     "5678", NULL };
	struct records r = { .p = &p, .parts = parts, .end = -1 };
	run2(loop, write_records, &r, stream_lines, &r);
	cr_assert_eq(r.got_len, 6);
	cr_assert_eq(memcmp(r.got, "reply\n", 6), 0);
	cr_assert_eq(r.end, 0, "the peer did not see close_notify: %zd %s", r.end,
	             uco_tls_error(p.s));
	pair_close(&p);
	test_close(loop);
}

/* A line that comes in two records far apart, read with short deadlines:
 * every timeout keeps what came. */
static void *slow_line(void *arg)
{
	struct pair *p = arg;
	cr_assert_eq(uco_tls_write(p->s, "hello ", 6), 6);
	uco_sleep(MS(100));
	cr_assert_eq(uco_tls_write(p->s, "world\nnext\n", 11), 11);
	return NULL;
}

static void *impatient_lines(void *arg)
{
	struct pair *p = arg;
	uco_stream *s;
	uco_stream_opts o = { .flags = UCO_STREAM_KEEP_TLS };
	cr_assert_eq(uco_stream_open_tls(&s, p->c, &o), 0);
	const char *line;
	ssize_t n;
	int timeouts = 0;
	while ((n = uco_stream_readline_dl(s, &line, uco_now() + MS(10))) == -ETIMEDOUT)
		timeouts++;
	cr_assert_eq(n, 12, "%zd", n);
	cr_assert_eq(memcmp(line, "hello world\n", 12), 0);
	cr_assert_gt(timeouts, 0, "no readline timed out: the test proves nothing");
	cr_assert_eq(uco_stream_readline(s, &line), 5);
	cr_assert_eq(memcmp(line, "next\n", 5), 0);
	cr_assert_eq(uco_stream_close(s), 0); /* KEEP_TLS: conn is ours again */
	cr_assert_eq(uco_tls_write(p->c, "still mine", 10), 10);
	return NULL;
}

Test(tls, a_stream_readline_with_deadlines_loses_no_byte)
{
	uco_loop *loop = test_loop();
	struct pair p;
	pair_open(loop, &p, 0);
	run2(loop, slow_line, &p, impatient_lines, &p);
	struct io_arg r = { .t = p.s };
	cr_assert_eq(uco_spawn(loop, NULL, read_some, &r), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(r.n, 10, "%zd", r.n);
	cr_assert_eq(memcmp(r.buf, "still mine", 10), 0);
	pair_close(&p);
	test_close(loop);
}

/* Several MiB through a stream, drained with deadlines that pass, to a
 * reader that takes 16 KiB at a time with pauses; every byte checked. */
enum { STREAM_BYTES = 6 << 20 };

struct slow_reader {
	struct pair *p;
	bool server_writes;
	size_t got;
	ssize_t end;
	char why[200];
};

static void *read_slowly(void *arg)
{
	struct slow_reader *r = arg;
	char *buf = malloc(16384);
	ssize_t n;
	uco_tls *t = r->server_writes ? r->p->c : r->p->s;
	while ((n = uco_tls_read(t, buf, 16384)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			cr_assert_eq(buf[i], (char)((r->got + (size_t)i) % 251), "byte %zu",
			             r->got + (size_t)i);
		r->got += (size_t)n;
		if (r->got % (256 << 10) < (size_t)n)
			uco_sleep(MS(2));
	}
	r->end = n;
	if (n < 0)
		snprintf(r->why, sizeof r->why, "%s", uco_tls_error(t));
	free(buf);
	return NULL;
}

struct big_writer {
	struct pair *p;
	bool server_writes; /* the server's end: the kTLS path when asked */
	int timeouts;
};

static void *write_big(void *arg)
{
	struct big_writer *w = arg;
	uco_stream *s;
	uco_stream_opts o = { .hwm = 64 << 10 };
	cr_assert_eq(uco_stream_open_tls(&s, w->server_writes ? w->p->s : w->p->c, &o), 0);
	char piece[10000];
	size_t sent = 0;
	while (sent < STREAM_BYTES) {
		size_t k = STREAM_BYTES - sent < sizeof piece ? STREAM_BYTES - sent : sizeof piece;
		for (size_t i = 0; i < k; i++)
			piece[i] = (char)((sent + i) % 251);
		cr_assert_eq(uco_stream_write(s, piece, k), (ssize_t)k);
		sent += k;
		if (sent == STREAM_BYTES)
			break; /* close flushes the last ones */
		int r;
		while ((r = uco_stream_drain_dl(s, uco_now() + MS(1))) == -ETIMEDOUT)
			w->timeouts++; /* nothing lost: the bytes stay queued */
		cr_assert_eq(r, 0);
	}
	cr_assert_gt(uco_stream_write_buffered(s), 0);
	cr_assert_eq(uco_stream_close(s), 0);
	if (w->server_writes) {
		w->p->s = NULL;
		w->p->sv[0] = -1;
	} else {
		w->p->c = NULL;
		w->p->sv[1] = -1;
	}
	return NULL;
}

static void mebibytes_to_a_slow_reader(unsigned flags, bool server_writes)
{
	uco_loop *loop = test_loop();
	struct pair p;
	pair_open(loop, &p, flags);
	struct slow_reader r = { .p = &p, .server_writes = server_writes, .end = -1 };
	struct big_writer w = { .p = &p, .server_writes = server_writes };
	run2(loop, read_slowly, &r, write_big, &w);
	cr_assert_eq(r.got, STREAM_BYTES, "%zu", r.got);
	cr_assert_eq(r.end, 0, "no close_notify: %zd %s", r.end, r.why);
	cr_assert_gt(w.timeouts, 0, "no drain timed out: the test proves nothing");
	pair_close(&p);
	test_close(loop);
}

Test(tls, a_stream_writes_mebibytes_to_a_slow_reader_drains_with_deadlines_and_flushes_at_close)
{
	mebibytes_to_a_slow_reader(0, false);
}

Test(tls, a_stream_on_the_ktls_path_likewise)
{
	mebibytes_to_a_slow_reader(UCO_TLS_KTLS, true);
}

/* A close whose flush times out (the peer never reads): it returns, the
 * sender is cancelled and the stream goes with it; with KEEP_TLS the
 * connection comes back, unable to write. */
struct stuck {
	struct pair *p;
	bool keep;
	int close;
};

static void *close_stuck(void *arg)
{
	struct stuck *k = arg;
	uco_stream *s;
	uco_stream_opts o = { .flags = k->keep ? UCO_STREAM_KEEP_TLS : 0 };
	cr_assert_eq(uco_stream_open_tls(&s, k->p->c, &o), 0);
	size_t len = 8 << 20;
	char *big = calloc(1, len);
	cr_assert_eq(uco_stream_write(s, big, len), (ssize_t)len);
	free(big);
	uco_sleep(MS(20)); /* the sender is in a write the peer never takes */
	k->close = uco_stream_close_dl(s, uco_now() + MS(30));
	if (k->keep) {
		cr_assert_eq(uco_tls_write(k->p->c, "x", 1), -EPIPE);
	} else {
		k->p->c = NULL;
		k->p->sv[1] = -1;
	}
	return NULL;
}

Test(tls, a_stream_close_that_times_out_cancels_the_sender)
{
	for (int keep = 0; keep < 2; keep++) {
		uco_loop *loop = test_loop();
		struct pair p;
		pair_open(loop, &p, 0);
		struct stuck k = { .p = &p, .keep = keep };
		cr_assert_eq(uco_spawn(loop, NULL, close_stuck, &k), 0);
		cr_assert_eq(uco_loop_run(loop), 0); /* ends: no sender left */
		cr_assert_eq(k.close, -ETIMEDOUT, "%d", k.close);
		if (!keep) {
			/* The socket was closed: the server reads to its end
			 * (a reset: the client left the session tickets
			 * unread), not to "nothing yet". */
			cr_assert_eq(fcntl(p.sv[0], F_SETFL, O_NONBLOCK), 0);
			char buf[65536];
			ssize_t n;
			while ((n = read(p.sv[0], buf, sizeof buf)) > 0)
				;
			cr_assert(n == 0 || errno == ECONNRESET, "%zd %s", n, strerror(errno));
		}
		pair_close(&p);
		test_close(loop);
	}
}

Test(tls, a_stream_over_tls_refuses_bad_arguments)
{
	uco_loop *loop = test_loop();
	struct pair p;
	pair_open(loop, &p, 0);
	uco_stream *s;
	cr_assert_eq(uco_stream_open_tls(&s, NULL, NULL), -EINVAL);
	cr_assert_eq(uco_stream_open_tls(NULL, p.c, NULL), -EINVAL);
	uco_bufring *br = (uco_bufring *)&p; /* never looked at */
	uco_stream_opts o = { .bufring = br };
	cr_assert_eq(uco_stream_open_tls(&s, p.c, &o), -EINVAL);
	o = (uco_stream_opts){ .flags = 1u << 7 };
	cr_assert_eq(uco_stream_open_tls(&s, p.c, &o), -EINVAL);
	/* KEEP_TLS means nothing to a plain stream. */
	o = (uco_stream_opts){ .flags = UCO_STREAM_KEEP_TLS };
	cr_assert_eq(uco_stream_open(&s, p.sv[0], &o), -EINVAL);
	/* Streams left open, their senders done, go with the loop: one
	 * owning its connection and socket, one leaving them to us. */
	uco_stream *mine, *kept;
	uco_stream_opts own = { .loop = loop };
	o.loop = loop;
	cr_assert_eq(uco_stream_open_tls(&mine, p.s, &own), 0);
	cr_assert_eq(uco_stream_open_tls(&kept, p.c, &o), 0);
	cr_assert_eq(uco_stream_write(mine, "to the client", 13), 13);
	cr_assert_eq(uco_stream_write(kept, "to the server", 13), 13);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_stream_write_buffered(mine), 0);
	cr_assert_eq(uco_stream_write_buffered(kept), 0);
	p.s = NULL;
	p.sv[0] = -1;
	test_close(loop);
	pair_close(&p);
}

/* A stream on a connection not handshaken yet, one task reading lines
 * while another writes them: the first read and the sender's first write
 * make the handshake together, and the echo comes back whole. */
enum { ECHO_LINES = 2000 };

static void *echoed_lines(void *arg)
{
	uco_stream *s = arg;
	for (int i = 0; i < ECHO_LINES; i++) {
		char want[32];
		int len = snprintf(want, sizeof want, "line %d of the echo\n", i);
		const char *line;
		ssize_t n = uco_stream_readline(s, &line);
		cr_assert_eq(n, len, "line %d: %zd", i, n);
		cr_assert_eq(memcmp(line, want, (size_t)len), 0, "line %d", i);
	}
	return NULL;
}

static void *stream_echo_client(void *arg)
{
	struct end *e = arg;
	uco_tls *t;
	cr_assert_eq(uco_tls_open(&t, e->ctx, e->fd, e->name), 0);
	uco_stream *s;
	uco_stream_opts o = { .flags = UCO_STREAM_KEEP_TLS };
	cr_assert_eq(uco_stream_open_tls(&s, t, &o), 0);
	uco_task *reader;
	cr_assert_eq(uco_spawn(NULL, &reader, echoed_lines, s), 0);
	for (int i = 0; i < ECHO_LINES; i++) {
		char line[32];
		int len = snprintf(line, sizeof line, "line %d of the echo\n", i);
		cr_assert_eq(uco_stream_write(s, line, (size_t)len), len);
		cr_assert_eq(uco_stream_drain(s), 0);
	}
	cr_assert_eq(uco_await(reader, NULL), 0);
	uco_task_release(reader);
	cr_assert_eq(uco_stream_close(s), 0);
	/* KEEP_TLS: the connection is ours again; tls_echo wants the
	 * close_notify exchange done both ways before the socket goes. */
	return close_both_ways(e, t);
}

Test(tls, a_stream_on_a_connection_not_handshaken_reads_and_writes_at_once)
{
	uco_loop *loop = test_loop();
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct end s = { .ctx = server_ctx(cert_a, key_a, NULL, 0), .fd = sv[0] };
	struct end c = { .ctx = client_ctx(cert_a, NULL, 0), .fd = sv[1], .name = "localhost",
	                 .io = -1 };
	run2(loop, tls_echo, &s, stream_echo_client, &c);
	cr_assert_eq(s.handshake, 0, "server: %s", s.error);
	ssize_t total = 0;
	for (int i = 0; i < ECHO_LINES; i++)
		total += snprintf(NULL, 0, "line %d of the echo\n", i);
	cr_assert_eq(s.io, total, "server: %zd %s", s.io, s.error);
	cr_assert_eq(c.io, 0, "no close_notify from the server: %zd", c.io);
	uco_tls_ctx_destroy(s.ctx);
	uco_tls_ctx_destroy(c.ctx);
	test_close(loop);
}

/* A drain cancelled while the peer reads nothing: the bytes stay queued,
 * the connection can still write, and all of them arrive later. */
struct drainer {
	uco_stream *s;
	int r;
};

static void *drain_it(void *arg)
{
	struct drainer *d = arg;
	d->r = uco_stream_drain(d->s);
	return NULL;
}

static void *close_it(void *arg)
{
	struct drainer *d = arg;
	d->r = uco_stream_close(d->s);
	return NULL;
}

Test(tls, a_cancelled_drain_leaves_the_bytes_queued_and_the_connection_writing)
{
	uco_loop *loop = test_loop();
	struct pair p;
	pair_open(loop, &p, 0);
	uco_stream *s;
	uco_stream_opts o = { .loop = loop };
	cr_assert_eq(uco_stream_open_tls(&s, p.c, &o), 0);
	size_t len = STREAM_BYTES;
	char *big = malloc(len);
	for (size_t i = 0; i < len; i++)
		big[i] = (char)(i % 251);
	cr_assert_eq(uco_stream_write(s, big, len), (ssize_t)len);
	free(big);
	struct drainer d = { .s = s, .r = 1 };
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, drain_it, &d), 0);
	for (int i = 0; i < 3; i++) { /* it waits; the sender fills the socket */
		uco_loop_stop(loop);
		uco_loop_run(loop);
	}
	cr_assert_eq(uco_task_cancel(t), 0);
	uco_loop_stop(loop);
	uco_loop_run(loop);
	cr_assert_eq(d.r, -ECANCELED, "%d", d.r);
	uco_task_release(t);
	size_t queued = uco_stream_write_buffered(s);
	cr_assert_gt(queued, 0);
	/* Now the peer reads: every byte arrives, in order, then the close's
	 * close_notify. */
	struct slow_reader r = { .p = &p, .end = -1 };
	cr_assert_eq(uco_spawn(loop, NULL, read_slowly, &r), 0);
	cr_assert_eq(uco_spawn(loop, NULL, close_it, &d), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(d.r, 0, "close: %d", d.r);
	cr_assert_eq(r.got, STREAM_BYTES, "%zu", r.got);
	cr_assert_eq(r.end, 0, "no close_notify: %zd %s", r.end, r.why);
	p.c = NULL;
	p.sv[1] = -1;
	pair_close(&p);
	test_close(loop);
}
