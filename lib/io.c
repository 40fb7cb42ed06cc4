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
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "park.h"

static void describe_op(const uco_task *t, char *buf, size_t len)
{
	const struct uco__op *op = t->wait_data;
	const char *name = uco__op_name(op->opcode);
	int n = name ? snprintf(buf, len, "%s", name)
	             : snprintf(buf, len, "opcode %u", (unsigned)op->opcode);
	if (op->fd >= 0 && (size_t)n < len)
		n += (op->fd & UCO_FIXED_FD)
		     ? snprintf(buf + n, len - (size_t)n, " fixed file %d", op->fd & ~UCO_FIXED_FD)
		     : snprintf(buf + n, len - (size_t)n, " fd %d", op->fd);
	if (op->cancel_sent && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", cancel requested");
}

static const struct uco__wait_kind io_kind = { "io", describe_op };

/* uco_close()'s completion (the other operations' CQEs go to their task
 * directly: ring.c, UCO__TASK_OP). */
static void op_done(uco_loop *loop, struct uco__completion *c,
                    const struct io_uring_cqe *cqe)
{
	struct uco__op *op = UCO__CONTAINER_OF(c, struct uco__op, done);
	op->res = cqe->res;
	uco__wake(loop, op->task, 0);
}

/* uco_task_cancel() on a task in an operation: ask the kernel to cancel
 * it; the task resumes at the operation's CQE, whatever it says. */
static void cancel_op(uco_task *t)
{
	struct uco__op *op = t->wait_data;
	uco__cancel_request(t->loop, &op->done);
	op->cancel_sent = true;
}

/* An SQE, if the SQ has room for `need` (NULL: ring.c makes room):
 * liburing's io_uring_get_sqe() with the SQ head read once, and without
 * its per-call tests of the ring's flags (no SQE128 ring here; the
 * acquiring read SQPOLL needs is a plain load on x86). */
static inline struct io_uring_sqe *sqe_take(struct io_uring_sq *sq, unsigned need)
{
	unsigned tail = sq->sqe_tail;
	if (tail + need - io_uring_smp_load_acquire(sq->khead) > sq->ring_entries)
		return NULL;
	sq->sqe_tail = tail + 1;
	return &sq->sqes[tail & sq->ring_mask];
}

/*
 * Start an operation of `opcode`: returns its SQE (user_data set), or NULL
 * with *err (-EOPNOTSUPP where the kernel lacks the opcode, or the linked
 * timeout a deadline needs).  With a deadline, room for the linked timeout
 * is reserved too.
 *
 * Inline into each call (`opcode` a constant there), as is op_wait(): a
 * 4 KiB read of a cached file costs ~1.3 us, and uco's own part of it was
 * ~450 instructions against a hand-written liburing loop's ~90 (callgrind),
 * the calls, checks and frames between uco_read() and the switch a good
 * part of them.  The SQE is taken here with liburing's inline
 * io_uring_get_sqe(); ring.c's calls only when the SQ lacks room.
 */
static inline __attribute__((always_inline)) struct io_uring_sqe *
op_start(struct uco__op *op, unsigned opcode, int64_t deadline, int *err)
{
	uco_task *self = uco__self();
	if (!self) {
		*err = -EPERM;
		return NULL;
	}
	uco_loop *loop = self->loop;
	if (!uco__has_op(loop, opcode) ||
	    (deadline >= 0 && !uco__has_op(loop, IORING_OP_LINK_TIMEOUT))) {
		*err = -EOPNOTSUPP;
		return NULL;
	}
	if (uco__cancel_due(self)) {
		*err = -ECANCELED;
		return NULL;
	}
	op->done.complete = NULL; /* the reaper wakes the task itself */
	op->done.uncounted = false;
	op->done.res_is_fd = opcode == IORING_OP_ACCEPT || opcode == IORING_OP_OPENAT ||
	                     opcode == IORING_OP_SOCKET;
	op->done.cancel_queued = false;
	op->done.task_op = true;
	op->task = self;
	op->cancel_sent = false;
	op->opcode = (uint8_t)opcode;
	/* Room for the whole chain (an operation and its linked timeout
	 * must not be split by a submit in their middle). */
	unsigned need = deadline >= 0 ? 2 : 1;
	struct io_uring_sqe *sqe = sqe_take(&loop->ring.sq, need);
	if (__builtin_expect(!sqe, 0)) {
		*err = uco__sqe_reserve(loop, need);
		if (*err)
			return NULL;
		sqe = sqe_take(&loop->ring.sq, need);
		if (!sqe)
			return (*err = -EBUSY), NULL; /* reserved above: never */
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)self | UCO__TASK_OP);
	loop->inflight++; /* as uco__sqe_get() counts an SQE */
	return sqe;
}

/* Submit-side end of an operation whose SQE is prepared: link the
 * deadline, park until the CQE, and say what happened. */
static inline __attribute__((always_inline)) int op_wait(struct uco__op *op,
                                                         struct io_uring_sqe *sqe,
                                                         int64_t deadline)
{
	uco_task *self = op->task;
	uco_loop *loop = self->loop;
	op->fd = sqe->fd; /* as the caller gave it: a fixed handle shows as one */
	if (sqe->fd >= 0 && (sqe->fd & UCO_FIXED_FD)) {
		sqe->fd &= ~UCO_FIXED_FD; /* a registered file's index */
		sqe->flags |= IOSQE_FIXED_FILE;
	}
	if (deadline >= 0) {
		sqe->flags |= IOSQE_IO_LINK;
		op->deadline.tv_sec = deadline / UCO_NS_PER_S;
		op->deadline.tv_nsec = deadline % UCO_NS_PER_S;
		/* Reserved by op_start(): the chain is never split. */
		struct io_uring_sqe *t = uco__sqe_get(loop, NULL);
		io_uring_prep_link_timeout(t, &op->deadline, IORING_TIMEOUT_ABS);
	}
	uco__sq_publish(loop); /* its SQEs are whole: SQPOLL may start now */
	self->wait_data = op;
	uco__park_only(loop, self, &io_kind, cancel_op);
	/* The reaper (ring.c) stored the final CQE's res as the wake result
	 * (a zero-copy send: its first CQE's). */
	int res = self->wake_result;
	if (res == -ECANCELED && op->cancel_sent) {
		self->cancelling = false; /* delivered */
		return -ECANCELED; /* our cancel, and the kernel did cancel */
	}
	if (deadline >= 0 && (res == -ECANCELED || res == -EINTR) && !op->cancel_sent &&
	    uco_now() >= deadline)
		return -ETIMEDOUT;
	return res;
}

/* The same two steps for the operations of other files (internal.h). */
struct io_uring_sqe *uco__op_start(struct uco__op *op, unsigned opcode, int64_t deadline,
                                   int *err)
{
	return op_start(op, opcode, deadline, err);
}

int uco__op_wait(struct uco__op *op, struct io_uring_sqe *sqe, int64_t deadline)
{
	return op_wait(op, sqe, deadline);
}

#define OP_BEGIN(opcode, deadline)                                       \
	struct uco__op op;                                                    \
	int err;                                                         \
	struct io_uring_sqe *sqe = op_start(&op, (opcode), (deadline), &err); \
	if (!sqe)                                                        \
		return err

ssize_t uco_read_dl(int fd, void *buf, size_t len, int64_t offset, int64_t deadline)
{
	OP_BEGIN(IORING_OP_READ, deadline);
	io_uring_prep_read(sqe, fd, buf, (unsigned)(len > 0x7ffff000 ? 0x7ffff000 : len),
	                   (uint64_t)offset);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_write_dl(int fd, const void *buf, size_t len, int64_t offset, int64_t deadline)
{
	OP_BEGIN(IORING_OP_WRITE, deadline);
	io_uring_prep_write(sqe, fd, buf, (unsigned)(len > 0x7ffff000 ? 0x7ffff000 : len),
	                    (uint64_t)offset);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_recv_dl(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
	OP_BEGIN(IORING_OP_RECV, deadline);
	io_uring_prep_recv(sqe, fd, buf, len, flags);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_send_dl(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
	OP_BEGIN(IORING_OP_SEND, deadline);
	io_uring_prep_send(sqe, fd, buf, len, flags);
	return op_wait(&op, sqe, deadline);
}

int uco_accept_dl(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                  int64_t deadline)
{
	OP_BEGIN(IORING_OP_ACCEPT, deadline);
	io_uring_prep_accept(sqe, fd, addr, addrlen, flags);
	return op_wait(&op, sqe, deadline);
}

int uco_connect_dl(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t deadline)
{
	OP_BEGIN(IORING_OP_CONNECT, deadline);
	io_uring_prep_connect(sqe, fd, addr, addrlen);
	return op_wait(&op, sqe, deadline);
}

int uco_poll_dl(int fd, unsigned events, int64_t deadline)
{
	OP_BEGIN(IORING_OP_POLL_ADD, deadline);
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

int uco_openat_dl(int dirfd, const char *path, int flags, mode_t mode, int64_t deadline)
{
	OP_BEGIN(IORING_OP_OPENAT, deadline);
	io_uring_prep_openat(sqe, dirfd, path, flags, mode);
	return op_wait(&op, sqe, deadline);
}

int uco_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return uco_openat_dl(dirfd, path, flags, mode, UCO_FOREVER);
}

/*
 * close(2) releases the descriptor whatever it returns, so a close is not
 * something a cancellation can stop: a cancellation pending when it begins,
 * or requested while it is in flight, neither prevents nor interrupts it
 * (no cancel hook) and stays pending for the task's next blocking call.
 * Where no SQE can be had, close(2) itself does it.
 */
int uco_close(int fd)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	uco_loop *loop = self->loop;
	struct uco__op op = { .done.complete = op_done, .task = self, .opcode = IORING_OP_CLOSE,
	                 .fd = fd };
	struct io_uring_sqe *sqe = NULL;
	if (uco__has_op(loop, IORING_OP_CLOSE) && uco__sqe_reserve(loop, 1) == 0)
		sqe = uco__sqe_get(loop, &op.done);
	if (!sqe)
		return close(fd) ? -errno : 0; /* never blocks long */
	io_uring_prep_close(sqe, fd);
	self->wait_data = &op;
	uco__park(loop, self, &io_kind, NULL);
	return op.res;
}

int uco_fsync_dl(int fd, int datasync, int64_t deadline)
{
	OP_BEGIN(IORING_OP_FSYNC, deadline);
	io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
	return op_wait(&op, sqe, deadline);
}

int uco_fsync(int fd, int datasync)
{
	return uco_fsync_dl(fd, datasync, UCO_FOREVER);
}

ssize_t uco_readv_dl(int fd, const struct iovec *iov, int iovcnt, int64_t offset,
                     int64_t deadline)
{
	OP_BEGIN(IORING_OP_READV, deadline);
	io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)offset);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_writev_dl(int fd, const struct iovec *iov, int iovcnt, int64_t offset,
                      int64_t deadline)
{
	OP_BEGIN(IORING_OP_WRITEV, deadline);
	io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)offset);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
	return uco_readv_dl(fd, iov, iovcnt, offset, UCO_FOREVER);
}

ssize_t uco_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
	return uco_writev_dl(fd, iov, iovcnt, offset, UCO_FOREVER);
}

ssize_t uco_recvmsg_dl(int fd, struct msghdr *msg, int flags, int64_t deadline)
{
	OP_BEGIN(IORING_OP_RECVMSG, deadline);
	io_uring_prep_recvmsg(sqe, fd, msg, (unsigned)flags);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_sendmsg_dl(int fd, const struct msghdr *msg, int flags, int64_t deadline)
{
	OP_BEGIN(IORING_OP_SENDMSG, deadline);
	io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)flags);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_recvmsg(int fd, struct msghdr *msg, int flags)
{
	return uco_recvmsg_dl(fd, msg, flags, UCO_FOREVER);
}

ssize_t uco_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return uco_sendmsg_dl(fd, msg, flags, UCO_FOREVER);
}

ssize_t uco_read_full(int fd, void *buf, size_t len, int64_t deadline)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = uco_read_dl(fd, (char *)buf + done, len - done, -1, deadline);
		if (n < 0)
			return n;
		if (n == 0)
			break; /* end of file */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

ssize_t uco_write_all(int fd, const void *buf, size_t len, int64_t deadline)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = uco_write_dl(fd, (const char *)buf + done, len - done, -1, deadline);
		if (n < 0)
			return n;
		/* write(2) moves nothing only when it cannot: asking again would
		 * spin forever (a full device, a write to a closed end). */
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int uco_socket(int domain, int type, int protocol)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	if (!uco__has_op(self->loop, IORING_OP_SOCKET)) {
		int fd = socket(domain, type, protocol); /* never blocks */
		return fd < 0 ? -errno : fd;
	}
	OP_BEGIN(IORING_OP_SOCKET, UCO_FOREVER);
	io_uring_prep_socket(sqe, domain, type, protocol, 0);
	return op_wait(&op, sqe, UCO_FOREVER);
}

int uco_shutdown(int fd, int how)
{
	uco_task *self = uco__self();
	if (self && !uco__has_op(self->loop, IORING_OP_SHUTDOWN))
		return shutdown(fd, how) ? -errno : 0; /* never blocks */
	OP_BEGIN(IORING_OP_SHUTDOWN, UCO_FOREVER);
	io_uring_prep_shutdown(sqe, fd, how);
	return op_wait(&op, sqe, UCO_FOREVER);
}

int uco_fallocate_dl(int fd, int mode, int64_t offset, int64_t len, int64_t deadline)
{
	OP_BEGIN(IORING_OP_FALLOCATE, deadline);
	io_uring_prep_fallocate(sqe, fd, mode, (uint64_t)offset, (uint64_t)len);
	return op_wait(&op, sqe, deadline);
}

int uco_fallocate(int fd, int mode, int64_t offset, int64_t len)
{
	return uco_fallocate_dl(fd, mode, offset, len, UCO_FOREVER);
}

int uco_statx_dl(int dirfd, const char *path, int flags, unsigned mask, struct statx *out,
                 int64_t deadline)
{
	OP_BEGIN(IORING_OP_STATX, deadline);
	io_uring_prep_statx(sqe, dirfd, path, flags, mask, out);
	return op_wait(&op, sqe, deadline);
}

int uco_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out)
{
	return uco_statx_dl(dirfd, path, flags, mask, out, UCO_FOREVER);
}

ssize_t uco_splice_dl(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
                      unsigned flags, int64_t deadline)
{
	OP_BEGIN(IORING_OP_SPLICE, deadline);
	io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out,
	                     (unsigned)(len > 0x7ffff000 ? 0x7ffff000 : len), flags);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
                   unsigned flags)
{
	return uco_splice_dl(fd_in, off_in, fd_out, off_out, len, flags, UCO_FOREVER);
}

ssize_t uco_send_zc_dl(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
	OP_BEGIN(IORING_OP_SEND_ZC, deadline);
	io_uring_prep_send_zc(sqe, fd, buf, len, flags, 0);
	return op_wait(&op, sqe, deadline);
}

ssize_t uco_send_zc(int fd, const void *buf, size_t len, int flags)
{
	return uco_send_zc_dl(fd, buf, len, flags, UCO_FOREVER);
}

/* ------------------------------------------------------------ fixed files */

#define FIXED_FILES 4096

static int fixed_table(uco_loop *loop)
{
	if (loop->fixed_used)
		return 0;
	uint64_t *used = calloc(FIXED_FILES / 64, sizeof *used);
	if (!used)
		return -ENOMEM;
	int err = loop->backend->files_init(loop, FIXED_FILES);
	if (err) {
		free(used);
		return err;
	}
	loop->fixed_used = used;
	return 0;
}

int uco_fd_register(uco_loop *loop, int fd)
{
	if (fd < 0 || (fd & UCO_FIXED_FD))
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (!err)
		err = fixed_table(loop);
	if (err)
		return err;
	for (unsigned w = 0; w < FIXED_FILES / 64; w++) {
		if (loop->fixed_used[w] == UINT64_MAX)
			continue;
		unsigned bit = (unsigned)__builtin_ctzll(~loop->fixed_used[w]);
		unsigned index = w * 64 + bit;
		err = loop->backend->files_update(loop, index, fd);
		if (err)
			return err;
		loop->fixed_used[w] |= UINT64_C(1) << bit;
		return (int)index | UCO_FIXED_FD;
	}
	return -ENOSPC;
}

int uco_fd_unregister(uco_loop *loop, int handle)
{
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	unsigned index = (unsigned)(handle & ~UCO_FIXED_FD);
	if (handle < 0 || !(handle & UCO_FIXED_FD) || index >= FIXED_FILES || !loop->fixed_used ||
	    !(loop->fixed_used[index / 64] >> (index % 64) & 1))
		return -EBADF;
	err = loop->backend->files_update(loop, index, -1);
	if (err)
		return err;
	loop->fixed_used[index / 64] &= ~(UINT64_C(1) << (index % 64));
	return 0;
}
