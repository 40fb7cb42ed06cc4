/* SPDX-License-Identifier: MIT */
/*
 * The request parser of uco-http: see http_parse.h for the contracts.
 *
 * http_parse_request() keeps no state between calls: it parses the whole
 * head again each time it is given more bytes.  That keeps it simple to
 * fuzz and to trust (a head is at most HTTP_MAX_HEAD bytes), and the
 * server calls it again only once a new line has arrived, so a client
 * sending a byte at a time cannot make it quadratic in the bytes sent.
 */
#include "http_parse.h"

#include <string.h>

/* tchar of RFC 9110 5.6.2: the characters of a method or field name. */
static const unsigned char tchar_table[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static bool is_tchar(unsigned char c)
{
	return tchar_table[c];
}

/* A byte allowed in a field value: VCHAR, obs-text, SP and HTAB. */
static bool is_field_byte(unsigned char c)
{
	return c >= 0x20 ? c != 0x7f : c == '\t';
}

static int lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool ieq(const char *a, size_t alen, const char *lit)
{
	size_t n = strlen(lit);
	if (alen != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != (unsigned char)lit[i])
			return false;
	return true;
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ------------------------------------------------------------ the head */

/* What the header fields said, gathered as they are read. */
struct fields {
	unsigned hosts;
	bool has_length;
	uint64_t length;
	bool has_te;
	bool te_chunked_last;  /* the last coding seen is chunked */
	unsigned te_chunked;   /* chunked codings seen */
	unsigned te_other;     /* other codings seen */
	bool conn_close, conn_keep_alive;
	bool expect_continue;
};

/* Call fn on each element of a comma-separated list (RFC 9110 5.6.1),
 * empty elements skipped, surrounding whitespace trimmed. */
static void each_element(const char *v, size_t len, struct fields *f,
                         void (*fn)(struct fields *f, const char *e, size_t n))
{
	size_t i = 0;
	while (i < len) {
		size_t start = i;
		while (i < len && v[i] != ',')
			i++;
		size_t end = i;
		while (start < end && (v[start] == ' ' || v[start] == '\t'))
			start++;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end > start)
			fn(f, v + start, end - start);
		i++; /* past the comma */
	}
}

static void te_element(struct fields *f, const char *e, size_t n)
{
	f->te_chunked_last = ieq(e, n, "chunked");
	if (f->te_chunked_last)
		f->te_chunked++;
	else
		f->te_other++;
}

static void connection_element(struct fields *f, const char *e, size_t n)
{
	if (ieq(e, n, "close"))
		f->conn_close = true;
	else if (ieq(e, n, "keep-alive"))
		f->conn_keep_alive = true;
}

/* Take in one field; 0, or the negated status. */
static int take_field(struct fields *f, const char *name, size_t nlen,
                      const char *v, size_t vlen, uint64_t max_body)
{
	if (ieq(name, nlen, "content-length")) {
		/* Digits only: "+5", "5, 5" or "0x5" would be read differently
		 * by other parsers, which is how requests get smuggled. */
		if (vlen == 0)
			return -400;
		uint64_t n = 0;
		bool too_large = false;
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9')
				return -400;
			if (!too_large) {
				n = n * 10 + (uint64_t)(v[i] - '0');
				too_large = n > max_body;
			}
		}
		if (f->has_length && (too_large || n != f->length))
			return -400;
		if (too_large)
			return -413;
		f->has_length = true;
		f->length = n;
	} else if (ieq(name, nlen, "transfer-encoding")) {
		f->has_te = true;
		each_element(v, vlen, f, te_element);
	} else if (ieq(name, nlen, "connection")) {
		each_element(v, vlen, f, connection_element);
	} else if (ieq(name, nlen, "host")) {
		f->hosts++;
	} else if (ieq(name, nlen, "expect")) {
		f->expect_continue = ieq(v, vlen, "100-continue");
	}
	return 0;
}

/* Out of bytes at the limit: the error for where we are, else "more". */
static int out_of_bytes(size_t len, int status)
{
	return len >= HTTP_MAX_HEAD ? status : HTTP_PARSE_MORE;
}

/* At buf[*i], a line must end (CR LF, or LF).  1 when it did, or
 * HTTP_PARSE_MORE / the status. */
static int line_end(const char *buf, size_t lim, size_t len, size_t *i, int status)
{
	if (*i >= lim)
		return out_of_bytes(len, status);
	if (buf[*i] == '\n') {
		*i += 1;
		return 1;
	}
	if (buf[*i] != '\r')
		return -400;
	if (*i + 1 >= lim)
		return out_of_bytes(len, status);
	if (buf[*i + 1] != '\n')
		return -400; /* a bare CR */
	*i += 2;
	return 1;
}

static int set_path(struct http_request *req)
{
	const char *t = req->target;
	size_t n = req->target_len;
	if (t[0] == '/' || (n == 1 && t[0] == '*')) {
		req->path = t;
		req->path_len = n;
		return 0;
	}
	/* absolute-form (RFC 9112 3.2.2): servers must accept it. */
	size_t skip;
	if (n >= 7 && ieq(t, 7, "http://"))
		skip = 7;
	else if (n >= 8 && ieq(t, 8, "https://"))
		skip = 8;
	else
		return -400;
	while (skip < n && t[skip] != '/' && t[skip] != '?')
		skip++;
	if (skip < n && t[skip] == '/') {
		req->path = t + skip;
		req->path_len = n - skip;
	} else {
		req->path = "/";
		req->path_len = 1;
	}
	return 0;
}

/* "HTTP/" DIGIT "." DIGIT: 1, or HTTP_PARSE_MORE / the status. */
static int parse_version(const char *buf, size_t lim, size_t len, size_t *i,
                         struct http_request *req)
{
	static const char proto[] = "HTTP/";
	for (size_t k = 0; k < 8; k++) {
		if (*i + k >= lim)
			return out_of_bytes(len, -414);
		unsigned char c = (unsigned char)buf[*i + k];
		bool ok = k < 5 ? c == (unsigned char)proto[k]
		                : k == 6 ? c == '.' : c >= '0' && c <= '9';
		if (!ok)
			return -400;
	}
	int major = buf[*i + 5] - '0', minor = buf[*i + 7] - '0';
	*i += 8;
	if (major != 1)
		return -505;
	req->version_minor = minor >= 1 ? 1 : 0;
	return 1;
}

int http_parse_request(const char *buf, size_t len, uint64_t max_body,
                       struct http_request *req)
{
	size_t lim = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
	size_t i = 0;
	int r;

	if (!buf || !req)
		return -400;
	memset(req, 0, sizeof *req);

	/* Empty lines before the request line. */
	for (unsigned empty = 0; i < lim && (buf[i] == '\r' || buf[i] == '\n'); empty++) {
		if (empty == HTTP_MAX_LEADING_EMPTY)
			return -400;
		if ((r = line_end(buf, lim, len, &i, -400)) != 1)
			return r;
	}

	/* method SP request-target SP HTTP-version line-end */
	size_t start = i;
	while (i < lim && is_tchar((unsigned char)buf[i]))
		i++;
	if (i >= lim)
		return out_of_bytes(len, -414);
	if (i == start || buf[i] != ' ')
		return -400;
	req->method_str = buf + start;
	req->method_len = i - start;
	if (req->method_len == 3 && memcmp(buf + start, "GET", 3) == 0)
		req->method = HTTP_METHOD_GET;
	else if (req->method_len == 4 && memcmp(buf + start, "HEAD", 4) == 0)
		req->method = HTTP_METHOD_HEAD;
	else
		req->method = HTTP_METHOD_OTHER; /* methods are case-sensitive */
	start = ++i;
	/* Visible ASCII only: no controls, DEL, bytes >= 0x80, nor spaces. */
	while (i < lim && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f)
		i++;
	if (i >= lim)
		return out_of_bytes(len, -414);
	if (i == start || buf[i] != ' ')
		return -400;
	req->target = buf + start;
	req->target_len = i - start;
	if ((r = set_path(req)) < 0)
		return r;
	i++;
	if ((r = parse_version(buf, lim, len, &i, req)) != 1)
		return r;
	if ((r = line_end(buf, lim, len, &i, -414)) != 1)
		return r;

	/* field-name ":" OWS field-value OWS line-end, up to an empty line. */
	struct fields f = { 0 };
	for (;;) {
		if (i >= lim)
			return out_of_bytes(len, -431);
		if (buf[i] == '\r' || buf[i] == '\n') {
			if ((r = line_end(buf, lim, len, &i, -431)) != 1)
				return r;
			break;
		}
		start = i;
		while (i < lim && is_tchar((unsigned char)buf[i]))
			i++;
		if (i >= lim)
			return out_of_bytes(len, -431);
		/* Also a line starting with whitespace (obs-fold) and
		 * whitespace before the colon, both 400 by RFC 9112 5. */
		if (i == start || buf[i] != ':')
			return -400;
		const char *name = buf + start;
		size_t nlen = i - start;
		i++;
		while (i < lim && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		start = i;
		while (i < lim && buf[i] != '\r' && buf[i] != '\n') {
			if (!is_field_byte((unsigned char)buf[i]))
				return -400;
			i++;
		}
		size_t end = i;
		while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t'))
			end--;
		if ((r = line_end(buf, lim, len, &i, -431)) != 1)
			return r;
		if (++req->header_count > HTTP_MAX_HEADERS)
			return -431;
		if ((r = take_field(&f, name, nlen, buf + start, end - start, max_body)) < 0)
			return r;
	}

	/* The head is complete: what it says as a whole. */
	if (req->version_minor == 1 ? f.hosts != 1 : f.hosts > 1)
		return -400;
	if (f.has_te) {
		if (f.has_length || req->version_minor == 0)
			return -400;
		if (!f.te_chunked_last || f.te_chunked != 1)
			return -400; /* the body's end cannot be known */
		if (f.te_other)
			return -501; /* gzip, chunked: a coding we do not decode */
		req->chunked = true;
	}
	req->content_length = f.has_length ? f.length : 0;
	req->expect_continue = f.expect_continue;
	req->keep_alive = !f.conn_close &&
	                  (req->version_minor == 1 || f.conn_keep_alive);
	return (int)i;
}

/* ------------------------------------------------------------ paths */

int http_decode_path(const char *path, size_t len, char *out, size_t cap,
                     bool *trailing_slash)
{
	if (!path || !out || !cap || len == 0 || path[0] != '/')
		return -400;
	size_t q = 0;
	while (q < len && path[q] != '?')
		q++;
	len = q;
	size_t n = 0;   /* bytes written to out */
	size_t seg = 0; /* where the current segment starts in out */
	for (size_t i = 1; i <= len; i++) {
		if (i == len || path[i] == '/') {
			/* A segment ends: drop "" and ".", refuse "..". */
			size_t sl = n - seg;
			if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.')
				return -400;
			if (sl == 0 || (sl == 1 && out[seg] == '.')) {
				n = seg;
			} else if (i < len) {
				if (n + 1 >= cap)
					return -414;
				out[n++] = '/';
			}
			seg = n;
			continue;
		}
		unsigned char c = (unsigned char)path[i];
		if (c == '%') {
			int hi = i + 1 < len ? hex_value((unsigned char)path[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value((unsigned char)path[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -400;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			if (c == '/')
				return -400;
		}
		if (c < 0x20 || c == 0x7f)
			return -400;
		if (n + 1 >= cap)
			return -414;
		out[n++] = (char)c;
	}
	/* The separator before a dropped last segment ("a/." gives "a/"). */
	if (n > 0 && out[n - 1] == '/')
		n--;
	out[n] = 0;
	if (trailing_slash)
		*trailing_slash = path[len - 1] == '/';
	return (int)n;
}

const char *http_mime_type(const char *name, size_t len)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ "html", "text/html; charset=utf-8" },
		{ "htm", "text/html; charset=utf-8" },
		{ "css", "text/css; charset=utf-8" },
		{ "js", "text/javascript; charset=utf-8" },
		{ "mjs", "text/javascript; charset=utf-8" },
		{ "json", "application/json" },
		{ "txt", "text/plain; charset=utf-8" },
		{ "png", "image/png" },
		{ "jpg", "image/jpeg" },
		{ "jpeg", "image/jpeg" },
		{ "gif", "image/gif" },
		{ "svg", "image/svg+xml" },
		{ "ico", "image/vnd.microsoft.icon" },
		{ "wasm", "application/wasm" },
		{ "pdf", "application/pdf" },
	};
	size_t dot = len;
	while (dot > 0 && name[dot - 1] != '.' && name[dot - 1] != '/')
		dot--;
	if (dot > 1 && name[dot - 1] == '.' && name[dot - 2] != '/') {
		for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
			if (ieq(name + dot, len - dot, types[k].ext))
				return types[k].type;
	}
	return "application/octet-stream";
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

/* ------------------------------------------------------------ chunked */

enum {
	CH_SIZE,        /* hex digits of a chunk size */
	CH_EXT_WS,      /* after them: whitespace, which only ';' may follow */
	CH_EXT,         /* an extension, up to the line end */
	CH_SIZE_LF,     /* a CR ended the size line: LF must follow */
	CH_DATA,
	CH_DATA_END,    /* CR LF (or LF) after the data */
	CH_DATA_LF,
	CH_TRAILER,     /* at the start of a trailer line (or the empty one) */
	CH_FIELD,       /* in a trailer field */
	CH_FIELD_LF,
	CH_LAST_LF,     /* a CR began the empty line: LF must follow */
	CH_DONE,
	CH_FAILED,
};

/* A size line (digits and extensions) longer than this is refused. */
#define CHUNK_LINE_MAX 1024

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof *c);
	c->state = CH_SIZE;
}

bool http_chunked_done(const struct http_chunked *c)
{
	return c->state == CH_DONE;
}

static ssize_t chunk_fail(struct http_chunked *c, int status)
{
	c->state = CH_FAILED;
	c->chunk_left = (uint64_t)-status; /* remembered for later calls */
	return status;
}

/* The size line has ended: on to the data, or to the trailers. */
static void size_line_done(struct http_chunked *c)
{
	c->line_len = 0;
	c->digits = 0;
	c->state = c->chunk_left ? CH_DATA : CH_TRAILER;
}

ssize_t http_chunked_feed(struct http_chunked *c, const char *buf, size_t len,
                          uint64_t max_body)
{
	size_t i = 0;
	if (c->state == CH_FAILED)
		return -(ssize_t)c->chunk_left;
	while (i < len && c->state != CH_DONE) {
		unsigned char ch = (unsigned char)buf[i];
		switch (c->state) {
		case CH_SIZE: {
			int h = hex_value(ch);
			if (h >= 0) {
				if (c->chunk_left > (max_body - c->total) >> 4)
					return chunk_fail(c, -413);
				c->chunk_left = c->chunk_left << 4 | (uint64_t)h;
				if (c->chunk_left > max_body - c->total)
					return chunk_fail(c, -413);
				c->digits++;
				break;
			}
			if (c->digits == 0)
				return chunk_fail(c, -400);
			c->total += c->chunk_left;
			c->state = CH_EXT_WS;
			continue; /* look at this byte again */
		}
		case CH_EXT_WS:
		case CH_EXT:
			if (ch == '\n')
				size_line_done(c);
			else if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (ch == ';')
				c->state = CH_EXT;
			else if (c->state == CH_EXT_WS ? ch != ' ' && ch != '\t'
			                               : !is_field_byte(ch))
				return chunk_fail(c, -400); /* "5 x" is no chunk size */
			if (++c->line_len > CHUNK_LINE_MAX)
				return chunk_fail(c, -400);
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				return chunk_fail(c, -400);
			size_line_done(c);
			break;
		case CH_DATA: {
			size_t n = len - i;
			if (n > c->chunk_left)
				n = (size_t)c->chunk_left;
			c->chunk_left -= n;
			i += n;
			if (!c->chunk_left)
				c->state = CH_DATA_END;
			continue;
		}
		case CH_DATA_END:
			if (ch == '\n')
				c->state = CH_SIZE;
			else if (ch == '\r')
				c->state = CH_DATA_LF;
			else
				return chunk_fail(c, -400);
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				return chunk_fail(c, -400);
			c->state = CH_SIZE;
			break;
		case CH_TRAILER:
			if (ch == '\n')
				c->state = CH_DONE;
			else if (ch == '\r')
				c->state = CH_LAST_LF;
			else if (is_tchar(ch))
				c->state = CH_FIELD;
			else
				return chunk_fail(c, -400);
			break;
		case CH_FIELD:
			if (ch == '\n')
				c->state = CH_TRAILER;
			else if (ch == '\r')
				c->state = CH_FIELD_LF;
			else if (!is_field_byte(ch))
				return chunk_fail(c, -400);
			break;
		case CH_FIELD_LF:
		case CH_LAST_LF:
			if (ch != '\n')
				return chunk_fail(c, -400);
			c->state = c->state == CH_LAST_LF ? CH_DONE : CH_TRAILER;
			break;
		}
		if (c->state >= CH_TRAILER && c->state <= CH_LAST_LF &&
		    ++c->trailer_len > HTTP_MAX_HEAD)
			return chunk_fail(c, -431);
		i++;
	}
	return (ssize_t)i;
}
