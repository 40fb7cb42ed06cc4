/* SPDX-License-Identifier: MIT */
/*
 * The executor: a pool of worker threads that run blocking calls for
 * coroutines (asyncio's run_in_executor), and the submission of jobs to it:
 * a loop's batch of the turn, bounded queues with coroutines waiting for
 * room, cancellation, shutdown.  Results go back to the owning loop through
 * its inbox (inbox.c), which is all the executor knows of a loop.
 *
 * A job lives on the waiting coroutine's stack.  That is safe because the
 * coroutine never resumes before the job is over: a queued job is unlinked
 * under the lock when its task is cancelled, and a running one is waited
 * for (its result dropped).
 *
 * Each worker has a small ring of its own, only to ring a loop's doorbell
 * with IORING_OP_MSG_RING (see inbox.c).
 *
 * Workers sleep on one condition variable and are woken one at a time.
 * At most one idle worker spins for the next job (spin_us, default 50 us)
 * before sleeping: a thread wake-up across cores costs ~23 us on the
 * development VM, most of a round trip.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "park.h"

#define DEFAULT_SPIN_US 50
#define MAX_THREADS 1024


enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DROPPED };

struct uco__job {
	struct uco__post post;
	struct uco__link link;        /* the loop's batch, or the queue under ex->lock */
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
	struct uco__link link;        /* in ex->rooms, under ex->lock */
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
	struct uco__list jobs;        /* queued, FIFO */
	size_t queued;
	unsigned sleeping;            /* workers in pthread_cond_wait */
	unsigned waking;              /* of those, signalled and not yet up */
	bool spinner;                 /* a worker is spinning */
	bool stopping;
	struct uco__list rooms;       /* coroutines waiting for room, FIFO */
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

#define JOB(l) UCO__LIST_ENTRY(l, struct uco__job, link)
#define ROOM(l) UCO__LIST_ENTRY(l, struct room_wait, link)

/* Hand a result (or a room wait's turn) back to its loop's inbox, with a
 * MSG_RING from this worker's own ring where the executor uses them. */
static void post(struct worker *w, struct uco__post *p)
{
	uco__inbox_post(p, w && w->ex->use_msg_ring ? &w->ring : NULL);
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
	while (uco__list_empty(&ex->jobs) && !ex->stopping) {
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
			if (!uco__list_empty(&ex->jobs) || ex->stopping)
				break;
		}
		if (ex->use_msg_ring)
			uco__inbox_reap_bells(&w->ring);
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
		struct uco__link *l = uco__list_pop(&ex->jobs);
		if (!l)
			break; /* stopping, and the queue is empty */
		struct uco__job *job = JOB(l);
		ex->queued--;
		__atomic_store_n(&ex->pending_hint, (unsigned)ex->queued, __ATOMIC_RELEASE);
		job->state = JOB_RUNNING;
		/* Room in a bounded queue: let one waiting coroutine retry. */
		struct uco__link *r = uco__list_pop(&ex->rooms);
		struct room_wait *rw = r ? ROOM(r) : NULL;
		if (rw)
			rw->listed = false;
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
		uco__inbox_reap_bells(&w->ring);
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
	if (loop && !uco__list_empty(&loop->batch) && loop->batch_ex == ex)
		uco__executor_flush(loop);
	pthread_mutex_lock(&ex->lock);
	ex->stopping = true;
	struct uco__list dropped = { NULL, NULL };
	if (flags & UCO_EXECUTOR_CANCEL_QUEUED) {
		uco__list_append(&dropped, &ex->jobs);
		ex->queued = 0;
		UCO__LIST_EACH(l, next, &dropped)
			JOB(l)->state = JOB_DROPPED;
	}
	/* Coroutines waiting for room retry and learn of the shutdown. */
	struct uco__list rooms = { NULL, NULL };
	uco__list_append(&rooms, &ex->rooms);
	UCO__LIST_EACH(l, next, &rooms)
		ROOM(l)->listed = false;
	pthread_cond_broadcast(&ex->work);
	pthread_mutex_unlock(&ex->lock);

	/* Through the eventfds: this thread has no ring of its own.  Once
	 * posted, an element belongs to its loop: the walk has read its
	 * successor before. */
	UCO__LIST_EACH(l, next, &dropped)
		post(NULL, &JOB(l)->post);
	UCO__LIST_EACH(l, next, &rooms)
		post(NULL, &ROOM(l)->post);
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

/* uco_task_cancel() on a task waiting for its job. */
static void cancel_job(uco_task *t)
{
	struct uco__job *job = t->wait_data;
	uco_executor *ex = job->ex;
	uco_loop *loop = t->loop;
	if (job->batched) {
		/* Still in this loop's batch: no other thread has seen it. */
		uco__list_remove(&loop->batch, &job->link);
		loop->inflight--;
		uco__wake(loop, t, -ECANCELED);
		return;
	}
	pthread_mutex_lock(&ex->lock);
	bool queued = job->state == JOB_QUEUED;
	if (queued) {
		uco__list_remove(&ex->jobs, &job->link);
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
		uco__list_remove(&ex->rooms, &rw->link);
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

/* Move the n jobs of `jobs` to the back of the queue and wake the workers
 * they need; under ex->lock. */
static void enqueue(uco_executor *ex, struct uco__list *jobs, size_t n)
{
	UCO__LIST_EACH(l, next, jobs)
		JOB(l)->state = JOB_QUEUED;
	uco__list_append(&ex->jobs, jobs);
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
	struct uco__list batch = { NULL, NULL };
	uco__list_append(&batch, &loop->batch);
	uco_executor *ex = loop->batch_ex;
	size_t n = 0;
	UCO__LIST_EACH(l, next, &batch) {
		JOB(l)->batched = false;
		n++;
	}
	pthread_mutex_lock(&ex->lock);
	bool stopping = ex->stopping;
	if (!stopping)
		enqueue(ex, &batch, n);
	pthread_mutex_unlock(&ex->lock);
	UCO__LIST_EACH(l, next, &batch) { /* stopping: refused */
		loop->inflight--;
		uco__wake(loop, JOB(l)->task, -ESHUTDOWN);
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
	uco__list_push(&ex->rooms, &rw.link);
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
	struct uco__inbox *to = loop->inbox;
	if (uco__cancel_due(self))
		return -ECANCELED;

	struct uco__job job = {
		.post.done.complete = job_done, .post.to = to,
		.ex = ex, .task = self, .fn = fn, .arg = arg,
	};
	if (!ex->queue_max && (uco__list_empty(&loop->batch) || loop->batch_ex == ex)) {
		/* Into this turn's batch, handed to the executor in one go when
		 * the turn ends (uco__executor_flush). */
		job.batched = true;
		uco__list_push(&loop->batch, &job.link);
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
		if (!err) {
			struct uco__list one = { NULL, NULL };
			uco__list_push(&one, &job.link);
			enqueue(ex, &one, 1); /* the job holds it from here */
		}
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

