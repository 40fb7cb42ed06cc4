/* SPDX-License-Identifier: MIT */
/*
 * What the epoll backend's two files share: the engine (backend_epoll.c:
 * the SQ and CQ, readiness, timers, cancellation, the file workers) and the
 * operation table (epoll_ops.c: how each opcode is done without io_uring).
 */
#ifndef UCO_EPOLL_H
#define UCO_EPOLL_H

#include "backend.h"
#include "heap.h"

/* An SQE the engine holds until it can be completed. */
struct eop {
	struct io_uring_sqe sqe;  /* a copy: the SQ slot is reused */
	int fd;                   /* sqe.fd, a fixed file resolved */
	uint8_t where;            /* enum eop_where */
	uint8_t dir;              /* waiting for: 0 readable, 1 writable */
	uint32_t events;          /* epoll events it waits for (0: by dir) */
	bool connecting;          /* a connect in progress: collect its result */
	bool cancelled;           /* in a worker, asked to cancel: result dropped */
	/* when: a linked timeout's or a TIMEOUT's deadline, or -1; in the
	 * engine's timer heap while >= 0 (and the op waits). */
	struct uco__heap_node timer;
	uint64_t taken;           /* bytes a limited multishot receive took */
	int res;                  /* a worker's result */
	unsigned cflags;          /* the CQE flags of its result (a provided buffer) */
	struct uco__link link;    /* in its fd's waiters, or the worker queues */
	struct eop *hash_next;    /* by user_data */
};

enum eop_where { EOP_NEW, EOP_FD, EOP_TIMER, EOP_WORKER };

/* What an opcode's entry says of an SQE it was given.  With EOP_DONE, the
 * entry may have set op->cflags (IORING_CQE_F_BUFFER and the buffer id). */
enum eop_verdict {
	EOP_DONE,      /* complete it with *res */
	EOP_WAIT,      /* would block: wait until op->fd is ready for op->dir */
	EOP_HELD,      /* the entry keeps it (a timer, a worker) */
};

struct uco__epoll_opdef {
	const char *name;
	/* Try the operation once, without blocking. */
	enum eop_verdict (*issue)(struct uco__epoll *ep, struct eop *op, int *res);
	/* Runs it on a file worker, blocking (file operations); NULL if it
	 * never goes to one. */
	int (*blocking)(struct eop *op);
};

/* The most CQEs one try of an operation posts: a multishot's burst (so
 * that one busy connection cannot starve the rest of the turn; epoll
 * reports the descriptor again at once if more is there), and its last. */
#define MULTISHOT_BURST 32

/* Indexed by opcode; an opcode uco never submits has no entry. */
extern const struct uco__epoll_opdef uco__epoll_ops[256];

/* ------------------------------------------------------------ engine calls */

/* Post a CQE (nothing for user_data 0). */
void uco__epoll_post(struct uco__epoll *ep, uint64_t user_data, int res, unsigned flags);
/* Hand op to a file worker, which runs its entry's `blocking`. */
int uco__epoll_offload(struct uco__epoll *ep, struct eop *op);
/* Put op (a TIMEOUT) on the timer heap until op->timer.when. */
int uco__epoll_timer_add(struct uco__epoll *ep, struct eop *op);
/* Cancel the held op whose user_data is `data` (TIMEOUT_REMOVE wants a
 * timeout: `want_timeout`): 0, -ENOENT, or -EALREADY (in a worker). */
int uco__epoll_cancel(struct uco__epoll *ep, uint64_t data, bool want_timeout);
/* Cancel everything held (IORING_ASYNC_CANCEL_ANY): how many. */
int uco__epoll_cancel_all(struct uco__epoll *ep);
/* The provided buffer `bgid` lends next: its address, size and id, or
 * false if the group has none left (or does not exist). */
bool uco__epoll_buffer_peek(struct uco__epoll *ep, unsigned bgid, void **addr,
                            unsigned *len, unsigned *bid);
/* The buffer peek returned is used. */
void uco__epoll_buffer_take(struct uco__epoll *ep, unsigned bgid);
/* A receive on fd came back short: its queue was emptied then, so the next
 * receive waits for readiness first instead of trying (and failing with
 * EAGAIN).  Only a hint: if data came meanwhile, the readiness it waits for
 * is there at once.  take() says whether it was set, and clears it. */
void uco__epoll_drained_set(struct uco__epoll *ep, int fd);
bool uco__epoll_drained_take(struct uco__epoll *ep, int fd);
/* A descriptor is closed: forget what the engine knew of it. */
void uco__epoll_forget_fd(struct uco__epoll *ep, int fd);

#endif
