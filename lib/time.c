/* SPDX-License-Identifier: MIT */
/*
 * The clock (uco_now) and the timers behind sleeps and deadlines: io_uring
 * timeouts, shared by sleeps of about the same length.  A bucket holds its
 * sleepers (uco_sleep, in wait.c, parks them) and the deadlines of other
 * waits, which it interrupts through their cancel hooks when it fires.
 *
 * One IORING_OP_TIMEOUT per sleep costs the kernel 0.4-0.7 us and ~350 bytes
 * (100k sleeps: 81 ms against libuv's 27 ms, measured here).  So a sleep's
 * length is rounded *up* to a granularity of about 1/32 of it (a power of
 * two of nanoseconds, at most 2^20 ns ~ 1 ms), and the sleeps of one
 * submission with the same rounded length wait in one bucket behind one
 * *relative* timeout.
 *
 * Relative, because the kernel starts a relative timer when it takes the
 * SQE, which is after every sleep of the bucket was called: a sleep can
 * never end early, and no clock has to be read per sleep (a clock_gettime
 * cost ~80 ns per sleep here with 100k tasks: the vDSO's ordered rdtsc waits
 * for the cache misses in flight).  A bucket is only joined by sleeps of the
 * same submission "generation": once its SQE has gone to the kernel, its
 * timer is running and a later sleep must not join it.
 *
 * A sleep thus ends at least `ns` after it was called and at most the
 * rounding (1/32, <= ~1 ms) plus the rest of the loop turn later; a task
 * resumes at a turn boundary anyway.  100,000 sleeps of 10 ms started in one
 * turn share about 100 SQEs (START_EARLY).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define INITIAL_HEADS 1024

/*
 * A bucket's relative timer starts when its SQE reaches the kernel, at the
 * end of the turn: when a turn starts 100k sleeping tasks, that is ~10 ms
 * after the first of them slept, all added to the sleep.  So once a bucket
 * holds START_EARLY sleeps, the SQ is submitted at once: the bucket's timer
 * starts then (still after each of its sleeps began, so none ends early),
 * and later sleeps go to a new bucket (a new generation).  One
 * io_uring_enter per START_EARLY sleeps (~2 us against ~100 us of
 * starting them); the timers of a long burst run while the rest of it
 * starts.
 */
#define START_EARLY 1024
#define MAX_GRANULARITY_SHIFT 20

struct uco__timer_bucket {
	struct uco__completion done;   /* the TIMEOUT's CQE lands here */
	struct uco__timer_bucket *hash_next;
	int64_t length;                /* rounded sleep length, ns */
	/* uco_now() when it was made, before its timer started: for dumps,
	 * one clock read per bucket (not per sleep). */
	int64_t made;
	uint64_t generation;           /* submission it goes to the kernel in */
	uint32_t joined;               /* sleeps that joined it */
	bool closed;                   /* emptied by cancels: joins no one */
	struct __kernel_timespec ts;   /* read by the kernel at submit */
	struct uco__waitq sleepers;
	struct uco__list timed;        /* deadlines, through task->timer_link */
};

int64_t uco_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * UCO_NS_PER_S + ts.tv_nsec;
}

int uco__timers_init(struct uco__timers *tm)
{
	memset(tm, 0, sizeof *tm);
	tm->heads = calloc(INITIAL_HEADS, sizeof *tm->heads);
	if (!tm->heads)
		return -ENOMEM;
	tm->mask = INITIAL_HEADS - 1;
	return 0;
}

void uco__timers_destroy(struct uco__timers *tm)
{
	for (unsigned i = 0; i <= tm->mask; i++) {
		struct uco__timer_bucket *b = tm->heads[i], *next;
		for (; b; b = next) {
			next = b->hash_next;
			free(b);
		}
	}
	free(tm->heads);
	memset(tm, 0, sizeof *tm);
}

static unsigned hash(const struct uco__timers *tm, int64_t length, uint64_t generation)
{
	uint64_t key = (uint64_t)length ^ (generation * UINT64_C(0xff51afd7ed558ccd));
	return (unsigned)((key * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & tm->mask;
}

/* Keep chains short when many buckets are pending at once. */
static void maybe_grow(struct uco__timers *tm)
{
	if (tm->count <= 2 * (size_t)(tm->mask + 1))
		return;
	unsigned nheads = 2 * (tm->mask + 1);
	struct uco__timer_bucket **heads = calloc(nheads, sizeof *heads);
	if (!heads)
		return; /* longer chains, still correct */
	struct uco__timers grown = { heads, nheads - 1, tm->count, tm->last };
	for (unsigned i = 0; i <= tm->mask; i++) {
		struct uco__timer_bucket *b = tm->heads[i], *next;
		for (; b; b = next) {
			next = b->hash_next;
			unsigned h = hash(&grown, b->length, b->generation);
			b->hash_next = heads[h];
			heads[h] = b;
		}
	}
	free(tm->heads);
	*tm = grown;
}

static void unlink_bucket(struct uco__timers *tm, struct uco__timer_bucket *b)
{
	struct uco__timer_bucket **p = &tm->heads[hash(tm, b->length, b->generation)];
	while (*p != b)
		p = &(*p)->hash_next;
	*p = b->hash_next;
	tm->count--;
	if (tm->last == b)
		tm->last = NULL;
}

static int arm(uco_loop *loop, struct uco__timer_bucket *b)
{
	struct io_uring_sqe *sqe = uco__sqe_get(loop, &b->done);
	if (!sqe)
		return -EAGAIN;
	b->ts.tv_sec = b->length / UCO_NS_PER_S;
	b->ts.tv_nsec = b->length % UCO_NS_PER_S;
	io_uring_prep_timeout(sqe, &b->ts, 0, 0);
	io_uring_sqe_set_data(sqe, &b->done);
	loop->stats.timer_sqes++;
	return 0;
}

static bool bucket_empty(const struct uco__timer_bucket *b)
{
	return uco__waitq_empty(&b->sleepers) && uco__list_empty(&b->timed);
}

static void bucket_fired(uco_loop *loop, struct uco__completion *c,
                         const struct io_uring_cqe *cqe)
{
	struct uco__timer_bucket *b = UCO__CONTAINER_OF(c, struct uco__timer_bucket, done);
	/* -ETIME is expiry.  Anything else (a cancel, the ring going away)
	 * must not end the sleeps early: wait the whole length again, late
	 * rather than early. */
	if (cqe->res != -ETIME && !bucket_empty(b) && arm(loop, b) == 0)
		return;
	unlink_bucket(&loop->timers, b);
	uco_task *t;
	while ((t = uco__waitq_pop(&b->sleepers)))
		uco__wake(loop, t, 0);
	struct uco__link *l;
	while ((l = uco__list_pop(&b->timed))) {
		t = UCO__LIST_ENTRY(l, uco_task, timer_link);
		t->timer_bucket = NULL;
		/* Interrupt the wait the way a cancel would, if it still
		 * waits (it may already be woken and queued to run).  A hook
		 * may decline, when its waiter was already served and only its
		 * wake-up is on the way (xchan.c): such a waiter must then
		 * ignore the -ETIMEDOUT that uco__timer_disarm reports. */
		t->timed_out = true;
		if (!uco__interrupt(t))
			t->timed_out = false;
	}
	free(b);
}

/* Round a sleep length up to the granularity it allows. */
static int64_t round_length(int64_t ns)
{
	uint64_t slack = (uint64_t)ns >> 5;
	if (slack < 2)
		return ns;
	int shift = 63 - __builtin_clzll(slack);
	if (shift > MAX_GRANULARITY_SHIFT)
		shift = MAX_GRANULARITY_SHIFT;
	int64_t g = INT64_C(1) << shift;
	return (ns + g - 1) & ~(g - 1);
}

static struct uco__timer_bucket *find_bucket(struct uco__timers *tm, int64_t length,
                                             uint64_t generation)
{
	struct uco__timer_bucket *b = tm->last;
	if (b && b->length == length && b->generation == generation && !b->closed)
		return b;
	b = tm->heads[hash(tm, length, generation)];
	while (b && (b->length != length || b->generation != generation || b->closed))
		b = b->hash_next;
	if (b)
		tm->last = b;
	return b;
}

/*
 * A bucket left empty by cancels and disarms asks the kernel to drop its
 * timeout, so that a loop whose only sleeper was cancelled need not wait
 * out the timer; the timeout's CQE (-ECANCELED) then frees the bucket.
 */
static void close_if_empty(uco_loop *loop, struct uco__timer_bucket *b)
{
	if (!bucket_empty(b) || b->closed)
		return;
	b->closed = true; /* its timeout is being removed */
	struct io_uring_sqe *sqe = uco__sqe_get(loop, NULL);
	if (sqe)
		io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&b->done, 0);
	/* No SQE: the empty bucket simply expires. */
}

int64_t uco__timer_left(const struct uco__timer_bucket *b, int64_t now)
{
	int64_t left = b->made + b->length - now;
	return left > 0 ? left : 0;
}

static struct uco__timer_bucket *sleeping_in(const uco_task *t)
{
	return UCO__CONTAINER_OF(t->wait.queue, struct uco__timer_bucket, sleepers);
}

int64_t uco__timer_sleep_left(const uco_task *t, int64_t now)
{
	return uco__timer_left(sleeping_in(t), now);
}

void uco__timer_unsleep(uco_task *t)
{
	struct uco__timer_bucket *b = sleeping_in(t);
	uco__waitq_remove(t);
	close_if_empty(t->loop, b);
}

/* The bucket that ends `ns` from now (rounded up) for this submission,
 * made and armed if need be. */
static struct uco__timer_bucket *bucket_for(uco_loop *loop, int64_t ns, int *err)
{
	struct uco__timers *tm = &loop->timers;
	int64_t length = round_length(ns);
	uint64_t generation = loop->submit_generation;
	struct uco__timer_bucket *b = find_bucket(tm, length, generation);
	if (!b) {
		b = calloc(1, sizeof *b);
		if (!b) {
			*err = -ENOMEM;
			return NULL;
		}
		b->done.complete = bucket_fired;
		b->length = length;
		b->made = uco_now();
		*err = arm(loop, b);
		if (*err) {
			free(b);
			return NULL;
		}
		/* arm() may have had to submit a full SQ first, which starts
		 * a new generation: this SQE goes with the next one. */
		b->generation = loop->submit_generation;
		unsigned h = hash(tm, length, b->generation);
		b->hash_next = tm->heads[h];
		tm->heads[h] = b;
		tm->count++;
		tm->last = b;
		maybe_grow(tm);
	}
	return b;
}

int uco__timer_arm(uco_task *t, int64_t deadline)
{
	int64_t ns = deadline - uco_now();
	if (ns <= 0)
		return -ETIMEDOUT;
	int err;
	struct uco__timer_bucket *b = bucket_for(t->loop, ns, &err);
	if (!b)
		return err;
	t->timed_out = false;
	t->timer_bucket = b;
	uco__list_push(&b->timed, &t->timer_link);
	return 0;
}

int uco__timer_disarm(uco_task *t, int result)
{
	struct uco__timer_bucket *b = t->timer_bucket;
	if (b) {
		uco__list_remove(&b->timed, &t->timer_link);
		t->timer_bucket = NULL;
		close_if_empty(t->loop, b);
	}
	if (t->timed_out) {
		t->timed_out = false;
		return -ETIMEDOUT;
	}
	return result;
}

int uco__timer_sleep(uco_task *t, int64_t ns)
{
	int err;
	uco_loop *loop = t->loop;
	struct uco__timer_bucket *b = bucket_for(loop, ns, &err);
	if (!b)
		return err;
	uco__waitq_push(&b->sleepers, t);
	/* Start a full bucket's timer now rather than at the end of the turn
	 * (see START_EARLY); a failed submit leaves its SQE for the turn. */
	if (++b->joined == START_EARLY && b->generation == loop->submit_generation)
		(void)uco__ring_submit_now(loop);
	return 0;
}
