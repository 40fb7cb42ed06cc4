/* SPDX-License-Identifier: MIT */
/* Many loops on many threads: calls and spawns from other threads, thread
 * per core, SO_REUSEPORT listeners with one acceptor per loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"
#include "xchan_cases.h"

static uco_event ev;
static const void *ran_on;

static void set_event(void *arg)
{
	(void)arg;
	ran_on = &ev; /* any marker: the call ran */
	cr_assert_not_null(uco_loop_current(), "on the loop's thread, in its run");
	uco_event_set(&ev);
}

static void *waits_for_event(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_event_wait_dl(&ev, uco_now() + 20 * UCO_NS_PER_S);
}

static void *calls_from_a_thread(void *loop)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	cr_assert_eq(uco_loop_call(loop, set_event, NULL), 0);
	return NULL;
}

Test(threads, a_plain_thread_calls_into_a_waiting_loop)
{
	uco_loop *loop = test_loop();
	uco_event_init(&ev);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, waits_for_event, NULL), 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, calls_from_a_thread, loop), 0);
	void *v;
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, 0, "woken by the call, not the deadline");
	cr_assert_lt(uco_now() - t0, 10 * UCO_NS_PER_S);
	cr_assert_not_null(ran_on);
	pthread_join(th, NULL);
	uco_task_release(t);
	cr_assert_eq(uco_loop_call(NULL, set_event, NULL), -EINVAL);
	test_close(loop);
}

static void *sets_it(void *arg)
{
	(void)arg;
	uco_event_set(&ev);
	return NULL;
}

static void *spawns_from_a_thread(void *loop)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	cr_assert_eq(uco_loop_spawn_threadsafe(loop, sets_it, NULL), 0);
	return NULL;
}

Test(threads, a_plain_thread_spawns_onto_a_running_loop)
{
	uco_loop *loop = test_loop();
	uco_event_init(&ev);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, waits_for_event, NULL), 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, spawns_from_a_thread, loop), 0);
	void *v;
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, 0);
	pthread_join(th, NULL);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_task_release(t);
	test_close(loop);
}

/* ---- thread per core with SO_REUSEPORT */

enum { CONNECTIONS = 200 };
static struct sockaddr_in shared_addr;
static atomic_int accepted_total, accepted_by[2], listening;

static void *accepts(void *arg)
{
	unsigned index = (unsigned)(uintptr_t)arg;
	int l = uco_listen_reuseport((struct sockaddr *)&shared_addr, sizeof shared_addr, 256);
	if (l < 0)
		return uco_fail(l);
	atomic_fetch_add(&listening, 1);
	uco_acceptor *a;
	int err = uco_acceptor_open(NULL, &a, l, SOCK_CLOEXEC);
	if (err)
		return uco_fail(err);
	while (atomic_load(&accepted_total) < CONNECTIONS) {
		int fd = uco_acceptor_next_dl(a, uco_now() + 20 * UCO_NS_PER_MS);
		if (fd >= 0) {
			atomic_fetch_add(&accepted_by[index], 1);
			atomic_fetch_add(&accepted_total, 1);
			close(fd);
		}
	}
	uco_acceptor_close(a);
	close(l);
	return NULL;
}

static int setup_acceptor(uco_loop *loop, unsigned index, void *arg)
{
	(void)arg;
	return uco_spawn(loop, NULL, accepts, (void *)(uintptr_t)index);
}

static void *connects_many(void *arg)
{
	(void)arg;
	/* Both listeners up, however slow the machine: with only one, the
	 * kernel has no choice to make. */
	struct timespec ts = { 0, 1000 * 1000 };
	for (int i = 0; i < 30000 && atomic_load(&listening) < 2; i++)
		nanosleep(&ts, NULL);
	for (int i = 0; i < CONNECTIONS; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_eq(connect(fd, (struct sockaddr *)&shared_addr, sizeof shared_addr), 0);
		close(fd);
	}
	return NULL;
}

Test(threads, one_loop_per_thread_share_a_port, .timeout = 60)
{
	/* A free port for both loops' listeners. */
	int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	shared_addr = (struct sockaddr_in){ .sin_family = AF_INET,
	                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(probe, (struct sockaddr *)&shared_addr, sizeof shared_addr), 0);
	socklen_t len = sizeof shared_addr;
	cr_assert_eq(getsockname(probe, (struct sockaddr *)&shared_addr, &len), 0);
	close(probe);
	pthread_t client;
	cr_assert_eq(pthread_create(&client, NULL, connects_many, NULL), 0);
	cr_assert_eq(uco_run_threads(2, 1, setup_acceptor, NULL), 0);
	pthread_join(client, NULL);
	cr_assert_eq(atomic_load(&accepted_total), CONNECTIONS);
	cr_assert_gt(atomic_load(&accepted_by[0]), 0, "the kernel shared the connections");
	cr_assert_gt(atomic_load(&accepted_by[1]), 0);
	cr_assert_eq(uco_run_threads(0, 0, setup_acceptor, NULL), -EINVAL);
}

/* ---- a channel between two loops on two threads */

struct xfer {
	uco_xchan *chan;
	intptr_t n;
	intptr_t got;
	bool in_order;
};

static void *xsend_all(void *arg)
{
	struct xfer *x = arg;
	for (intptr_t i = 1; i <= x->n; i++)
		if (uco_xchan_send(x->chan, (void *)i))
			return uco_fail(-EIO);
	return (void *)(intptr_t)uco_xchan_close(x->chan);
}

static void *xrecv_all(void *arg)
{
	struct xfer *x = arg;
	x->in_order = true;
	for (;;) {
		void *item;
		int r = uco_xchan_recv(x->chan, &item);
		if (r == -EPIPE)
			return NULL;
		if (r)
			return uco_fail(r);
		if ((intptr_t)item != ++x->got)
			x->in_order = false;
	}
}

static int setup_xfer(uco_loop *loop, unsigned index, void *arg)
{
	return uco_spawn(loop, NULL, index == 0 ? xsend_all : xrecv_all, arg);
}

Test(threads, ten_million_items_between_two_loops, .timeout = 120)
{
	struct xfer x = { NULL, 10 * 1000 * 1000, 0, false };
	cr_assert_eq(uco_xchan_create(&x.chan, 1024), 0);
	cr_assert_eq(uco_run_threads(2, 1, setup_xfer, &x), 0);
	cr_assert_eq(x.got, x.n, "nothing lost or duplicated");
	cr_assert(x.in_order);
	cr_assert_eq(uco_xchan_destroy(x.chan), 0);
}

/* Receivers on one loop with deadlines and cancels, the sender on another:
 * every item exactly once. */
enum { XITEMS = 50000, XRECEIVERS = 50 };
static unsigned char xseen[XITEMS + 1];
static atomic_int xdup, xdelivered;

static void *xreceiver(void *chan)
{
	for (;;) {
		void *item;
		int r = uco_xchan_recv_dl(chan, &item, uco_now() + UCO_NS_PER_MS);
		if (r == -EPIPE)
			return NULL;
		if (r == -ETIMEDOUT || r == -ECANCELED)
			continue;
		cr_assert_eq(r, 0);
		if (xseen[(intptr_t)item]++)
			atomic_fetch_add(&xdup, 1);
		atomic_fetch_add(&xdelivered, 1);
	}
}

static uco_task *xrecv_tasks[XRECEIVERS];

static void *xcanceller(void *arg)
{
	(void)arg;
	for (int i = 0; atomic_load(&xdelivered) < XITEMS && i < 100000; i++) {
		uco_task_cancel(xrecv_tasks[i % XRECEIVERS]);
		uco_sleep(UCO_NS_PER_MS / 4);
	}
	return NULL;
}

static void *xsender(void *chan)
{
	for (intptr_t i = 1; i <= XITEMS; i++)
		cr_assert_eq(uco_xchan_send(chan, (void *)i), 0);
	uco_sleep(5 * UCO_NS_PER_MS);
	cr_assert_eq(uco_xchan_close(chan), 0);
	return NULL;
}

/* Wake-ups between loops go by MSG_RING from the serving loop's ring; set,
 * the loops behave as if the kernel lacked it and use the eventfd. */
static bool xno_msg_ring;

static int setup_storm(uco_loop *loop, unsigned index, void *chan)
{
	if (xno_msg_ring && !test_on_epoll(loop)) /* epoll: the eventfd is the only way */
		uco__forget_opcode(loop, IORING_OP_MSG_RING);
	if (index == 0)
		return uco_spawn(loop, NULL, xsender, chan);
	for (int i = 0; i < XRECEIVERS; i++) {
		int err = uco_spawn(loop, &xrecv_tasks[i], xreceiver, chan);
		if (err)
			return err; /* handles kept: the canceller uses them */
	}
	return uco_spawn(loop, NULL, xcanceller, NULL);
}

static void storm(void)
{
	uco_xchan *c;
	cr_assert_eq(uco_xchan_create(&c, 4), 0);
	cr_assert_eq(uco_run_threads(2, 1, setup_storm, c), 0);
	cr_assert_eq(atomic_load(&xdup), 0);
	cr_assert_eq(atomic_load(&xdelivered), XITEMS, "none lost");
	cr_assert_eq(uco_xchan_destroy(c), 0);
	for (int i = 0; i < XRECEIVERS; i++)
		uco_task_release(xrecv_tasks[i]); /* handles outlive their loop */
}

Test(threads, exactly_once_across_loops_through_cancels_and_deadlines, .timeout = 60)
{
	storm();
}

Test(threads, the_same_with_the_eventfd_doorbell, .timeout = 60)
{
	xno_msg_ring = true;
	storm();
}

/* ---- many senders and receivers, close in flight, cancels mid-stream
 * (xchan_cases.h; executor_threads.c runs the same under TSan) */

static void xc_expect(struct xc_run *x, size_t capacity)
{
	const char *why = xc_run(x, capacity);
	cr_assert_null(why, "capacity %zu: %s", capacity, why ? why : "");
}

Test(threads, many_senders_and_receivers_on_four_loops, .timeout = 120)
{
	/* 0: hand-over; 1 and 3: full at once, 3 not a power of two. */
	size_t caps[] = { 0, 1, 3, 64 };
	for (unsigned i = 0; i < sizeof caps / sizeof *caps; i++) {
		struct xc_run x = { .sender_loops = 2, .senders_per_loop = 3,
		                    .receiver_loops = 2, .receivers_per_loop = 3,
		                    .items = 20000 };
		xc_expect(&x, caps[i]);
	}
}

Test(threads, a_close_while_items_are_in_flight_loses_none, .timeout = 120)
{
	size_t caps[] = { 0, 16 };
	for (unsigned i = 0; i < sizeof caps / sizeof *caps; i++) {
		struct xc_run x = { .sender_loops = 2, .senders_per_loop = 2,
		                    .receiver_loops = 1, .receivers_per_loop = 3,
		                    .items = 1000000, .close_early = true };
		xc_expect(&x, caps[i]);
	}
}

Test(threads, senders_and_receivers_cancelled_mid_stream, .timeout = 120)
{
	size_t caps[] = { 0, 8, 256 };
	for (unsigned i = 0; i < sizeof caps / sizeof *caps; i++) {
		struct xc_run x = { .sender_loops = 1, .senders_per_loop = 4,
		                    .receiver_loops = 1, .receivers_per_loop = 6,
		                    .items = 5000, .cancels = true };
		xc_expect(&x, caps[i]);
	}
}

/* ---- one loop: the contract's order and close rules, step by step */

struct xstep {
	uco_xchan *c;
	intptr_t sent;
	struct event_log log;
};

static void *xlog_recv(void *arg)
{
	struct xstep *st = arg;
	void *item;
	int r = uco_xchan_recv(st->c, &item);
	char e[32];
	if (r)
		snprintf(e, sizeof e, "r:%d", r);
	else
		snprintf(e, sizeof e, "r=%ld", (long)(intptr_t)item);
	log_event(&st->log, e);
	return NULL;
}

static void *xlog_send(void *arg)
{
	struct xstep *st = arg;
	intptr_t mine = ++st->sent;
	int r = uco_xchan_send(st->c, (void *)mine);
	char e[32];
	snprintf(e, sizeof e, r ? "s%ld:%d" : "s%ld", (long)mine, r);
	log_event(&st->log, e);
	return NULL;
}

static void *xyield_twice(void *arg)
{
	(void)arg;
	uco_yield();
	uco_yield();
	return NULL;
}

/* Spawn fn on loop and let everything runnable run (the waiters park). */
static void xstep(uco_loop *loop, void *(*fn)(void *), struct xstep *st)
{
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, NULL, fn, st), 0);
	cr_assert_eq(uco_spawn(loop, &t, xyield_twice, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	uco_task_release(t);
}

Test(threads, xchan_waiters_are_served_first_come_first_served)
{
	uco_loop *loop = test_loop();
	struct xstep st = { 0 };
	cr_assert_eq(uco_xchan_create(&st.c, 1), 0);
	xstep(loop, xlog_recv, &st);   /* parks */
	xstep(loop, xlog_recv, &st);   /* parks behind it */
	xstep(loop, xlog_send, &st);   /* 1 goes to the first receiver */
	xstep(loop, xlog_send, &st);   /* 2 to the second */
	xstep(loop, xlog_send, &st);   /* 3 buffered */
	xstep(loop, xlog_send, &st);   /* 4 waits: full */
	xstep(loop, xlog_send, &st);   /* 5 waits behind it */
	xstep(loop, xlog_recv, &st);   /* takes 3, 4 moves in */
	xstep(loop, xlog_recv, &st);   /* takes 4, 5 moves in */
	cr_assert_eq(uco_xchan_close(st.c), 0);
	cr_assert_eq(uco_xchan_close(st.c), -EALREADY);
	xstep(loop, xlog_recv, &st);   /* 5 was buffered: still delivered */
	xstep(loop, xlog_recv, &st);   /* drained: -EPIPE */
	xstep(loop, xlog_send, &st);   /* 6: -EPIPE */
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_eq(st.log.text, "s1,r=1,s2,r=2,s3,r=3,s4,r=4,s5,r=5,r:-32,s6:-32");
	cr_assert_eq(uco_xchan_destroy(st.c), 0);
	test_close(loop);
}

Test(threads, xchan_close_wakes_waiting_senders_and_receivers)
{
	uco_loop *loop = test_loop();
	struct xstep st = { 0 };
	cr_assert_eq(uco_xchan_create(&st.c, 0), 0);
	xstep(loop, xlog_recv, &st);   /* parks: nothing to take */
	xstep(loop, xlog_send, &st);   /* 1: straight to it */
	xstep(loop, xlog_send, &st);   /* 2: parks, no receiver */
	cr_assert_eq(uco_xchan_destroy(st.c), -EBUSY, "a sender waits");
	cr_assert_eq(uco_xchan_close(st.c), 0); /* from outside the loop */
	cr_assert_eq(uco_loop_run(loop), 0);    /* the sender wakes */
	xstep(loop, xlog_recv, &st);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_eq(st.log.text, "s1,r=1,s2:-32,r:-32");
	cr_assert_eq(uco_xchan_destroy(st.c), 0);
	test_close(loop);
}

static void *xtry_once(void *arg)
{
	uco_xchan *c = arg;
	void *item;
	cr_assert_eq(uco_xchan_recv_dl(c, &item, 0), -ETIMEDOUT, "empty");
	cr_assert_eq(uco_xchan_send_dl(c, (void *)1, 0), 0, "room");
	cr_assert_eq(uco_xchan_send_dl(c, (void *)2, 0), -ETIMEDOUT, "full");
	cr_assert_eq(uco_xchan_send_dl(c, (void *)2, uco_now() + MS(2)), -ETIMEDOUT);
	cr_assert_eq(uco_xchan_recv_dl(c, &item, 0), 0);
	cr_assert_eq((intptr_t)item, 1);
	cr_assert_eq(uco_xchan_recv_dl(c, &item, uco_now() + MS(2)), -ETIMEDOUT);
	cr_assert_eq(uco_task_cancel(uco_task_current()), 0);
	cr_assert_eq(uco_xchan_send(c, (void *)3), -ECANCELED, "pending cancel first");
	cr_assert_eq(uco_xchan_recv_dl(c, &item, 0), -ETIMEDOUT, "nothing was sent");
	return NULL;
}

Test(threads, xchan_deadline_zero_tries_once)
{
	uco_loop *loop = test_loop();
	uco_xchan *c;
	cr_assert_eq(uco_xchan_create(&c, 1), 0);
	cr_assert_eq(uco_spawn(loop, NULL, xtry_once, c), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_xchan_destroy(c), 0);
	test_close(loop);
}

/* ---- posts into a loop with no task */

static atomic_int idle_ran;

static void *counts_a_run(void *arg)
{
	(void)arg;
	atomic_fetch_add(&idle_ran, 1);
	return NULL;
}

static void *spawns_twice_into_an_idle_loop(void *loop)
{
	cr_assert_eq(uco_loop_spawn_threadsafe(loop, counts_a_run, NULL), 0);
	cr_assert_eq(uco_loop_spawn_threadsafe(loop, counts_a_run, NULL), 0);
	return NULL;
}

Test(threads, a_spawn_into_a_loop_with_no_task_runs_at_the_next_run)
{
	uco_loop *loop = test_loop();
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, spawns_twice_into_an_idle_loop, loop), 0);
	pthread_join(th, NULL);
	/* Nothing live, two calls posted: the run takes them, runs both
	 * tasks, and returns once nothing is live and nothing is posted. */
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(atomic_load(&idle_ran), 2);
	test_close(loop);
}

static void *calls_stop_later(void *loop)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	cr_assert_eq(uco_loop_spawn_threadsafe(loop, counts_a_run, NULL), 0);
	return NULL;
}

static void *waits_for_the_spawned_one(void *arg)
{
	(void)arg;
	/* Counted work in flight, so the loop waits in the kernel, where
	 * the doorbell finds it. */
	while (atomic_load(&idle_ran) == 0)
		uco_sleep(MS(5));
	return NULL;
}

Test(threads, a_loop_waiting_in_run_gets_a_task_spawned_from_a_thread)
{
	uco_loop *loop = test_loop();
	atomic_store(&idle_ran, 0);
	cr_assert_eq(uco_spawn(loop, NULL, waits_for_the_spawned_one, NULL), 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, calls_stop_later, loop), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(atomic_load(&idle_ran), 1);
	pthread_join(th, NULL);
	test_close(loop);
}

/* ---- one thread's setup fails while the others run */

static void *sleeps_an_hour(void *arg)
{
	(void)arg;
	uco_sleep(3600 * UCO_NS_PER_S);
	return NULL;
}

static int setup_one_fails(uco_loop *loop, unsigned index, void *arg)
{
	(void)arg;
	if (index == 2) {
		/* Late, so that the others are already running. */
		struct timespec ts = { 0, 30 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		return -EIO;
	}
	return uco_spawn(loop, NULL, sleeps_an_hour, NULL);
}

static int setup_first_fails(uco_loop *loop, unsigned index, void *arg)
{
	(void)arg;
	if (index == 0)
		return -ENOTSUP;
	/* Late, so that the failure came first. */
	struct timespec ts = { 0, 30 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	return uco_spawn(loop, NULL, sleeps_an_hour, NULL);
}

Test(threads, a_failed_setup_stops_the_other_loops_and_is_returned, .timeout = 30)
{
	cr_assert_eq(uco_run_threads(4, 0, setup_one_fails, NULL), -EIO);
	cr_assert_eq(uco_run_threads(3, 0, setup_first_fails, NULL), -ENOTSUP);
}
