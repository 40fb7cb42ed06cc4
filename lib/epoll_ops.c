/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend's operation table: how each opcode uco submits is done
 * without io_uring (backend.h lists them; a kind missing here fails the
 * build).  Each entry tries its system call once without blocking; the
 * engine (backend_epoll.c) parks what would block on readiness, or hands
 * a regular file's operation to a file worker, which runs `blocking`.
 *
 * No descriptor the user hands in can block the loop's thread:
 *   - sockets: every call carries MSG_DONTWAIT; the descriptor's own flags
 *     are left alone;
 *   - read/write family: preadv2/pwritev2 with RWF_NOWAIT (sockets, pipes,
 *     eventfds, and the page cache of regular files); a regular file that
 *     would block goes to a worker; a descriptor that does not take
 *     RWF_NOWAIT (a tty, a pipe before 5.x) is made O_NONBLOCK, as libuv
 *     does with every descriptor it is given;
 *   - accept: the listening socket is made O_NONBLOCK (another thread or
 *     process may take the connection epoll announced);
 *   - connect: O_NONBLOCK only around the connect(2) call itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "epoll.h"

#ifndef IORING_ACCEPT_MULTISHOT
#define IORING_ACCEPT_MULTISHOT (1U << 0)
#endif

static enum eop_verdict done(int *res, int value)
{
	*res = value;
	return EOP_DONE;
}

static enum eop_verdict done_errno(int *res)
{
	return done(res, -errno);
}

/* Make fd O_NONBLOCK (for good): 0 or -errno. */
static int make_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------ read and write */

static bool is_write(const struct eop *op)
{
	unsigned o = op->sqe.opcode;
	return o == IORING_OP_WRITE || o == IORING_OP_WRITEV || o == IORING_OP_WRITE_FIXED;
}

/* The SQE's buffers as an iovec array (one entry unless READV/WRITEV). */
static const struct iovec *rw_iov(const struct eop *op, struct iovec *one, int *n)
{
	unsigned o = op->sqe.opcode;
	if (o == IORING_OP_READV || o == IORING_OP_WRITEV) {
		*n = (int)op->sqe.len;
		return (const struct iovec *)(uintptr_t)op->sqe.addr;
	}
	one->iov_base = (void *)(uintptr_t)op->sqe.addr;
	one->iov_len = op->sqe.len;
	*n = 1;
	return one;
}

/* One preadv2/pwritev2 at the SQE's offset; a descriptor without one (a
 * pipe, a socket: ESPIPE) is read where it stands, as io_uring does. */
static ssize_t rw_call(const struct eop *op, int flags)
{
	struct iovec one;
	int n;
	const struct iovec *iov = rw_iov(op, &one, &n);
	off_t off = (off_t)op->sqe.off;
	for (;;) {
		ssize_t r = is_write(op) ? pwritev2(op->fd, iov, n, off, flags)
		                         : preadv2(op->fd, iov, n, off, flags);
		if (r < 0 && errno == ESPIPE && off != -1) {
			off = -1;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		return r;
	}
}

static enum eop_verdict issue_rw(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	op->dir = is_write(op);
	ssize_t r = rw_call(op, RWF_NOWAIT | (int)op->sqe.rw_flags);
	if (r >= 0)
		return done(res, (int)r);
	if (errno == EAGAIN && (op->sqe.rw_flags & RWF_NOWAIT))
		return done_errno(res); /* the caller's own RWF_NOWAIT */
	if (errno == EAGAIN)
		return EOP_WAIT; /* a regular file's EPERM from epoll sends it to a worker */
	if (errno != EOPNOTSUPP)
		return done_errno(res);
	/* No RWF_NOWAIT for this file. */
	struct stat st;
	if (fstat(op->fd, &st) < 0)
		return done_errno(res);
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		int err = uco__epoll_offload(ep, op);
		return err ? done(res, err) : EOP_HELD;
	}
	int err = make_nonblocking(op->fd);
	if (err)
		return done(res, err);
	r = rw_call(op, (int)op->sqe.rw_flags);
	if (r >= 0)
		return done(res, (int)r);
	return errno == EAGAIN ? EOP_WAIT : done_errno(res);
}

static int blocking_rw(struct eop *op)
{
	ssize_t r = rw_call(op, (int)op->sqe.rw_flags);
	return r < 0 ? -errno : (int)r;
}

/* ------------------------------------------------------------ sockets */

static int msg_flags(const struct eop *op)
{
	return (int)op->sqe.msg_flags | MSG_DONTWAIT;
}

/* A call that would block waits for readiness, unless its caller said
 * MSG_DONTWAIT itself: then -EAGAIN is its answer, as on io_uring. */
static enum eop_verdict socket_result(const struct eop *op, ssize_t r, int *res)
{
	if (r >= 0)
		return done(res, (int)r);
	if (errno != EAGAIN || (op->sqe.msg_flags & MSG_DONTWAIT))
		return done_errno(res);
	return EOP_WAIT;
}

/* A receive into the next provided buffer of the SQE's group: one, or (a
 * multishot) as many as are there, each its own CQE. */
static enum eop_verdict recv_select(struct uco__epoll *ep, struct eop *op, int *res)
{
	bool multishot = op->sqe.ioprio & IORING_RECV_MULTISHOT;
	/* A multishot's byte limit (Linux 6.17: sqe->optlen, where
	 * bufring.c puts it). */
	uint64_t limit = multishot ? op->sqe.file_index : 0;
	for (int i = 0; i < MULTISHOT_BURST; i++) {
		void *addr;
		unsigned len, bid;
		if (!uco__epoll_buffer_peek(ep, op->sqe.buf_group, &addr, &len, &bid))
			return done(res, -ENOBUFS);
		if (!multishot && op->sqe.len && op->sqe.len < len)
			len = op->sqe.len;
		ssize_t n = recv(op->fd, addr, len, msg_flags(op));
		if (n <= 0)
			return socket_result(op, n, res); /* EOF keeps its buffer */
		uco__epoll_buffer_take(ep, op->sqe.buf_group);
		unsigned flags = IORING_CQE_F_BUFFER | bid << IORING_CQE_BUFFER_SHIFT;
		op->taken += (uint64_t)n;
		if (!multishot || (limit && op->taken >= limit)) {
			op->cflags = flags;
			return done(res, (int)n);
		}
		uco__epoll_post(ep, op->sqe.user_data, (int)n, flags | IORING_CQE_F_MORE);
		if ((size_t)n < len)
			return EOP_WAIT; /* emptied: readiness says when there is more */
	}
	return EOP_WAIT; /* more may be there: epoll reports it again at once */
}

/* A receive first asks whether the last one on this descriptor emptied
 * it: then it waits for readiness at once rather than spend a system call
 * on EAGAIN (io_uring's IORING_RECVSEND_POLL_FIRST, decided per
 * descriptor).  Not for a caller's own MSG_DONTWAIT, which wants the try. */
static bool wait_first(struct uco__epoll *ep, struct eop *op)
{
	return op->where == EOP_NEW && !(op->sqe.msg_flags & MSG_DONTWAIT) &&
	       uco__epoll_drained_take(ep, op->fd);
}

static enum eop_verdict issue_recv(struct uco__epoll *ep, struct eop *op, int *res)
{
	op->dir = 0;
	if (wait_first(ep, op))
		return EOP_WAIT;
	if (op->sqe.flags & IOSQE_BUFFER_SELECT)
		return recv_select(ep, op, res);
	void *buf = (void *)(uintptr_t)op->sqe.addr;
	ssize_t n = recv(op->fd, buf, op->sqe.len, msg_flags(op));
	if (n > 0 && (size_t)n < op->sqe.len)
		uco__epoll_drained_set(ep, op->fd);
	return socket_result(op, n, res);
}

static enum eop_verdict issue_send(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	op->dir = 1;
	const void *buf = (const void *)(uintptr_t)op->sqe.addr;
	return socket_result(op, send(op->fd, buf, op->sqe.len, msg_flags(op)), res);
}

static enum eop_verdict issue_recvmsg(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	op->dir = 0;
	struct msghdr *msg = (struct msghdr *)(uintptr_t)op->sqe.addr;
	return socket_result(op, recvmsg(op->fd, msg, msg_flags(op)), res);
}

static enum eop_verdict issue_sendmsg(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	op->dir = 1;
	const struct msghdr *msg = (const struct msghdr *)(uintptr_t)op->sqe.addr;
	return socket_result(op, sendmsg(op->fd, msg, msg_flags(op)), res);
}

static enum eop_verdict issue_accept(struct uco__epoll *ep, struct eop *op, int *res)
{
	op->dir = 0;
	int err = make_nonblocking(op->fd);
	if (err)
		return done(res, err);
	struct sockaddr *addr = (struct sockaddr *)(uintptr_t)op->sqe.addr;
	socklen_t *addrlen = (socklen_t *)(uintptr_t)op->sqe.off;
	int flags = (int)op->sqe.accept_flags;
	if (!(op->sqe.ioprio & IORING_ACCEPT_MULTISHOT))
		return socket_result(op, accept4(op->fd, addr, addrlen, flags), res);
	for (int i = 0; i < MULTISHOT_BURST; i++) {
		int fd = accept4(op->fd, addr, addrlen, flags);
		if (fd < 0)
			return socket_result(op, fd, res);
		uco__epoll_post(ep, op->sqe.user_data, fd, IORING_CQE_F_MORE);
	}
	return EOP_WAIT;
}

static enum eop_verdict issue_connect(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	op->dir = 1;
	if (op->connecting) {
		/* Still in progress unless writable: a poll that failed
		 * (EINTR, ENOMEM) proves nothing either way, and SO_ERROR
		 * reads 0 while the handshake runs. */
		struct pollfd p = { .fd = op->fd, .events = POLLOUT };
		int n = poll(&p, 1, 0);
		if (n == 0 || (n < 0 && errno == EINTR))
			return EOP_WAIT;
		if (n < 0)
			return done_errno(res);
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			return done_errno(res);
		return done(res, -err);
	}
	int fl = fcntl(op->fd, F_GETFL);
	if (fl < 0)
		return done_errno(res);
	if (!(fl & O_NONBLOCK) && fcntl(op->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return done_errno(res);
	const struct sockaddr *addr = (const struct sockaddr *)(uintptr_t)op->sqe.addr;
	int r = connect(op->fd, addr, (socklen_t)op->sqe.off);
	int err = r < 0 ? errno : 0;
	if (!(fl & O_NONBLOCK))
		fcntl(op->fd, F_SETFL, fl);
	/* EINPROGRESS: started, its result comes as SO_ERROR.  EAGAIN (a
	 * UNIX socket's full backlog, no routing cache entry) started
	 * nothing: connect again when writable, as io_uring does. */
	if (err == EINPROGRESS || err == EAGAIN) {
		op->connecting = err == EINPROGRESS;
		return EOP_WAIT;
	}
	return done(res, -err);
}

static enum eop_verdict issue_socket(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	int fd = socket(op->sqe.fd, (int)op->sqe.off, (int)op->sqe.len);
	return fd < 0 ? done_errno(res) : done(res, fd);
}

static enum eop_verdict issue_shutdown(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	return done(res, shutdown(op->fd, (int)op->sqe.len) ? -errno : 0);
}

static enum eop_verdict issue_poll(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	short events = (short)op->sqe.poll32_events;
	struct pollfd p = { .fd = op->fd, .events = events };
	if (poll(&p, 1, 0) < 0)
		return done_errno(res);
	if (p.revents)
		return done(res, p.revents);
	op->dir = (events & POLLOUT) && !(events & (POLLIN | POLLPRI | POLLRDHUP));
	op->events = (uint16_t)events; /* poll(2)'s bits are epoll's */
	return EOP_WAIT;
}

/* ------------------------------------------------------------ files */

static enum eop_verdict to_worker(struct uco__epoll *ep, struct eop *op, int *res)
{
	int err = uco__epoll_offload(ep, op);
	return err ? done(res, err) : EOP_HELD;
}

static int blocking_openat(struct eop *op)
{
	int fd = openat(op->sqe.fd, (const char *)(uintptr_t)op->sqe.addr,
	                (int)op->sqe.open_flags, (mode_t)op->sqe.len);
	return fd < 0 ? -errno : fd;
}

static int blocking_statx(struct eop *op)
{
	return statx(op->sqe.fd, (const char *)(uintptr_t)op->sqe.addr, (int)op->sqe.statx_flags,
	             op->sqe.len, (struct statx *)(uintptr_t)op->sqe.off)
	       ? -errno : 0;
}

static int blocking_fsync(struct eop *op)
{
	int r = (op->sqe.fsync_flags & IORING_FSYNC_DATASYNC) ? fdatasync(op->fd) : fsync(op->fd);
	return r ? -errno : 0;
}

static int blocking_fallocate(struct eop *op)
{
	return fallocate(op->fd, (int)op->sqe.len, (off_t)op->sqe.off, (off_t)op->sqe.addr)
	       ? -errno : 0;
}

static int blocking_splice(struct eop *op)
{
	int64_t in_off = (int64_t)op->sqe.splice_off_in, out_off = (int64_t)op->sqe.off;
	loff_t in = in_off, out = out_off;
	ssize_t r = splice(op->sqe.splice_fd_in, in_off == -1 ? NULL : &in, op->fd,
	                   out_off == -1 ? NULL : &out, op->sqe.len,
	                   op->sqe.splice_flags & ~SPLICE_F_FD_IN_FIXED);
	return r < 0 ? -errno : (int)r;
}

/* close(2) releases the descriptor whatever it says, and never waits long. */
static enum eop_verdict issue_close(struct uco__epoll *ep, struct eop *op, int *res)
{
	uco__epoll_forget_fd(ep, op->fd);
	return done(res, close(op->fd) ? -errno : 0);
}

/* ------------------------------------------------------------ timers and cancellation */

static enum eop_verdict issue_timeout(struct uco__epoll *ep, struct eop *op, int *res)
{
	const struct __kernel_timespec *ts = (const void *)(uintptr_t)op->sqe.addr;
	int64_t ns = (int64_t)ts->tv_sec * UCO_NS_PER_S + ts->tv_nsec;
	op->timer.when = (op->sqe.timeout_flags & IORING_TIMEOUT_ABS) ? ns : uco_now() + ns;
	int err = uco__epoll_timer_add(ep, op);
	return err ? done(res, err) : EOP_HELD;
}

static enum eop_verdict issue_timeout_remove(struct uco__epoll *ep, struct eop *op, int *res)
{
	return done(res, uco__epoll_cancel(ep, op->sqe.addr, true));
}

static enum eop_verdict issue_cancel(struct uco__epoll *ep, struct eop *op, int *res)
{
	if (op->sqe.cancel_flags & IORING_ASYNC_CANCEL_ANY)
		return done(res, uco__epoll_cancel_all(ep));
	return done(res, uco__epoll_cancel(ep, op->sqe.addr, false));
}

/* A linked timeout is taken with the SQE before it (backend_epoll.c's
 * submit); one that reaches here has no operation to time: io_uring says
 * -EINVAL to that too. */
static enum eop_verdict issue_link_timeout(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	(void)op;
	return done(res, -EINVAL);
}

static enum eop_verdict issue_nop(struct uco__epoll *ep, struct eop *op, int *res)
{
	(void)ep;
	(void)op;
	return done(res, 0);
}

/* ------------------------------------------------------------ the table */

/* Each kind's entry: issue_<KIND>, and blocking_<KIND> for those a file
 * worker may run.  NULL says "not on this backend", and why. */
#define issue_NOP issue_nop
#define issue_READ issue_rw
#define issue_WRITE issue_rw
#define issue_READV issue_rw
#define issue_WRITEV issue_rw
#define issue_READ_FIXED issue_rw  /* the buffer's address is in the SQE */
#define issue_WRITE_FIXED issue_rw
#define issue_RECV issue_recv
#define issue_SEND issue_send
#define issue_RECVMSG issue_recvmsg
#define issue_SENDMSG issue_sendmsg
#define issue_SEND_ZC issue_send    /* a plain send: one CQE, no notification */
#define issue_ACCEPT issue_accept
#define issue_CONNECT issue_connect
#define issue_SOCKET issue_socket
#define issue_SHUTDOWN issue_shutdown
#define issue_POLL_ADD issue_poll
#define issue_OPENAT to_worker
#define issue_CLOSE issue_close
#define issue_FSYNC to_worker
#define issue_FALLOCATE to_worker
#define issue_STATX to_worker
#define issue_SPLICE to_worker
#define issue_TIMEOUT issue_timeout
#define issue_TIMEOUT_REMOVE issue_timeout_remove
#define issue_LINK_TIMEOUT issue_link_timeout
#define issue_ASYNC_CANCEL issue_cancel
#define issue_MSG_RING NULL         /* no ring to message: inbox.c rings the eventfd */
#define issue_WAITID NULL           /* process.c polls the pidfd instead */

#define blocking_NOP NULL
#define blocking_READ blocking_rw
#define blocking_WRITE blocking_rw
#define blocking_READV blocking_rw
#define blocking_WRITEV blocking_rw
#define blocking_READ_FIXED blocking_rw
#define blocking_WRITE_FIXED blocking_rw
#define blocking_RECV NULL
#define blocking_SEND NULL
#define blocking_RECVMSG NULL
#define blocking_SENDMSG NULL
#define blocking_SEND_ZC NULL
#define blocking_ACCEPT NULL
#define blocking_CONNECT NULL
#define blocking_SOCKET NULL
#define blocking_SHUTDOWN NULL
#define blocking_POLL_ADD NULL
#define blocking_OPENAT blocking_openat
#define blocking_CLOSE NULL
#define blocking_FSYNC blocking_fsync
#define blocking_FALLOCATE blocking_fallocate
#define blocking_STATX blocking_statx
#define blocking_SPLICE blocking_splice
#define blocking_TIMEOUT NULL
#define blocking_TIMEOUT_REMOVE NULL
#define blocking_LINK_TIMEOUT NULL
#define blocking_ASYNC_CANCEL NULL
#define blocking_MSG_RING NULL
#define blocking_WAITID NULL

#define IORING_OP_WAITID UCO__OP_WAITID
#define ENTRY(kind, name) [IORING_OP_##kind] = { name, issue_##kind, blocking_##kind },
const struct uco__epoll_opdef uco__epoll_ops[256] = { UCO__OPS(ENTRY) };
