/* SPDX-License-Identifier: MIT */
/*
 * TLS contexts: one OpenSSL SSL_CTX made from uco_tls_ctx_opts (protocol
 * floor, certificate and key, verification, cipher suites and groups,
 * ALPN), the server names that pick another context during the handshake
 * (SNI), and the sentence that says why a context could not be made.
 * The connections on a context are in tls.c.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal.h"
#include "tls.h"


static void say(char *why, size_t why_len, const char *fmt, const char *arg)
{
	if (!why || !why_len)
		return;
	unsigned long code = ERR_peek_last_error();
	const char *reason = code ? ERR_reason_error_string(code) : NULL;
	int n = snprintf(why, why_len, fmt, arg ? arg : "");
	if (reason && n >= 0 && (size_t)n < why_len)
		snprintf(why + n, why_len - (size_t)n, ": %s", reason);
}

/* "h2,http/1.1" in ALPN's wire format (each name after its length). */
static int alpn_wire(const char *list, unsigned char **out, unsigned *out_len)
{
	size_t n = strlen(list);
	unsigned char *w = malloc(n + 1);
	if (!w)
		return -ENOMEM;
	size_t len = 0;
	for (const char *p = list; *p;) {
		const char *comma = strchr(p, ',');
		size_t k = comma ? (size_t)(comma - p) : strlen(p);
		if (k == 0 || k > 255) {
			free(w);
			return -EINVAL;
		}
		w[len++] = (unsigned char)k;
		memcpy(w + len, p, k);
		len += k;
		p += k + (comma ? 1 : 0);
		if (comma && !*p) {
			free(w);
			return -EINVAL;
		}
	}
	if (!len) {
		free(w);
		return -EINVAL;
	}
	*out = w;
	*out_len = (unsigned)len;
	return 0;
}

/* The server's ALPN choice: its own first name the client offers too.
 * None in common: go on without ALPN (the application decides). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                       const unsigned char *in, unsigned in_len, void *arg)
{
	uco_tls_ctx *ctx = arg;
	unsigned char *sel;
	(void)ssl;
	if (SSL_select_next_proto(&sel, out_len, ctx->alpn, ctx->alpn_len, in, in_len) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static bool name_matches(const char *pattern, const char *name)
{
	if (strcasecmp(pattern, name) == 0)
		return true;
	if (pattern[0] != '*' || pattern[1] != '.')
		return false;
	const char *dot = strchr(name, '.');
	return dot && dot != name && strcasecmp(pattern + 1, dot) == 0;
}

/* The server's SNI: the context registered for the name the client asked. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
	uco_tls_ctx *ctx = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	(void)alert;
	if (!name)
		return SSL_TLSEXT_ERR_NOACK;
	for (struct sni_entry *e = ctx->sni; e; e = e->next) {
		if (name_matches(e->name, name)) {
			SSL_set_SSL_CTX(ssl, e->ctx->ssl);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_OK; /* the default certificate */
}

static int ctx_setup(uco_tls_ctx *c, const uco_tls_ctx_opts *o, char *why, size_t why_len)
{
	bool server = o->flags & UCO_TLS_SERVER;
	SSL_CTX *s = c->ssl;
	SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
	/* Our BIO grows its buffer, so a write never half-fails; the
	 * socket BIO (kTLS) does, and is retried with the same arguments. */
	/* RELEASE_BUFFERS: OpenSSL's own record buffers go back when a
	 * connection is idle, as ours do (nginx sets it too). */
	SSL_CTX_set_mode(s, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	/* AUTO_RETRY (OpenSSL 3's default) is kept: without it a read that
	 * took a session ticket says "want read" with a record still in the
	 * input buffer, and we would wait for bytes already here. */
	if (o->flags & UCO_TLS_KTLS)
		SSL_CTX_set_options(s, SSL_OP_ENABLE_KTLS);
	if (o->cert_file || o->key_file) {
		const char *key = o->key_file ? o->key_file : o->cert_file;
		if (!o->cert_file || access(o->cert_file, R_OK) < 0 || access(key, R_OK) < 0) {
			int err = o->cert_file ? -errno : -EINVAL;
			const char *f = !o->cert_file ? "(no cert_file)"
			                : access(o->cert_file, R_OK) < 0 ? o->cert_file : key;
			if (why && why_len)
				snprintf(why, why_len, "%s: %s", f, strerror(-err));
			return err;
		}
		if (SSL_CTX_use_certificate_chain_file(s, o->cert_file) != 1) {
			say(why, why_len, "%s: not a PEM certificate chain", o->cert_file);
			return -EINVAL;
		}
		if (SSL_CTX_use_PrivateKey_file(s, key, SSL_FILETYPE_PEM) != 1) {
			if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
				say(why, why_len, "%s: the key does not match the certificate", key);
			else
				say(why, why_len, "%s: not a PEM private key", key);
			return -EINVAL;
		}
		if (SSL_CTX_check_private_key(s) != 1) {
			say(why, why_len, "%s: the key does not match the certificate", key);
			return -EINVAL;
		}
	} else if (server) {
		if (why && why_len)
			snprintf(why, why_len, "a server needs cert_file and key_file");
		return -EINVAL;
	}
	bool verify = server ? (o->flags & UCO_TLS_VERIFY_PEER) : !(o->flags & UCO_TLS_NO_VERIFY);
	if (verify) {
		int ok = o->ca_file || o->ca_dir
		         ? SSL_CTX_load_verify_locations(s, o->ca_file, o->ca_dir)
		         : SSL_CTX_set_default_verify_paths(s);
		if (ok != 1) {
			say(why, why_len, "%s: cannot load the CA certificates",
			    o->ca_file ? o->ca_file : o->ca_dir ? o->ca_dir : "default paths");
			return -EINVAL;
		}
		SSL_CTX_set_verify(s, SSL_VERIFY_PEER |
		                      (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	} else {
		SSL_CTX_set_verify(s, SSL_VERIFY_NONE, NULL);
	}
	if (o->ciphersuites && SSL_CTX_set_ciphersuites(s, o->ciphersuites) != 1) {
		say(why, why_len, "ciphersuites %s: none known", o->ciphersuites);
		return -EINVAL;
	}
	if (o->cipher_list && SSL_CTX_set_cipher_list(s, o->cipher_list) != 1) {
		say(why, why_len, "cipher_list %s: none known", o->cipher_list);
		return -EINVAL;
	}
	if (o->groups && SSL_CTX_set1_groups_list(s, o->groups) != 1) {
		say(why, why_len, "groups %s: none known", o->groups);
		return -EINVAL;
	}
	if (o->alpn) {
		int err = alpn_wire(o->alpn, &c->alpn, &c->alpn_len);
		if (err) {
			if (why && why_len)
				snprintf(why, why_len, "alpn %s: want names separated by commas",
				         o->alpn);
			return err;
		}
		if (server)
			SSL_CTX_set_alpn_select_cb(s, alpn_select, c);
		else if (SSL_CTX_set_alpn_protos(s, c->alpn, c->alpn_len) != 0)
			return -ENOMEM;
	}
	return 0;
}

int uco_tls_ctx_create(uco_tls_ctx **out, const uco_tls_ctx_opts *opts, char *why,
                       size_t why_len)
{
	if (why && why_len)
		why[0] = 0;
	if (!out || !opts)
		return -EINVAL;
	*out = NULL;
	for (size_t i = 0; i < sizeof opts->reserved_ / sizeof opts->reserved_[0]; i++)
		if (opts->reserved_[i])
			return -EINVAL;
	if (opts->flags & ~(unsigned)(UCO_TLS_SERVER | UCO_TLS_NO_VERIFY | UCO_TLS_VERIFY_PEER |
	                              UCO_TLS_KTLS))
		return -EINVAL;
	uco_tls_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	atomic_init(&c->refs, 1);
	c->flags = opts->flags;
	ERR_clear_error();
	c->ssl = SSL_CTX_new(opts->flags & UCO_TLS_SERVER ? TLS_server_method()
	                                                   : TLS_client_method());
	int err = c->ssl ? ctx_setup(c, opts, why, why_len) : -ENOMEM;
	ERR_clear_error();
	if (err) {
		uco_tls_ctx_destroy(c);
		return err;
	}
	*out = c;
	return 0;
}

void uco__tls_ctx_unref(uco_tls_ctx *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	for (struct sni_entry *e = c->sni, *next; e; e = next) {
		next = e->next;
		uco__tls_ctx_unref(e->ctx);
		free(e);
	}
	SSL_CTX_free(c->ssl);
	free(c->alpn);
	free(c);
}

void uco_tls_ctx_destroy(uco_tls_ctx *ctx)
{
	if (ctx)
		uco__tls_ctx_unref(ctx);
}

int uco_tls_ctx_add_server_name(uco_tls_ctx *ctx, const char *name, uco_tls_ctx *for_name)
{
	if (!ctx || !name || !*name || !for_name || for_name == ctx ||
	    !(ctx->flags & UCO_TLS_SERVER) || !(for_name->flags & UCO_TLS_SERVER))
		return -EINVAL;
	size_t n = strlen(name) + 1;
	struct sni_entry *e = malloc(sizeof *e + n);
	if (!e)
		return -ENOMEM;
	memcpy(e->name, name, n);
	atomic_fetch_add(&for_name->refs, 1);
	e->ctx = for_name;
	e->next = ctx->sni;
	if (!ctx->sni) {
		SSL_CTX_set_tlsext_servername_callback(ctx->ssl, servername_cb);
		SSL_CTX_set_tlsext_servername_arg(ctx->ssl, ctx);
	}
	ctx->sni = e;
	return 0;
}

void *uco_tls_ctx_native(uco_tls_ctx *ctx)
{
	return ctx ? ctx->ssl : NULL;
}
