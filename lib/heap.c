/* SPDX-License-Identifier: MIT */
/*
 * The min-heap of deadlines that heap.h describes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "heap.h"

static bool before(const struct uco__heap_node *a, const struct uco__heap_node *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void set(struct uco__heap *h, size_t i, struct uco__heap_node *x)
{
	h->v[i] = x;
	x->index = i;
}

static void sift_up(struct uco__heap *h, size_t i)
{
	struct uco__heap_node *x = h->v[i];
	while (i > 0 && before(x, h->v[(i - 1) / 2])) {
		set(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	set(h, i, x);
}

static void sift_down(struct uco__heap *h, size_t i)
{
	struct uco__heap_node *x = h->v[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(h->v[c + 1], h->v[c]))
			c++;
		if (!before(h->v[c], x))
			break;
		set(h, i, h->v[c]);
		i = c;
	}
	set(h, i, x);
}

int uco__heap_reserve(struct uco__heap *h, size_t n)
{
	if (h->cap - h->n >= n)
		return 0;
	size_t cap = h->cap ? 2 * h->cap : 64;
	while (cap - h->n < n)
		cap *= 2;
	struct uco__heap_node **v = realloc(h->v, cap * sizeof *v);
	if (!v)
		return -ENOMEM;
	h->v = v;
	h->cap = cap;
	return 0;
}

void uco__heap_push(struct uco__heap *h, struct uco__heap_node *x)
{
	set(h, h->n++, x);
	sift_up(h, x->index);
}

void uco__heap_remove(struct uco__heap *h, struct uco__heap_node *x)
{
	size_t i = x->index;
	struct uco__heap_node *last = h->v[--h->n];
	if (last == x)
		return;
	set(h, i, last);
	if (i > 0 && before(last, h->v[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

void uco__heap_free(struct uco__heap *h)
{
	free(h->v);
	*h = (struct uco__heap){ 0 };
}
