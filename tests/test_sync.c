/* SPDX-License-Identifier: MIT */
/* Mutex, event, condition, semaphore and channel under contention, with
 * cancellation and deadlines. */
#include <errno.h>
#include <stdint.h>

#include "helpers.h"

/* ---- mutex */

static uco_mutex mtx;
static int inside, counter, order_pos, order_seen[2000];

static void *locker(void *arg)
{
	cr_assert_eq(uco_mutex_lock(&mtx), 0);
	cr_assert_eq(inside, 0, "mutual exclusion");
	inside = 1;
	order_seen[order_pos++] = (int)(intptr_t)arg;
	uco_yield(); /* hold it across a switch */
	counter++;
	inside = 0;
	cr_assert_eq(uco_mutex_unlock(&mtx), 0);
	return NULL;
}

Test(mutex, thousands_contend_in_fifo_order)
{
	uco_loop *loop = test_loop();
	uco_mutex_init(&mtx);
	for (intptr_t i = 0; i < 2000; i++)
		cr_assert_eq(uco_spawn(loop, NULL, locker, (void *)i), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(counter, 2000);
	for (int i = 0; i < 2000; i++)
		cr_assert_eq(order_seen[i], i, "first come, first served");
	test_close(loop);
}

static void *holds_20ms(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_mutex_lock(&mtx), 0);
	uco_sleep(MS(20));
	cr_assert_eq(uco_mutex_unlock(&mtx), 0);
	return NULL;
}

static void *lock_misuse(void *arg)
{
	(void)arg;
	uco_sleep(MS(1));
	cr_assert_eq(uco_mutex_trylock(&mtx), -EBUSY);
	cr_assert_eq(uco_mutex_unlock(&mtx), -EPERM, "not the owner");
	cr_assert_eq(uco_mutex_lock_dl(&mtx, uco_now() + MS(5)), -ETIMEDOUT);
	return (void *)(intptr_t)uco_mutex_lock(&mtx);
}

static void *cancels_1ms(void *arg)
{
	uco_sleep(MS(2));
	uco_task_cancel(arg);
	return NULL;
}

static void *gets_it_after(void *arg)
{
	uco_sleep(MS((intptr_t)arg)); /* then waits in the lock's queue */
	int r = uco_mutex_lock(&mtx);
	if (r == 0)
		uco_mutex_unlock(&mtx);
	return (void *)(intptr_t)r;
}

Test(mutex, deadlines_cancellation_and_misuse)
{
	uco_loop *loop = test_loop();
	uco_mutex_init(&mtx);
	uco_task *misuse, *cancelled, *later;
	cr_assert_eq(uco_spawn(loop, NULL, holds_20ms, NULL), 0);
	cr_assert_eq(uco_spawn(loop, &misuse, lock_misuse, NULL), 0);
	cr_assert_eq(uco_spawn(loop, &cancelled, gets_it_after, (void *)(intptr_t)1), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_1ms, cancelled), 0); /* at 2 ms */
	cr_assert_eq(uco_spawn(loop, &later, gets_it_after, (void *)(intptr_t)3), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	void *v;
	cr_assert_eq(uco_task_result(misuse, &v), 0);
	cr_assert_eq((intptr_t)v, 0, "the lock after the holder");
	cr_assert_eq(uco_task_result(cancelled, &v), 0);
	cr_assert_eq((intptr_t)v, -ECANCELED);
	cr_assert_eq(uco_task_result(later, &v), 0);
	cr_assert_eq((intptr_t)v, 0, "a cancelled waiter did not block the queue");
	uco_task_release(misuse);
	uco_task_release(cancelled);
	uco_task_release(later);
	cr_assert_eq(uco_mutex_lock(&mtx), -EPERM, "outside a coroutine");
	test_close(loop);
}

/* ---- event and condition */

static uco_event ev;
static int woken;

static void *waits_event(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_event_wait(&ev), 0);
	woken++;
	return NULL;
}

static void *sets_event(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_event_wait_dl(&ev, uco_now() + MS(2)), -ETIMEDOUT);
	uco_event_set(&ev);
	cr_assert_eq(uco_event_wait(&ev), 0, "set: returns at once");
	return NULL;
}

Test(event, set_wakes_every_waiter)
{
	uco_loop *loop = test_loop();
	uco_event_init(&ev);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(uco_spawn(loop, NULL, waits_event, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, sets_event, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(woken, 100);
	cr_assert(uco_event_is_set(&ev));
	uco_event_clear(&ev);
	cr_assert(!uco_event_is_set(&ev));
	test_close(loop);
}

static uco_mutex cm;
static uco_cond cv;
static int items, consumed;

static void *consumer(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_mutex_lock(&cm), 0);
	while (items == 0)
		cr_assert_eq(uco_cond_wait(&cv, &cm), 0);
	items--;
	consumed++;
	cr_assert_eq(uco_mutex_unlock(&cm), 0);
	return NULL;
}

static void *producer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 50; i++) {
		uco_sleep(UCO_NS_PER_MS / 10);
		cr_assert_eq(uco_mutex_lock(&cm), 0);
		items++;
		uco_cond_signal(&cv);
		cr_assert_eq(uco_mutex_unlock(&cm), 0);
	}
	return NULL;
}

static void *cond_timeout(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_mutex_lock(&cm), 0);
	cr_assert_eq(uco_cond_wait_dl(&cv, &cm, uco_now() + MS(1)), -ETIMEDOUT);
	cr_assert_eq(uco_mutex_unlock(&cm), 0, "the mutex came back with the timeout");
	return NULL;
}

Test(cond, producer_consumer_and_a_timeout)
{
	uco_loop *loop = test_loop();
	uco_mutex_init(&cm);
	uco_cond_init(&cv);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(uco_spawn(loop, NULL, consumer, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, producer, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cond_timeout, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(consumed, 50);
	cr_assert_eq(items, 0);
	test_close(loop);
}

/* ---- semaphore */

static uco_sem sem;
static int holders, max_holders;

static void *limited(void *arg)
{
	(void)arg;
	int r = uco_sem_acquire_dl(&sem, uco_now() + 10 * UCO_NS_PER_S);
	cr_assert_eq(r, 0);
	if (++holders > max_holders)
		max_holders = holders;
	uco_sleep(UCO_NS_PER_MS);
	holders--;
	uco_sem_release(&sem);
	return NULL;
}

Test(sem, bounds_concurrency)
{
	uco_loop *loop = test_loop();
	uco_sem_init(&sem, 3);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(uco_spawn(loop, NULL, limited, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(max_holders, 3);
	cr_assert_eq(uco_sem_tryacquire(&sem), 0);
	cr_assert_eq(uco_sem_tryacquire(&sem), 0);
	cr_assert_eq(uco_sem_tryacquire(&sem), 0);
	cr_assert_eq(uco_sem_tryacquire(&sem), -EAGAIN);
	test_close(loop);
}

/* ---- channels */

struct chan_case {
	uco_chan *c;
	intptr_t n;
	intptr_t got;
	bool in_order;
};

static void *sends_n(void *arg)
{
	struct chan_case *c = arg;
	for (intptr_t i = 1; i <= c->n; i++)
		cr_assert_eq(uco_chan_send(c->c, (void *)i), 0);
	cr_assert_eq(uco_chan_close(c->c), 0);
	cr_assert_eq(uco_chan_send(c->c, (void *)1), -EPIPE, "closed");
	return NULL;
}

static void *receives_all(void *arg)
{
	struct chan_case *c = arg;
	c->in_order = true;
	for (;;) {
		void *item;
		int r = uco_chan_recv(c->c, &item);
		if (r == -EPIPE)
			break;
		cr_assert_eq(r, 0);
		if ((intptr_t)item != ++c->got)
			c->in_order = false;
	}
	return NULL;
}

static void run_channel(size_t capacity)
{
	uco_loop *loop = test_loop();
	struct chan_case c = { NULL, 100000, 0, false };
	cr_assert_eq(uco_chan_create(&c.c, capacity), 0);
	cr_assert_eq(uco_spawn(loop, NULL, receives_all, &c), 0);
	cr_assert_eq(uco_spawn(loop, NULL, sends_n, &c), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(c.got, c.n, "every item, after close the rest drained");
	cr_assert(c.in_order);
	cr_assert_eq(uco_chan_destroy(c.c), 0);
	test_close(loop);
}

Test(chan, a_hundred_thousand_items_in_order_buffered)
{
	run_channel(64);
}

Test(chan, a_hundred_thousand_items_in_order_unbuffered)
{
	run_channel(0);
}

/* Items are delivered exactly once, whatever is cancelled when. */
enum { STORM_ITEMS = 20000, STORM_RECEIVERS = 200 };
static unsigned char seen[STORM_ITEMS + 1];
static int duplicates, delivered, send_failed;
static uco_chan *storm_chan;
static uco_task *storm_receivers[STORM_RECEIVERS];
static uint64_t rnd = 88172645463325252ull;

static uint64_t next_rnd(void)
{
	rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
	return rnd;
}

static void *storm_receiver(void *arg)
{
	(void)arg;
	for (;;) {
		void *item;
		int r = uco_chan_recv_dl(storm_chan, &item, uco_now() + (int64_t)(next_rnd() % 3000) * 1000);
		if (r == -EPIPE)
			return NULL;
		if (r == -ECANCELED || r == -ETIMEDOUT)
			continue; /* shrug it off, like a server would */
		cr_assert_eq(r, 0);
		if (seen[(intptr_t)item]++)
			duplicates++;
		delivered++;
	}
}

static void *storm_sender(void *arg)
{
	(void)arg;
	for (intptr_t i = 1; i <= STORM_ITEMS; i++) {
		int r;
		while ((r = uco_chan_send_dl(storm_chan, (void *)i, uco_now() + MS(1))) == -ETIMEDOUT)
			;
		if (r)
			send_failed++;
		if (i % 100 == 0)
			uco_task_cancel(storm_receivers[next_rnd() % STORM_RECEIVERS]);
	}
	uco_sleep(MS(5));
	cr_assert_eq(uco_chan_close(storm_chan), 0);
	return NULL;
}

Test(chan, exactly_once_through_a_storm_of_cancels_and_deadlines, .timeout = 60)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_chan_create(&storm_chan, 8), 0);
	for (int i = 0; i < STORM_RECEIVERS; i++)
		cr_assert_eq(uco_spawn(loop, &storm_receivers[i], storm_receiver, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, storm_sender, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(duplicates, 0);
	cr_assert_eq(send_failed, 0);
	cr_assert_eq(delivered, STORM_ITEMS, "none lost");
	for (int i = 0; i < STORM_RECEIVERS; i++)
		uco_task_release(storm_receivers[i]);
	cr_assert_eq(uco_chan_destroy(storm_chan), 0);
	test_close(loop);
}
