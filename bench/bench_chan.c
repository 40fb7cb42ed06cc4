/* SPDX-License-Identifier: MIT */
/*
 * chan: pointers through a bounded channel of capacity CAP.
 *
 *   uco      one loop: a producer coroutine sends `items` pointers through a
 *            uco_chan, a consumer coroutine receives them until -EPIPE (the
 *            producer closes the channel at the end); items_per_s = items /
 *            wall time of uco_loop_run().
 *   pthread  a mutex + two condvars bounded ring between a producer and a
 *            consumer thread, same count, same capacity.
 *
 * items_per_s_xloop (two loops on two threads): uco runs the producer and
 * the consumer on two loops of uco_run_threads (pinned to two CPUs) joined
 * by a uco_xchan of capacity CAP; the time is the whole uco_run_threads
 * call, thread start and loop set-up included.  The pthread queue is
 * cross-thread by nature: its items_per_s_xloop is the very same
 * measurement as its items_per_s, emitted under both names.
 *
 * Every item received is checked (count and sum), so that a figure is never
 * reported for work that did not happen.  The consumer's count and sum sit
 * on a cache line of their own in both cross-thread rounds: next to the
 * item count the producer reads on every send they cost the uco round up
 * to half its rate (false sharing, measured here) and the pthread one too.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"
#include "uco.h"

#define CAP 256

struct chan_state {
	uco_chan *ch;
	uint64_t items;
	uint64_t got, sum;
	int err;
};

static void *producer(void *arg)
{
	struct chan_state *st = arg;

	for (uint64_t i = 1; i <= st->items; i++) {
		int r = uco_chan_send(st->ch, (void *)(uintptr_t)i);
		if (r < 0) {
			st->err = r;
			break;
		}
	}
	uco_chan_close(st->ch);
	return NULL;
}

static void *consumer(void *arg)
{
	struct chan_state *st = arg;
	void *p;
	int r;

	while ((r = uco_chan_recv(st->ch, &p)) == 0) {
		st->got++;
		st->sum += (uintptr_t)p;
	}
	if (r != -EPIPE && !st->err)
		st->err = r;
	return NULL;
}

static int uco_round(uco_loop *loop, uint64_t items, double *per_s)
{
	struct chan_state st = {.items = items};
	int ret = uco_chan_create(&st.ch, CAP);

	if (ret < 0)
		return ret;
	if ((ret = uco_spawn(loop, NULL, consumer, &st)) < 0 ||
	    (ret = uco_spawn(loop, NULL, producer, &st)) < 0) {
		uco_chan_close(st.ch);
		uco_loop_run(loop);
		uco_chan_destroy(st.ch);
		return ret;
	}
	int64_t t0 = bench_now_ns();
	ret = uco_loop_run(loop);
	int64_t t1 = bench_now_ns();
	uco_chan_destroy(st.ch);
	if (ret < 0)
		return ret;
	if (st.err)
		return st.err;
	if (st.got != items || st.sum != items * (items + 1) / 2) {
		bench_fail("chan", "uco", "%" PRIu64 " items sent, %" PRIu64
		           " received (or a wrong sum)", items, st.got);
		return -EPROTO;
	}
	*per_s = (double)items * 1e9 / (double)(t1 - t0);
	return 0;
}

/* ------------------------------------------------------------ pthread */

struct pq {
	pthread_mutex_t mu;
	pthread_cond_t not_full, not_empty;
	void *buf[CAP];
	size_t head, n;
	uint64_t items;
	_Alignas(64) uint64_t got, sum; /* the consumer's, off the producer's lines */
};

static void *pq_producer(void *arg)
{
	struct pq *q = arg;

	for (uint64_t i = 1; i <= q->items; i++) {
		pthread_mutex_lock(&q->mu);
		while (q->n == CAP)
			pthread_cond_wait(&q->not_full, &q->mu);
		q->buf[(q->head + q->n) % CAP] = (void *)(uintptr_t)i;
		q->n++;
		pthread_cond_signal(&q->not_empty);
		pthread_mutex_unlock(&q->mu);
	}
	return NULL;
}

static void *pq_consumer(void *arg)
{
	struct pq *q = arg;

	for (uint64_t k = 0; k < q->items; k++) {
		pthread_mutex_lock(&q->mu);
		while (q->n == 0)
			pthread_cond_wait(&q->not_empty, &q->mu);
		void *p = q->buf[q->head];
		q->head = (q->head + 1) % CAP;
		q->n--;
		pthread_cond_signal(&q->not_full);
		pthread_mutex_unlock(&q->mu);
		q->got++;
		q->sum += (uintptr_t)p;
	}
	return NULL;
}

static int pthread_round(uint64_t items, double *per_s)
{
	static struct pq q;
	pthread_t tp, tc;
	int r;

	memset(&q, 0, sizeof q);
	pthread_mutex_init(&q.mu, NULL);
	pthread_cond_init(&q.not_full, NULL);
	pthread_cond_init(&q.not_empty, NULL);
	q.items = items;

	int64_t t0 = bench_now_ns();
	if ((r = pthread_create(&tc, NULL, pq_consumer, &q)) != 0)
		return -r;
	if ((r = pthread_create(&tp, NULL, pq_producer, &q)) != 0) {
		pthread_cancel(tc);
		pthread_join(tc, NULL);
		return -r;
	}
	pthread_join(tp, NULL);
	pthread_join(tc, NULL);
	int64_t t1 = bench_now_ns();

	pthread_cond_destroy(&q.not_full);
	pthread_cond_destroy(&q.not_empty);
	pthread_mutex_destroy(&q.mu);
	if (q.got != items || q.sum != items * (items + 1) / 2) {
		bench_fail("chan", "pthread", "%" PRIu64 " items sent, %" PRIu64
		           " received (or a wrong sum)", items, q.got);
		return -EPROTO;
	}
	*per_s = (double)items * 1e9 / (double)(t1 - t0);
	return 0;
}

/* ------------------------------------------------------------ uco, two loops */

struct xround {
	uco_xchan *ch;
	uint64_t items;
	_Alignas(64) uint64_t got, sum; /* the consumer's, off the producer's lines */
};

static void *xproducer(void *arg)
{
	struct xround *x = arg;
	for (uint64_t i = 1; i <= x->items; i++)
		if (uco_xchan_send(x->ch, (void *)(uintptr_t)i))
			break;
	uco_xchan_close(x->ch);
	return NULL;
}

static void *xconsumer(void *arg)
{
	struct xround *x = arg;
	void *item;
	while (uco_xchan_recv(x->ch, &item) == 0) {
		x->got++;
		x->sum += (uintptr_t)item;
	}
	return NULL;
}

static int xsetup(uco_loop *loop, unsigned index, void *arg)
{
	return uco_spawn(loop, NULL, index == 0 ? xproducer : xconsumer, arg);
}

static int xloop_round(uint64_t items, double *per_s)
{
	struct xround x = { .items = items };
	int ret = uco_xchan_create(&x.ch, CAP);
	if (ret < 0)
		return ret;
	int64_t t0 = bench_now_ns();
	ret = uco_run_threads(2, 1, xsetup, &x);
	int64_t ns = bench_now_ns() - t0;
	uco_xchan_destroy(x.ch);
	if (ret < 0)
		return ret;
	if (x.got != items || x.sum != items * (items + 1) / 2) {
		bench_fail("chan", "uco", "xloop: %" PRIu64 " of %" PRIu64 " items", x.got, items);
		return -EPROTO;
	}
	*per_s = (double)items * 1e9 / (double)ns;
	return 0;
}

int bench_chan_run(const struct bench_opts *opts)
{
	const int repeats = BENCH_PICK(opts, 2, 5, 11);
	const uint64_t items = BENCH_PICK(opts, 100000, 1000000, 1000000);
	uco_loop_opts lo;
	uco_loop *loop;
	double v;
	int ret;

	memset(&lo, 0, sizeof lo);
	ret = uco_loop_create(&loop, &lo);
	if (ret < 0) {
		bench_fail("chan", "uco", "uco_loop_create: %s",
		           uco_loop_strerror(ret));
		return ret;
	}
	bench_progress("chan", "uco", "");
	(void)uco_round(loop, items / 10, &v); /* warm-up, stacks and caches */
	for (int r = 0; r < repeats; r++) {
		ret = uco_round(loop, items, &v);
		if (ret < 0) {
			if (ret != -EPROTO)
				bench_fail("chan", "uco", "%s", strerror(-ret));
			break;
		}
		bench_emit("chan", "uco", "items_per_s", v, "items/s");
	}
	uco_loop_close(loop);
	bench_progress("chan", "uco", "two loops");
	(void)xloop_round(items / 10, &v); /* warm-up */
	for (int r = 0; r < repeats; r++) {
		ret = xloop_round(items, &v);
		if (ret < 0) {
			if (ret != -EPROTO)
				bench_fail("chan", "uco", "xloop: %s", strerror(-ret));
			break;
		}
		bench_emit("chan", "uco", "items_per_s_xloop", v, "items/s");
	}

	bench_progress("chan", "pthread", "");
	for (int r = 0; r < repeats; r++) {
		int pr = pthread_round(items, &v);
		if (pr < 0) {
			if (pr != -EPROTO)
				bench_fail("chan", "pthread", "%s", strerror(-pr));
			break;
		}
		bench_emit("chan", "pthread", "items_per_s", v, "items/s");
		/* Two threads already: the cross-thread figure is this one. */
		bench_emit("chan", "pthread", "items_per_s_xloop", v, "items/s");
	}
	return 0;
}
