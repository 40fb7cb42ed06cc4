/* SPDX-License-Identifier: MIT */
/*
 * chan: pointers through a bounded channel of capacity CAP.
 *
 *   uco      one loop: a producer coroutine sends `items` pointers through a
 *            uco_chan, a consumer coroutine receives them until -EPIPE (the
 *            producer closes the channel at the end); items_per_s = items /
 *            wall time of uco_loop_run().
 *   uco-epoll  the same on loops of the readiness backend
 *            (UCO_BACKEND_EPOLL, through UCO_BACKEND in the environment for
 *            uco_run_threads; skipped where the loop does not run on it).
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
#include <stdbool.h>
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

static int uco_round(const char *impl, uco_loop *loop, uint64_t items,
                     double *per_s)
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
		bench_fail("chan", impl, "%" PRIu64 " items sent, %" PRIu64
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
	const char *impl;
	bool wrong_backend; /* a uco-epoll loop that is not on epoll */
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
	struct xround *x = arg;
	const char *backend = uco_loop_backend(loop, NULL);

	if (bench_is_uco_epoll(x->impl) && (!backend || strcmp(backend, "epoll") != 0)) {
		x->wrong_backend = true;
		return -EOPNOTSUPP;
	}
	return uco_spawn(loop, NULL, index == 0 ? xproducer : xconsumer, arg);
}

static int xloop_round(const char *impl, uint64_t items, double *per_s)
{
	struct xround x = { .items = items, .impl = impl };
	int ret = uco_xchan_create(&x.ch, CAP);
	if (ret < 0)
		return ret;
	/* uco_run_threads makes its loops without options: the backend
	 * goes through the environment. */
	char *env = bench_uco_env_set(impl);
	int64_t t0 = bench_now_ns();
	ret = uco_run_threads(2, 1, xsetup, &x);
	int64_t ns = bench_now_ns() - t0;
	bench_uco_env_restore(impl, env);
	uco_xchan_destroy(x.ch);
	if (x.wrong_backend) {
		bench_fail("chan", impl, "xloop: the loops of uco_run_threads did not run "
		           "on epoll with UCO_BACKEND=epoll in the environment");
		return -EPROTO;
	}
	if (ret < 0)
		return ret;
	if (x.got != items || x.sum != items * (items + 1) / 2) {
		bench_fail("chan", impl, "xloop: %" PRIu64 " of %" PRIu64 " items", x.got, items);
		return -EPROTO;
	}
	*per_s = (double)items * 1e9 / (double)ns;
	return 0;
}

/* The uco figures of impl ("uco" or "uco-epoll"). */
static void chan_uco(const char *impl, int repeats, uint64_t items)
{
	uco_loop_opts lo;
	uco_loop *loop;
	double v = 0;
	int ret;

	if (!bench_uco_impl_available("chan", impl))
		return;
	memset(&lo, 0, sizeof lo);
	if (bench_uco_loop_create(&loop, "chan", impl, &lo) < 0)
		return;
	bench_progress("chan", impl, "");
	(void)uco_round(impl, loop, items / 10, &v); /* warm-up, stacks and caches */
	for (int r = 0; r < repeats; r++) {
		ret = uco_round(impl, loop, items, &v);
		if (ret < 0) {
			if (ret != -EPROTO)
				bench_fail("chan", impl, "%s", strerror(-ret));
			break;
		}
		bench_emit("chan", impl, "items_per_s", v, "items/s");
	}
	uco_loop_close(loop);
	bench_progress("chan", impl, "two loops");
	for (int r = -1; r < repeats; r++) { /* round -1: the warm-up */
		ret = xloop_round(impl, r < 0 ? items / 10 : items, &v);
		if (ret < 0) {
			if (ret != -EPROTO)
				bench_fail("chan", impl, "xloop: %s", strerror(-ret));
			break;
		}
		if (r >= 0)
			bench_emit("chan", impl, "items_per_s_xloop", v, "items/s");
	}
}

int bench_chan_run(const struct bench_opts *opts)
{
	const int repeats = BENCH_PICK(opts, 2, 5, 11);
	const uint64_t items = BENCH_PICK(opts, 100000, 1000000, 1000000);
	double v = 0;

	chan_uco("uco", repeats, items);
	chan_uco("uco-epoll", repeats, items);

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
