/* SPDX-License-Identifier: MIT */
/*
 * The io_uring backend: the kernel consumes the SQ and fills the CQ.  Ring
 * set-up with the best flags the kernel accepts, the opcode probe, the
 * io_uring_enter variants a turn needs, and the registrations.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"

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

/* ------------------------------------------------------------ polling */

/*
 * UCO_LOOP_SQPOLL and UCO_LOOP_NAPI, opt-in (each spends CPU to save
 * latency or system calls: docs/polling.md).  With SQPOLL a kernel thread
 * takes SQEs from the ring as they come: io_uring_submit() then only wakes
 * it when it went to sleep (liburing checks IORING_SQ_NEED_WAKEUP), and a
 * full SQ empties only when that thread gets to it (ring.c waits).  The
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
	if (flags & UCO_LOOP_SQPOLL) {
		loop->features = (loop->features & ~(unsigned)(UCO_RING_DEFER_TASKRUN |
		                                                 UCO_RING_COOP_TASKRUN)) |
		                 UCO_RING_SQPOLL;
		loop->enter_for_events = false;
	}
	if (flags & UCO_LOOP_NAPI) {
		int err = register_napi(loop, loop->busy_poll_us ? loop->busy_poll_us
		                                                  : NAPI_BUSY_POLL_US_DEFAULT);
		if (err)
			return err;
		loop->features |= UCO_RING_NAPI;
	}
	return 0;
}

/* ------------------------------------------------------------ set-up */

static int uring_init(uco_loop *loop, unsigned entries, unsigned flags)
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
		/* With DEFER_TASKRUN the kernel posts completions only when
		 * asked: a turn that submits nothing must still enter. */
		loop->enter_for_events = variants[i].features & UCO_RING_DEFER_TASKRUN;
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

static void uring_exit(uco_loop *loop)
{
	io_uring_queue_exit(&loop->ring);
}

static int uring_enter(uco_loop *loop, bool wait, int64_t timeout_ns)
{
	struct io_uring *ring = &loop->ring;
	struct io_uring_cqe *cqe;
	int ret;
	if (wait && timeout_ns >= 0) {
		struct __kernel_timespec ts = {
			.tv_sec = timeout_ns / UCO_NS_PER_S,
			.tv_nsec = timeout_ns % UCO_NS_PER_S,
		};
		ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
	} else if (wait) {
		ret = io_uring_submit_and_wait(ring, 1);
	} else if (loop->features & UCO_RING_SQPOLL) {
		/* The SQ thread submits: enter only to wake it (or to flush
		 * overflowed completions), as io_uring_submit() decides. */
		ret = io_uring_submit(ring);
	} else {
		/* Posts what DEFER_TASKRUN holds back, and the overflowed
		 * completions an -EBUSY submit reported, in the same call. */
		ret = io_uring_submit_and_get_events(ring);
	}
	/* Interrupted or timed-out waits are normal. */
	return ret == -EINTR || ret == -ETIME || ret >= 0 ? 0 : ret;
}

static int uring_files_init(uco_loop *loop, unsigned count)
{
	/* A sparse table (5.19) costs nothing per slot; older kernels take a
	 * table of -1 entries. */
	int err = io_uring_register_files_sparse(&loop->ring, count);
	if (err) {
		int *minus = malloc(count * sizeof *minus);
		if (!minus)
			return -ENOMEM;
		for (unsigned i = 0; i < count; i++)
			minus[i] = -1;
		err = io_uring_register_files(&loop->ring, minus, count);
		free(minus);
	}
	return err == -EINVAL ? -EOPNOTSUPP : err;
}

static int uring_files_update(uco_loop *loop, unsigned index, int fd)
{
	int err = io_uring_register_files_update(&loop->ring, index, &fd, 1);
	return err < 0 ? err : 0;
}

static int uring_buf_ring_register(uco_loop *loop, struct io_uring_buf_reg *reg)
{
	int err = io_uring_register_buf_ring(&loop->ring, reg, 0);
	/* -EINVAL: no provided buffer rings before 5.19. */
	return err == -EINVAL ? -EOPNOTSUPP : err;
}

static int uring_buf_ring_unregister(uco_loop *loop, unsigned bgid)
{
	return io_uring_unregister_buf_ring(&loop->ring, (int)bgid);
}

const struct uco__backend uco__backend_uring = {
	.name = "io_uring",
	.init = uring_init,
	.exit = uring_exit,
	.enter = uring_enter,
	.files_init = uring_files_init,
	.files_update = uring_files_update,
	.buf_ring_register = uring_buf_ring_register,
	.buf_ring_unregister = uring_buf_ring_unregister,
};
