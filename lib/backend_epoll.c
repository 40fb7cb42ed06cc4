/* SPDX-License-Identifier: MIT */
/*
 * The readiness backend: the loop's own thread does what the kernel does
 * with io_uring.  The SQ and CQ are memory of the loop's own, laid out as
 * liburing's, so everything above ring.c fills SQEs and is handed CQEs as
 * on io_uring (backend.h).  Each turn this engine:
 *
 *   - runs every new SQE through its opcode's entry (epoll_ops.c): a
 *     non-blocking system call that completes it, or says "would block";
 *   - parks what would block on its descriptor's epoll readiness (one-shot
 *     interest, re-armed while something waits) or, for regular files,
 *     hands it to a file worker thread, as libuv does;
 *   - keeps TIMEOUTs and linked timeouts on a heap whose earliest deadline
 *     bounds epoll_pwait2's wait;
 *   - retries the operations of every descriptor epoll reports ready, and
 *     posts a CQE for each operation that ended.
 *
 * The buffer rule holds as on io_uring: a cancelled or timed-out operation
 * is completed (-ECANCELED) only while no system call is using its buffer,
 * which on this thread is always, except for one in a worker: that one
 * answers a cancel with -EALREADY and completes when the worker is done.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epoll.h"

#define EVENTS_MAX 128
#define WORKERS_MAX 4
#define WAKE_KEY UINT64_MAX /* epoll data of the workers' eventfd */

/* The operations waiting for one descriptor: [0] to read, [1] to write. */
struct fd_waiters {
	struct uco__list q[2];
	uint32_t armed;           /* epoll interest armed (one-shot), or 0 */
	bool registered;          /* the descriptor is (believed) in the epoll set */
	bool drained;             /* the last receive emptied it (a hint) */
};

/* A provided-buffer ring lent by bufring.c: the engine takes buffers at
 * `head` as the kernel would. */
struct group {
	struct io_uring_buf_ring *ring;
	unsigned mask;
	uint16_t head;
};

struct uco__epoll {
	uco_loop *loop;
	int epfd;
	/* What liburing's SQ and CQ point to in a kernel ring. */
	unsigned sq_khead, sq_ktail, sq_kflags, sq_kdropped;
	unsigned cq_khead, cq_ktail, cq_kflags, cq_koverflow;
	/* CQEs that did not fit in the CQ, posted as it empties. */
	struct io_uring_cqe *overflow;
	size_t noverflow, overflow_cap;
	struct fd_waiters *fds;   /* indexed by descriptor */
	size_t nfds;
	struct uco__heap timers;  /* ops with a deadline, by it */
	struct eop **hash;        /* held operations by user_data */
	size_t hash_mask, hash_count;
	/* Operation records, in slabs made at set-up and as needed: a loop
	 * that keeps within its first slab never allocates in a turn, so a
	 * process short of memory does not starve operations in flight (on
	 * io_uring the kernel holds them). */
	struct eop *free_ops;     /* through hash_next */
	struct eop **slabs;
	size_t nslabs;
	struct group *groups;     /* by bgid */
	size_t ngroups;
	int *files;               /* the fixed-file table: our own dups */
	unsigned nfiles;
	bool no_pwait2;           /* epoll_pwait2 is ENOSYS: milliseconds */
	/* File workers: blocking operations, queued and finished under lock;
	 * wake_fd tells the loop something finished. */
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct uco__list queued, finished;
	pthread_t workers[WORKERS_MAX];
	unsigned nworkers, idle;
	bool stopping;
	int wake_fd;
	struct epoll_event events[EVENTS_MAX];
};

/* ------------------------------------------------------------ CQ */

static unsigned cq_room(const struct uco__epoll *ep)
{
	const struct io_uring_cq *cq = &ep->loop->ring.cq;
	return cq->ring_entries - (ep->cq_ktail - __atomic_load_n(&ep->cq_khead, __ATOMIC_ACQUIRE));
}

static void cq_write(struct uco__epoll *ep, const struct io_uring_cqe *cqe)
{
	const struct io_uring_cq *cq = &ep->loop->ring.cq;
	cq->cqes[ep->cq_ktail & cq->ring_mask] = *cqe;
	__atomic_store_n(&ep->cq_ktail, ep->cq_ktail + 1, __ATOMIC_RELEASE);
}

void uco__epoll_post(struct uco__epoll *ep, uint64_t user_data, int res, unsigned flags)
{
	if (!user_data)
		return;
	struct io_uring_cqe cqe = { .user_data = user_data, .res = res, .flags = flags };
	if (!ep->noverflow && cq_room(ep)) {
		cq_write(ep, &cqe);
		return;
	}
	if (ep->noverflow == ep->overflow_cap) {
		size_t cap = ep->overflow_cap ? ep->overflow_cap * 2 : 64;
		struct io_uring_cqe *o = realloc(ep->overflow, cap * sizeof *o);
		if (!o)
			abort(); /* a completion cannot be dropped: posters make
			          * room first (cqe_room, submit_all's -EBUSY) */
		ep->overflow = o;
		ep->overflow_cap = cap;
	}
	ep->overflow[ep->noverflow++] = cqe;
}

/* Room for n more CQEs that needs no allocation when they are posted:
 * false if the overflow list cannot grow to it (no memory). */
static bool cqe_room(struct uco__epoll *ep, size_t n)
{
	size_t room = (ep->noverflow ? 0 : cq_room(ep)) + ep->overflow_cap - ep->noverflow;
	if (room >= n)
		return true;
	size_t cap = ep->overflow_cap ? ep->overflow_cap : 64;
	while (cap < ep->noverflow + n)
		cap *= 2;
	struct io_uring_cqe *o = realloc(ep->overflow, cap * sizeof *o);
	if (!o)
		return false;
	ep->overflow = o;
	ep->overflow_cap = cap;
	return true;
}

static void flush_overflow(struct uco__epoll *ep)
{
	if (!ep->noverflow)
		return;
	size_t i = 0;
	for (; i < ep->noverflow && cq_room(ep); i++)
		cq_write(ep, &ep->overflow[i]);
	memmove(ep->overflow, ep->overflow + i, (ep->noverflow - i) * sizeof *ep->overflow);
	ep->noverflow -= i;
}

/* ------------------------------------------------------------ held operations */

static size_t hash_slot(const struct uco__epoll *ep, uint64_t data)
{
	return (size_t)((data >> 3) * UINT64_C(0x9e3779b97f4a7c15) >> 32) & ep->hash_mask;
}

static int hash_grow(struct uco__epoll *ep)
{
	size_t n = (ep->hash_mask + 1) * 2;
	struct eop **h = calloc(n, sizeof *h);
	if (!h)
		return -ENOMEM;
	struct eop **old = ep->hash;
	size_t oldn = ep->hash_mask + 1;
	ep->hash = h;
	ep->hash_mask = n - 1;
	for (size_t i = 0; i < oldn; i++)
		for (struct eop *op = old[i], *next; op; op = next) {
			next = op->hash_next;
			size_t s = hash_slot(ep, op->sqe.user_data);
			op->hash_next = h[s];
			h[s] = op;
		}
	free(old);
	return 0;
}

static int hold(struct uco__epoll *ep, struct eop *op)
{
	if (ep->hash_count >= ep->hash_mask && hash_grow(ep))
		return -ENOMEM;
	size_t s = hash_slot(ep, op->sqe.user_data);
	op->hash_next = ep->hash[s];
	ep->hash[s] = op;
	ep->hash_count++;
	return 0;
}

static void unhold(struct uco__epoll *ep, struct eop *op)
{
	for (struct eop **p = &ep->hash[hash_slot(ep, op->sqe.user_data)]; *p; p = &(*p)->hash_next)
		if (*p == op) {
			*p = op->hash_next;
			ep->hash_count--;
			return;
		}
}

static struct eop *find_held(struct uco__epoll *ep, uint64_t data)
{
	for (struct eop *op = ep->hash[hash_slot(ep, data)]; op; op = op->hash_next)
		if (op->sqe.user_data == data)
			return op;
	return NULL;
}

#define SLAB_OPS 256

static int add_slab(struct uco__epoll *ep)
{
	struct eop **slabs = realloc(ep->slabs, (ep->nslabs + 1) * sizeof *slabs);
	if (!slabs)
		return -ENOMEM;
	ep->slabs = slabs;
	struct eop *slab = malloc(SLAB_OPS * sizeof *slab);
	if (!slab)
		return -ENOMEM;
	slabs[ep->nslabs++] = slab;
	for (size_t i = 0; i < SLAB_OPS; i++) {
		slab[i].hash_next = ep->free_ops;
		ep->free_ops = &slab[i];
	}
	return 0;
}

static struct eop *op_alloc(struct uco__epoll *ep)
{
	if (!ep->free_ops && add_slab(ep))
		return NULL;
	struct eop *op = ep->free_ops;
	ep->free_ops = op->hash_next;
	return op;
}

static void op_free(struct uco__epoll *ep, struct eop *op)
{
	op->hash_next = ep->free_ops;
	ep->free_ops = op;
}

/* ------------------------------------------------------------ timers */

static struct eop *earliest(const struct uco__epoll *ep)
{
	struct uco__heap_node *n = uco__heap_min(&ep->timers);
	return n ? UCO__CONTAINER_OF(n, struct eop, timer) : NULL;
}

static int heap_add(struct uco__epoll *ep, struct eop *op)
{
	int err = uco__heap_reserve(&ep->timers, 1);
	if (!err)
		uco__heap_push(&ep->timers, &op->timer);
	return err;
}

static void heap_remove(struct uco__epoll *ep, struct eop *op)
{
	uco__heap_remove(&ep->timers, &op->timer);
	op->timer.when = -1;
}

int uco__epoll_timer_add(struct uco__epoll *ep, struct eop *op)
{
	int err = hold(ep, op);
	if (err)
		return err;
	err = heap_add(ep, op);
	if (err) {
		unhold(ep, op);
		return err;
	}
	op->where = EOP_TIMER;
	return 0;
}

/* ------------------------------------------------------------ completing */

/* The operation is over: off every structure, its CQE posted. */
static void finish(struct uco__epoll *ep, struct eop *op, int res, unsigned flags)
{
	if (op->where == EOP_FD) {
		struct fd_waiters *w = &ep->fds[op->fd];
		uco__list_remove(&w->q[op->dir], &op->link);
		/* Nobody waits: what is armed is not trusted any more (the user
		 * may close the descriptor and get its number back for another
		 * file), so the next wait arms again. */
		if (!w->q[0].head && !w->q[1].head)
			w->armed = 0;
	}
	if (op->where != EOP_NEW)
		unhold(ep, op);
	if (op->timer.when >= 0 && op->where != EOP_NEW && op->where != EOP_WORKER)
		heap_remove(ep, op);
	if (!((op->sqe.flags & IOSQE_CQE_SKIP_SUCCESS) && res >= 0))
		uco__epoll_post(ep, op->sqe.user_data, res, flags);
	op_free(ep, op);
}

/* ------------------------------------------------------------ readiness */

static int fds_reserve(struct uco__epoll *ep, int fd)
{
	if ((size_t)fd < ep->nfds)
		return 0;
	size_t n = ep->nfds ? ep->nfds : 64;
	while (n <= (size_t)fd)
		n *= 2;
	struct fd_waiters *f = realloc(ep->fds, n * sizeof *f);
	if (!f)
		return -ENOMEM;
	memset(f + ep->nfds, 0, (n - ep->nfds) * sizeof *f);
	ep->fds = f;
	ep->nfds = n;
	return 0;
}

/* What fd's waiters wait for: a read or write its direction, a poll its
 * own events. */
static uint32_t wanted(const struct uco__epoll *ep, int fd)
{
	const struct fd_waiters *w = &ep->fds[fd];
	uint32_t want = 0;
	for (int d = 0; d < 2; d++)
		for (const struct uco__link *l = w->q[d].head; l; l = l->next) {
			const struct eop *op = UCO__LIST_ENTRY(l, struct eop, link);
			want |= op->events ? op->events : d ? EPOLLOUT : EPOLLIN | EPOLLRDHUP;
		}
	return want;
}

/* Make epoll report fd once for what its waiters need.  One-shot interest:
 * a descriptor the user closes and whose number comes back for another
 * file is found again (ENOENT: added anew), never waited on stale. */
static int arm(struct uco__epoll *ep, int fd)
{
	struct fd_waiters *w = &ep->fds[fd];
	uint32_t want = wanted(ep, fd);
	if (!want || (w->armed & want) == want)
		return 0;
	struct epoll_event ev = { .events = want | EPOLLONESHOT, .data.u64 = (uint64_t)fd };
	int r = epoll_ctl(ep->epfd, w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
	if (r && errno == ENOENT)
		r = epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev);
	else if (r && errno == EEXIST)
		r = epoll_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &ev);
	if (r)
		return -errno;
	w->registered = true;
	w->armed = want;
	return 0;
}

/* Park op until its descriptor is ready: 0, or -errno (EPERM: a regular
 * file, which is always "ready" and goes to a worker instead). */
static int wait_fd(struct uco__epoll *ep, struct eop *op)
{
	if (op->fd < 0)
		return -EBADF;
	int err = fds_reserve(ep, op->fd);
	if (err)
		return err;
	err = hold(ep, op);
	if (err)
		return err;
	struct fd_waiters *w = &ep->fds[op->fd];
	uco__list_push(&w->q[op->dir], &op->link);
	op->where = EOP_FD;
	err = arm(ep, op->fd);
	if (!err && op->timer.when >= 0)
		err = heap_add(ep, op);
	if (err) {
		uco__list_remove(&w->q[op->dir], &op->link);
		/* As in finish(): with nobody waiting, what arm() just armed
		 * is not trusted (the descriptor may be closed and its number
		 * reused). */
		if (!w->q[0].head && !w->q[1].head)
			w->armed = 0;
		unhold(ep, op);
		op->where = EOP_NEW;
	}
	return err;
}

/* Hand op, its result in op->res, to the loop thread's take_finished();
 * with ep->lock held.  The eventfd is written for the first only: the
 * loop takes the whole list at once. */
static void push_finished(struct uco__epoll *ep, struct eop *op)
{
	bool first = uco__list_empty(&ep->finished);
	uco__list_push(&ep->finished, &op->link);
	if (first) {
		uint64_t one = 1;
		while (write(ep->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
			;
	}
}

/* op, waiting on its descriptor, is over with res, but the CQ is full and
 * the overflow list cannot grow: it joins the workers' finished list, whose
 * results take_finished() posts as room is made. */
static void finish_later(struct uco__epoll *ep, struct eop *op, int res)
{
	struct fd_waiters *w = &ep->fds[op->fd];
	uco__list_remove(&w->q[op->dir], &op->link);
	if (!w->q[0].head && !w->q[1].head)
		w->armed = 0;
	if (op->timer.when >= 0)
		heap_remove(ep, op);
	op->where = EOP_WORKER;
	op->res = res;
	pthread_mutex_lock(&ep->lock);
	push_finished(ep, op);
	pthread_mutex_unlock(&ep->lock);
}

/* epoll says op's descriptor changed: try it again. */
static void retry(struct uco__epoll *ep, struct eop *op)
{
	int res = 0;
	op->cflags = 0;
	enum eop_verdict v = uco__epoll_ops[op->sqe.opcode].issue(ep, op, &res);
	if (v == EOP_WAIT)
		return;
	if (v == EOP_DONE)
		finish(ep, op, res, op->cflags);
}

static void fd_ready(struct uco__epoll *ep, int fd)
{
	if ((size_t)fd >= ep->nfds)
		return;
	struct fd_waiters *w = &ep->fds[fd];
	w->armed = 0; /* one-shot: disarmed by this report */
	/* Every waiter is tried: a poll for POLLPRI must not wait behind a
	 * receive that finds no data.  Only with room for what a try posts:
	 * one that took data must post its CQE, and without memory for it
	 * the waiters wait for epoll's next report (re-armed below). */
	bool room = true;
	for (int d = 0; d < 2 && room; d++)
		UCO__LIST_EACH(l, next, &w->q[d]) {
			if (!(room = cqe_room(ep, MULTISHOT_BURST + 1)))
				break;
			retry(ep, UCO__LIST_ENTRY(l, struct eop, link));
		}
	int err = arm(ep, fd);
	if (err) {
		/* Cannot wait any more (no memory for epoll, or another thread
		 * closed the descriptor): fail the waiters rather than leave
		 * them waiting for good. */
		for (int d = 0; d < 2; d++)
			UCO__LIST_EACH(l, next, &w->q[d]) {
				struct eop *op = UCO__LIST_ENTRY(l, struct eop, link);
				if (cqe_room(ep, 1))
					finish(ep, op, err, 0);
				else
					finish_later(ep, op, err);
			}
	}
}

static void fire_timers(struct uco__epoll *ep)
{
	int64_t now = uco_now();
	/* Without memory for a CQE the rest expire at a later turn (the
	 * wait's timeout is 0 while one is due). */
	struct eop *op;
	while ((op = earliest(ep)) && op->timer.when <= now && cqe_room(ep, 1)) {
		/* A TIMEOUT expires (-ETIME); an operation whose linked timeout
		 * expired is cancelled, as io_uring does. */
		finish(ep, op, op->where == EOP_TIMER ? -ETIME : -ECANCELED, 0);
	}
}

/* ------------------------------------------------------------ cancellation */

int uco__epoll_cancel(struct uco__epoll *ep, uint64_t data, bool want_timeout)
{
	struct eop *op = find_held(ep, data);
	if (!op || (want_timeout && op->where != EOP_TIMER))
		return -ENOENT;
	if (op->where == EOP_WORKER) {
		op->cancelled = true;
		return -EALREADY;
	}
	finish(ep, op, -ECANCELED, 0);
	return 0;
}

int uco__epoll_cancel_all(struct uco__epoll *ep)
{
	int n = 0;
	for (size_t i = 0; i <= ep->hash_mask; i++)
		for (struct eop *op = ep->hash[i], *next; op; op = next) {
			next = op->hash_next;
			if (op->where != EOP_WORKER) {
				finish(ep, op, -ECANCELED, 0);
				n++;
			}
		}
	return n;
}

/* ------------------------------------------------------------ file workers */

static void *worker_main(void *arg)
{
	struct uco__epoll *ep = arg;
	pthread_mutex_lock(&ep->lock);
	for (;;) {
		struct uco__link *l;
		while (!(l = uco__list_pop(&ep->queued)) && !ep->stopping) {
			ep->idle++;
			pthread_cond_wait(&ep->work, &ep->lock);
			ep->idle--;
		}
		if (!l)
			break;
		pthread_mutex_unlock(&ep->lock);
		struct eop *op = UCO__LIST_ENTRY(l, struct eop, link);
		op->res = uco__epoll_ops[op->sqe.opcode].blocking(op);
		pthread_mutex_lock(&ep->lock);
		push_finished(ep, op);
	}
	pthread_mutex_unlock(&ep->lock);
	return NULL;
}

int uco__epoll_offload(struct uco__epoll *ep, struct eop *op)
{
	int err = hold(ep, op);
	if (err)
		return err;
	op->where = EOP_WORKER;
	pthread_mutex_lock(&ep->lock);
	uco__list_push(&ep->queued, &op->link);
	if (!ep->idle && ep->nworkers < WORKERS_MAX &&
	    uco__thread_create(&ep->workers[ep->nworkers], worker_main, ep) == 0)
		ep->nworkers++;
	pthread_cond_signal(&ep->work);
	bool stuck = !ep->nworkers;
	if (stuck)
		uco__list_remove(&ep->queued, &op->link);
	pthread_mutex_unlock(&ep->lock);
	if (stuck) {
		unhold(ep, op);
		op->where = EOP_NEW;
		return -EAGAIN; /* no thread could be made */
	}
	return 0;
}

static void take_finished(struct uco__epoll *ep)
{
	uint64_t n;
	while (read(ep->wake_fd, &n, sizeof n) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&ep->lock);
	struct uco__list done = ep->finished;
	ep->finished = (struct uco__list){ 0 };
	pthread_mutex_unlock(&ep->lock);
	/* Without memory for a CQE, the rest go back for the next turn. */
	struct uco__list later = { 0 };
	UCO__LIST_EACH(l, next, &done) {
		struct eop *op = UCO__LIST_ENTRY(l, struct eop, link);
		if (later.head || !cqe_room(ep, 1))
			uco__list_push(&later, l);
		else
			finish(ep, op, op->res, 0);
	}
	if (later.head) {
		pthread_mutex_lock(&ep->lock);
		if (ep->finished.head) {
			later.tail->next = ep->finished.head;
			ep->finished.head->prev = later.tail;
			later.tail = ep->finished.tail;
		}
		ep->finished = later;
		uint64_t one = 1;
		while (write(ep->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
			;
		pthread_mutex_unlock(&ep->lock);
	}
}

/* ------------------------------------------------------------ submission */

static int64_t timespec_deadline(const struct io_uring_sqe *sqe)
{
	const struct __kernel_timespec *ts = (const void *)(uintptr_t)sqe->addr;
	int64_t ns = (int64_t)ts->tv_sec * UCO_NS_PER_S + ts->tv_nsec;
	return (sqe->timeout_flags & IORING_TIMEOUT_ABS) ? ns : uco_now() + ns;
}

/* Try a new operation, and park it if it would block. */
static void run(struct uco__epoll *ep, struct eop *op)
{
	const struct uco__epoll_opdef *def = &uco__epoll_ops[op->sqe.opcode];
	int res = 0;
	op->cflags = 0;
	enum eop_verdict v = def->issue(ep, op, &res);
	if (v == EOP_HELD)
		return;
	if (v == EOP_WAIT) {
		res = wait_fd(ep, op);
		if (!res)
			return;
		if (res == -EPERM && def->blocking) {
			/* A regular file: epoll has nothing to say about it. */
			op->timer.when = -1;
			res = uco__epoll_offload(ep, op);
			if (!res)
				return;
		}
		op->cflags = 0;
	}
	finish(ep, op, res, op->cflags);
}

static void start(struct uco__epoll *ep, const struct io_uring_sqe *sqe,
                  const struct io_uring_sqe *link)
{
	if (!uco__epoll_ops[sqe->opcode].issue) {
		uco__epoll_post(ep, sqe->user_data, -EINVAL, 0);
		return;
	}
	struct eop *op = op_alloc(ep);
	if (!op) {
		uco__epoll_post(ep, sqe->user_data, -ENOMEM, 0);
		return;
	}
	*op = (struct eop){ .sqe = *sqe, .fd = sqe->fd, .timer.when = -1 };
	if (sqe->flags & IOSQE_FIXED_FILE) {
		unsigned index = (unsigned)sqe->fd;
		op->fd = index < ep->nfiles ? ep->files[index] : -1;
		if (op->fd < 0) {
			finish(ep, op, -EBADF, 0);
			return;
		}
	}
	if (link)
		op->timer.when = timespec_deadline(link);
	run(ep, op);
}

/* Take every SQE, as io_uring_enter does.  An SQE may complete at once:
 * room for its CQEs is made first (its own, its linked timeout's, one per
 * operation a cancel-all ends).  Where the CQ is full and the overflow
 * list cannot grow (no memory), the rest stay in the SQ and the enter says
 * -EBUSY, as the kernel does with completions it cannot post: the loop
 * reaps and submits again.  So no completion is ever dropped. */
static int submit_all(struct uco__epoll *ep)
{
	struct io_uring_sq *sq = &ep->loop->ring.sq;
	while (ep->sq_khead != sq->sqe_tail) {
		const struct io_uring_sqe *sqe = &sq->sqes[ep->sq_khead & sq->ring_mask];
		const struct io_uring_sqe *link = NULL;
		if ((sqe->flags & IOSQE_IO_LINK) && ep->sq_khead + 1 != sq->sqe_tail) {
			const struct io_uring_sqe *next = &sq->sqes[(ep->sq_khead + 1) & sq->ring_mask];
			if (next->opcode == IORING_OP_LINK_TIMEOUT)
				link = next;
		}
		size_t cqes = 2;
		if (sqe->opcode == IORING_OP_ASYNC_CANCEL &&
		    (sqe->cancel_flags & IORING_ASYNC_CANCEL_ANY))
			cqes += ep->hash_count;
		if (!cqe_room(ep, cqes))
			return -EBUSY;
		start(ep, sqe, link);
		ep->sq_khead += link ? 2 : 1;
	}
	return 0;
}

/* ------------------------------------------------------------ the backend */

/* glibc has epoll_pwait2 from 2.35 (a call the fault tests can wrap);
 * before, the system call itself. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define PWAIT2(epfd, evs, max, ts) epoll_pwait2(epfd, evs, max, ts, NULL)
#elif defined(SYS_epoll_pwait2)
#define PWAIT2(epfd, evs, max, ts) (int)syscall(SYS_epoll_pwait2, epfd, evs, max, ts, NULL, 0)
#endif

static int epoll_wait_ns(struct uco__epoll *ep, int64_t ns)
{
#ifdef PWAIT2
	if (!ep->no_pwait2) {
		struct timespec ts = { .tv_sec = ns / UCO_NS_PER_S, .tv_nsec = ns % UCO_NS_PER_S };
		int n = PWAIT2(ep->epfd, ep->events, EVENTS_MAX, ns < 0 ? NULL : &ts);
		if (n >= 0 || errno != ENOSYS)
			return n;
		ep->no_pwait2 = true; /* before 5.11 */
	}
#endif
	/* Milliseconds, rounded up: a timer never fires early. */
	int ms = ns < 0 ? -1 : (int)((ns + 999999) / 1000000 > INT32_MAX ? INT32_MAX
	                                                                : (ns + 999999) / 1000000);
	return epoll_wait(ep->epfd, ep->events, EVENTS_MAX, ms);
}

static int ep_enter(uco_loop *loop, bool wait, int64_t timeout_ns)
{
	struct uco__epoll *ep = loop->epoll;
	flush_overflow(ep);
	int err = submit_all(ep);
	if (err)
		return err;
	int64_t ns = timeout_ns;
	if (!wait || ep->cq_ktail != ep->cq_khead)
		ns = 0;
	if (ep->timers.n) {
		int64_t until = earliest(ep)->timer.when - uco_now();
		if (until < 0)
			until = 0;
		if (ns < 0 || until < ns)
			ns = until;
	}
	int n = epoll_wait_ns(ep, ns);
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		uint64_t key = ep->events[i].data.u64;
		if (key == WAKE_KEY)
			take_finished(ep);
		else
			fd_ready(ep, (int)key);
	}
	if (ep->timers.n)
		fire_timers(ep);
	return 0;
}

/* The opcodes the table covers, as a kernel probe would say. */
static void probe_opcodes(uco_loop *loop)
{
	memset(loop->opcodes, 0, sizeof loop->opcodes);
	for (unsigned op = 0; op < 256; op++)
		if (uco__epoll_ops[op].issue && uco__epoll_ops[op].name)
			loop->opcodes[op / 64] |= UINT64_C(1) << (op % 64);
}

static void ep_exit(uco_loop *loop);

static int ep_init(uco_loop *loop, unsigned entries, unsigned flags)
{
	(void)flags;
	struct uco__epoll *ep = calloc(1, sizeof *ep);
	if (!ep)
		return -ENOMEM;
	ep->loop = loop;
	loop->epoll = ep;
	ep->epfd = epoll_create1(EPOLL_CLOEXEC);
	ep->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&ep->lock, NULL);
	pthread_cond_init(&ep->work, NULL);
	ep->hash_mask = 1023;
	ep->hash = calloc(ep->hash_mask + 1, sizeof *ep->hash);
	int heap_err = uco__heap_reserve(&ep->timers, 256);
	ep->nfds = 1024;
	ep->fds = calloc(ep->nfds, sizeof *ep->fds);
	struct io_uring *ring = &loop->ring;
	memset(ring, 0, sizeof *ring);
	ring->ring_fd = ring->enter_ring_fd = -1;
	ring->sq.sqes = calloc(entries, sizeof *ring->sq.sqes);
	ring->sq.array = calloc(entries, sizeof *ring->sq.array);
	ring->cq.cqes = calloc((size_t)entries * 8, sizeof *ring->cq.cqes);
	int err = 0;
	if (ep->epfd < 0 || ep->wake_fd < 0)
		err = -errno;
	else if (!ep->hash || heap_err || !ep->fds || !ring->sq.sqes || !ring->sq.array ||
	         !ring->cq.cqes || add_slab(ep))
		err = -ENOMEM;
	if (!err) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_KEY };
		if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, ep->wake_fd, &ev))
			err = -errno;
	}
	if (err) {
		ep_exit(loop);
		return err;
	}
	ring->sq.khead = &ep->sq_khead;
	ring->sq.ktail = &ep->sq_ktail;
	ring->sq.kflags = &ep->sq_kflags;
	ring->sq.kdropped = &ep->sq_kdropped;
	ring->sq.ring_mask = entries - 1;
	ring->sq.ring_entries = entries;
	ring->sq.kring_mask = &ring->sq.ring_mask;
	ring->sq.kring_entries = &ring->sq.ring_entries;
	ring->cq.khead = &ep->cq_khead;
	ring->cq.ktail = &ep->cq_ktail;
	ring->cq.kflags = &ep->cq_kflags;
	ring->cq.koverflow = &ep->cq_koverflow;
	ring->cq.ring_mask = entries * 8 - 1;
	ring->cq.ring_entries = entries * 8;
	ring->cq.kring_mask = &ring->cq.ring_mask;
	ring->cq.kring_entries = &ring->cq.ring_entries;
	loop->enter_for_events = true; /* readiness is only seen by asking */
	probe_opcodes(loop);
	return 0;
}

static void ep_exit(uco_loop *loop)
{
	struct uco__epoll *ep = loop->epoll;
	if (!ep)
		return;
	pthread_mutex_lock(&ep->lock);
	ep->stopping = true;
	pthread_cond_broadcast(&ep->work);
	pthread_mutex_unlock(&ep->lock);
	for (unsigned i = 0; i < ep->nworkers; i++)
		pthread_join(ep->workers[i], NULL);
	/* Whatever is still held will never complete: the loop is gone. */
	for (size_t i = 0; i < ep->nslabs; i++)
		free(ep->slabs[i]);
	free(ep->slabs);
	for (unsigned i = 0; i < ep->nfiles; i++)
		if (ep->files[i] >= 0)
			close(ep->files[i]);
	if (ep->epfd >= 0)
		close(ep->epfd);
	if (ep->wake_fd >= 0)
		close(ep->wake_fd);
	pthread_mutex_destroy(&ep->lock);
	pthread_cond_destroy(&ep->work);
	free(ep->files);
	free(ep->groups);
	free(ep->hash);
	uco__heap_free(&ep->timers);
	free(ep->fds);
	free(ep->overflow);
	free(loop->ring.sq.sqes);
	free(loop->ring.sq.array);
	free(loop->ring.cq.cqes);
	memset(&loop->ring, 0, sizeof loop->ring);
	free(ep);
	loop->epoll = NULL;
}

void uco__epoll_drained_set(struct uco__epoll *ep, int fd)
{
	if (fd >= 0 && (size_t)fd < ep->nfds)
		ep->fds[fd].drained = true;
}

bool uco__epoll_drained_take(struct uco__epoll *ep, int fd)
{
	if (fd < 0 || (size_t)fd >= ep->nfds || !ep->fds[fd].drained)
		return false;
	ep->fds[fd].drained = false;
	return true;
}

void uco__epoll_forget_fd(struct uco__epoll *ep, int fd)
{
	if (fd >= 0 && (size_t)fd < ep->nfds) {
		struct fd_waiters *w = &ep->fds[fd];
		if (!w->q[0].head && !w->q[1].head)
			w->registered = false, w->armed = 0;
	}
}

/* ------------------------------------------------------------ registrations */

/* Registered files are our own duplicates, as the kernel holds its own
 * reference: the user may close the descriptor it registered. */
static int ep_files_init(uco_loop *loop, unsigned count)
{
	struct uco__epoll *ep = loop->epoll;
	ep->files = malloc(count * sizeof *ep->files);
	if (!ep->files)
		return -ENOMEM;
	for (unsigned i = 0; i < count; i++)
		ep->files[i] = -1;
	ep->nfiles = count;
	return 0;
}

static int ep_files_update(uco_loop *loop, unsigned index, int fd)
{
	struct uco__epoll *ep = loop->epoll;
	if (index >= ep->nfiles)
		return -EINVAL;
	int dup_fd = -1;
	if (fd >= 0 && (dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	if (ep->files[index] >= 0) {
		uco__epoll_forget_fd(ep, ep->files[index]);
		close(ep->files[index]);
	}
	ep->files[index] = dup_fd;
	return 0;
}

static int ep_buf_ring_register(uco_loop *loop, struct io_uring_buf_reg *reg)
{
	struct uco__epoll *ep = loop->epoll;
	unsigned entries = reg->ring_entries;
	if (!entries || (entries & (entries - 1)) || entries > 32768)
		return -EINVAL;
	if (reg->bgid >= ep->ngroups) {
		size_t n = (size_t)reg->bgid + 1;
		struct group *g = realloc(ep->groups, n * sizeof *g);
		if (!g)
			return -ENOMEM;
		memset(g + ep->ngroups, 0, (n - ep->ngroups) * sizeof *g);
		ep->groups = g;
		ep->ngroups = n;
	}
	struct group *g = &ep->groups[reg->bgid];
	if (g->ring)
		return -EEXIST;
	g->ring = (struct io_uring_buf_ring *)(uintptr_t)reg->ring_addr;
	g->mask = entries - 1;
	g->head = 0;
	return 0;
}

static int ep_buf_ring_unregister(uco_loop *loop, unsigned bgid)
{
	struct uco__epoll *ep = loop->epoll;
	if (bgid >= ep->ngroups || !ep->groups[bgid].ring)
		return -ENOENT;
	ep->groups[bgid].ring = NULL;
	return 0;
}

bool uco__epoll_buffer_peek(struct uco__epoll *ep, unsigned bgid, void **addr,
                            unsigned *len, unsigned *bid)
{
	if (bgid >= ep->ngroups || !ep->groups[bgid].ring)
		return false;
	struct group *g = &ep->groups[bgid];
	uint16_t tail = __atomic_load_n(&g->ring->tail, __ATOMIC_ACQUIRE);
	if (g->head == tail)
		return false;
	const struct io_uring_buf *b = &g->ring->bufs[g->head & g->mask];
	*addr = (void *)(uintptr_t)b->addr;
	*len = b->len;
	*bid = b->bid;
	return true;
}

void uco__epoll_buffer_take(struct uco__epoll *ep, unsigned bgid)
{
	ep->groups[bgid].head++;
}

const struct uco__backend uco__backend_epoll = {
	.name = "epoll",
	.init = ep_init,
	.exit = ep_exit,
	.enter = ep_enter,
	.files_init = ep_files_init,
	.files_update = ep_files_update,
	.buf_ring_register = ep_buf_ring_register,
	.buf_ring_unregister = ep_buf_ring_unregister,
};
