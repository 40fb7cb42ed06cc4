/* SPDX-License-Identifier: MIT */
/*
 * mutex: lock/unlock pairs, in ns per pair.
 *
 *   ns_uncontended  uco: one coroutine doing `pairs` uco_mutex_lock/unlock
 *                   pairs; pthread: one thread doing pthread_mutex_lock/
 *                   unlock pairs.
 *   ns_contended    the same work for both: CONTENDERS workers (coroutines
 *                   on one loop, or threads), each doing `each` times
 *                   lock; counter++; yield; unlock, where yield is
 *                   uco_yield() or sched_yield(); ns per pair = wall time /
 *                   all pairs, the yield included.  The yield inside the
 *                   critical section is what makes a coroutine mutex
 *                   contended at all (a loop runs one task at a time: without
 *                   it nobody would ever wait), so the threads do it too,
 *                   and every unlock hands the lock to a waiter.  (Until
 *                   this was so, pthread's figure was 2 threads without a
 *                   yield: another measurement under the same name.)
 *
 * A shared counter, incremented inside every critical section, is checked
 * at the end, so that a figure is never reported for work that did not
 * happen (or for a lock that does not exclude).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"
#include "uco.h"

#include <sched.h>

#define CONTENDERS 4

struct mx_state {
	uco_mutex m;
	uint64_t each;
	uint64_t counter;
	int yield;
	int err;
};

static void *mx_task(void *arg)
{
	struct mx_state *st = arg;

	for (uint64_t i = 0; i < st->each; i++) {
		int r = uco_mutex_lock(&st->m);
		if (r < 0) {
			st->err = r;
			return NULL;
		}
		st->counter++;
		if (st->yield)
			uco_yield();
		uco_mutex_unlock(&st->m);
	}
	return NULL;
}

/* ntasks coroutines, `each` pairs each; ns per pair in *ns. */
static int uco_round(uco_loop *loop, int ntasks, uint64_t each, int yield,
                     double *ns)
{
	struct mx_state st = {.each = each, .yield = yield};
	int ret;

	uco_mutex_init(&st.m);
	for (int t = 0; t < ntasks; t++) {
		ret = uco_spawn(loop, NULL, mx_task, &st);
		if (ret < 0) {
			st.each = 0; /* the spawned ones end at once */
			uco_loop_run(loop);
			return ret;
		}
	}
	int64_t t0 = bench_now_ns();
	ret = uco_loop_run(loop);
	int64_t t1 = bench_now_ns();
	if (ret < 0)
		return ret;
	if (st.err)
		return st.err;
	uint64_t pairs = each * (uint64_t)ntasks;
	if (st.counter != pairs) {
		bench_fail("mutex", "uco", "%" PRIu64 " pairs expected, %" PRIu64
		           " done", pairs, st.counter);
		return -EPROTO;
	}
	*ns = (double)(t1 - t0) / (double)pairs;
	return 0;
}

/* ------------------------------------------------------------ pthread */

struct pt_state {
	pthread_mutex_t m;
	uint64_t each;
	int yield;
	volatile uint64_t counter;
};

static void *pt_thread(void *arg)
{
	struct pt_state *st = arg;

	for (uint64_t i = 0; i < st->each; i++) {
		pthread_mutex_lock(&st->m);
		st->counter++;
		if (st->yield)
			sched_yield();
		pthread_mutex_unlock(&st->m);
	}
	return NULL;
}

static int pt_round(int nthreads, uint64_t each, int yield, double *ns)
{
	static struct pt_state st;
	pthread_t th[CONTENDERS];
	int64_t t0, t1;
	int n = 0, r = 0;

	memset(&st, 0, sizeof st);
	pthread_mutex_init(&st.m, NULL);
	st.each = each;
	st.yield = yield;

	t0 = bench_now_ns();
	if (nthreads == 1) {
		pt_thread(&st);
	} else {
		for (; n < nthreads; n++)
			if ((r = pthread_create(&th[n], NULL, pt_thread, &st)) != 0)
				break;
		for (int i = 0; i < n; i++)
			pthread_join(th[i], NULL);
	}
	t1 = bench_now_ns();
	pthread_mutex_destroy(&st.m);
	if (r)
		return -r;

	uint64_t pairs = each * (uint64_t)nthreads;
	if (st.counter != pairs) {
		bench_fail("mutex", "pthread", "%" PRIu64 " pairs expected, %"
		           PRIu64 " done", pairs, st.counter);
		return -EPROTO;
	}
	*ns = (double)(t1 - t0) / (double)pairs;
	return 0;
}

int bench_mutex_run(const struct bench_opts *opts)
{
	const int repeats = BENCH_PICK(opts, 2, 5, 11);
	const uint64_t unc = BENCH_PICK(opts, 1000000, 10000000, 10000000);
	const uint64_t uco_each = BENCH_PICK(opts, 25000, 250000, 250000);
	/* A pthread pair with a sched_yield() inside costs microseconds. */
	const uint64_t pt_each = BENCH_PICK(opts, 2500, 10000, 25000);
	uco_loop_opts lo;
	uco_loop *loop;
	double ns;
	int ret;

	memset(&lo, 0, sizeof lo);
	ret = uco_loop_create(&loop, &lo);
	if (ret < 0) {
		bench_fail("mutex", "uco", "uco_loop_create: %s",
		           uco_loop_strerror(ret));
		return ret;
	}
	bench_progress("mutex", "uco", "");
	(void)uco_round(loop, 1, unc / 10, 0, &ns); /* warm-up */
	for (int r = 0; r < repeats; r++) {
		ret = uco_round(loop, 1, unc, 0, &ns);
		if (ret < 0)
			goto uco_failed;
		bench_emit("mutex", "uco", "ns_uncontended", ns, "ns");
		/* Includes one uco_yield() per pair (see the top). */
		ret = uco_round(loop, CONTENDERS, uco_each, 1, &ns);
		if (ret < 0)
			goto uco_failed;
		bench_emit("mutex", "uco", "ns_contended", ns, "ns");
	}
	goto uco_done;
uco_failed:
	if (ret != -EPROTO)
		bench_fail("mutex", "uco", "%s", strerror(-ret));
uco_done:
	uco_loop_close(loop);

	bench_progress("mutex", "pthread", "");
	for (int r = 0; r < repeats; r++) {
		ret = pt_round(1, unc, 0, &ns);
		if (ret < 0)
			goto pt_failed;
		bench_emit("mutex", "pthread", "ns_uncontended", ns, "ns");
		/* The same work as uco's: a yield inside each pair. */
		ret = pt_round(CONTENDERS, pt_each, 1, &ns);
		if (ret < 0)
			goto pt_failed;
		bench_emit("mutex", "pthread", "ns_contended", ns, "ns");
	}
	return 0;
pt_failed:
	if (ret != -EPROTO)
		bench_fail("mutex", "pthread", "%s", strerror(-ret));
	return 0;
}
