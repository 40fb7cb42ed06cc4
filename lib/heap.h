/* SPDX-License-Identifier: MIT */
/*
 * A binary min-heap of deadlines, intrusive: each entry embeds a node that
 * carries its time and its place in the heap, so removing one is
 * O(log n) with no search.  Equal times come out in `seq` order (0 for a
 * set that does not care).  The loop's timer handles (timer_handle.c) and
 * the epoll engine's timeouts (backend_epoll.c) keep theirs here.
 */
#ifndef UCO_HEAP_H
#define UCO_HEAP_H

#include <stddef.h>
#include <stdint.h>

struct uco__heap_node {
	int64_t when;
	uint64_t seq;
	size_t index; /* its place, while in a heap */
};

struct uco__heap {
	struct uco__heap_node **v;
	size_t n, cap;
};

/* Room for n more entries, so that the pushes after it cannot fail: 0 or
 * -ENOMEM. */
int uco__heap_reserve(struct uco__heap *h, size_t n);
/* After uco__heap_reserve. */
void uco__heap_push(struct uco__heap *h, struct uco__heap_node *x);
void uco__heap_remove(struct uco__heap *h, struct uco__heap_node *x);
void uco__heap_free(struct uco__heap *h);

/* The earliest entry, or NULL. */
static inline struct uco__heap_node *uco__heap_min(const struct uco__heap *h)
{
	return h->n ? h->v[0] : NULL;
}

#endif
