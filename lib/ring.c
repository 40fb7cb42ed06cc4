/* SPDX-License-Identifier: MIT */
/*
 * The ring: SQE acquisition that never drops an operation, one submit per
 * loop turn, and the reaper.  The SQ and CQ are liburing's in both backends
 * (backend.h); the backend behind loop->backend consumes the one and fills
 * the other.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

void uco__forget_opcode(uco_loop *loop, unsigned op)
{
	loop->opcodes[op / 64] &= ~(UINT64_C(1) << (op % 64));
}

/* The user_data of c's SQE (internal.h: UCO__TASK_OP). */
static uint64_t completion_data(struct uco__completion *c)
{
	if (c->task_op)
		return (uint64_t)(uintptr_t)UCO__CONTAINER_OF(c, struct uco__op, done)->task |
		       UCO__TASK_OP;
	return (uint64_t)(uintptr_t)c;
}

/* The completion of a CQE's user_data (not 0, not LIBURING_UDATA_TIMEOUT):
 * a task's operation is its wait_data while the task waits for it. */
static struct uco__completion *data_completion(uint64_t data)
{
	if (data & UCO__TASK_OP) {
		const uco_task *t = (const uco_task *)(uintptr_t)(data & ~UCO__TASK_OP);
		return &((struct uco__op *)t->wait_data)->done;
	}
	return (struct uco__completion *)(uintptr_t)data;
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
	loop->backend->enter(loop, false, -1);
	for (int waits = 0;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(ring, head, cqe) {
			n++;
			if (cqe->user_data == (uintptr_t)&cancel) {
				cancel_res = cqe->res;
				continue;
			}
			if (!cqe->user_data || cqe->user_data == LIBURING_UDATA_TIMEOUT)
				continue;
			struct uco__completion *c = data_completion(cqe->user_data);
			if (c->res_is_fd && cqe->res >= 0)
				close(cqe->res);
			if (!(cqe->flags & IORING_CQE_F_MORE) && !c->uncounted)
				loop->inflight--;
		}
		io_uring_cq_advance(ring, n);
		if (!loop->inflight || cancel_res == -EINVAL || (n == 0 && ++waits > 20))
			break;
		loop->backend->enter(loop, true, 10 * 1000 * 1000);
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

/*
 * The CQE of a task's operation (io.c): its res becomes the task's wake
 * result, and the task is queued at the final CQE (a zero-copy send
 * posts its result with F_MORE, then a notification, F_NOTIF, once the
 * kernel is done with the buffer: the result stays, the task resumes
 * only then).  Only stores to the task, unless a cancel request waits in
 * loop->cancels (internal.h says why).
 */
static void task_op_done(uco_loop *loop, uint64_t data, const struct io_uring_cqe *cqe)
{
	uco_task *t = (uco_task *)(uintptr_t)(data & ~UCO__TASK_OP);
	unsigned flags = cqe->flags;
	if (!(flags & IORING_CQE_F_NOTIF))
		t->wake_result = cqe->res;
	if (flags & IORING_CQE_F_MORE)
		return;
	loop->inflight--;
	if (__builtin_expect(loop->cancels != NULL, 0)) {
		struct uco__completion *c = data_completion(data);
		if (c->cancel_queued)
			unqueue_cancel(loop, c);
	}
	t->run_state = UCO__READY;
	uco__ready_push(loop, t);
}

/* Hand one CQE to its completion. */
static void dispatch(uco_loop *loop, const struct io_uring_cqe *cqe)
{
	uint64_t data = cqe->user_data;
	/* 0: fire-and-forget SQEs; LIBURING_UDATA_TIMEOUT: the timeout SQE
	 * liburing itself adds to a timed wait on kernels without EXT_ARG. */
	if (data == 0 || data == LIBURING_UDATA_TIMEOUT)
		return;
	if (data & UCO__TASK_OP) {
		task_op_done(loop, data, cqe);
		return;
	}
	struct uco__completion *c = (struct uco__completion *)(uintptr_t)data;
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		if (!c->uncounted)
			loop->inflight--;
		if (c->cancel_queued)
			unqueue_cancel(loop, c);
	}
	c->complete(loop, c, cqe);
}

/* Every CQE there is, the CQ's tail read once a batch rather than once a
 * CQE (io_uring_for_each_cqe) and no CQE32 test (uco never asks for
 * CQE32).  A completion may submit (a full SQ), which can post more
 * CQEs: another batch then. */
static unsigned reap(uco_loop *loop)
{
	struct io_uring_cq *cq = &loop->ring.cq;
	unsigned n = 0;

	loop->reaping = true;
	for (;;) {
		unsigned head = *cq->khead;
		unsigned tail = io_uring_smp_load_acquire(cq->ktail);
		if (head == tail)
			break;
		for (unsigned i = head; i != tail; i++)
			dispatch(loop, &cq->cqes[i & cq->ring_mask]);
		io_uring_smp_store_release(cq->khead, tail);
		n += tail - head;
	}
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
		int ret = loop->backend->enter(loop, false, -1);
		count_submit(loop, pending);
		if (ret >= 0)
			return 0;
		if ((ret != -EBUSY && ret != -EAGAIN) || loop->reaping)
			return ret;
		reap(loop); /* the enter posted what overflowed: make room */
	}
	return -EBUSY;
}

int uco__ring_submit_now(uco_loop *loop)
{
	unsigned pending = io_uring_sq_ready(&loop->ring);
	int ret = loop->backend->enter(loop, false, -1);
	count_submit(loop, pending);
	return ret;
}

/* With SQPOLL (io_uring backend, UCO_LOOP_SQPOLL), what a submit handed
 * over leaves the SQ only when the kernel's SQ thread takes it: wait for
 * room for n (IORING_ENTER_SQ_WAIT while it is full; the thread is awake
 * then, so the rest is soon). */
static void sqpoll_room(uco_loop *loop, unsigned n)
{
	if (!(loop->features & UCO_RING_SQPOLL))
		return;
	for (int spins = 0; io_uring_sq_space_left(&loop->ring) < n && spins < 100000; spins++)
		if (io_uring_sq_space_left(&loop->ring) == 0 && io_uring_sqring_wait(&loop->ring) < 0)
			return;
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
		io_uring_prep_cancel64(sqe, completion_data(c), 0);
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
		io_uring_prep_cancel64(sqe, completion_data(c), 0);
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
	if (loop->cancels)
		send_queued_cancels(loop);
	unsigned pending = io_uring_sq_ready(&loop->ring);
	int ret = 0;
	if (wait || pending || (loop->enter_for_events && loop->inflight)) {
		ret = loop->backend->enter(loop, wait, timeout_ns);
		count_submit(loop, pending);
	}
	if (ret == -EBUSY || ret == -EAGAIN)
		ret = 0; /* the reap below makes room; the next turn retries */
	reap(loop);
	return ret;
}
