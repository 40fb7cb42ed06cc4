/* SPDX-License-Identifier: MIT */
/*
 * Task-local context: asyncio's contextvars for tasks.
 *
 * A task's context is a small vector of (key, value) cells, shared copy on
 * write: a spawn from inside a task gives the child the parent's vector
 * (one reference count bump, asyncio's copy_context() in O(1)), and the
 * first uco_ctx_set() by either side on a shared vector copies it first,
 * so that later sets in one never show in the other.
 *
 * Values are reference counted through their cell, not per task: a value
 * handed to uco_ctx_set() is destroyed exactly once, when the last context
 * that holds it lets go (the setting task and every task that inherited it
 * have ended, or replaced it).  That is what a garbage-collected contextvar
 * does, and the only rule under which `free` is a safe destructor.
 *
 * A task that never sets a value, and whose parent never did, pays one NULL
 * pointer in its task object: the spawn and the finish test it and go on.
 *
 * Keys are shared by every thread (they are usually made once, at start):
 * their reference count is atomic; cells and vectors belong to the tasks
 * of one thread and are counted without atomics.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct uco_ctx_key {
	/* The creator's reference, plus one per cell holding a value of
	 * this key: a deleted key lives on until its values are gone, so
	 * that their destructor can still run. */
	atomic_ulong refs;
	void (*dtor)(void *value);
	char *name;               /* uco_ctx_key_describe(), for dumps */
	int (*fmt)(const void *value, char *buf, size_t len);
};

struct cell {
	uint32_t refs;            /* contexts holding it */
	uco_ctx_key *key;
	void *value;
};

struct uco__ctx {
	uint32_t refs;            /* tasks sharing it; shared means read-only */
	uint32_t n, cap;
	struct cell *cells[];
};

/* ------------------------------------------------------------ keys */

int uco_ctx_key_create(uco_ctx_key **out, void (*dtor)(void *value))
{
	if (!out)
		return -EINVAL;
	uco_ctx_key *key = calloc(1, sizeof *key);
	if (!key)
		return -ENOMEM;
	atomic_init(&key->refs, 1);
	key->dtor = dtor;
	*out = key;
	return 0;
}

static void key_unref(uco_ctx_key *key)
{
	if (atomic_fetch_sub_explicit(&key->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(key->name);
	free(key);
}

int uco_ctx_key_describe(uco_ctx_key *key, const char *name,
                         int (*fmt)(const void *value, char *buf, size_t len))
{
	if (!key)
		return -EINVAL;
	char *copy = NULL;
	if (name && !(copy = strdup(name)))
		return -ENOMEM;
	free(key->name);
	key->name = copy;
	key->fmt = fmt;
	return 0;
}

int uco_ctx_key_delete(uco_ctx_key *key)
{
	if (!key)
		return -EINVAL;
	key_unref(key);
	return 0;
}

/* ------------------------------------------------------------ cells and vectors */

/* The value's destructor runs last, once every structure is consistent
 * again: it may be user code that sets or reads context itself. */
static void cell_unref(struct cell *c)
{
	if (--c->refs)
		return;
	uco_ctx_key *key = c->key;
	void *value = c->value;
	free(c);
	if (value && key->dtor)
		key->dtor(value);
	key_unref(key);
}

static void ctx_unref(struct uco__ctx *ctx)
{
	if (--ctx->refs)
		return;
	for (uint32_t i = 0; i < ctx->n; i++)
		cell_unref(ctx->cells[i]);
	free(ctx);
}

static struct uco__ctx *ctx_alloc(uint32_t cap)
{
	struct uco__ctx *ctx = malloc(sizeof *ctx + cap * sizeof ctx->cells[0]);
	if (ctx)
		*ctx = (struct uco__ctx){ .refs = 1, .n = 0, .cap = cap };
	return ctx;
}

static int find(const struct uco__ctx *ctx, const uco_ctx_key *key)
{
	if (ctx)
		for (uint32_t i = 0; i < ctx->n; i++)
			if (ctx->cells[i]->key == key)
				return (int)i;
	return -1;
}

void uco__ctx_inherit(uco_task *child)
{
	uco_task *parent = uco__self();
	if (parent && parent->ctx) {
		parent->ctx->refs++;
		child->ctx = parent->ctx;
	}
}

void uco__ctx_release(uco_task *t)
{
	struct uco__ctx *ctx = t->ctx;
	t->ctx = NULL;
	if (ctx)
		ctx_unref(ctx);
}

/* ------------------------------------------------------------ get and set */

int uco_ctx_get(const uco_ctx_key *key, void **value)
{
	if (!key)
		return -EINVAL;
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	int i = find(self->ctx, key);
	if (i < 0)
		return -ENOENT;
	if (value)
		*value = self->ctx->cells[i]->value;
	return 0;
}

int uco_ctx_set(uco_ctx_key *key, void *value)
{
	if (!key)
		return -EINVAL;
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	struct uco__ctx *ctx = self->ctx;
	int i = find(ctx, key);
	if (i >= 0 && ctx->cells[i]->value == value)
		return 0; /* already this value: one owner, one destruction */

	/* Sole owner of the vector and of the cell: replace in place. */
	if (i >= 0 && ctx->refs == 1 && ctx->cells[i]->refs == 1) {
		void *old = ctx->cells[i]->value;
		ctx->cells[i]->value = value;
		if (old && key->dtor)
			key->dtor(old);
		return 0;
	}

	/* Everything that can fail first, so that a failure changes nothing
	 * (the caller still owns value). */
	struct cell *cell = malloc(sizeof *cell);
	if (!cell)
		return -ENOMEM;
	*cell = (struct cell){ .refs = 1, .key = key, .value = value };
	struct uco__ctx *next = ctx;
	bool shared = ctx && ctx->refs > 1;
	uint32_t need = (ctx ? ctx->n : 0) + (i < 0);
	if (!ctx || shared) {
		/* Copy on write: the vector is shared with a parent or child. */
		next = ctx_alloc(need < 4 ? 4 : need);
		if (!next) {
			free(cell);
			return -ENOMEM;
		}
		if (ctx) {
			for (uint32_t k = 0; k < ctx->n; k++) {
				next->cells[k] = ctx->cells[k];
				next->cells[k]->refs++;
			}
			next->n = ctx->n;
		}
	} else if (need > ctx->cap) {
		next = realloc(ctx, sizeof *ctx + 2 * ctx->cap * sizeof ctx->cells[0]);
		if (!next) {
			free(cell);
			return -ENOMEM;
		}
		next->cap *= 2;
	}

	atomic_fetch_add_explicit(&key->refs, 1, memory_order_relaxed);
	struct cell *old = NULL;
	if (i >= 0) {
		old = next->cells[i];
		next->cells[i] = cell;
	} else {
		next->cells[next->n++] = cell;
	}
	self->ctx = next;
	if (shared)
		ctx->refs--; /* this task's share of the old vector (others hold it) */
	if (old)
		cell_unref(old);
	return 0;
}

/* ------------------------------------------------------------ dumps */

size_t uco__ctx_describe(const struct uco__ctx *ctx, char *buf, size_t len)
{
	/* Appends to the text already in buf: "ctx: name=value, ...", after
	 * a ", " when buf is not empty. */
	size_t start = strnlen(buf, len), used = start;
	for (uint32_t i = 0; ctx && i < ctx->n && used + 1 < len; i++) {
		const struct cell *c = ctx->cells[i];
		if (!c->key->name)
			continue; /* only keys described for dumps are shown */
		const char *sep = used > start ? ", " : start ? ", ctx: " : "ctx: ";
		int n = snprintf(buf + used, len - used, "%s%s=", sep, c->key->name);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
		if (c->key->fmt)
			n = c->key->fmt(c->value, buf + used, len - used);
		else
			n = snprintf(buf + used, len - used, "%p", c->value);
		if (n < 0)
			n = 0;
		used += (size_t)n < len - used ? (size_t)n : len - used - 1;
	}
	if (used < len)
		buf[used] = '\0';
	return used - start;
}
