/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 request parsing for uco-http (RFC 9110, 9112): pure functions
 * over bytes the caller owns.  No IO, no allocation, no global state, so
 * that the unit tests and the fuzzer drive them directly.
 *
 * Every function is bounded: the head of a request may not exceed
 * HTTP_MAX_HEAD bytes nor HTTP_MAX_HEADERS fields, and a body may not
 * exceed the limit its caller gives.  Errors are returned as the negated
 * HTTP status to answer (-400, -413, -414, -431, -501, -505).
 */
#ifndef UCO_HTTP_PARSE_H
#define UCO_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The request line and the header fields, with every line end and the
 * empty line that ends them: beyond this, 414 (still in the request line)
 * or 431 (in the fields). */
#define HTTP_MAX_HEAD 8192
/* Header fields of one request, beyond which 431. */
#define HTTP_MAX_HEADERS 64
/* Empty lines (CR LF) accepted before a request line (RFC 9112 2.2: some
 * clients send one after a body); more is 400. */
#define HTTP_MAX_LEADING_EMPTY 4
/* A decoded path, its terminating NUL included. */
#define HTTP_MAX_PATH 4096

/* More bytes are needed: the prefix seen so far is not (yet) an error. */
#define HTTP_PARSE_MORE 0

enum http_method {
	HTTP_METHOD_OTHER = 0, /* a valid token uco-http does not serve: 405 */
	HTTP_METHOD_GET,
	HTTP_METHOD_HEAD,
};

/* A parsed request head.  The pointers point into the buffer given to
 * http_parse_request() (or, for path "/", to a constant). */
struct http_request {
	int method;                 /* enum http_method */
	const char *method_str;
	size_t method_len;
	const char *target;         /* the request-target as sent */
	size_t target_len;
	/* The path and query of the target: the target itself in origin form
	 * ("/a?b"), its part after the authority in absolute form
	 * ("http://h/a?b" gives "/a?b"), "*" in asterisk form. */
	const char *path;
	size_t path_len;
	int version_minor;          /* HTTP/1.0 or HTTP/1.1 (1.2 and up count as 1.1) */
	bool keep_alive;            /* the connection may serve another request */
	bool chunked;               /* Transfer-Encoding: chunked body follows */
	bool expect_continue;       /* Expect: 100-continue */
	uint64_t content_length;    /* body bytes that follow (0 when chunked) */
	unsigned header_count;
};

/*
 * Parse the request head at the start of buf[0, len).  Returns:
 *   > 0              the head is complete and this many bytes long (the
 *                    body, if any, and further pipelined requests follow);
 *   HTTP_PARSE_MORE  buf is a valid beginning of a head: call again with
 *                    more bytes (always with the same beginning);
 *   < 0              the negated status to answer, after which the
 *                    connection must be closed: -400 malformed, -413
 *                    Content-Length above max_body, -414 request line
 *                    longer than HTTP_MAX_HEAD, -431 fields too large or
 *                    too many, -501 a transfer coding other than chunked,
 *                    -505 an HTTP version other than 1.x.
 * An error is reported as soon as the bytes seen prove it, and stays the
 * same for any longer buf.  *req is valid only after a return > 0.
 *
 * Strictness (against request smuggling): a line ends in CR LF or a bare
 * LF, and a bare CR is 400; whitespace before a field's colon or a folded
 * line is 400; Content-Length is digits only, repeated only with the same
 * value; Transfer-Encoding must end in chunked (else 400), may hold no
 * other coding (else 501), and may not come with Content-Length or in an
 * HTTP/1.0 request (400).  HTTP/1.1 needs exactly one Host (else 400).
 */
int http_parse_request(const char *buf, size_t len, uint64_t max_body,
                       struct http_request *req);

/*
 * Decode a request path (http_request.path: the query, from '?', is
 * ignored) into out, a NUL-terminated path relative to the served root:
 * percent-decoded, without its leading '/', with empty and "." segments
 * removed ("/a//./b/" gives "a/b").  Returns its length (0 for the root),
 * and sets *trailing_slash when the path ended in '/'.  -400 when the
 * path does not start with '/', has a malformed %-escape, decodes to a
 * NUL or another control byte, encodes a '/' (%2F: a separator smuggled
 * past segment checks), or has a ".." segment (plain or encoded); -414
 * when the result does not fit in cap bytes.
 */
int http_decode_path(const char *path, size_t len, char *out, size_t cap,
                     bool *trailing_slash);

/* The Content-Type for a file name, by its extension (case-insensitive):
 * html, htm, css, js, mjs, json, txt, png, jpg, jpeg, gif, svg, ico,
 * wasm, pdf; application/octet-stream for any other. */
const char *http_mime_type(const char *name, size_t len);

/* The reason phrase of a status code ("Not Found"), or "Unknown". */
const char *http_reason(int status);

/*
 * A chunked request body (RFC 9112 7.1), decoded incrementally so that a
 * body of any size passes through a fixed buffer.  uco-http reads and
 * drops bodies (it serves no upload), but keeps the connection in step
 * for the next request.  Chunk extensions and trailer fields are checked
 * for forbidden bytes and skipped.
 */
struct http_chunked {
	unsigned state;
	unsigned line_len;      /* bytes of the current size or trailer line */
	unsigned trailer_len;   /* bytes of the trailer section so far */
	unsigned digits;        /* hex digits of the current size */
	uint64_t chunk_left;    /* data bytes of the current chunk still to come */
	uint64_t total;         /* data bytes so far */
};

void http_chunked_init(struct http_chunked *c);

/* Consume the body's next bytes from buf[0, len); returns how many were
 * part of the body (fewer than len only once the body has ended: the rest
 * is the next request), or -400 (malformed), -413 (more than max_body
 * data bytes), -431 (trailer fields beyond HTTP_MAX_HEAD).  After an error
 * the state stays failed. */
ssize_t http_chunked_feed(struct http_chunked *c, const char *buf, size_t len,
                          uint64_t max_body);

/* The last chunk and the trailer section have been consumed. */
bool http_chunked_done(const struct http_chunked *c);

#endif /* UCO_HTTP_PARSE_H */
