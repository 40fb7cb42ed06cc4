/* SPDX-License-Identifier: MIT */
/*
 * The executor: worker threads that run blocking calls for coroutines
 * (asyncio's run_in_executor), with the results coming back through the
 * owning loop's ring.
 *
 * A job lives on the waiting coroutine's stack.  That is safe because the
 * coroutine never resumes before the job is over: a queued job is unlinked
 * under the lock when its task is cancelled, and a running one is waited
 * for (its result dropped).
 *
 * The way back: a worker puts the job on its loop's inbox list and, if the
 * list was empty, rings the loop's doorbell: an IORING_OP_MSG_RING into the
 * loop's ring from a small ring of its own, without waiting for that SQE's
 * own completion (IOSQE_CQE_SKIP_SUCCESS: before 6.11 a message into a
 * DEFER_TASKRUN ring completes only when the loop thread next runs task
 * work).  Where MSG_RING is missing, disabled or refused, the doorbell is
 * an eventfd the loop always keeps a read SQE on.  Either way the loop
 * blocks in io_uring_enter, and results that arrive together cost one
 * wake-up and are taken in one pass (one MSG_RING per result ran at 1.1 M
 * jobs/s here, against libuv's ~4 M with its coalesced uv_async_send).
 *
 * Workers sleep on one condition variable and are woken one at a time.
 * At most one idle worker spins for the next job (spin_us, default 50 us)
 * before sleeping: a thread wake-up across cores costs ~23 us on the
 * development VM, most of a round trip.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_SPIN_US 50
#define MAX_THREADS 1024


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

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DROPPED };

struct uco__job {
	struct uco__post post;
	struct uco__job *prev, *next;      /* executor queue, under ex->lock */
	uco_executor *ex;
	uco_task *task;
	uco_fn fn;
	void *arg;
	void *value;
	enum job_state state;         /* under ex->lock */
	bool batched;                 /* loop side only: in the loop's batch */
	bool cancelled;               /* loop side only */
};

/* A coroutine waiting for room in a bounded queue. */
struct room_wait {
	struct uco__post post;
	struct room_wait *next;       /* under ex->lock */
	uco_executor *ex;
	uco_task *task;
	bool listed;                  /* under ex->lock */
	bool cancelled;               /* loop side only */
};

struct worker {
	pthread_t thread;
	struct io_uring ring;         /* for MSG_RING only */
	uco_executor *ex;
};

struct uco_executor {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct uco__job *head, *tail;
	size_t queued;
	unsigned sleeping;            /* workers in pthread_cond_wait */
	unsigned waking;              /* of those, signalled and not yet up */
	bool spinner;                 /* a worker is spinning */
	bool stopping;
	struct room_wait *room_head, *room_tail;
	unsigned pending_hint;        /* atomic: queued, for the spinner */
	unsigned queue_max, spin_us;
	bool use_msg_ring;
	unsigned nthreads, nrings;
	struct worker *workers;
	/* Jobs and room waits submitted and not yet received back by their
	 * loop, plus OUTSTANDING_SHUT once shutdown has finished (atomic, so
	 * that receiving a result takes no lock).  A loop may still call in
	 * (a cancel) until it has received its results, so whoever brings
	 * this to exactly OUTSTANDING_SHUT frees the executor, once. */
	uint64_t outstanding;
};

#define OUTSTANDING_SHUT (UINT64_C(1) << 62)

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
	if (!self || !uco__has_op(self, IORING_OP_MSG_RING))
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
static void ring_bell(struct worker *w, struct uco__inbox *to)
{
	if (!w && ring_bell_from_loop(to))
		return;
	if (w && w->ex->use_msg_ring) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
		if (!sqe) {
			io_uring_submit(&w->ring);
			sqe = io_uring_get_sqe(&w->ring);
		}
		if (sqe) {
			io_uring_prep_msg_ring(sqe, to->ring_fd, 0,
			                       (uint64_t)(uintptr_t)&to->bell, 0);
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			io_uring_sqe_set_data(sqe, to);
			if (io_uring_submit(&w->ring) >= 0)
				return;
		}
	}
	ring_eventfd(to);
}

/* A MSG_RING doorbell refused (a full target CQ: -EOVERFLOW, or anything
 * else) rings the eventfd instead.  Its posts are still waiting, so their
 * loop cannot have gone. */
static void reap_refused_bells(struct worker *w)
{
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&w->ring, &cqe) == 0) {
		struct uco__inbox *to = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&w->ring, cqe);
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
 * uv_async_send coalesces).  `w` is NULL from a thread without a ring.
 */
static void post(struct worker *w, struct uco__post *p)
{
	struct uco__inbox *to = p->to;
	pthread_mutex_lock(&to->lock);
	bool ring = !to->posted;
	p->next_posted = to->posted;
	/* Atomic: uco__inbox_take() peeks at it without the lock. */
	__atomic_store_n(&to->posted, p, __ATOMIC_RELEASE);
	if (ring)
		ring_bell(w, to);
	pthread_mutex_unlock(&to->lock);
	if (w && w->ex->use_msg_ring)
		reap_refused_bells(w);
}

/* ------------------------------------------------------------ the loop's inbox */

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

/* The loop's inbox, made and armed with the loop (uco__inbox_create). */
static struct uco__inbox *loop_inbox(uco_loop *loop, int *err)
{
	if (loop->inbox)
		return loop->inbox;
	struct uco__inbox *in = calloc(1, sizeof *in);
	if (!in) {
		*err = -ENOMEM;
		return NULL;
	}
	in->ring_fd = loop->ring.ring_fd;
	in->efd = eventfd(0, EFD_CLOEXEC);
	if (in->efd < 0) {
		*err = -errno;
		free(in);
		return NULL;
	}
	pthread_mutex_init(&in->lock, NULL);
	in->read_done.complete = inbox_read_done;
	in->read_done.uncounted = true; /* a listener does not keep the loop alive */
	in->bell.complete = bell_rung;
	in->bell.uncounted = true;      /* the posts it announces are counted */
	in->bell_back.complete = bell_back;
	in->refs = 1;
	*err = arm_inbox(loop, in);
	if (*err) {
		close(in->efd);
		pthread_mutex_destroy(&in->lock);
		free(in);
		return NULL;
	}
	loop->inbox = in;
	return in;
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

/* ------------------------------------------------------------ workers */

static void cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static int64_t monotonic_us(void)
{
	return uco_now() / 1000;
}

/* Wait (ex->lock held) until there is a job or the executor stops,
 * spinning first if no other worker spins. */
static void wait_for_job(struct worker *w)
{
	uco_executor *ex = w->ex;
	while (!ex->head && !ex->stopping) {
		if (ex->spin_us && !ex->spinner) {
			ex->spinner = true;
			pthread_mutex_unlock(&ex->lock);
			int64_t until = monotonic_us() + ex->spin_us;
			while (!__atomic_load_n(&ex->pending_hint, __ATOMIC_ACQUIRE) &&
			       monotonic_us() < until)
				for (int i = 0; i < 64; i++)
					cpu_relax();
			pthread_mutex_lock(&ex->lock);
			ex->spinner = false;
			if (ex->head || ex->stopping)
				break;
		}
		if (ex->use_msg_ring)
			reap_refused_bells(w);
		ex->sleeping++;
		pthread_cond_wait(&ex->work, &ex->lock);
		ex->sleeping--;
		if (ex->waking)
			ex->waking--;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uco_executor *ex = w->ex;
	pthread_mutex_lock(&ex->lock);
	for (;;) {
		wait_for_job(w);
		struct uco__job *job = ex->head;
		if (!job)
			break; /* stopping, and the queue is empty */
		ex->head = job->next;
		if (ex->head)
			ex->head->prev = NULL;
		else
			ex->tail = NULL;
		ex->queued--;
		__atomic_store_n(&ex->pending_hint, (unsigned)ex->queued, __ATOMIC_RELEASE);
		job->state = JOB_RUNNING;
		/* Room in a bounded queue: let one waiting coroutine retry. */
		struct room_wait *rw = ex->room_head;
		if (rw) {
			ex->room_head = rw->next;
			if (!ex->room_head)
				ex->room_tail = NULL;
			rw->listed = false;
		}
		pthread_mutex_unlock(&ex->lock);

		if (rw)
			post(w, &rw->post);
		job->value = job->fn(job->arg);
		/* The job's memory belongs to its coroutine again once posted. */
		post(w, &job->post);

		pthread_mutex_lock(&ex->lock);
	}
	pthread_mutex_unlock(&ex->lock);
	if (ex->use_msg_ring)
		reap_refused_bells(w);
	return NULL;
}

/* ------------------------------------------------------------ create / shutdown */

static unsigned default_threads(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		cpus = 1;
	return cpus + 4 < 32 ? (unsigned)cpus + 4 : 32;
}

static bool msg_ring_supported(void)
{
	struct io_uring_probe *probe = io_uring_get_probe();
	if (!probe)
		return false;
	bool ok = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
	io_uring_free_probe(probe);
	return ok;
}

static void stop_workers(uco_executor *ex, unsigned started)
{
	pthread_mutex_lock(&ex->lock);
	ex->stopping = true;
	pthread_cond_broadcast(&ex->work);
	pthread_mutex_unlock(&ex->lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(ex->workers[i].thread, NULL);
	for (unsigned i = 0; i < ex->nrings; i++)
		io_uring_queue_exit(&ex->workers[i].ring);
}

static void executor_free(uco_executor *ex)
{
	pthread_cond_destroy(&ex->work);
	pthread_mutex_destroy(&ex->lock);
	free(ex->workers);
	free(ex);
}

int uco_executor_create(uco_executor **out, const uco_executor_opts *opts)
{
	static const uco_executor_opts defaults;
	if (!out)
		return -EINVAL;
	if (!opts)
		opts = &defaults;
	if (!uco__all_zero(opts->reserved_, sizeof opts->reserved_ / sizeof opts->reserved_[0]) ||
	    opts->flags & ~(UCO_EXECUTOR_NO_SPIN | UCO_EXECUTOR_NO_MSG_RING) ||
	    opts->threads > MAX_THREADS)
		return -EINVAL;

	uco_executor *ex = calloc(1, sizeof *ex);
	if (!ex)
		return -ENOMEM;
	ex->nthreads = opts->threads ? opts->threads : default_threads();
	ex->queue_max = opts->queue_max;
	ex->spin_us = (opts->flags & UCO_EXECUTOR_NO_SPIN) ? 0
	              : opts->spin_us ? opts->spin_us : DEFAULT_SPIN_US;
	ex->use_msg_ring = !(opts->flags & UCO_EXECUTOR_NO_MSG_RING) && msg_ring_supported();
	ex->workers = calloc(ex->nthreads, sizeof *ex->workers);
	if (!ex->workers) {
		free(ex);
		return -ENOMEM;
	}
	pthread_mutex_init(&ex->lock, NULL);
	pthread_cond_init(&ex->work, NULL);

	int err = 0;
	unsigned started = 0;
	for (unsigned i = 0; ex->use_msg_ring && i < ex->nthreads && !err; i++) {
		err = io_uring_queue_init(8, &ex->workers[i].ring, 0);
		if (!err)
			ex->nrings++;
	}
	for (; !err && started < ex->nthreads; started++) {
		ex->workers[started].ex = ex;
		err = uco__thread_create(&ex->workers[started].thread, worker_main,
		                         &ex->workers[started]);
	}
	if (err) {
		if (started)
			started--; /* the last pthread_create failed */
		stop_workers(ex, started);
		executor_free(ex);
		return err;
	}
	*out = ex;
	return 0;
}

int uco_executor_shutdown(uco_executor *ex, unsigned flags)
{
	if (!ex || (flags & ~UCO_EXECUTOR_CANCEL_QUEUED))
		return -EINVAL;
	/* Jobs this thread's loop batched for ex this turn go in first, so
	 * that they are run or dropped like the others. */
	uco_loop *loop = uco_loop_current();
	if (loop && loop->batch_head && loop->batch_ex == ex)
		uco__executor_flush(loop);
	pthread_mutex_lock(&ex->lock);
	ex->stopping = true;
	struct uco__job *dropped = NULL;
	if (flags & UCO_EXECUTOR_CANCEL_QUEUED) {
		dropped = ex->head;
		ex->head = ex->tail = NULL;
		ex->queued = 0;
		for (struct uco__job *j = dropped; j; j = j->next)
			j->state = JOB_DROPPED;
	}
	/* Coroutines waiting for room retry and learn of the shutdown. */
	struct room_wait *rooms = ex->room_head;
	ex->room_head = ex->room_tail = NULL;
	for (struct room_wait *r = rooms; r; r = r->next)
		r->listed = false;
	pthread_cond_broadcast(&ex->work);
	pthread_mutex_unlock(&ex->lock);

	/* Through the eventfds: this thread has no ring of its own. */
	while (dropped) {
		struct uco__job *next = dropped->next;
		post(NULL, &dropped->post);
		dropped = next;
	}
	while (rooms) {
		struct room_wait *next = rooms->next;
		post(NULL, &rooms->post);
		rooms = next;
	}
	stop_workers(ex, ex->nthreads);
	if (__atomic_fetch_add(&ex->outstanding, OUTSTANDING_SHUT, __ATOMIC_ACQ_REL) == 0)
		executor_free(ex);
	return 0;
}

static void outstanding_add(uco_executor *ex, uint64_t n)
{
	__atomic_fetch_add(&ex->outstanding, n, __ATOMIC_RELAXED);
}

/* A loop has received (or dropped) one of its jobs or room waits. */
static void received(uco_executor *ex)
{
	if (__atomic_fetch_sub(&ex->outstanding, 1, __ATOMIC_ACQ_REL) == OUTSTANDING_SHUT + 1)
		executor_free(ex);
}

/* ------------------------------------------------------------ submitting */

static void job_done(uco_loop *loop, struct uco__completion *c,
                     const struct io_uring_cqe *cqe)
{
	(void)cqe;
	struct uco__job *job = UCO__CONTAINER_OF(c, struct uco__job, post.done);
	/* JOB_DROPPED: shutdown cancelled it; job->cancelled: its task was
	 * cancelled while it ran.  Either way the result is not delivered. */
	bool cancelled = job->cancelled || job->state == JOB_DROPPED;
	received(job->ex);
	uco__wake(loop, job->task, cancelled ? -ECANCELED : 0);
}

static void room_posted(uco_loop *loop, struct uco__completion *c,
                        const struct io_uring_cqe *cqe)
{
	(void)cqe;
	struct room_wait *rw = UCO__CONTAINER_OF(c, struct room_wait, post.done);
	/* Its hold on the executor is let go by the coroutine itself, once
	 * it is done with the executor (uco_run_in_executor): after a
	 * shutdown, letting go here could free it under the coroutine. */
	uco__wake(loop, rw->task, rw->cancelled ? -ECANCELED : 0);
}

/* Take a job out of a list: a loop's batch or an executor's queue. */
static void job_unlink(struct uco__job **head, struct uco__job **tail, struct uco__job *job)
{
	if (job->prev)
		job->prev->next = job->next;
	else
		*head = job->next;
	if (job->next)
		job->next->prev = job->prev;
	else
		*tail = job->prev;
}

/* uco_task_cancel() on a task waiting for its job. */
static void cancel_job(uco_task *t)
{
	struct uco__job *job = t->wait_data;
	uco_executor *ex = job->ex;
	uco_loop *loop = t->loop;
	if (job->batched) {
		/* Still in this loop's batch: no other thread has seen it. */
		job_unlink(&loop->batch_head, &loop->batch_tail, job);
		loop->inflight--;
		uco__wake(loop, t, -ECANCELED);
		return;
	}
	pthread_mutex_lock(&ex->lock);
	bool queued = job->state == JOB_QUEUED;
	if (queued) {
		job_unlink(&ex->head, &ex->tail, job);
		ex->queued--;
		__atomic_store_n(&ex->pending_hint, (unsigned)ex->queued, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&ex->lock);
	if (queued) {
		/* It never runs and nothing will be posted for it. */
		received(ex);
		t->loop->inflight--;
		uco__wake(t->loop, t, -ECANCELED);
	} else {
		/* Running (or dropped and already posted): the coroutine
		 * resumes when the post arrives, never earlier. */
		job->cancelled = true;
	}
}

static void describe_job(const uco_task *t, char *buf, size_t len)
{
	struct uco__job *job = t->wait_data;
	const char *state = "handed over at the end of this turn";
	if (!job->batched) {
		pthread_mutex_lock(&job->ex->lock);
		state = job->state == JOB_QUEUED ? "queued" : "running";
		pthread_mutex_unlock(&job->ex->lock);
	}
	char fn[160];
	uco__describe_fn(job->fn, fn, sizeof fn);
	snprintf(buf, len, "%s on executor %p, %s%s", fn, (void *)job->ex, state,
	         job->cancelled ? ", cancelled" : "");
}

static void describe_room(const uco_task *t, char *buf, size_t len)
{
	const struct room_wait *rw = t->wait_data;
	snprintf(buf, len, "executor %p, its queue is full", (void *)rw->ex);
}

static const struct uco__wait_kind job_kind = { "executor job", describe_job };
static const struct uco__wait_kind room_kind = { "executor queue", describe_room };

static void cancel_room_wait(uco_task *t)
{
	struct room_wait *rw = t->wait_data;
	uco_executor *ex = rw->ex;
	pthread_mutex_lock(&ex->lock);
	bool listed = rw->listed;
	if (listed) {
		struct room_wait **p = &ex->room_head, *prev = NULL;
		while (*p != rw) {
			prev = *p;
			p = &(*p)->next;
		}
		*p = rw->next;
		if (ex->room_tail == rw)
			ex->room_tail = prev;
		rw->listed = false;
	}
	pthread_mutex_unlock(&ex->lock);
	if (listed) {
		t->loop->inflight--;
		uco__wake(t->loop, t, -ECANCELED);
	} else {
		rw->cancelled = true;
	}
}

/* Append the n jobs first..last (linked by next) to the queue and wake
 * the workers they need; under ex->lock. */
static void enqueue(uco_executor *ex, struct uco__job *first, struct uco__job *last, size_t n)
{
	for (struct uco__job *j = first;; j = j->next) {
		j->state = JOB_QUEUED;
		if (j == last)
			break;
	}
	first->prev = ex->tail;
	last->next = NULL;
	if (ex->tail)
		ex->tail->next = first;
	else
		ex->head = first;
	ex->tail = last;
	ex->queued += n;
	outstanding_add(ex, n);
	__atomic_store_n(&ex->pending_hint, (unsigned)ex->queued, __ATOMIC_RELEASE);
	/* A spinning worker takes one job itself; wake sleepers for the rest,
	 * but none already being woken (each signal is a futex system call). */
	size_t want = ex->spinner ? n - 1 : n;
	while (want-- && ex->sleeping > ex->waking) {
		ex->waking++;
		pthread_cond_signal(&ex->work);
	}
}

void uco__executor_flush(uco_loop *loop)
{
	struct uco__job *first = loop->batch_head, *last = loop->batch_tail;
	uco_executor *ex = loop->batch_ex;
	loop->batch_head = loop->batch_tail = NULL;
	size_t n = 0;
	for (struct uco__job *j = first; j; j = j->next) {
		j->batched = false;
		n++;
	}
	pthread_mutex_lock(&ex->lock);
	bool stopping = ex->stopping;
	if (!stopping)
		enqueue(ex, first, last, n);
	pthread_mutex_unlock(&ex->lock);
	if (stopping) {
		for (struct uco__job *j = first, *next; j; j = next) {
			next = j->next;
			loop->inflight--;
			uco__wake(loop, j->task, -ESHUTDOWN);
		}
	}
}

/* Wait for room in a bounded queue; called and returns with ex->lock
 * held.  0 to try again, or -ECANCELED.  Each wait keeps the executor
 * alive until the caller lets go of it with received(), after its last
 * unlock. */
static int wait_for_room(uco_executor *ex, uco_task *self, struct uco__inbox *to)
{
	struct room_wait rw = {
		.post.done.complete = room_posted, .post.to = to,
		.ex = ex, .task = self, .listed = true,
	};
	if (ex->room_tail)
		ex->room_tail->next = &rw;
	else
		ex->room_head = &rw;
	ex->room_tail = &rw;
	outstanding_add(ex, 1);
	pthread_mutex_unlock(&ex->lock);
	self->loop->inflight++;
	self->wait_data = &rw;
	int r = uco__park(self->loop, self, &room_kind, cancel_room_wait);
	pthread_mutex_lock(&ex->lock);
	return r;
}

static int default_executor(uco_loop *loop, uco_executor **ex)
{
	if (!loop->executor) {
		int err = uco_executor_create(&loop->executor, NULL);
		if (err)
			return err;
		loop->owns_executor = true;
	}
	*ex = loop->executor;
	return 0;
}

int uco_run_in_executor(uco_executor *ex, uco_fn fn, void *arg, void **value)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (!fn)
		return -EINVAL;
	uco_loop *loop = self->loop;
	int err = ex ? 0 : default_executor(loop, &ex);
	if (err)
		return err;
	struct uco__inbox *to = loop_inbox(loop, &err);
	if (!to)
		return err;
	if (uco__cancel_due(self))
		return -ECANCELED;

	struct uco__job job = {
		.post.done.complete = job_done, .post.to = to,
		.ex = ex, .task = self, .fn = fn, .arg = arg,
	};
	if (!ex->queue_max && (!loop->batch_head || loop->batch_ex == ex)) {
		/* Into this turn's batch, handed to the executor in one go when
		 * the turn ends (uco__executor_flush). */
		job.batched = true;
		job.prev = loop->batch_tail;
		if (loop->batch_tail)
			loop->batch_tail->next = &job;
		else
			loop->batch_head = &job;
		loop->batch_tail = &job;
		loop->batch_ex = ex;
	} else {
		unsigned held = 0; /* room waits still holding the executor */
		pthread_mutex_lock(&ex->lock);
		while (!ex->stopping && ex->queue_max && ex->queued >= ex->queue_max) {
			err = wait_for_room(ex, self, to);
			held++;
			if (err)
				break;
		}
		if (!err && ex->stopping)
			err = -ESHUTDOWN;
		if (!err)
			enqueue(ex, &job, &job, 1); /* the job holds it from here */
		pthread_mutex_unlock(&ex->lock);
		while (held--)
			received(ex); /* may free it: not touched after */
		if (err)
			return err;
	}
	loop->inflight++; /* the post that will come back */
	self->wait_data = &job;
	int r = uco__park(loop, self, &job_kind, cancel_job);
	if (r)
		return r;
	if (value)
		*value = job.value;
	return 0;
}

struct executor_call {
	uco_executor *ex;
	uco_fn fn;
	void *arg;
};

static void *run_call(void *arg)
{
	struct executor_call call = *(struct executor_call *)arg;
	void *value = NULL;
	int err = uco_run_in_executor(call.ex, call.fn, call.arg, &value);
	return err ? uco_fail(err) : value;
}

int uco_spawn_in_executor(uco_loop *loop, uco_task **out, uco_executor *ex,
                          uco_fn fn, void *arg)
{
	if (!fn)
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	err = ex ? 0 : default_executor(loop, &ex);
	if (err)
		return err;
	pthread_mutex_lock(&ex->lock);
	err = ex->stopping ? -ESHUTDOWN
	      : ex->queue_max && ex->queued >= ex->queue_max ? -EAGAIN : 0;
	pthread_mutex_unlock(&ex->lock);
	if (err)
		return err;
	struct executor_call *call = malloc(sizeof *call);
	if (!call)
		return -ENOMEM;
	*call = (struct executor_call){ ex, fn, arg };
	return uco__spawn_owning(loop, out, run_call, call);
}

int uco_loop_set_executor(uco_loop *loop, uco_executor *ex)
{
	if (!loop || !ex)
		return -EINVAL;
	if (loop->owns_executor)
		return -EBUSY;
	loop->executor = ex;
	return 0;
}

void uco__loop_executor_close(uco_loop *loop)
{
	if (loop->owns_executor)
		uco_executor_shutdown(loop->executor, 0);
	loop->executor = NULL;
	loop->owns_executor = false;
}

/* ------------------------------------------------------------ getaddrinfo */

struct gai_call {
	const char *node, *service;
	const struct addrinfo *hints;
	struct addrinfo *res;
	int err, sys_errno;
};

static void *run_getaddrinfo(void *arg)
{
	struct gai_call *c = arg;
	c->err = getaddrinfo(c->node, c->service, c->hints, &c->res);
	c->sys_errno = errno;
	return NULL;
}

int uco_getaddrinfo(const char *node, const char *service,
                    const struct addrinfo *hints, struct addrinfo **res)
{
	if (!res || (!node && !service))
		return -EINVAL;
	struct gai_call c = { node, service, hints, NULL, 0, 0 };
	int err = uco_run_in_executor(NULL, run_getaddrinfo, &c, NULL);
	if (err) {
		/* Cancelled: the job never ran, or has ended and its
		 * answer is ours to free. */
		if (c.res)
			freeaddrinfo(c.res);
		return err;
	}
	if (c.err == EAI_SYSTEM)
		return c.sys_errno ? -c.sys_errno : -EIO;
	if (c.err == EAI_MEMORY)
		return -ENOMEM;
	if (c.err)
		return UCO_EAI_ERROR(c.err);
	*res = c.res;
	return 0;
}

const char *uco_gai_strerror(int err)
{
	int eai = err + UCO_EAI_BASE;
	if (err < 0 && eai < 0 && eai > -200)
		return gai_strerror(eai);
	return strerror(err < 0 ? -err : err);
}

int uco__inbox_create(uco_loop *loop)
{
	int err = 0;
	return loop_inbox(loop, &err) ? 0 : err;
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
	post(NULL, &call->post);
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
	post(NULL, p);
}
