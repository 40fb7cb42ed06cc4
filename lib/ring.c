/* SPDX-License-Identifier: MIT */
/*
 * The ring: set-up with the best flags the kernel accepts, SQE acquisition
 * that never drops an operation, one submit per loop turn, and the reaper.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* Tried in order; -EINVAL means "this kernel lacks a flag", so take the
 * next, simpler set (liburing's src/setup.c, Photon and helio do the same). */
static const struct ring_variant {
	unsigned setup_flags;
	unsigned features;
} variants[] = {
	{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, /* 6.1 */
	  UCO_RING_SINGLE_ISSUER | UCO_RING_DEFER_TASKRUN },
	{ IORING_SETUP_COOP_TASKRUN, UCO_RING_COOP_TASKRUN }, /* 5.19 */
	{ 0, 0 },
};

/* Which opcodes the kernel has.  Without IORING_REGISTER_PROBE (before
 * 5.6: -EINVAL) assume what 5.5 had: NOP through CONNECT.  Any other
 * failure (no memory) fails the set-up: a loop that guessed instead would
 * refuse most operations with -EOPNOTSUPP for the whole of its life.
 * (io_uring_get_probe_ring() says NULL for both, so it is not used.) */
static int probe_opcodes(uco_loop *loop)
{
	struct io_uring_probe *probe =
		calloc(1, sizeof *probe + 256 * sizeof(struct io_uring_probe_op));
	if (!probe)
		return -ENOMEM;
	int err = io_uring_register_probe(&loop->ring, probe, 256);
	memset(loop->opcodes, 0, sizeof loop->opcodes);
	if (err == -EINVAL) {
		for (unsigned op = 0; op <= IORING_OP_CONNECT; op++)
			loop->opcodes[op / 64] |= UINT64_C(1) << (op % 64);
		err = 0;
	} else if (err >= 0) {
		for (unsigned op = 0; op <= probe->last_op && op < 256; op++)
			if (io_uring_opcode_supported(probe, (int)op))
				loop->opcodes[op / 64] |= UINT64_C(1) << (op % 64);
		err = 0;
	}
	free(probe);
	return err;
}

void uco__forget_opcode(uco_loop *loop, unsigned op)
{
	loop->opcodes[op / 64] &= ~(UINT64_C(1) << (op % 64));
}

/* ------------------------------------------------------------ polling */

/*
 * UCO_LOOP_SQPOLL and UCO_LOOP_NAPI, opt-in (each spends CPU to save
 * latency or system calls: docs/polling.md).  With SQPOLL a kernel thread
 * takes SQEs from the ring as they come: io_uring_submit() then only wakes
 * it when it went to sleep (liburing checks IORING_SQ_NEED_WAKEUP), and a
 * full SQ empties only when that thread gets to it (sqpoll_room).  The
 * task-running modes are IPI tuning that SQPOLL replaces: the kernel
 * refuses DEFER_TASKRUN and COOP_TASKRUN with it, so each variant keeps
 * only SINGLE_ISSUER.
 */
#define SQPOLL_IDLE_MS_DEFAULT 1000 /* the kernel's own default */
#define NAPI_BUSY_POLL_US_DEFAULT 50 /* the usual net.core.busy_poll */

static void poll_params(const uco_loop *loop, unsigned flags, struct io_uring_params *p)
{
	if (!(flags & UCO_LOOP_SQPOLL))
		return;
	p->flags &= ~(IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN);
	p->flags |= IORING_SETUP_SQPOLL;
	p->sq_thread_idle = loop->busy_poll_us ? (loop->busy_poll_us + 999) / 1000
	                                       : SQPOLL_IDLE_MS_DEFAULT;
}

/* io_uring_register_napi (6.9) is newer than liburing 2.3: its opcode and
 * argument (struct io_uring_napi, 16 bytes; the later opcode/op_param
 * fields are zero for "register, dynamic tracking"). */
#ifndef IORING_REGISTER_NAPI
#define IORING_REGISTER_NAPI 27
#endif
struct napi_arg {
	uint32_t busy_poll_to;    /* microseconds */
	uint8_t prefer_busy_poll;
	uint8_t pad[3];
	uint64_t resv;
};

static int register_napi(uco_loop *loop, unsigned busy_poll_us)
{
	struct napi_arg arg = { .busy_poll_to = busy_poll_us };
	long r = syscall(__NR_io_uring_register, loop->ring.ring_fd, IORING_REGISTER_NAPI, &arg, 1);
	/* Unknown opcode before 6.9: -EINVAL; built without busy polling:
	 * -EOPNOTSUPP. */
	if (r < 0)
		return errno == EINVAL ? -EOPNOTSUPP : -errno;
	return 0;
}

/* After the set-up: say what runs, and register NAPI busy polling. */
static int poll_options(uco_loop *loop, unsigned flags)
{
	if (flags & UCO_LOOP_SQPOLL)
		loop->features = (loop->features & ~(unsigned)(UCO_RING_DEFER_TASKRUN |
		                                                 UCO_RING_COOP_TASKRUN)) |
		                 UCO_RING_SQPOLL;
	if (flags & UCO_LOOP_NAPI) {
		int err = register_napi(loop, loop->busy_poll_us ? loop->busy_poll_us
		                                                  : NAPI_BUSY_POLL_US_DEFAULT);
		if (err)
			return err;
		loop->features |= UCO_RING_NAPI;
	}
	return 0;
}

/* With SQPOLL, what io_uring_submit() handed over leaves the SQ only when
 * the SQ thread takes it: wait for room for n (IORING_ENTER_SQ_WAIT while
 * it is full; the thread is awake then, so the rest is soon). */
static void sqpoll_room(uco_loop *loop, unsigned n)
{
	if (!(loop->features & UCO_RING_SQPOLL))
		return;
	for (int spins = 0; io_uring_sq_space_left(&loop->ring) < n && spins < 100000; spins++)
		if (io_uring_sq_space_left(&loop->ring) == 0 && io_uring_sqring_wait(&loop->ring) < 0)
			return;
}

int uco__ring_init(uco_loop *loop, unsigned entries, unsigned flags)
{
	int err = -EINVAL;
	size_t first = (flags & UCO_LOOP_PLAIN_RING) ? 2 : 0;

	for (size_t i = first; i < sizeof variants / sizeof variants[0]; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		/* A CQ much larger than the SQ: completions of operations
		 * submitted over many turns must fit (libuv #4598). */
		p.flags = variants[i].setup_flags | IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 8;
		poll_params(loop, flags, &p);
		err = io_uring_queue_init_params(entries, &loop->ring, &p);
		if (err == -EINVAL) {
			/* CQSIZE itself is 5.5+: try once more without it. */
			memset(&p, 0, sizeof p);
			p.flags = variants[i].setup_flags;
			poll_params(loop, flags, &p);
			err = io_uring_queue_init_params(entries, &loop->ring, &p);
		}
		if (err == -EINVAL)
			continue;
		if (err)
			return err;
		loop->features |= variants[i].features;
		/* Saves an fd lookup per io_uring_enter; 5.18+, optional. */
		io_uring_register_ring_fd(&loop->ring);
		err = probe_opcodes(loop);
		if (!err)
			err = poll_options(loop, flags);
		if (err)
			io_uring_queue_exit(&loop->ring);
		return err;
	}
	/* Every variant refused: with SQPOLL asked for, it is what is missing
	 * (the same variants without it make the default loop). */
	return err == -EINVAL && (flags & UCO_LOOP_SQPOLL) ? -EOPNOTSUPP : err;
}

void uco__ring_exit(uco_loop *loop)
{
	io_uring_queue_exit(&loop->ring);
}

/*
 * The loop is closing: nothing will hand completions over any more, and the
 * descriptors that accepts (the acceptor's multishot above all) and opens
 * completed for nobody would stay open in the process.  On a plain ring the
 * kernel completes an accept as soon as a client connects, whether or not
 * the loop reaps again.  So cancel everything still in flight (5.19+), then
 * read the CQEs until the counted work is over, closing every descriptor
 * they carry.  Bounded: where the cancel is refused, or something in
 * flight does not end, the ring's teardown has the last word.
 */
void uco__ring_drain(uco_loop *loop)
{
	struct io_uring *ring = &loop->ring;
	struct uco__completion cancel = { 0 };
	int cancel_res = 1; /* not answered yet */
	struct io_uring_sqe *sqe = uco__sqe_get(loop, NULL);
	if (sqe) {
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		io_uring_sqe_set_data(sqe, &cancel);
	}
	io_uring_submit_and_get_events(ring);
	for (int waits = 0;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(ring, head, cqe) {
			n++;
			struct uco__completion *c = (struct uco__completion *)(uintptr_t)cqe->user_data;
			if (c == &cancel) {
				cancel_res = cqe->res;
				continue;
			}
			if (!c || cqe->user_data == LIBURING_UDATA_TIMEOUT)
				continue;
			if (c->res_is_fd && cqe->res >= 0)
				close(cqe->res);
			if (!(cqe->flags & IORING_CQE_F_MORE) && !c->uncounted)
				loop->inflight--;
		}
		io_uring_cq_advance(ring, n);
		if (!loop->inflight || cancel_res == -EINVAL || (n == 0 && ++waits > 20))
			break;
		struct __kernel_timespec ts = { .tv_nsec = 10 * 1000 * 1000 };
		io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	}
}

/* An operation with a cancel request still queued ended on its own: the
 * request goes, before the memory it points to may. */
static void unqueue_cancel(uco_loop *loop, struct uco__completion *c)
{
	for (struct uco__completion **p = &loop->cancels; *p; p = &(*p)->next_cancel)
		if (*p == c) {
			*p = c->next_cancel;
			break;
		}
	c->cancel_queued = false;
}

/* Hand one CQE to its completion. */
static void dispatch(uco_loop *loop, const struct io_uring_cqe *cqe)
{
	uint64_t data = cqe->user_data;
	/* 0: fire-and-forget SQEs; LIBURING_UDATA_TIMEOUT: the timeout SQE
	 * liburing itself adds to a timed wait on kernels without EXT_ARG. */
	if (data == 0 || data == LIBURING_UDATA_TIMEOUT)
		return;
	struct uco__completion *c = (struct uco__completion *)(uintptr_t)data;
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		if (!c->uncounted)
			loop->inflight--;
		if (c->cancel_queued)
			unqueue_cancel(loop, c);
	}
	c->complete(loop, c, cqe);
}

static unsigned reap(uco_loop *loop)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	loop->reaping = true;
	io_uring_for_each_cqe(&loop->ring, head, cqe) {
		dispatch(loop, cqe);
		n++;
	}
	io_uring_cq_advance(&loop->ring, n);
	loop->reaping = false;
	loop->stats.cqes_reaped += n;
	return n;
}

/* Count one io_uring_enter and the SQEs it consumed: the kernel moves the
 * SQ head past what it took, whatever the call returned. */
static void count_submit(uco_loop *loop, unsigned pending)
{
	unsigned left = io_uring_sq_ready(&loop->ring);
	loop->stats.submit_calls++;
	loop->submit_generation++;
	if (left < pending)
		loop->stats.sqes_submitted += pending - left;
}

/* Push what is in the SQ to the kernel without waiting.  -EBUSY means the
 * kernel holds overflowed completions it cannot post: reap and retry. */
static int submit_pending(uco_loop *loop)
{
	for (int tries = 0; tries < 3; tries++) {
		unsigned pending = io_uring_sq_ready(&loop->ring);
		int ret = io_uring_submit(&loop->ring);
		count_submit(loop, pending);
		if (ret >= 0 || ret == -EINTR)
			return 0;
		if ((ret != -EBUSY && ret != -EAGAIN) || loop->reaping)
			return ret;
		io_uring_get_events(&loop->ring);
		reap(loop);
	}
	return -EBUSY;
}

int uco__ring_submit_now(uco_loop *loop)
{
	unsigned pending = io_uring_sq_ready(&loop->ring);
	int ret = io_uring_submit(&loop->ring);
	count_submit(loop, pending);
	return ret < 0 ? ret : 0;
}

struct io_uring_sqe *uco__sqe_get(uco_loop *loop, struct uco__completion *c)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
	if (!sqe) {
		/* The SQ is full: hand it to the kernel, then take the SQE
		 * again, so that no operation is ever dropped. */
		if (submit_pending(loop) < 0)
			return NULL;
		sqpoll_room(loop, 1);
		sqe = io_uring_get_sqe(&loop->ring);
		if (!sqe)
			return NULL;
	}
	io_uring_sqe_set_data(sqe, c);
	if (c && !c->uncounted)
		loop->inflight++;
	return sqe;
}

/*
 * A cancellation is a request the task waits on (it resumes only at its
 * operation's CQE), so losing one would leave the task waiting for good.
 * When the kernel refuses submissions (-EBUSY, -EAGAIN, -ENOMEM) no SQE can
 * be had: the request is queued on the loop, intrusively (queueing cannot
 * fail), and uco__ring_turn() sends the queue first thing.
 */
void uco__cancel_request(uco_loop *loop, struct uco__completion *c)
{
	if (c->cancel_queued)
		return;
	struct io_uring_sqe *sqe = uco__sqe_get(loop, NULL);
	if (sqe) {
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)c, 0);
		return;
	}
	c->cancel_queued = true;
	c->next_cancel = loop->cancels;
	loop->cancels = c;
}

static void send_queued_cancels(uco_loop *loop)
{
	while (loop->cancels) {
		struct io_uring_sqe *sqe = uco__sqe_get(loop, NULL);
		if (!sqe)
			return; /* still refused: next turn */
		struct uco__completion *c = loop->cancels;
		loop->cancels = c->next_cancel;
		c->cancel_queued = false;
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)c, 0);
	}
}

int uco__sqe_reserve(uco_loop *loop, unsigned n)
{
	if (io_uring_sq_space_left(&loop->ring) >= n)
		return 0;
	int err = submit_pending(loop);
	if (err < 0)
		return err;
	sqpoll_room(loop, n);
	return io_uring_sq_space_left(&loop->ring) >= n ? 0 : -EAGAIN;
}

int uco__ring_turn(uco_loop *loop, bool wait, int64_t timeout_ns)
{
	struct io_uring *ring = &loop->ring;
	if (loop->cancels)
		send_queued_cancels(loop);
	unsigned pending = io_uring_sq_ready(ring);
	int ret = 0;

	if (wait) {
		struct io_uring_cqe *cqe;
		if (timeout_ns >= 0) {
			struct __kernel_timespec ts = {
				.tv_sec = timeout_ns / UCO_NS_PER_S,
				.tv_nsec = timeout_ns % UCO_NS_PER_S,
			};
			ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
		} else {
			ret = io_uring_submit_and_wait(ring, 1);
		}
		count_submit(loop, pending);
	} else if (pending || ((loop->features & UCO_RING_DEFER_TASKRUN) && loop->inflight)) {
		/* With DEFER_TASKRUN, completions are only posted when we ask
		 * for events: do it in the same call as the submit. */
		ret = (loop->features & UCO_RING_DEFER_TASKRUN)
		      ? io_uring_submit_and_get_events(ring)
		      : io_uring_submit(ring);
		count_submit(loop, pending);
	}
	/* Interrupted or timed out waits are normal; what was submitted was
	 * counted, and whatever completed is reaped below. */
	if (ret == -EINTR || ret == -ETIME)
		ret = 0;
	if (ret == -EBUSY || ret == -EAGAIN)
		ret = 0; /* the reap below makes room; the next turn retries */
	reap(loop);
	return ret < 0 ? ret : 0;
}
