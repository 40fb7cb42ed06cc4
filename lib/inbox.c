/* SPDX-License-Identifier: MIT */
/*
 * A loop's inbox: how other threads (executor workers, other loops, plain
 * threads) hand it work.  It holds the list of posts, the doorbell that
 * wakes the loop when the list stops being empty, the drain that runs the
 * posts on the loop's thread, and the calls built on it (uco_loop_call,
 * uco_loop_spawn_threadsafe's post).
 *
 * Posts go on the inbox's list, and only the post that finds the list
 * empty rings the doorbell: the loop takes everything posted since in one
 * pass, so a burst costs one wake-up, not one each (as libuv's
 * uv_async_send coalesces; one MSG_RING per executor result ran at
 * 1.1 M jobs/s here, against libuv's ~4 M).
 *
 * The doorbell: an IORING_OP_MSG_RING into the loop's ring, from the
 * poster's own ring (an executor worker's small ring, or the posting loop's
 * ring), without waiting for that SQE's own completion
 * (IOSQE_CQE_SKIP_SUCCESS: before 6.11 a message into a DEFER_TASKRUN ring
 * completes only when the loop thread next runs task work).  Where MSG_RING
 * is missing, disabled or refused, the doorbell is an eventfd the loop
 * always keeps a read SQE on.  Either way the loop blocks in
 * io_uring_enter and nothing polls.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

/* A loop's receiving end for posts from other threads. */
struct uco__inbox {
	int ring_fd;                  /* target of MSG_RING */
	int efd;                      /* the eventfd fallback */
	uint64_t efd_value;           /* read buffer for the eventfd */
	struct uco__completion read_done;
	struct uco__completion bell;  /* the MSG_RING doorbell */
	/* The doorbell's own completion on another loop's ring that rang it:
	 * that loop holds a reference until it has seen it. */
	struct uco__completion bell_back;
	unsigned refs;                /* the loop's, plus bells in flight */
	pthread_mutex_t lock;
	struct uco__post *posted;     /* LIFO, reversed when drained */
};

static void inbox_unref(struct uco__inbox *in);

/* ------------------------------------------------------------ posting */

/* The eventfd doorbell; under to->lock. */
static void ring_eventfd(struct uco__inbox *to)
{
	uint64_t one = 1;
	/* Fails only if the counter would overflow (2^64 rings). */
	while (write(to->efd, &one, sizeof one) < 0 && errno == EINTR)
		;
}

/* From a loop's own thread (a cross-loop channel serving a waiter,
 * uco_loop_call from a loop): the MSG_RING goes on the posting loop's own
 * ring and is submitted at once, under to->lock, so that the target's
 * ring descriptor is looked up while the target cannot have closed.  Its
 * completion comes back to the posting loop (bell_back), counted as work
 * in flight, and holds a reference on the inbox until then: a refused
 * message rings the eventfd from there.  false: not sent (no MSG_RING
 * here, no SQE, or the submit failed), ring the eventfd. */
static bool ring_bell_from_loop(struct uco__inbox *to)
{
	uco_loop *self = uco_loop_current();
	if (!self || !uco__has_op(self, IORING_OP_MSG_RING) || to->ring_fd < 0)
		return false;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring);
	if (!sqe)
		return false;
	io_uring_prep_msg_ring(sqe, to->ring_fd, 0, (uint64_t)(uintptr_t)&to->bell, 0);
	io_uring_sqe_set_data(sqe, &to->bell_back);
	self->inflight++;
	__atomic_fetch_add(&to->refs, 1, __ATOMIC_RELAXED);
	if (uco__ring_submit_now(self) < 0) {
		/* Nothing was consumed: the SQE is still ours, and must not
		 * reach the kernel after the lock is gone.  It becomes a NOP
		 * that nobody waits for, and the reference goes now: its
		 * completion might never be reaped (a loop whose last task
		 * this was closes without another turn), which would leak
		 * the target's inbox.  The target loop holds its own
		 * reference, so this one is never the last. */
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
		self->inflight--;
		__atomic_fetch_sub(&to->refs, 1, __ATOMIC_RELEASE);
		return false;
	}
	return true;
}

static void bell_back(uco_loop *loop, struct uco__completion *c,
                      const struct io_uring_cqe *cqe)
{
	(void)loop;
	struct uco__inbox *to = UCO__CONTAINER_OF(c, struct uco__inbox, bell_back);
	if (cqe->res < 0) {
		/* Refused (a full target CQ, an old kernel's rule): the posts
		 * wait unannounced; the eventfd announces them. */
		pthread_mutex_lock(&to->lock);
		ring_eventfd(to);
		pthread_mutex_unlock(&to->lock);
	}
	inbox_unref(to);
}

/* Ring the loop's doorbell, under to->lock: a MSG_RING into its ring from
 * this worker's ring (its own CQE skipped on success) or from the posting
 * loop's ring, else the eventfd.  Under the lock because once the loop can
 * see the posts it may finish and close, and its ring or eventfd must not
 * be written after that (or, worse, a descriptor that reuses the number). */
static void ring_bell(struct io_uring *own, struct uco__inbox *to)
{
	if (!own && ring_bell_from_loop(to))
		return;
	if (own && to->ring_fd >= 0) { /* an epoll loop has no ring */
		struct io_uring_sqe *sqe = io_uring_get_sqe(own);
		if (!sqe) {
			io_uring_submit(own);
			sqe = io_uring_get_sqe(own);
		}
		if (sqe) {
			io_uring_prep_msg_ring(sqe, to->ring_fd, 0,
			                       (uint64_t)(uintptr_t)&to->bell, 0);
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			io_uring_sqe_set_data(sqe, to);
			if (io_uring_submit(own) >= 0)
				return;
		}
	}
	ring_eventfd(to);
}

/* A MSG_RING doorbell refused (a full target CQ: -EOVERFLOW, or anything
 * else) rings the eventfd instead.  Its posts are still waiting, so their
 * loop cannot have gone. */
void uco__inbox_reap_bells(struct io_uring *own)
{
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(own, &cqe) == 0) {
		struct uco__inbox *to = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(own, cqe);
		if (res < 0 && to) {
			pthread_mutex_lock(&to->lock);
			ring_eventfd(to);
			pthread_mutex_unlock(&to->lock);
		}
	}
}

/*
 * Hand `p` to its loop, which may reuse p's memory from then on.  Posts go
 * on the loop's inbox list, and only the post that finds the list empty
 * rings the doorbell: the loop takes everything posted since in one pass,
 * so a burst of results costs one wake-up, not one each (as libuv's
 * uv_async_send coalesces).  `own` is the poster's MSG_RING ring, or
 * NULL from a thread without one.
 */
void uco__inbox_post(struct uco__post *p, struct io_uring *own)
{
	struct uco__inbox *to = p->to;
	pthread_mutex_lock(&to->lock);
	bool ring = !to->posted;
	p->next_posted = to->posted;
	/* Atomic: uco__inbox_take() peeks at it without the lock. */
	__atomic_store_n(&to->posted, p, __ATOMIC_RELEASE);
	if (ring)
		ring_bell(own, to);
	pthread_mutex_unlock(&to->lock);
	if (own)
		uco__inbox_reap_bells(own);
}
/* ------------------------------------------------------------ the loop's side */

static void inbox_read_done(uco_loop *loop, struct uco__completion *c,
                            const struct io_uring_cqe *cqe);

static int arm_inbox(uco_loop *loop, struct uco__inbox *in)
{
	struct io_uring_sqe *sqe = uco__sqe_get(loop, &in->read_done);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_read(sqe, in->efd, &in->efd_value, sizeof in->efd_value, 0);
	return 0;
}

/* Take everything posted so far, in posting order. */
static void drain(uco_loop *loop, struct uco__inbox *in)
{
	pthread_mutex_lock(&in->lock);
	struct uco__post *p = in->posted, *fifo = NULL;
	__atomic_store_n(&in->posted, NULL, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&in->lock);
	while (p) { /* back into posting order */
		struct uco__post *next = p->next_posted;
		p->next_posted = fifo;
		fifo = p;
		p = next;
	}
	struct io_uring_cqe done = { 0 };
	for (p = fifo; p; p = fifo) {
		fifo = p->next_posted;
		if (!p->done.uncounted)
			loop->inflight--; /* as the reaper does for a CQE */
		p->done.complete(loop, &p->done, &done);
	}
}

bool uco__inbox_take(uco_loop *loop)
{
	struct uco__inbox *in = loop->inbox;
	if (!__atomic_load_n(&in->posted, __ATOMIC_ACQUIRE))
		return false;
	drain(loop, in);
	return true;
}

static void bell_rung(uco_loop *loop, struct uco__completion *c,
                      const struct io_uring_cqe *cqe)
{
	(void)cqe;
	drain(loop, UCO__CONTAINER_OF(c, struct uco__inbox, bell));
}

static void inbox_read_done(uco_loop *loop, struct uco__completion *c,
                            const struct io_uring_cqe *cqe)
{
	struct uco__inbox *in = UCO__CONTAINER_OF(c, struct uco__inbox, read_done);
	drain(loop, in);
	if (cqe->res != -EBADF)
		arm_inbox(loop, in); /* an SQE is always found: a CQE freed one */
}

/* Made and armed with the loop, so that other threads never race to make
 * it. */
int uco__inbox_create(uco_loop *loop)
{
	struct uco__inbox *in = calloc(1, sizeof *in);
	if (!in)
		return -ENOMEM;
	in->ring_fd = loop->ring.ring_fd;
	in->efd = eventfd(0, EFD_CLOEXEC);
	if (in->efd < 0) {
		int err = -errno;
		free(in);
		return err;
	}
	pthread_mutex_init(&in->lock, NULL);
	in->read_done.complete = inbox_read_done;
	in->read_done.uncounted = true; /* a listener does not keep the loop alive */
	in->bell.complete = bell_rung;
	in->bell.uncounted = true;      /* the posts it announces are counted */
	in->bell_back.complete = bell_back;
	in->refs = 1;
	int err = arm_inbox(loop, in);
	if (err) {
		close(in->efd);
		pthread_mutex_destroy(&in->lock);
		free(in);
		return err;
	}
	loop->inbox = in;
	return 0;
}

static void inbox_unref(struct uco__inbox *in)
{
	if (__atomic_sub_fetch(&in->refs, 1, __ATOMIC_ACQ_REL))
		return;
	close(in->efd);
	pthread_mutex_destroy(&in->lock);
	free(in);
}

static void drop_calls(struct uco__inbox *in);

/* The loop lets go; a bell still on its way back to another loop keeps
 * the lock and eventfd it may use. */
void uco__inbox_destroy(struct uco__inbox *in)
{
	if (in) {
		drop_calls(in);
		inbox_unref(in);
	}
}
/* ------------------------------------------------------------ calls from any thread */

struct call {
	struct uco__post post;
	void (*fn)(void *arg);
	void *arg;
	bool owns_arg;            /* arg is freed if the call is dropped */
};

static void run_loop_call(uco_loop *loop, struct uco__completion *c,
                          const struct io_uring_cqe *cqe)
{
	(void)loop;
	(void)cqe;
	struct call *call = UCO__CONTAINER_OF(c, struct call, post.done);
	void (*fn)(void *) = call->fn;
	void *arg = call->arg;
	free(call);
	fn(arg);
}

/* Calls still posted when their loop closes never run (asyncio's close()
 * drops its pending callbacks too): their memory goes with the loop.
 * Nothing else can be posted then, since every other post is awaited by
 * a task, and a loop with tasks does not close. */
static void drop_calls(struct uco__inbox *in)
{
	pthread_mutex_lock(&in->lock);
	struct uco__post *p = in->posted;
	in->posted = NULL;
	pthread_mutex_unlock(&in->lock);
	while (p) {
		struct uco__post *next = p->next_posted;
		if (p->done.complete == run_loop_call) {
			struct call *call = UCO__CONTAINER_OF(p, struct call, post);
			if (call->owns_arg)
				free(call->arg);
			free(call);
		}
		p = next;
	}
}

static int loop_call(uco_loop *loop, void (*fn)(void *arg), void *arg, bool owns_arg)
{
	if (!loop || !fn)
		return -EINVAL;
	struct call *call = malloc(sizeof *call);
	if (!call)
		return -ENOMEM;
	*call = (struct call){ .post.done.complete = run_loop_call, .post.to = loop->inbox,
	                       .fn = fn, .arg = arg, .owns_arg = owns_arg };
	/* Not work in flight: a loop with nothing else to do need not wait
	 * for calls, they run when it next runs (asyncio's rule). */
	call->post.done.uncounted = true;
	uco__inbox_post(&call->post, NULL);
	return 0;
}

int uco_loop_call(uco_loop *loop, void (*fn)(void *arg), void *arg)
{
	return loop_call(loop, fn, arg, false);
}

int uco__loop_call_owned(uco_loop *loop, void (*fn)(void *arg), void *arg)
{
	return loop_call(loop, fn, arg, true);
}

void uco__post_to(uco_loop *loop, struct uco__post *p)
{
	p->to = loop->inbox;
	uco__inbox_post(p, NULL);
}
