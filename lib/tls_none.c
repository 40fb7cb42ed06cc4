/* SPDX-License-Identifier: MIT */
/*
 * The TLS calls of a libuco built without OpenSSL (-Dtls=disabled, or no
 * libssl-dev): they exist, so that programs link either way, and fail
 * with -ENOTSUP (NULL or 0 for the queries).  UCO_HAVE_TLS is 0.
 */
#include <errno.h>

#include "internal.h"

int uco_tls_ctx_create(uco_tls_ctx **out, const uco_tls_ctx_opts *opts, char *why,
                       size_t why_len)
{
	static const char msg[] = "libuco was built without TLS (OpenSSL)";
	(void)opts;
	if (out)
		*out = NULL;
	if (why && why_len) {
		size_t n = sizeof msg < why_len ? sizeof msg : why_len;
		for (size_t i = 0; i + 1 < n; i++)
			why[i] = msg[i];
		why[n - 1] = 0;
	}
	return -ENOTSUP;
}

void uco_tls_ctx_destroy(uco_tls_ctx *ctx) { (void)ctx; }

int uco_tls_ctx_add_server_name(uco_tls_ctx *ctx, const char *name, uco_tls_ctx *for_name)
{
	(void)ctx, (void)name, (void)for_name;
	return -ENOTSUP;
}

void *uco_tls_ctx_native(uco_tls_ctx *ctx) { (void)ctx; return NULL; }

int uco_tls_open(uco_tls **out, uco_tls_ctx *ctx, int fd, const char *server_name)
{
	(void)ctx, (void)fd, (void)server_name;
	if (out)
		*out = NULL;
	return -ENOTSUP;
}

void uco_tls_close(uco_tls *t) { (void)t; }
int uco_tls_handshake(uco_tls *t) { (void)t; return -ENOTSUP; }
int uco_tls_handshake_dl(uco_tls *t, int64_t deadline) { (void)t, (void)deadline; return -ENOTSUP; }

ssize_t uco_tls_read(uco_tls *t, void *buf, size_t len)
{
	(void)t, (void)buf, (void)len;
	return -ENOTSUP;
}

ssize_t uco_tls_read_dl(uco_tls *t, void *buf, size_t len, int64_t deadline)
{
	(void)t, (void)buf, (void)len, (void)deadline;
	return -ENOTSUP;
}

ssize_t uco_tls_write(uco_tls *t, const void *buf, size_t len)
{
	(void)t, (void)buf, (void)len;
	return -ENOTSUP;
}

ssize_t uco_tls_write_dl(uco_tls *t, const void *buf, size_t len, int64_t deadline)
{
	(void)t, (void)buf, (void)len, (void)deadline;
	return -ENOTSUP;
}

int uco_tls_shutdown(uco_tls *t) { (void)t; return -ENOTSUP; }
int uco_tls_shutdown_dl(uco_tls *t, int64_t deadline) { (void)t, (void)deadline; return -ENOTSUP; }
const char *uco_tls_alpn(uco_tls *t) { (void)t; return NULL; }
const char *uco_tls_server_name(uco_tls *t) { (void)t; return NULL; }
const char *uco_tls_verify_error(uco_tls *t) { (void)t; return NULL; }
const char *uco_tls_error(uco_tls *t) { (void)t; return NULL; }
void *uco_tls_native(uco_tls *t) { (void)t; return NULL; }
int uco__tls_fd(const uco_tls *t) { (void)t; return -ENOTSUP; }
int uco_tls_ktls(uco_tls *t) { (void)t; return 0; }
int uco_tls_ktls_available(void) { return -ENOTSUP; }
