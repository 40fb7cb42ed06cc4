/* SPDX-License-Identifier: MIT */
/*
 * The seam between what a task asks of the kernel and how its loop gets it
 * done.
 *
 * A request is an SQE and its answer a CQE, whichever backend runs the
 * loop: everything above ring.c fills SQEs (uco__sqe_get) and is handed
 * CQEs (struct uco__completion), and never knows which backend it has.
 * The SQ and the CQ are the same liburing structures in both backends; what
 * differs is who consumes the SQ and fills the CQ:
 *
 *   io_uring (backend_uring.c)  the kernel, through io_uring_enter;
 *   epoll (backend_epoll.c)     the loop's own thread: each SQE is run by
 *                               its opcode's entry in a table (epoll_ops.c)
 *                               as a non-blocking system call, parked on
 *                               epoll readiness or a timer when it would
 *                               block, or handed to a worker thread (files).
 *
 * The operation kinds uco submits are listed once, below (UCO__OPS), as
 * io_uring/opdef.c lists the kernel's: each backend builds its table from
 * that list, so a kind that a backend does not cover fails the build.
 * Adding an operation means one line here and one entry in each backend.
 */
#ifndef UCO_BACKEND_H
#define UCO_BACKEND_H

#include "internal.h"

/*
 * Every operation kind uco submits: X(opcode suffix, name for dumps).  The
 * opcode is IORING_OP_<suffix>, or UCO__OP_<suffix> for those defined
 * above.
 */
#define UCO__OPS(X)                                                          \
	X(NOP, "nop")                                                        \
	X(READ, "read") X(WRITE, "write")                                   \
	X(READV, "readv") X(WRITEV, "writev")                               \
	X(READ_FIXED, "read_fixed") X(WRITE_FIXED, "write_fixed")           \
	X(RECV, "recv") X(SEND, "send")                                     \
	X(RECVMSG, "recvmsg") X(SENDMSG, "sendmsg")                         \
	X(SEND_ZC, "send_zc")                                               \
	X(ACCEPT, "accept") X(CONNECT, "connect")                           \
	X(SOCKET, "socket") X(SHUTDOWN, "shutdown")                         \
	X(POLL_ADD, "poll")                                                 \
	X(OPENAT, "openat") X(CLOSE, "close")                               \
	X(FSYNC, "fsync") X(FALLOCATE, "fallocate")                         \
	X(STATX, "statx") X(SPLICE, "splice")                               \
	X(TIMEOUT, "timeout") X(TIMEOUT_REMOVE, "timeout_remove")           \
	X(LINK_TIMEOUT, "link_timeout")                                     \
	X(ASYNC_CANCEL, "cancel")                                           \
	X(MSG_RING, "msg_ring")                                             \
	X(WAITID, "waitid")

/* The name of opcode `op` for dumps, or NULL if uco never submits it. */
const char *uco__op_name(unsigned op);

/*
 * A backend: the calls through which ring.c and the registration calls
 * (fixed files, buffer rings) reach it.  One per loop, chosen at create.
 */
struct uco__backend {
	const char *name;                 /* "io_uring", "epoll" */
	/* Set up loop->ring's SQ and CQ (`entries` SQEs) and loop->opcodes.
	 * 0 or -errno; on failure nothing is left to undo. */
	int (*init)(uco_loop *loop, unsigned entries, unsigned flags);
	void (*exit)(uco_loop *loop);
	/* Consume what the SQ holds; then, if `wait`, wait until a CQE is
	 * available (or timeout_ns >= 0 passed, or a signal came).  0, or
	 * -errno from the submit (-EBUSY/-EAGAIN: try again after a reap).
	 * -EINTR and -ETIME are reported as 0. */
	int (*enter)(uco_loop *loop, bool wait, int64_t timeout_ns);
	/* The fixed-file table: make it (`count` empty slots), and set slot
	 * `index` to fd (-1: empty it).  0 or -errno. */
	int (*files_init)(uco_loop *loop, unsigned count);
	int (*files_update)(uco_loop *loop, unsigned index, int fd);
	/* Provided-buffer rings: lend `reg`'s ring to the backend under its
	 * bgid, and take it back. */
	int (*buf_ring_register)(uco_loop *loop, struct io_uring_buf_reg *reg);
	int (*buf_ring_unregister)(uco_loop *loop, unsigned bgid);
};

extern const struct uco__backend uco__backend_uring;
extern const struct uco__backend uco__backend_epoll;

/*
 * Choose and set up loop's backend from `requested` (UCO_BACKEND_*; the
 * UCO_BACKEND environment variable overrides it).  AUTO takes io_uring, or
 * epoll when setting up a ring is refused (EPERM, ENOSYS, EOPNOTSUPP),
 * recording why in loop->backend_why.  0 or -errno (-EINVAL for an unknown
 * choice or environment value).
 */
int uco__backend_init(uco_loop *loop, unsigned requested, unsigned entries, unsigned flags);

#endif
