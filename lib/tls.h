/* SPDX-License-Identifier: MIT */
/*
 * What the two halves of TLS share: a context (tls_ctx.c makes it from
 * the options: certificates, verification, ALPN, server names) is counted
 * by the connections made on it (tls.c), so that destroying it while
 * connections live only drops the caller's reference.
 */
#ifndef UCO_TLS_H
#define UCO_TLS_H

#include <stdatomic.h>

#include <openssl/ssl.h>

#include "internal.h"

/* A server name's own context (uco_tls_ctx_add_server_name). */
struct sni_entry {
	struct sni_entry *next;
	uco_tls_ctx *ctx;
	char name[];
};

struct uco_tls_ctx {
	SSL_CTX *ssl;
	atomic_uint refs;
	unsigned flags;
	unsigned char *alpn; /* wire format: length-prefixed names */
	unsigned alpn_len;
	struct sni_entry *sni;
};

static inline void uco__tls_ctx_ref(uco_tls_ctx *c)
{
	atomic_fetch_add(&c->refs, 1);
}

/* The last reference frees the context and its server names' contexts. */
void uco__tls_ctx_unref(uco_tls_ctx *c);

#endif
