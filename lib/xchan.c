/* SPDX-License-Identifier: MIT */
/*
 * uco_xchan: a channel whose ends live on different loops.
 *
 * The buffer is a bounded lock-free ring, Dmitry Vyukov's bounded MPMC
 * queue: each cell carries a sequence number that says whose turn it is
 * (free for the sender of position pos, or holding that sender's item),
 * and senders and receivers claim positions with a
 * compare-and-swap on the tail and the head.  A send into room and a
 * receive of a buffered item take no lock and wake nobody: one CAS on
 * their own side's position (uncontended with one task per side), one
 * cell written or read, one look at the other side's waiter count.  Any
 * number of senders and receivers, on any loops, may share a channel.
 * Measured here between two pinned loops (1M items, capacity 256, medians
 * of alternating runs): 42 ns per item where a mutex around every item
 * took 248 (both threads at real-time priority, so that the other
 * helpers' load did not decide it), and under normal scheduling 98 ns of
 * CPU time per item against 417 (a pthread mutex+condvar queue: 109).
 *
 * Waiting is the slow path, under the mutex: the FIFO lists of parked
 * senders and receivers and the hand-over to them.  A task that cannot
 * go on and whose loop has nothing else to run first polls the ring for
 * up to 10 microseconds (the other end, running on its own core, frees or
 * fills a cell far sooner than a wake-up through the other loop's ring
 * arrives, 2-25 us here, and the poster pays a syscall for it).  Then it
 * counts itself in its side's waiter count, looks at the ring again, and
 * parks.  A party that changes the ring stores the cell's sequence
 * (seq_cst) and then loads the other side's count (seq_cst); the parking
 * one adds to its count (seq_cst), then reads the cell (seq_cst): of two
 * threads that each store and then load what the other stored, under
 * seq_cst at least one sees the other's store, so either the parker sees
 * the item or room, or the changer sees the count and settles under the
 * mutex.  A wake-up is thus posted only when the other side is parked,
 * and never lost.
 *
 * settle() brings the channel back to rest under the mutex: waiting
 * receivers take ring items oldest first, waiting senders' items move
 * into freed cells (first come, first served: a sender takes the fast
 * path only while no sender waits, and so does a receiver), with capacity
 * 0 (no ring) a waiting sender's item goes straight to a waiting
 * receiver, and once closed, waiting senders and the receivers of a
 * drained ring get -EPIPE.
 *
 * Close sets a bit in the tail: a sender's claim (the CAS on the tail)
 * fails from then on, so nothing enters after close, and a receiver
 * knows that the ring is drained for good when the head has reached the
 * frozen tail.  An item claimed before the close but not yet written is
 * waited for like any other.
 *
 * A waiter parks on its own loop, counted as work in flight there, with
 * its slot on its stack; whoever serves it (from any loop) fills the
 * slot, unlists it and posts its wake-up to its loop's inbox.  A waiter
 * cancelled or timed out after it was served still gets what it was
 * given.
 *
 * What paid besides the ring: the poll before parking (without it each
 * side parked ~3,000 times per million items, 260 ns of CPU per item
 * instead of ~90), and a sender that finds the ring full waiting for a
 * quarter of it to be free (24.4 against 27.5 ns per item).  What did
 * not: a receiver that finds the ring empty waiting for a cache line's
 * worth of items, longer pauses between polls, and a closed flag on the
 * read-mostly line so that an empty poll need not read the tail (all
 * within noise).  The ring's cost is now the cell line moving between
 * the two cores.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LINE 64
#define CLOSED (UINT64_C(1) << 63)
/* How long a task whose loop has nothing else to run polls the ring
 * before it parks.  A park and its wake-up through another loop's ring
 * cost both loops ~25 us of CPU here, so polling up to half that pays
 * whenever it spares one park in two (under load, 1, 4, 10 and 20 us:
 * 584, 492, 357 and 319-373 ns wall per item, CPU time within noise). */
#define SPIN_NS 10000
/* Pauses between two looks at the ring while polling: doubling up to
 * this, so that a poller does not keep taking the cache line that the
 * other end is writing. */
#define SPIN_PAUSES_MAX 16

/* A cell's sequence number says whose turn it is: 2 pos, free for the
 * sender of position pos; 2 pos + 1, holding that sender's item (doubled,
 * so that with capacity 1 "holds pos's item" and "free for pos + 1"
 * differ, as Vyukov's ring needs two cells or more).  It is kept less
 * twice the cell's index, so that the zeroed memory of calloc is a fresh
 * ring: a large capacity costs memory only as the ring goes round. */
struct cell {
	uint64_t seq_less_index;
	void *item;
};

struct xwaiter {
	struct uco__post post;   /* the wake-up, run on the waiter's loop */
	struct uco__link link;
	struct uco__list *list;  /* where it waits, while listed */
	uco_task *task;
	uco_xchan *chan;
	void *item;              /* offered (sender) or received (receiver) */
	int result;              /* 0, or -EPIPE: closed */
	bool served;             /* slot filled, wake-up sent */
};

/* The senders' position, the receivers' position and what both only
 * read on the fast path each have a cache line of their own. */
struct uco_xchan {
	_Alignas(LINE) uint64_t tail;     /* next position to fill, | CLOSED */
	_Alignas(LINE) uint64_t head;     /* next position to take */
	/* Tasks listed, or about to look at the ring once more and list
	 * themselves; changed under the lock. */
	_Alignas(LINE) unsigned nsenders, nreceivers;
	struct cell *cells;
	uint64_t cap, mask;               /* mask: cap - 1 if a power of two */
	bool pow2;
	_Alignas(LINE) pthread_mutex_t lock;
	struct uco__list senders, receivers; /* struct xwaiter, FIFO */
};

static inline uint64_t index_of(const uco_xchan *c, uint64_t pos)
{
	return c->pow2 ? pos & c->mask : pos % c->cap;
}

/* The sequence number of the cell of position pos.  seq_cst, as the
 * store below and the waiter counts' changes and loads: the lost wake-up
 * argument above needs all four in one total order (and costs nothing
 * over acquire here: a plain load on x86_64, LDAR on aarch64).  No
 * standalone fence, which ThreadSanitizer does not model. */
static inline uint64_t seq_at(const uco_xchan *c, uint64_t pos)
{
	uint64_t i = index_of(c, pos);
	return __atomic_load_n(&c->cells[i].seq_less_index, __ATOMIC_SEQ_CST) + 2 * i;
}

/* seq_cst: ordered before the caller's look at the other side's count. */
static inline void seq_set(const uco_xchan *c, uint64_t pos, uint64_t seq)
{
	uint64_t i = index_of(c, pos);
	__atomic_store_n(&c->cells[i].seq_less_index, seq - 2 * i, __ATOMIC_SEQ_CST);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* ------------------------------------------------------------ the ring */

/* 1: item is in; 0: full (or the cell's last item is still being read);
 * -EPIPE: closed. */
static int push(uco_xchan *c, void *item)
{
	uint64_t pos = __atomic_load_n(&c->tail, __ATOMIC_RELAXED);
	for (;;) {
		if (pos & CLOSED)
			return -EPIPE;
		if (!c->cap)
			return 0;
		int64_t dif = (int64_t)(seq_at(c, pos) - 2 * pos);
		if (dif == 0) {
			if (__atomic_compare_exchange_n(&c->tail, &pos, pos + 1, true,
			                                __ATOMIC_RELAXED, __ATOMIC_RELAXED))
				break;
		} else if (dif < 0) {
			pos = __atomic_load_n(&c->tail, __ATOMIC_RELAXED);
			return pos & CLOSED ? -EPIPE : 0;
		} else {
			pos = __atomic_load_n(&c->tail, __ATOMIC_RELAXED);
		}
	}
	c->cells[index_of(c, pos)].item = item;
	seq_set(c, pos, 2 * pos + 1);
	return 1;
}

/* 1: *item taken; 0: nothing to take now; -EPIPE: closed and drained. */
static int pop(uco_xchan *c, void **item)
{
	uint64_t pos = __atomic_load_n(&c->head, __ATOMIC_RELAXED);
	for (;;) {
		int64_t dif = c->cap ? (int64_t)(seq_at(c, pos) - (2 * pos + 1)) : -1;
		if (dif == 0) {
			if (__atomic_compare_exchange_n(&c->head, &pos, pos + 1, true,
			                                __ATOMIC_RELAXED, __ATOMIC_RELAXED))
				break;
		} else if (dif < 0) {
			/* Empty, or pos's item is still being written.  The
			 * head never passes the tail, so a frozen tail equal
			 * to pos means nothing more will come. */
			uint64_t tail = __atomic_load_n(&c->tail, __ATOMIC_ACQUIRE);
			return tail == (pos | CLOSED) ? -EPIPE : 0;
		} else {
			pos = __atomic_load_n(&c->head, __ATOMIC_RELAXED);
		}
	}
	*item = c->cells[index_of(c, pos)].item;
	seq_set(c, pos, 2 * (pos + c->cap)); /* free for the sender one lap on */
	return 1;
}

/* ------------------------------------------------------------ waiters */

static void xlist_push(struct uco__list *l, struct xwaiter *w)
{
	uco__list_push(l, &w->link);
	w->list = l;
}

static void xlist_remove(struct xwaiter *w)
{
	uco__list_remove(w->list, &w->link);
	w->list = NULL;
}

static struct xwaiter *xlist_first(struct uco__list *l)
{
	return l->head ? UCO__LIST_ENTRY(l->head, struct xwaiter, link) : NULL;
}

static void count(unsigned *n, int by)
{
	__atomic_fetch_add(n, (unsigned)by, __ATOMIC_SEQ_CST);
}

/* Under chan->lock: the waiter's slot is filled; unlist it and wake it on
 * its own loop. */
static void serve(struct xwaiter *w, int result)
{
	uco_xchan *c = w->chan;
	count(w->list == &c->senders ? &c->nsenders : &c->nreceivers, -1);
	xlist_remove(w);
	w->result = result;
	w->served = true;
	uco_loop *loop = w->task->loop;
	if (loop == uco_loop_current()) {
		/* Its own loop: wake it directly. */
		loop->inflight--;
		uco__wake(loop, w->task, 0);
	} else {
		uco__post_to(loop, &w->post);
	}
}

/* Under c->lock: serve every waiter that can be served now. */
static void settle(uco_xchan *c)
{
	bool moved;
	do {
		moved = false;
		struct xwaiter *w;
		while ((w = xlist_first(&c->receivers))) {
			void *item = NULL;
			int r = pop(c, &item);
			if (r == 0)
				break;
			w->item = item;
			serve(w, r < 0 ? r : 0);
			moved |= r > 0; /* room for a sender */
		}
		while ((w = xlist_first(&c->senders))) {
			int r = push(c, w->item);
			if (r == 0)
				break;
			serve(w, r < 0 ? r : 0);
			moved |= r > 0; /* an item for a receiver */
		}
		struct xwaiter *s;
		while (!c->cap && (w = xlist_first(&c->receivers)) &&
		       (s = xlist_first(&c->senders))) {
			w->item = s->item; /* no ring: hand over directly */
			serve(s, 0);
			serve(w, 0);
		}
	} while (moved);
}

/* After a change to the ring that tasks of the other side may be parked
 * for (or about to park: they count themselves before their last look). */
static void kick(uco_xchan *c, unsigned *other_side)
{
	if (!__atomic_load_n(other_side, __ATOMIC_SEQ_CST))
		return;
	pthread_mutex_lock(&c->lock);
	settle(c);
	pthread_mutex_unlock(&c->lock);
}

static void woken(uco_loop *loop, struct uco__completion *c, const struct io_uring_cqe *cqe)
{
	(void)cqe;
	struct xwaiter *w = UCO__CONTAINER_OF(c, struct xwaiter, post.done);
	/* Served: what it was given counts, even if a cancel came since. */
	uco__wake(loop, w->task, 0);
}

/* uco_task_cancel() or the deadline on a parked waiter. */
static void leave(uco_task *t)
{
	struct xwaiter *w = t->wait_data;
	uco_xchan *c = w->chan;
	pthread_mutex_lock(&c->lock);
	bool listed = w->list != NULL;
	if (listed) {
		count(w->list == &c->senders ? &c->nsenders : &c->nreceivers, -1);
		xlist_remove(w);
	}
	pthread_mutex_unlock(&c->lock);
	if (listed) {
		t->loop->inflight--; /* no wake-up will be posted */
		uco__wake(t->loop, t, -ECANCELED);
	}
	/* Not listed: it was served, and its wake-up is on its way. */
}

static void describe_xwaiter(const uco_task *t, char *buf, size_t len)
{
	const struct xwaiter *w = t->wait_data;
	snprintf(buf, len, "%p", (void *)w->chan);
}

static const struct uco__wait_kind send_kind = { "xchan send", describe_xwaiter };
static const struct uco__wait_kind recv_kind = { "xchan receive", describe_xwaiter };

/* c->lock held, w counted in its side's count and not served by a last
 * look at the ring: list it and park (the lock is released here).  0 when
 * served, -EPIPE if closed meanwhile, -ECANCELED, -ETIMEDOUT. */
static int wait_in(uco_xchan *c, struct uco__list *list, struct xwaiter *w, int64_t deadline)
{
	uco_task *self = w->task;
	int r = uco__deadline_set(self, deadline);
	if (r) {
		count(list == &c->senders ? &c->nsenders : &c->nreceivers, -1);
		pthread_mutex_unlock(&c->lock);
		return r;
	}
	xlist_push(list, w);
	self->loop->inflight++; /* the wake-up that will be posted */
	pthread_mutex_unlock(&c->lock);
	self->wait_data = w;
	r = uco__park_until(self, list == &c->senders ? &send_kind : &recv_kind, leave);
	/* Served first: what it was given wins over a deadline that fired
	 * while the wake-up was on its way (the item would be lost), and a
	 * cancel stays pending for the next call. */
	return w->served ? w->result : r;
}

/* Poll the ring instead of parking, when that is likely to pay: the
 * caller's loop has nothing else to run and the call may wait. */
static bool may_spin(const uco_task *self, int64_t deadline)
{
	return deadline != 0 && self->loop->ready.len == 0;
}

/* One more pause between looks at the ring, up to SPIN_PAUSES_MAX; false
 * when the time to spin is over (the clock is read every 8th look). */
static bool spin_pause(unsigned *looks, int64_t until)
{
	unsigned n = ++*looks;
	for (unsigned i = 0, p = n < 5 ? 1u << n : SPIN_PAUSES_MAX; i < p; i++)
		cpu_relax();
	return n % 8 || uco_now() < until;
}

/* The ring was full: poll until a quarter of it is free, then push.
 * Pushing into each cell as soon as the receiver frees it would have the
 * two ends write the same cache line for every item. */
static int spin_push(uco_xchan *c, void *item)
{
	uint64_t batch = c->cap / 4 + 1 < c->cap ? c->cap / 4 + 1 : c->cap;
	int64_t until = uco_now() + SPIN_NS;
	unsigned looks = 0;
	while (spin_pause(&looks, until)) {
		uint64_t last = __atomic_load_n(&c->tail, __ATOMIC_RELAXED) + batch - 1;
		if (last & CLOSED ||
		    (int64_t)(seq_at(c, last) - 2 * last) >= 0) {
			int r = push(c, item);
			if (r)
				return r;
		}
	}
	return 0;
}

/* The ring was empty: poll until an item comes. */
static int spin_pop(uco_xchan *c, void **item)
{
	int64_t until = uco_now() + SPIN_NS;
	unsigned looks = 0;
	while (spin_pause(&looks, until)) {
		int r = pop(c, item);
		if (r)
			return r;
	}
	return 0;
}

static int begin(uco_xchan *c, uco_task **self)
{
	*self = uco__self();
	if (!*self)
		return -EPERM;
	if (!c)
		return -EINVAL;
	return uco__cancel_due(*self) ? -ECANCELED : 0;
}

/* ------------------------------------------------------------ the calls */

int uco_xchan_create(uco_xchan **out, size_t capacity)
{
	if (!out || capacity > ((size_t)1 << 32))
		return -EINVAL;
	uco_xchan *c = aligned_alloc(LINE, sizeof *c);
	if (!c)
		return -ENOMEM;
	memset(c, 0, sizeof *c);
	if (capacity && !(c->cells = calloc(capacity, sizeof *c->cells))) {
		free(c);
		return -ENOMEM;
	}
	c->cap = capacity;
	c->pow2 = capacity && !(capacity & (capacity - 1));
	c->mask = capacity - 1;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

int uco_xchan_send_dl(uco_xchan *c, void *item, int64_t deadline)
{
	uco_task *self;
	int r = begin(c, &self);
	if (r)
		return r;
	/* The fast path, unless senders wait: they go first. */
	if (!__atomic_load_n(&c->nsenders, __ATOMIC_RELAXED)) {
		r = push(c, item);
		if (r == 0 && c->cap && may_spin(self, deadline))
			r = spin_push(c, item);
		if (r > 0)
			kick(c, &c->nreceivers);
		if (r)
			return r < 0 ? r : 0;
	}
	pthread_mutex_lock(&c->lock);
	count(&c->nsenders, 1);
	settle(c);
	if (uco__list_empty(&c->senders)) {
		/* First in line: one more look at the ring (or a receiver). */
		r = push(c, item);
		struct xwaiter *rw;
		if (r == 0 && !c->cap && (rw = xlist_first(&c->receivers))) {
			rw->item = item; /* unbuffered: straight to the receiver */
			serve(rw, 0);
			r = 1;
		}
		if (r) {
			count(&c->nsenders, -1);
			if (r > 0)
				settle(c); /* for a waiting receiver */
			pthread_mutex_unlock(&c->lock);
			return r < 0 ? r : 0;
		}
	}
	/* Not closed: settle() would have served the waiting senders. */
	struct xwaiter w = { .post.done.complete = woken, .task = self, .chan = c, .item = item };
	return wait_in(c, &c->senders, &w, deadline);
}

int uco_xchan_send(uco_xchan *c, void *item)
{
	return uco_xchan_send_dl(c, item, UCO_FOREVER);
}

int uco_xchan_recv_dl(uco_xchan *c, void **item, int64_t deadline)
{
	uco_task *self;
	int r = begin(c, &self);
	if (r)
		return r;
	if (!item)
		return -EINVAL;
	void *got = NULL;
	/* The fast path, unless receivers wait: they go first. */
	if (!__atomic_load_n(&c->nreceivers, __ATOMIC_RELAXED)) {
		r = pop(c, &got);
		if (r == 0 && c->cap && may_spin(self, deadline))
			r = spin_pop(c, &got);
		if (r > 0) {
			*item = got;
			kick(c, &c->nsenders);
		}
		if (r)
			return r < 0 ? r : 0;
	}
	pthread_mutex_lock(&c->lock);
	count(&c->nreceivers, 1);
	settle(c);
	if (uco__list_empty(&c->receivers)) {
		/* First in line: one more look at the ring (or a sender). */
		r = pop(c, &got);
		struct xwaiter *s;
		if (r == 0 && !c->cap && (s = xlist_first(&c->senders))) {
			got = s->item; /* unbuffered: straight from the sender */
			serve(s, 0);
			r = 1;
		}
		if (r) {
			count(&c->nreceivers, -1);
			if (r > 0) {
				settle(c); /* room for a waiting sender */
				*item = got;
			}
			pthread_mutex_unlock(&c->lock);
			return r < 0 ? r : 0;
		}
	}
	struct xwaiter w = { .post.done.complete = woken, .task = self, .chan = c };
	r = wait_in(c, &c->receivers, &w, deadline);
	if (r == 0)
		*item = w.item;
	return r;
}

int uco_xchan_recv(uco_xchan *c, void **item)
{
	return uco_xchan_recv_dl(c, item, UCO_FOREVER);
}

int uco_xchan_close(uco_xchan *c)
{
	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	uint64_t was = __atomic_fetch_or(&c->tail, CLOSED, __ATOMIC_SEQ_CST);
	if (!(was & CLOSED))
		settle(c); /* waiting senders, and receivers of a drained ring */
	pthread_mutex_unlock(&c->lock);
	return was & CLOSED ? -EALREADY : 0;
}

int uco_xchan_destroy(uco_xchan *c)
{
	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	bool busy = !uco__list_empty(&c->senders) || !uco__list_empty(&c->receivers);
	pthread_mutex_unlock(&c->lock);
	if (busy)
		return -EBUSY;
	pthread_mutex_destroy(&c->lock);
	free(c->cells);
	free(c);
	return 0;
}
