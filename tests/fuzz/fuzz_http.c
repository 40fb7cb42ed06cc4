/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: uco-http's request parser, path decoder and chunked-body
 * decoder on arbitrary bytes.  Beyond "no crash, no overread" (ASan), it
 * checks the parser's promises:
 *   - a complete head is at most the input, and every field it points at
 *     lies inside the input;
 *   - the verdict on a prefix holds for the whole: an error stays the
 *     same error, and a complete head stays complete with the same length;
 *   - a decoded path is NUL-terminated, fits, and holds no ".." segment
 *     and no control byte;
 *   - the chunked decoder consumes the same bytes whether it is fed at
 *     once or byte by byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define CHECK(cond)                                                               \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "fuzz_http: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                  \
		}                                                                 \
	} while (0)

static void within(const char *buf, size_t len, const char *p, size_t n)
{
	CHECK(p >= buf && n <= len && (size_t)(p - buf) <= len - n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly `size` bytes, so ASan sees any read past it. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);

	struct http_request req;
	int whole = http_parse_request(buf, size, 1 << 20, &req);
	if (whole > 0) {
		CHECK((size_t)whole <= size);
		within(buf, size, req.method_str, req.method_len);
		within(buf, size, req.target, req.target_len);
		if (!(req.path_len == 1 && req.path[0] == '/'))
			within(buf, size, req.path, req.path_len);
		CHECK(req.header_count <= HTTP_MAX_HEADERS);
		CHECK(!(req.chunked && req.content_length));

		char out[HTTP_MAX_PATH];
		bool slash;
		int n = http_decode_path(req.path, req.path_len, out, sizeof out, &slash);
		if (n >= 0) {
			CHECK((size_t)n < sizeof out && out[n] == 0 && strlen(out) == (size_t)n);
			CHECK(strcmp(out, "..") != 0 && strncmp(out, "../", 3) != 0);
			CHECK(!strstr(out, "/../") && !(n >= 3 && strcmp(out + n - 3, "/..") == 0));
			for (int i = 0; i < n; i++)
				CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
		}
	}
	/* Prefixes: an error proven early stays the same error; a head found
	 * early is the same head. */
	for (size_t cut = 0; cut < size; cut += 1 + cut / 8) {
		struct http_request r2;
		int part = http_parse_request(buf, cut, 1 << 20, &r2);
		if (part < 0)
			CHECK(whole == part);
		else if (part > 0)
			CHECK(whole == part);
	}

	/* The chunked decoder, all at once and byte by byte. */
	struct http_chunked a, b;
	http_chunked_init(&a);
	http_chunked_init(&b);
	ssize_t all = http_chunked_feed(&a, buf, size, 1 << 20);
	ssize_t used = 0, r = 0;
	for (size_t i = 0; i < size; i++) {
		r = http_chunked_feed(&b, buf + i, 1, 1 << 20);
		if (r < 0 || r == 0)
			break;
		used += r;
		if (http_chunked_done(&b))
			break;
	}
	if (all >= 0 && r >= 0)
		CHECK(http_chunked_done(&a) == http_chunked_done(&b) &&
		      (!http_chunked_done(&a) || all == used));
	if (all < 0)
		CHECK(r < 0 || !http_chunked_done(&b));

	free(buf);
	return 0;
}
