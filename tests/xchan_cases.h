/* SPDX-License-Identifier: MIT */
/*
 * Cross-loop channel scenarios, shared by test_threads.c (Criterion) and
 * executor_threads.c (plain, so that they also run under ThreadSanitizer):
 * many senders and receivers on many loops, a close while items are in
 * flight, and tasks cancelled in the middle of a stream.  Each returns
 * NULL when every item was delivered exactly once (and, per sender, in
 * order to each receiver), else what went wrong.
 */
#ifndef UCO_TEST_XCHAN_CASES_H
#define UCO_TEST_XCHAN_CASES_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uco.h>

enum { XC_MAX_SENDERS = 8, XC_MAX_RECEIVERS = 8 };

struct xc_run {
	uco_xchan *chan;
	unsigned sender_loops, senders_per_loop;     /* loops 0.. */
	unsigned receiver_loops, receivers_per_loop; /* the loops after */
	intptr_t items;                 /* per sender, unless closed early */
	bool close_early;               /* a closer closes mid-stream */
	bool cancels;                   /* a canceller per loop */
	atomic_uint next_sender, next_receiver, senders_done, receivers_done;
	atomic_long received;
	atomic_long accepted[XC_MAX_SENDERS]; /* sends that returned 0 */
	atomic_uchar *seen;             /* [sender][seq] */
	uco_task *tasks[XC_MAX_SENDERS + 4 * XC_MAX_RECEIVERS];
	atomic_int bad;
	char why[160];
};

static inline void xc_fail(struct xc_run *x, const char *why, long a, long b)
{
	if (atomic_fetch_add(&x->bad, 1) == 0)
		snprintf(x->why, sizeof x->why, "%s (%ld, %ld)", why, a, b);
}

static inline void *xc_item(unsigned sender, intptr_t seq)
{
	return (void *)(uintptr_t)((uint64_t)sender << 32 | (uint64_t)seq);
}

static void *xc_sender(void *arg)
{
	struct xc_run *x = arg;
	unsigned me = atomic_fetch_add(&x->next_sender, 1);
	for (intptr_t seq = 1; seq <= x->items;) {
		int r = uco_xchan_send(x->chan, xc_item(me, seq));
		if (r == -ECANCELED)
			continue; /* not delivered: send it again */
		if (r == -EPIPE && x->close_early)
			break;
		if (r) {
			xc_fail(x, "send failed", me, r);
			break;
		}
		atomic_fetch_add(&x->accepted[me], 1);
		seq++;
	}
	unsigned senders = x->sender_loops * x->senders_per_loop;
	if (atomic_fetch_add(&x->senders_done, 1) + 1 == senders && !x->close_early)
		uco_xchan_close(x->chan);
	return NULL;
}

static void *xc_receiver(void *arg)
{
	struct xc_run *x = arg;
	intptr_t last[XC_MAX_SENDERS] = { 0 };
	for (;;) {
		void *item;
		int r = uco_xchan_recv(x->chan, &item);
		if (r == -EPIPE)
			break;
		if (r == -ECANCELED)
			continue;
		if (r) {
			xc_fail(x, "receive failed", r, 0);
			break;
		}
		unsigned from = (unsigned)((uintptr_t)item >> 32);
		intptr_t seq = (intptr_t)((uintptr_t)item & 0xffffffffu);
		if (from >= x->sender_loops * x->senders_per_loop || seq < 1 || seq > x->items) {
			xc_fail(x, "an item nobody sent", from, seq);
			break;
		}
		if (seq <= last[from])
			xc_fail(x, "one sender's items out of order", seq, last[from]);
		last[from] = seq;
		if (atomic_fetch_add(&x->seen[from * (x->items + 1) + seq], 1))
			xc_fail(x, "an item received twice", from, seq);
		atomic_fetch_add(&x->received, 1);
	}
	atomic_fetch_add(&x->receivers_done, 1);
	return NULL;
}

/* Closes the channel once a few items went through, while senders still
 * send. */
static void *xc_closer(void *arg)
{
	struct xc_run *x = arg;
	while (atomic_load(&x->received) < 500 &&
	       atomic_load(&x->senders_done) < x->sender_loops * x->senders_per_loop)
		uco_sleep(UCO_NS_PER_MS / 10);
	uco_xchan_close(x->chan);
	return NULL;
}

/* Cancels this loop's senders or receivers (a NULL-terminated list), one
 * after another, until all of them have ended. */
static void *xc_canceller(void *arg)
{
	uco_task **mine = arg;
	unsigned n = 0;
	while (mine[n])
		n++;
	for (unsigned i = 0;; i++) {
		bool live = false;
		for (unsigned k = 0; k < n; k++)
			live |= uco_task_state_get(mine[k]) == UCO_TASK_PENDING;
		if (!live)
			return NULL;
		uco_task_cancel(mine[i % n]);
		uco_sleep(UCO_NS_PER_MS / 20);
	}
}

static uco_task *xc_lists[4][XC_MAX_RECEIVERS + 1];

static int xc_setup(uco_loop *loop, unsigned index, void *arg)
{
	struct xc_run *x = arg;
	bool sending = index < x->sender_loops;
	if (index == x->sender_loops + x->receiver_loops) /* the closer's loop */
		return uco_spawn(loop, NULL, xc_closer, x);
	unsigned per = sending ? x->senders_per_loop : x->receivers_per_loop;
	unsigned first = sending ? index * per
	                         : x->sender_loops * x->senders_per_loop +
	                                   (index - x->sender_loops) * per;
	uco_task **mine = xc_lists[index];
	for (unsigned i = 0; i < per; i++) {
		int err = uco_spawn(loop, x->cancels ? &mine[i] : NULL,
		                    sending ? xc_sender : xc_receiver, x);
		if (err)
			return err;
		x->tasks[first + i] = mine[i]; /* released after the run */
	}
	mine[per] = NULL;
	return x->cancels ? uco_spawn(loop, NULL, xc_canceller, mine) : 0;
}

/* Run one scenario over a channel of `capacity`. */
static inline const char *xc_run(struct xc_run *x, size_t capacity)
{
	static char why[200];
	unsigned senders = x->sender_loops * x->senders_per_loop;
	unsigned loops = x->sender_loops + x->receiver_loops + (x->close_early ? 1 : 0);
	if (senders > XC_MAX_SENDERS || x->receivers_per_loop > XC_MAX_RECEIVERS || loops > 4 ||
	    x->senders_per_loop > XC_MAX_RECEIVERS)
		return "scenario too large";
	memset(xc_lists, 0, sizeof xc_lists);
	x->seen = calloc((size_t)senders * (size_t)(x->items + 1), sizeof *x->seen);
	if (!x->seen || uco_xchan_create(&x->chan, capacity))
		return "set-up failed";
	int err = uco_run_threads(loops, 0, xc_setup, x);
	const char *verdict = NULL;
	long accepted = 0;
	for (unsigned s = 0; s < senders; s++)
		accepted += atomic_load(&x->accepted[s]);
	if (err) {
		snprintf(why, sizeof why, "uco_run_threads: %d", err);
		verdict = why;
	} else if (atomic_load(&x->bad)) {
		snprintf(why, sizeof why, "%s", x->why);
		verdict = why;
	} else if (atomic_load(&x->received) != accepted) {
		snprintf(why, sizeof why, "%ld items accepted, %ld received",
		         accepted, (long)atomic_load(&x->received));
		verdict = why;
	} else if (!x->close_early && accepted != (long)senders * x->items) {
		snprintf(why, sizeof why, "%ld of %ld items accepted", accepted,
		         (long)senders * x->items);
		verdict = why;
	}
	for (unsigned s = 0; !verdict && s < senders; s++)
		for (intptr_t seq = 1; seq <= x->items; seq++) {
			/* Sends go in order, so sender s's accepted items are
			 * 1..accepted[s], each received once. */
			bool want = seq <= atomic_load(&x->accepted[s]);
			if (atomic_load(&x->seen[s * (x->items + 1) + seq]) != want) {
				snprintf(why, sizeof why, "sender %u item %ld: %s", s, (long)seq,
				         want ? "accepted, never received" : "refused, yet received");
				verdict = why;
				break;
			}
		}
	if (uco_xchan_destroy(x->chan))
		verdict = "destroy refused: tasks still waiting";
	if (x->cancels)
		for (unsigned i = 0; i < XC_MAX_SENDERS + 4 * XC_MAX_RECEIVERS; i++)
			if (x->tasks[i])
				uco_task_release(x->tasks[i]);
	free(x->seen);
	return verdict;
}

#endif
