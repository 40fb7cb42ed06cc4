/* SPDX-License-Identifier: MIT */
/*
 * IO operations: one SQE each (plus a linked timeout for a deadline), the
 * calling coroutine parked until the operation's own CQE.
 *
 * The buffer rule: a coroutine resumes only at its operation's CQE, even
 * when cancelled (IORING_OP_ASYNC_CANCEL is only a request: the kernel may
 * still complete the operation) or timed out (the linked timeout cancels
 * it, and its CQE follows).  So the kernel never writes into memory the
 * coroutine got back, and a result the kernel produced is never dropped:
 * if the operation completed, its result is returned even past the deadline
 * (liburing #1422: a linked timeout can race a completed read).
 */
#include <errno.h>
#include <fcntl.h>

#include "internal.h"

struct op {
	struct uco__completion done;
	uco_task *task;
	int res;
	bool cancel_sent;
	struct __kernel_timespec deadline; /* read by the kernel at submit */
};

static void op_done(uco_loop *loop, struct uco__completion *c,
                    const struct io_uring_cqe *cqe)
{
	struct op *op = UCO__CONTAINER_OF(c, struct op, done);
	op->res = cqe->res;
	uco__wake(loop, op->task, cqe->res == -ECANCELED && op->cancel_sent ? -ECANCELED : 0);
}

/* uco_task_cancel() on a task in an operation: ask the kernel to cancel
 * it; the task resumes at the operation's CQE, whatever it says. */
static void cancel_op(uco_task *t)
{
	struct op *op = t->wait_data;
	struct io_uring_sqe *sqe = uco__sqe_get(t->loop, NULL);
	if (!sqe)
		return; /* no SQE: the operation completes on its own */
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&op->done, 0);
	op->cancel_sent = true;
}

/*
 * Start an operation: returns its SQE (user_data set), or NULL with *err.
 * With a deadline, room for the linked timeout is reserved too.
 */
static struct io_uring_sqe *op_start(struct op *op, int64_t deadline, int *err)
{
	uco_task *self = uco__self();
	if (!self) {
		*err = -EPERM;
		return NULL;
	}
	if (uco__cancel_due(self)) {
		*err = -ECANCELED;
		return NULL;
	}
	*op = (struct op){ .done.complete = op_done, .task = self };
	*err = uco__sqe_reserve(self->loop, deadline >= 0 ? 2 : 1);
	if (*err)
		return NULL;
	return uco__sqe_get(self->loop, &op->done);
}

/* Submit-side end of an operation whose SQE is prepared: link the
 * deadline, park until the CQE, and say what happened. */
static int op_wait(struct op *op, struct io_uring_sqe *sqe, int64_t deadline)
{
	uco_task *self = op->task;
	uco_loop *loop = self->loop;
	if (deadline >= 0) {
		sqe->flags |= IOSQE_IO_LINK;
		op->deadline.tv_sec = deadline / UCO_NS_PER_S;
		op->deadline.tv_nsec = deadline % UCO_NS_PER_S;
		/* Reserved by op_start(): the chain is never split. */
		struct io_uring_sqe *t = uco__sqe_get(loop, NULL);
		io_uring_prep_link_timeout(t, &op->deadline, IORING_TIMEOUT_ABS);
	}
	self->wait_data = op;
	int r = uco__park(loop, self, cancel_op);
	if (r == -ECANCELED)
		return -ECANCELED; /* our cancel, and the kernel did cancel */
	if (deadline >= 0 && (op->res == -ECANCELED || op->res == -EINTR) && !op->cancel_sent &&
	    uco_now() >= deadline)
		return -ETIMEDOUT;
	return op->res;
}

#define OP_BEGIN(deadline)                                     \
	struct op op;                                          \
	int err;                                               \
	struct io_uring_sqe *sqe = op_start(&op, (deadline), &err); \
	if (!sqe)                                              \
		return err

ssize_t uco_read_dl(int fd, void *buf, size_t len, int64_t offset, int64_t deadline)
{
	OP_BEGIN(deadline);
	io_uring_prep_read(sqe, fd, buf, (unsigned)(len > 0x7ffff000 ? 0x7ffff000 : len),
	                   (uint64_t)offset);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_write_dl(int fd, const void *buf, size_t len, int64_t offset, int64_t deadline)
{
	OP_BEGIN(deadline);
	io_uring_prep_write(sqe, fd, buf, (unsigned)(len > 0x7ffff000 ? 0x7ffff000 : len),
	                    (uint64_t)offset);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_recv_dl(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
	OP_BEGIN(deadline);
	io_uring_prep_recv(sqe, fd, buf, len, flags);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_send_dl(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
	OP_BEGIN(deadline);
	io_uring_prep_send(sqe, fd, buf, len, flags);
	return op_wait(&op, sqe, deadline);
}

int uco_accept_dl(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                  int64_t deadline)
{
	OP_BEGIN(deadline);
	io_uring_prep_accept(sqe, fd, addr, addrlen, flags);
	return op_wait(&op, sqe, deadline);
}

int uco_connect_dl(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t deadline)
{
	OP_BEGIN(deadline);
	io_uring_prep_connect(sqe, fd, addr, addrlen);
	return op_wait(&op, sqe, deadline);
}

int uco_poll_dl(int fd, unsigned events, int64_t deadline)
{
	OP_BEGIN(deadline);
	io_uring_prep_poll_add(sqe, fd, events);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_read(int fd, void *buf, size_t len, int64_t offset)
{
	return uco_read_dl(fd, buf, len, offset, UCO_FOREVER);
}

ssize_t uco_write(int fd, const void *buf, size_t len, int64_t offset)
{
	return uco_write_dl(fd, buf, len, offset, UCO_FOREVER);
}

ssize_t uco_recv(int fd, void *buf, size_t len, int flags)
{
	return uco_recv_dl(fd, buf, len, flags, UCO_FOREVER);
}

ssize_t uco_send(int fd, const void *buf, size_t len, int flags)
{
	return uco_send_dl(fd, buf, len, flags, UCO_FOREVER);
}

int uco_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	return uco_accept_dl(fd, addr, addrlen, flags, UCO_FOREVER);
}

int uco_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	return uco_connect_dl(fd, addr, addrlen, UCO_FOREVER);
}

int uco_poll(int fd, unsigned events)
{
	return uco_poll_dl(fd, events, UCO_FOREVER);
}

int uco_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	OP_BEGIN(UCO_FOREVER);
	io_uring_prep_openat(sqe, dirfd, path, flags, mode);
	return op_wait(&op, sqe, UCO_FOREVER);
}

int uco_close(int fd)
{
	OP_BEGIN(UCO_FOREVER);
	io_uring_prep_close(sqe, fd);
	return op_wait(&op, sqe, UCO_FOREVER);
}

int uco_fsync(int fd, int datasync)
{
	OP_BEGIN(UCO_FOREVER);
	io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
	return op_wait(&op, sqe, UCO_FOREVER);
}
