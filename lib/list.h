/* SPDX-License-Identifier: MIT */
/*
 * An intrusive doubly linked list (as libuv's queue.h, libdill's list.h):
 * a link embedded in each element, a head and tail in the owner.  Zero
 * is the empty list and the unlinked link, so lists in calloc'ed or
 * memset objects need no set-up.  O(1) push, remove and pop, no memory of
 * its own; the element is found from its link with UCO__LIST_ENTRY.
 */
#ifndef UCO_LIST_H
#define UCO_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct uco__link {
	struct uco__link *prev, *next;
};

struct uco__list {
	struct uco__link *head, *tail;
};

#define UCO__LIST_ENTRY(link, type, member) \
	((type *)(void *)((char *)(link) - offsetof(type, member)))

/* Every element of l, front to back; the body must not remove `it`'s
 * successor (removing `it` itself is fine: `next` was read before). */
#define UCO__LIST_EACH(it, next, l) \
	for (struct uco__link *it = (l)->head, *next = it ? it->next : NULL; it; \
	     it = next, next = it ? it->next : NULL)

static inline bool uco__list_empty(const struct uco__list *l)
{
	return !l->head;
}

static inline void uco__list_push(struct uco__list *l, struct uco__link *n)
{
	n->next = NULL;
	n->prev = l->tail;
	if (l->tail)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
}

static inline void uco__list_push_front(struct uco__list *l, struct uco__link *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	else
		l->tail = n;
	l->head = n;
}

static inline void uco__list_remove(struct uco__list *l, struct uco__link *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

static inline struct uco__link *uco__list_pop(struct uco__list *l)
{
	struct uco__link *n = l->head;
	if (n)
		uco__list_remove(l, n);
	return n;
}

/* Move all of `from` to the back of `to`. */
static inline void uco__list_append(struct uco__list *to, struct uco__list *from)
{
	if (!from->head)
		return;
	if (to->tail) {
		to->tail->next = from->head;
		from->head->prev = to->tail;
	} else {
		to->head = from->head;
	}
	to->tail = from->tail;
	from->head = from->tail = NULL;
}

#endif
