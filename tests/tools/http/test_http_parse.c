/* SPDX-License-Identifier: MIT */
/*
 * The request parser of uco-http (tools/http_parse.c), alone: heads split
 * at every byte, pipelined requests, malformed and oversized heads, bodies
 * framed by Content-Length and by chunked coding, path decoding and types.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define MAX_BODY 1000000

static int parse(const char *s, size_t len, struct http_request *req)
{
	return http_parse_request(s, len, MAX_BODY, req);
}

static int parse_str(const char *s, struct http_request *req)
{
	return parse(s, strlen(s), req);
}

/* Every prefix of a valid head is "more", the whole head and anything
 * longer is the head's length. */
static void check_splits(const char *s, size_t len, int head_len)
{
	struct http_request req;
	for (size_t k = 0; k < len; k++) {
		/* A copy of exactly k bytes, so that ASan sees any over-read. */
		char *p = malloc(k ? k : 1);
		memcpy(p, s, k);
		int r = parse(p, k, &req);
		free(p);
		if (k < (size_t)head_len)
			cr_assert_eq(r, HTTP_PARSE_MORE, "prefix %zu of %d: %d", k, head_len, r);
		else
			cr_assert_eq(r, head_len, "prefix %zu: %d, want %d", k, r, head_len);
	}
}

/* A bad head: each prefix is "more" or already the error, and once the
 * error shows, every longer prefix shows the same. */
static void check_error(const char *s, size_t len, int status)
{
	struct http_request req;
	bool seen = false;
	for (size_t k = 0; k <= len; k++) {
		char *p = malloc(k ? k : 1);
		memcpy(p, s, k);
		int r = parse(p, k, &req);
		free(p);
		if (seen || k == len)
			cr_assert_eq(r, -status, "%.*s: prefix %zu gives %d, want %d", (int)len, s,
			             k, r, -status);
		else
			cr_assert(r == HTTP_PARSE_MORE || r == -status,
			          "%.*s: prefix %zu gives %d, want more or %d", (int)len, s, k, r,
			          -status);
		seen = seen || r == -status;
	}
}

static void check_error_str(const char *s, int status)
{
	check_error(s, strlen(s), status);
}

Test(head, simple_get)
{
	const char *s = "GET /plaintext?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n";
	struct http_request req;
	int r = parse_str(s, &req);
	cr_assert_eq(r, (int)strlen(s));
	cr_assert_eq(req.method, HTTP_METHOD_GET);
	cr_assert_eq(req.version_minor, 1);
	cr_assert(req.keep_alive);
	cr_assert_not(req.chunked);
	cr_assert_eq(req.content_length, 0);
	cr_assert_eq(req.header_count, 2);
	cr_assert_eq(req.path_len, strlen("/plaintext?x=1"));
	cr_assert_eq(memcmp(req.path, "/plaintext?x=1", req.path_len), 0);
	cr_assert_eq(req.method_len, 3);
}

Test(head, methods)
{
	struct http_request req;
	cr_assert_gt(parse_str("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", &req), 0);
	cr_assert_eq(req.method, HTTP_METHOD_HEAD);
	cr_assert_gt(parse_str("POST / HTTP/1.1\r\nHost: a\r\n\r\n", &req), 0);
	cr_assert_eq(req.method, HTTP_METHOD_OTHER);
	/* Methods are case-sensitive: "get" is some other method. */
	cr_assert_gt(parse_str("get / HTTP/1.1\r\nHost: a\r\n\r\n", &req), 0);
	cr_assert_eq(req.method, HTTP_METHOD_OTHER);
	cr_assert_gt(parse_str("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req), 0);
	cr_assert_eq(req.path_len, 1);
	cr_assert_eq(req.path[0], '*');
}

Test(head, split_at_every_byte)
{
	static const char *const heads[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /x HTTP/1.1\nHost: a\n\n",
		"HEAD /bytes/10 HTTP/1.0\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: h\r\nA: \t b \t\r\nB:\r\nConnection: close\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
		"PUT /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9 obs-text\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
		size_t len = strlen(heads[i]);
		check_splits(heads[i], len, (int)len);
		/* With the next request behind it. */
		char buf[512];
		snprintf(buf, sizeof buf, "%sGET / HTTP/1.1\r\n", heads[i]);
		check_splits(buf, strlen(buf), (int)len);
	}
}

Test(head, pipelined)
{
	const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
	                "HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n"
	                "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	                "GET /d HT";
	static const char *const paths[] = { "/a", "/b", "/c" };
	size_t off = 0, len = strlen(s);
	struct http_request req;
	for (int i = 0; i < 3; i++) {
		int r = parse(s + off, len - off, &req);
		cr_assert_gt(r, 0, "request %d: %d", i, r);
		cr_assert_eq(req.path_len, 2);
		cr_assert_eq(memcmp(req.path, paths[i], 2), 0);
		cr_assert_eq(req.keep_alive, i < 2);
		off += (size_t)r;
	}
	cr_assert_eq(parse(s + off, len - off, &req), HTTP_PARSE_MORE);
}

Test(head, body_with_content_length_is_skipped)
{
	/* As the server does: parse, skip the body, parse the next one. */
	const char *s = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 15\r\n\r\n"
	                "GET /b HTTP/1.1\r\n" /* a body that looks like a head */
	                "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
	struct http_request req;
	size_t len = strlen(s);
	int r = parse(s, len, &req);
	cr_assert_gt(r, 0);
	cr_assert_eq(req.content_length, 15);
	size_t off = (size_t)r + req.content_length;
	cr_assert_eq(memcmp(s + off, "\r\nGET /c", 8), 0);
	/* The CR LF the body leaves is taken as an empty line before the
	 * next request line, as RFC 9112 2.2 allows. */
	r = parse(s + off, len - off, &req);
	cr_assert_eq(r, (int)(len - off));
	cr_assert_eq(memcmp(req.path, "/c", 2), 0);
}

Test(head, versions_and_connection)
{
	struct http_request req;
	cr_assert_gt(parse_str("GET / HTTP/1.0\r\n\r\n", &req), 0);
	cr_assert_eq(req.version_minor, 0);
	cr_assert_not(req.keep_alive);
	cr_assert_gt(parse_str("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req), 0);
	cr_assert(req.keep_alive);
	cr_assert_gt(parse_str("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", &req),
	             0);
	cr_assert_not(req.keep_alive);
	cr_assert_gt(parse_str("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
	                       "Connection: CLOSE\r\n\r\n", &req), 0);
	cr_assert_not(req.keep_alive);
	/* 1.x above 1.1 is served as 1.1 (RFC 9110 6.2). */
	cr_assert_gt(parse_str("GET / HTTP/1.7\r\nHost: h\r\n\r\n", &req), 0);
	cr_assert_eq(req.version_minor, 1);
	cr_assert(req.keep_alive);
	cr_assert_gt(parse_str("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n", &req),
	             0);
	cr_assert(req.expect_continue);
}

Test(head, absolute_form)
{
	struct http_request req;
	cr_assert_gt(parse_str("GET HTTP://Example.com:80/x/y?q HTTP/1.1\r\nHost: e\r\n\r\n", &req),
	             0);
	cr_assert_eq(req.path_len, 6);
	cr_assert_eq(memcmp(req.path, "/x/y?q", 6), 0);
	cr_assert_gt(parse_str("GET https://e?q HTTP/1.1\r\nHost: e\r\n\r\n", &req), 0);
	cr_assert_eq(req.path_len, 1);
	cr_assert_eq(req.path[0], '/');
	check_error_str("GET ftp://e/ HTTP/1.1\r\nHost: e\r\n\r\n", 400);
	check_error_str("CONNECT e:443 HTTP/1.1\r\nHost: e\r\n\r\n", 400);
}

Test(head, malformed)
{
	static const struct {
		const char *s;
		int status;
	} cases[] = {
		{ "GET\r\n\r\n", 400 },
		{ " GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400 },
		{ "GET /\r\n\r\n", 400 },                      /* HTTP/0.9 */
		{ "GET / http/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400 },
		{ "GET / HTTP/11\r\nHost: h\r\n\r\n", 400 },
		{ "GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400 },
		{ "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505 },
		{ "GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505 },
		{ "G@T / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET foo HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\rHost: h\r\n\r\n", 400 },      /* bare CR */
		{ "GET / HTTP/1.1\r\nHost: h\r\rX: y\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: h\r\n\r\r", 400 },
		{ "GET / HTTP/1.1\r\n\r\n", 400 },               /* no Host in 1.1 */
		{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
		{ "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nName : v\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n c\r\n\r\n", 400 }, /* obs-fold */
		{ "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nA: b\x7f\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nA: b\x01\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHo(st: h\r\n\r\n", 400 },
		{ "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_error_str(cases[i].s, cases[i].status);
	/* A NUL anywhere, which strlen() could not show. */
	static const char nul_target[] = "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n";
	check_error(nul_target, sizeof nul_target - 1, 400);
	static const char nul_value[] = "GET / HTTP/1.1\r\nHost: h\0\r\n\r\n";
	check_error(nul_value, sizeof nul_value - 1, 400);
	static const char nul_method[] = "G\0T / HTTP/1.1\r\nHost: h\r\n\r\n";
	check_error(nul_method, sizeof nul_method - 1, 400);
}

Test(head, content_length)
{
	struct http_request req;
	cr_assert_gt(parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &req), 0);
	cr_assert_eq(req.content_length, 0);
	cr_assert_gt(parse_str("POST / HTTP/1.1\r\nHost: h\r\ncontent-length:  007 \r\n\r\n", &req),
	             0);
	cr_assert_eq(req.content_length, 7);
	cr_assert_gt(parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
	                       "Content-Length: 5\r\n\r\n", &req), 0);
	cr_assert_eq(req.content_length, 5);
	char at_max[128];
	snprintf(at_max, sizeof at_max, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n",
	         MAX_BODY);
	cr_assert_gt(parse_str(at_max, &req), 0);
	cr_assert_eq(req.content_length, MAX_BODY);

	static const struct {
		const char *value;
		int status;
	} bad[] = {
		{ "", 400 }, { "abc", 400 }, { "-1", 400 }, { "+5", 400 }, { "5, 5", 400 },
		{ "5 5", 400 }, { "0x10", 400 }, { "1000001", 413 },
		{ "99999999999999999999999999999", 413 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char s[256];
		snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n\r\n",
		         bad[i].value);
		check_error_str(s, bad[i].status);
	}
	check_error_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
	                "Content-Length: 6\r\n\r\n", 400);
	check_error_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
	                "Content-Length: 99999999999\r\n\r\n", 400);
}

Test(head, transfer_encoding)
{
	struct http_request req;
	cr_assert_gt(parse_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
	                       &req), 0);
	cr_assert(req.chunked);
	cr_assert_eq(req.content_length, 0);
	check_error_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
	                "Content-Length: 5\r\n\r\n", 400);
	check_error_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	                501);
	check_error_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
	                "Transfer-Encoding: chunked\r\n\r\n", 501);
	check_error_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	                400);
	check_error_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	                400);
	check_error_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", 400);
	check_error_str("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

Test(head, size_limits)
{
	static char s[3 * HTTP_MAX_HEAD];
	/* A head of exactly HTTP_MAX_HEAD bytes passes; one more is 431. */
	const char *start = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
	size_t fixed = strlen(start) + 4; /* the value's CR LF and the empty line */
	for (int extra = 0; extra <= 1; extra++) {
		size_t vlen = HTTP_MAX_HEAD - fixed + (size_t)extra;
		size_t n = strlen(start);
		memcpy(s, start, n);
		memset(s + n, 'v', vlen);
		n += vlen;
		memcpy(s + n, "\r\n\r\n", 4);
		n += 4;
		struct http_request req;
		if (!extra) {
			cr_assert_eq(n, HTTP_MAX_HEAD);
			cr_assert_eq(parse(s, n, &req), HTTP_MAX_HEAD);
		} else {
			check_error(s, n, 431);
		}
	}
	/* A long target: 414 while still in the request line. */
	size_t n = (size_t)sprintf(s, "GET /");
	memset(s + n, 'a', 2 * HTTP_MAX_HEAD);
	n += 2 * HTTP_MAX_HEAD;
	n += (size_t)sprintf(s + n, " HTTP/1.1\r\nHost: h\r\n\r\n");
	struct http_request req;
	cr_assert_eq(parse(s, HTTP_MAX_HEAD - 1, &req), HTTP_PARSE_MORE);
	cr_assert_eq(parse(s, HTTP_MAX_HEAD, &req), -414);
	cr_assert_eq(parse(s, n, &req), -414);
	/* Too many fields: 431 even though the bytes are few. */
	n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 1; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)sprintf(s + n, "X%d: %d\r\n", i, i);
	memcpy(s + n, "\r\n", 3);
	cr_assert_gt(parse(s, n + 2, &req), 0, "%d fields are allowed", HTTP_MAX_HEADERS);
	cr_assert_eq(req.header_count, HTTP_MAX_HEADERS);
	n += (size_t)sprintf(s + n, "Y: y\r\n\r\n");
	check_error(s, n, 431);
	/* Endless empty-looking input. */
	memset(s, 'A', 3 * HTTP_MAX_HEAD);
	cr_assert_eq(parse(s, 3 * HTTP_MAX_HEAD, &req), -414);
}

/* ------------------------------------------------------------ chunked */

/* Feed a whole chunked body in pieces of `step` bytes; returns the bytes
 * consumed in all, or the error. */
static ssize_t feed_steps(struct http_chunked *c, const char *s, size_t len, size_t step,
                          uint64_t max)
{
	size_t off = 0;
	http_chunked_init(c);
	while (off < len && !http_chunked_done(c)) {
		size_t n = len - off < step ? len - off : step;
		char *p = malloc(n);
		memcpy(p, s + off, n);
		ssize_t r = http_chunked_feed(c, p, n, max);
		free(p);
		if (r < 0)
			return r;
		cr_assert(r == (ssize_t)n || http_chunked_done(c), "stopped early: %zd of %zu", r, n);
		off += (size_t)r;
	}
	return (ssize_t)off;
}

Test(chunked, valid_bodies_at_every_split)
{
	static const struct {
		const char *body;
		uint64_t total;
	} cases[] = {
		{ "0\r\n\r\n", 0 },
		{ "5\r\nhello\r\n0\r\n\r\n", 5 },
		{ "5\nhello\n0\n\n", 5 },
		{ "A\r\n0123456789\r\n1;ext=1;x=\"q\"\r\nz\r\n000\r\n\r\n", 11 },
		{ "3 ;e\r\nabc\r\n0 \t;x\r\nTrailer: v\r\nT2: w\r\n\r\n", 3 },
		{ "1f\r\n0123456789012345678901234567890\r\n0\r\n\r\n", 31 },
	};
	const char *next = "GET / HTTP/1.1\r\n";
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[256];
		size_t blen = strlen(cases[i].body);
		snprintf(buf, sizeof buf, "%s%s", cases[i].body, next);
		for (size_t step = 1; step <= strlen(buf); step++) {
			struct http_chunked c;
			ssize_t r = feed_steps(&c, buf, strlen(buf), step, MAX_BODY);
			cr_assert_eq(r, (ssize_t)blen, "body %zu step %zu: %zd", i, step, r);
			cr_assert(http_chunked_done(&c));
			cr_assert_eq(c.total, cases[i].total);
			/* Done: nothing more is taken. */
			cr_assert_eq(http_chunked_feed(&c, next, strlen(next), MAX_BODY), 0);
		}
	}
}

Test(chunked, malformed)
{
	static const struct {
		const char *body;
		int status;
	} cases[] = {
		{ "x\r\n", 400 },
		{ "\r\n", 400 },
		{ ";a\r\n", 400 },
		{ "5 x\r\nhello\r\n0\r\n\r\n", 400 },
		{ "5\rhello", 400 },
		{ "5\r\nhelloX\r\n", 400 },
		{ "5\r\nhello\rX", 400 },
		{ "-5\r\n", 400 },
		{ "5\x01\r\n", 400 },
		{ "5;a\x01\r\n", 400 },
		{ "0\r\nBad Trailer\x01\r\n\r\n", 400 },
		{ "0\r\n Folded: x\r\n\r\n", 400 },
		{ "0\r\n\rX", 400 },
		{ "FFFFFFFFFFFFFFFFFFFF\r\n", 413 },
		{ "F4241\r\n", 413 },  /* 1000001 > MAX_BODY */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = strlen(cases[i].body);
		for (size_t step = 1; step <= len; step++) {
			struct http_chunked c;
			ssize_t r = feed_steps(&c, cases[i].body, len, step, MAX_BODY);
			cr_assert_eq(r, -cases[i].status, "case %zu step %zu: %zd", i, step, r);
			/* The state stays failed. */
			cr_assert_eq(http_chunked_feed(&c, "0\r\n\r\n", 5, MAX_BODY), -cases[i].status);
		}
	}
}

Test(chunked, total_limit_across_chunks)
{
	struct http_chunked c;
	/* 3 chunks of 0x100000 = 3 MiB against a 2.5 MiB limit. */
	static char data[0x100000];
	http_chunked_init(&c);
	for (int i = 0; i < 3; i++) {
		ssize_t r = http_chunked_feed(&c, "100000\r\n", 8, 2621440);
		if (i == 2) {
			cr_assert_eq(r, -413);
			return;
		}
		cr_assert_eq(r, 8);
		cr_assert_eq(http_chunked_feed(&c, data, sizeof data, 2621440), (ssize_t)sizeof data);
		cr_assert_eq(http_chunked_feed(&c, "\r\n", 2, 2621440), 2);
	}
}

Test(chunked, trailer_section_is_bounded)
{
	struct http_chunked c;
	char line[128];
	http_chunked_init(&c);
	cr_assert_eq(http_chunked_feed(&c, "0\r\n", 3, MAX_BODY), 3);
	ssize_t r = 0;
	for (int i = 0; i < 1000 && r >= 0; i++) {
		int n = snprintf(line, sizeof line, "Trailer-%d: %064d\r\n", i, i);
		r = http_chunked_feed(&c, line, (size_t)n, MAX_BODY);
	}
	cr_assert_eq(r, -431);
}

/* ------------------------------------------------------------ paths */

Test(path, decode)
{
	static const struct {
		const char *in, *out;
		bool slash;
	} ok[] = {
		{ "/", "", true },
		{ "/plaintext", "plaintext", false },
		{ "/plain%74ext", "plaintext", false },
		{ "/a/b/c.html?x=1/../..", "a/b/c.html", false },
		{ "/a//b/./c/", "a/b/c", true },
		{ "/a/.", "a", false },
		{ "/./", "", true },
		{ "/%41%42%43", "ABC", false },
		{ "/a%20b", "a b", false },
		{ "/...", "...", false },
		{ "/.x/..y/x..", ".x/..y/x..", false },
		{ "/%c3%a9", "\xc3\xa9", false },
		{ "/?", "", true },
	};
	char out[64];
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		bool slash = !ok[i].slash;
		int r = http_decode_path(ok[i].in, strlen(ok[i].in), out, sizeof out, &slash);
		cr_assert_eq(r, (int)strlen(ok[i].out), "%s: %d", ok[i].in, r);
		cr_assert_str_eq(out, ok[i].out, "%s", ok[i].in);
		cr_assert_eq(slash, ok[i].slash, "%s", ok[i].in);
	}
	static const char *const bad[] = {
		"", "a", "*", "/..", "/../etc/passwd", "/a/../../b", "/a/..", "/%2e%2e/x",
		"/%2E%2e", "/.%2e/", "/..%2fetc", "/a%2Fb", "/a%00b", "/%0a", "/%7f", "/%", "/%4",
		"/%zz", "/%g0", "/a%", "/x/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = http_decode_path(bad[i], strlen(bad[i]), out, sizeof out, NULL);
		cr_assert_eq(r, -400, "%s: %d", bad[i], r);
	}
	/* Too long for the output. */
	char big[100];
	memset(big, 'a', sizeof big);
	big[0] = '/';
	cr_assert_eq(http_decode_path(big, sizeof big, out, sizeof out, NULL), -414);
	cr_assert_eq(http_decode_path(big, sizeof out, out, sizeof out, NULL), (int)sizeof out - 1);
}

Test(path, mime_types)
{
	static const struct {
		const char *name, *type;
	} cases[] = {
		{ "index.html", "text/html; charset=utf-8" },
		{ "a/B.HTM", "text/html; charset=utf-8" },
		{ "s.css", "text/css; charset=utf-8" },
		{ "app.js", "text/javascript; charset=utf-8" },
		{ "d.json", "application/json" },
		{ "r.txt", "text/plain; charset=utf-8" },
		{ "i.png", "image/png" },
		{ "i.jpg", "image/jpeg" },
		{ "i.jpeg", "image/jpeg" },
		{ "i.gif", "image/gif" },
		{ "i.svg", "image/svg+xml" },
		{ "favicon.ico", "image/vnd.microsoft.icon" },
		{ "m.wasm", "application/wasm" },
		{ "doc.pdf", "application/pdf" },
		{ "archive.tar.gz", "application/octet-stream" },
		{ "noext", "application/octet-stream" },
		{ "dir.html/file", "application/octet-stream" },
		{ ".html", "application/octet-stream" },
		{ "a/.html", "application/octet-stream" },
		{ "trailing.", "application/octet-stream" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_assert_str_eq(http_mime_type(cases[i].name, strlen(cases[i].name)),
		                 cases[i].type, "%s", cases[i].name);
}

Test(misc, reasons)
{
	cr_assert_str_eq(http_reason(404), "Not Found");
	cr_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
	cr_assert_str_eq(http_reason(299), "Unknown");
}

/* ------------------------------------------------------------ properties */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Mutated requests: the parser never reads past its input (ASan), never
 * returns a head longer than its input or the limit, and answers every
 * prefix consistently with the whole. */
Test(property, mutations_are_consistent)
{
	static const char *const seeds[] = {
		"GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
		"HEAD / HTTP/1.0\r\n\r\n",
	};
	static const char alphabet[] = "\r\n :\t/%.0aZ\x00\x7f\x80,-";
	for (int iter = 0; iter < 20000; iter++) {
		char buf[160];
		const char *seed = seeds[rng() % 3];
		size_t len = strlen(seed);
		memcpy(buf, seed, len);
		for (int m = (int)(rng() % 4); m >= 0; m--) {
			size_t pos = rng() % len;
			char ch = alphabet[rng() % (sizeof alphabet - 1)];
			switch (rng() % 3) {
			case 0:
				buf[pos] = ch;
				break;
			case 1:
				if (len < sizeof buf) {
					memmove(buf + pos + 1, buf + pos, len - pos);
					buf[pos] = ch;
					len++;
				}
				break;
			default:
				memmove(buf + pos, buf + pos + 1, len - pos - 1);
				len--;
			}
		}
		struct http_request req;
		char *p = malloc(len);
		memcpy(p, buf, len);
		int whole = parse(p, len, &req);
		free(p);
		cr_assert(whole <= (int)len);
		if (whole > 0) {
			cr_assert(req.path_len >= 1 && req.method_len >= 1);
			check_splits(buf, len, whole);
		} else if (whole < 0) {
			check_error(buf, len, -whole);
		}
	}
}
