/* SPDX-License-Identifier: MIT */
/*
 * What the files of lib/ share.  Nothing here is public: `uco__` names are
 * hidden from the shared library.
 *
 * Ordered bottom-up, in two parts.  First the objects, each before what
 * holds it: stacks, completions, waits, timers, the task, the loop.  Then
 * each file's calls, one section a file, from the lowest layer to the
 * highest, so that a section names only what is declared above it:
 *
 *   stack.c   coroutine stacks and their pool
 *   ring.c    SQE acquisition, submit, reap (backend.h: what runs the SQEs)
 *   coro.c    the switch layer and the thread's running loop
 *   thread.c  threads of uco's own, with signals blocked
 *   overflow.c  the stack-overflow report
 *   time.c    the clock and the timers behind sleeps and deadlines
 *   debug.c   naming functions and durations; slow-task report; dumps
 *   wait.c    park, wake, wait queues, deadlines, yield, sleep
 *   task.c    tasks: spawn, finish, await, cancel, watches
 *   inbox.c   a loop's cross-thread inbox and doorbell
 *   executor.c  the worker pool
 *   threads.c   many loops: run_threads, spawn_threadsafe, reuseport
 *   loop.c    the run queue, turns, create/run/close
 *
 * loop.c drives coro.c (and coro.c's tasks call back into the loop only
 * through uco__coro_park): the one circle.
 */
#ifndef UCO_INTERNAL_H
#define UCO_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

#include "uco.h"
#include "arch/switch.h"
#include "list.h"

#define UCO__CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#if defined(__SANITIZE_THREAD__)
#define UCO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UCO__TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define UCO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UCO__ASAN 1
#endif
#endif

/* Options structs end in reserved words that must be zero, so that later
 * versions can give them a meaning. */
static inline bool uco__all_zero(const unsigned *words, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (words[i])
			return false;
	return true;
}

/* ============================================================ the objects */

/* ------------------------------------------------------------ stacks */

/* A coroutine stack: [base, base + size) is usable, a guard page sits just
 * below base. */
struct uco__stack {
	char *base;
	size_t size;
#ifdef UCO_VALGRIND
	unsigned valgrind_id;  /* VALGRIND_STACK_REGISTER's, while in use */
#endif
};

struct uco__stack_pool {
	size_t stack_size;   /* usable bytes of every pooled stack */
	size_t keep_warm;    /* warm stacks never trimmed */
	/* Free stacks: free[0, ncold) have had their memory given back,
	 * free[ncold, nfree) are warm.  Taking and giving happen at the top,
	 * so the bottom of the warm part is the longest unused. */
	char **free;
	size_t nfree, ncold, cap;
	size_t warm_low;     /* fewest warm stacks since the last trim */
	size_t reserved;     /* free stacks promised to tasks not started */
	/* Every slab mapped, to unmap them at the end. */
	struct uco__slab { char *addr; size_t len; } *slabs;
	size_t nslabs, slabs_cap;
	bool guard_madvise;  /* MADV_GUARD_INSTALL works here */
	uint64_t mapped, trimmed;
};

/*
 * Where a stack's first frame starts: below its top by a per-stack
 * "colour" of 0-1984 bytes in 64-byte steps, derived from its address.
 * Without it every coroutine's hot frames sit at the same offset in their
 * pages and fight for the same few L1/L2 cache sets (Photon measured the
 * L1d misses this causes drop from 15.8% to ~0).  Kept under half a page
 * so that a small coroutine still touches only its top page.
 */
static inline char *uco__stack_top(const struct uco__stack *s)
{
	uint64_t page = (uint64_t)(uintptr_t)s->base >> 12;
	size_t colour = (size_t)((page * UINT64_C(0x9e3779b97f4a7c15)) >> 59) * 64;
	return s->base + s->size - colour;
}

/* ------------------------------------------------------------ completions */

/* Every SQE uco submits carries a pointer to one of these as user_data; the
 * reaper calls `complete` with the CQE.  user_data 0 means "no completion
 * wanted"; io.c's operations carry their task instead (UCO__TASK_OP). */
struct uco__completion {
	void (*complete)(uco_loop *loop, struct uco__completion *c,
	                 const struct io_uring_cqe *cqe);
	/* A standing listener (the executor inbox's eventfd read): it does
	 * not count as work in flight, so it never keeps a loop running. */
	bool uncounted;
	/* Its CQEs' res >= 0 is a new descriptor (accept, openat, socket):
	 * closed if the loop closes before the CQE is handed over. */
	bool res_is_fd;
	/* A cancel request for it waits in loop->cancels (no SQE could be
	 * had): see uco__cancel_request(). */
	bool cancel_queued;
	/* It is a struct uco__op's (io.c): its SQEs carry the task's
	 * address tagged with UCO__TASK_OP, not this completion's. */
	bool task_op;
	struct uco__completion *next_cancel;
};

/* The user_data of an operation of io.c's: the parked task's address
 * (64-byte aligned) with this bit set.  The reaper then stores the CQE's
 * res in the task's wake_result and queues the task, all without a load
 * from the task or its stack: a completion on the task's stack was read
 * first thing for every CQE, and with 64 tasks reading 4 KiB each that
 * line had left the cache (the copies of a turn fill L2). */
#define UCO__TASK_OP UINT64_C(1)

/* ------------------------------------------------------------ waits */

/* A FIFO of tasks waiting for one thing (a timer bucket, a mutex, a task
 * to finish).  A task waits for at most one thing at a time, through the
 * link in its `wait` member. */
struct uco__waitq {
	struct uco__list tasks;
};

struct uco__wait {
	struct uco__link link;
	struct uco__waitq *queue; /* NULL when not waiting */
};

/*
 * What a parked task waits for, for uco_loop_dump() and tools/uco-gdb.py.
 * Each kind of wait is one static descriptor in the file that owns the
 * wait; uco__park() records which (one store per park), and describe()
 * reads the details from the wait's own state when a dump asks.
 */
struct uco__wait_kind {
	const char *name;  /* "sleep", "io", "mutex" ... (gdb prints it) */
	/* The details of parked t's wait (which fd, which task, how long
	 * left), snprintf-style into buf; NULL when the name says it all.
	 * Called on the loop's thread. */
	void (*describe)(const uco_task *t, char *buf, size_t len);
};

/* The run queue: a ring of task pointers.  An array rather than a linked
 * list so that the scheduler can prefetch tasks far ahead without chasing
 * pointers.  Its capacity is reserved at spawn for every task the loop
 * holds (a task is in it at most once), so pushing never fails. */
struct uco__taskq {
	uco_task **slots;
	size_t head, len, cap; /* cap: a power of two, or 0 */
};

/* ------------------------------------------------------------ timers */

struct uco__timer_bucket;

struct uco__timers {
	struct uco__timer_bucket **heads; /* hash of buckets by deadline */
	unsigned mask;
	size_t count;
	struct uco__timer_bucket *last;   /* most recently used bucket */
};

/* ------------------------------------------------------------ tasks */

/* A removable watch on a task: `fired` runs synchronously when the task
 * finishes (on the scheduler, before its awaiters run).  The combinators
 * (gather, wait, groups) are built on it. */
struct uco__watch {
	struct uco__link link;    /* in task->watches */
	uco_task *task;           /* NULL when not watching */
	void (*fired)(struct uco__watch *w, uco_task *finished);
};

struct uco__done_cb {
	struct uco__done_cb *next;
	uco_done_cb fn;
	void *user;
};

enum uco__run_state {
	UCO__NEW,       /* spawned, never run */
	UCO__READY,     /* in the run queue */
	UCO__RUNNING,
	UCO__PARKED,    /* suspended, waiting for something */
	UCO__FINISHED,  /* the coroutine has ended; its stack is gone */
};

/*
 * The task object, laid out by when its fields are touched, one cache line
 * each (objects are 64-byte aligned): a burst of 1024 spawns, runs and
 * joins cycles through 1024 objects, more than L1 holds, so every line a
 * phase touches is a miss (~12 a task when it spanned five lines).
 *   line 0  spawn sets it; the scheduler runs the task from it (loop.c's
 *           warm_ahead loads it ahead);
 *   line 1  the result and what finish, join and release read;
 *   line 2  waiting: only a task that parks touches it;
 *   line 3  rare: deadlines, combinators, awaits in progress, sanitizers.
 * Spawn writes lines 0 and 1 only.  Lines 2 and 3 are zeroed when the
 * object is first allocated, and every field there that is read before it
 * is written is back to zero when the task has ended (a wait ends with its
 * hooks and queue cleared, a deadline disarmed, an await no longer
 * awaiting, watches fired and removed); task.c checks that in the ASan
 * build whenever an object is cached for reuse.  The others there
 * (wait_data, why, wake_result, error, cb_tail, the link fields) are only
 * read after they are written.
 */
struct uco_task {
	/* ---- line 0: run */
	union {
		void *sp;         /* saved stack pointer while suspended */
		uco_task *next_free; /* link in the loop's cache of task objects */
	};
	uco_loop *loop;           /* NULL once the loop is closed */
	uint8_t run_state;        /* enum uco__run_state */
	uint8_t state;            /* uco_task_state */
	bool pooled_stack;
	bool in_cb_queue;         /* finished, in the run queue for callbacks */
	/* A cancellation was requested and not yet delivered (no blocking
	 * call has returned -ECANCELED for it yet). */
	bool cancelling;
	bool timed_out;           /* the deadline interrupted the wait */
	/* A watch was added: the finish must look at `watches` (line 3). */
	bool watched;
	uint32_t refs;
	int fail_pending;         /* set by uco_fail(), read at return */
	uco_fn fn;
	void *arg;
	struct uco__stack stack;
	/* ---- line 1: result, finish, join */
	void *value;
	struct uco__ctx *ctx;     /* task-local context (context.c), or NULL */
	uco_task *all_prev, *all_next; /* every task the loop knows */
	uint64_t finish_seq;      /* the order it finished in (0: not yet) */
	struct uco__done_cb *cb_head; /* cb_tail is valid while it is set */
	struct uco__waitq awaiters; /* tasks awaiting this one */
	/* ---- line 2: waits */
	/* While parked: how to interrupt this wait (see uco__park()), and
	 * what the waiting primitive needs for it. */
	void (*wait_cancel)(uco_task *t);
	void *wait_data;
	const struct uco__wait_kind *why; /* what it parks for, while PARKED */
	struct uco__wait wait;    /* what this task waits for */
	/* A deadline on the current wait: the timer bucket it waits in. */
	struct uco__timer_bucket *timer_bucket;
	int wake_result;          /* what the thing waited for reports */
	int error;                /* the failure code, when FAILED/CANCELLED */
	/* ---- line 3: rare */
	struct uco__link timer_link;  /* in the bucket's deadlines */
	uco_task *awaiting;       /* the task it awaits, for cycle checks */
	struct uco__list watches; /* struct uco__watch, fired when it finishes */
	struct uco__done_cb **cb_tail;
#ifdef UCO__ASAN
	void *asan_fake_stack;
#endif
#ifdef UCO__TSAN
	void *tsan_fiber;
#endif
} __attribute__((aligned(64)));

#ifndef UCO_VALGRIND /* its stacks carry one more field */
_Static_assert(offsetof(struct uco_task, value) == 64, "line 0 is the run line");
_Static_assert(offsetof(struct uco_task, wait_cancel) == 128, "line 1 is the result line");
_Static_assert(offsetof(struct uco_task, timer_link) == 192, "line 2 is the wait line");
#endif


/* ------------------------------------------------------------ the loop */

/* Things a loop frees at close if the user did not (acceptors, receive
 * streams, buffer rings), after the ring is gone so the kernel has let go
 * of them. */
struct uco__resource {
	struct uco__link link;    /* in the loop's resources */
	void (*destroy)(struct uco__resource *r);
};

struct uco__inbox;
struct signals;
struct uco__stall;
struct uco__call_timers;

struct uco__backend;
struct uco__epoll;

struct uco_loop {
	/* The SQ and CQ.  The io_uring backend's are the kernel's; the epoll
	 * backend's are memory of its own, with no ring descriptor (-1). */
	struct io_uring ring;
	const struct uco__backend *backend; /* backend.h */
	const char *backend_why;  /* why AUTO fell back to epoll, or NULL */
	struct uco__epoll *epoll; /* the epoll backend's state, or NULL */
	/* A turn must enter the backend even with nothing to submit while
	 * work is in flight (DEFER_TASKRUN; the epoll backend's readiness). */
	bool enter_for_events;
	const void *owner;        /* thread token of the creating thread */
	uco_task *current;        /* the task running now, or NULL */
	void *sched_sp;           /* the scheduler's context while a task runs */
	/* x86_64: the scheduler's MXCSR and x87 control word, read before
	 * each turn's tasks and after user code on its stack between them,
	 * for the switch into a task (coro.h's uco__sched_fpctl_note). */
	uint64_t sched_fpctl;
	/* One FIFO, as asyncio's ready queue: a pending task in it is resumed,
	 * a finished one has its done-callbacks run. */
	struct uco__taskq ready;
	uco_task *all_tasks;
	size_t ntasks;            /* task objects linked in all_tasks */
	uco_task *task_cache;     /* freed task objects, for reuse */
	size_t ncached;
	struct uco__stack_pool pool;
	struct uco__timers timers;
	uint64_t live;            /* spawned and not finished */
	uint64_t inflight;        /* SQEs whose final CQE is still due */
	uint64_t submit_generation; /* io_uring_enter calls so far */
	uint64_t finished_count;  /* tasks finished, for finish_seq */
	unsigned features;        /* UCO_RING_* */
	uint64_t opcodes[4];      /* IORING_OP_* this kernel has, probed once */
	bool running, stop_requested;
	bool reaping;
	int64_t next_trim;        /* uco_now() of the next pool trim */
	struct uco__inbox *inbox; /* posts from executor threads */
	struct uco__list resources; /* struct uco__resource */
	/* Cancel requests no SQE could be had for, sent next turn (ring.c). */
	struct uco__completion *cancels;
	struct signals *signals;  /* uco_loop_on_signal's listener */
	struct uco__call_timers *call_timers; /* uco_call_later's (timer_handle.c) */
	uint16_t next_bgid;       /* provided-buffer group ids handed out */
	unsigned recv_stream_hold; /* uco_loop_opts's, 0: bufring.c's default */
	uint64_t *fixed_used;     /* bitmap of the fixed-file table, or NULL */
	uco_executor *executor;   /* the default executor, if any */
	/* Executor jobs submitted this turn, for batch_ex, handed over in
	 * one go at the end of the turn (struct job, executor.c). */
	struct uco__list batch;
	uco_executor *batch_ex;
	bool owns_executor;
	/* Debug mode: warn when a task runs longer than this without
	 * yielding (0: off; see debug.c). */
	int64_t slow_ns;
	/* The live stall report, or NULL when off (stall.h). */
	struct uco__stall *stall;
	uco_loop_stats stats;
#ifdef UCO__ASAN
	void *asan_fake_stack;
	const void *asan_sched_bottom;
	size_t asan_sched_size;
#endif
#ifdef UCO__TSAN
	void *tsan_sched_fiber;
#endif
	/* uco_buffers_register()'s buffers, or NULL: none (fixed_buffers.c). */
	struct uco__fixed_bufs *fixed_bufs;
	/* uco_loop_opts's, for ring.c's UCO_LOOP_SQPOLL and UCO_LOOP_NAPI. */
	unsigned busy_poll_us;
};

/* Opcodes newer than Debian's liburing 2.3, by their kernel uapi numbers
 * (liburing 2.5's io_uring_prep_waitid() fills the same SQE). */
#define UCO__OP_WAITID 50 /* 6.7 */

static inline bool uco__has_op(const uco_loop *loop, unsigned op)
{
	return op < 256 && (loop->opcodes[op / 64] >> (op % 64) & 1);
}

/* ============================================================ the files, bottom-up */

/* stack.c */
int uco__stack_pool_init(struct uco__stack_pool *pool, size_t stack_size,
                         size_t keep_warm);
void uco__stack_pool_destroy(struct uco__stack_pool *pool);
int uco__stack_pool_reserve_slow(struct uco__stack_pool *pool);
/* Promise a stack to a task that has not started (stack.c says why). */
static inline int uco__stack_pool_reserve(struct uco__stack_pool *pool)
{
	if (pool->nfree > pool->reserved) {
		pool->reserved++;
		return 0;
	}
	return uco__stack_pool_reserve_slow(pool);
}
void uco__stack_pool_unreserve(struct uco__stack_pool *pool);
/* What ASan and Valgrind are told when a pooled stack is taken and given
 * back (stack.c); nothing in other builds. */
#if defined(UCO__ASAN) || defined(UCO_VALGRIND)
void uco__stack_taken(struct uco__stack *s);
void uco__stack_returned(const struct uco__stack *s);
#else
static inline void uco__stack_taken(struct uco__stack *s)
{
	(void)s;
}
static inline void uco__stack_returned(const struct uco__stack *s)
{
	(void)s;
}
#endif
/* Take the stack reserved for a task that is about to start, and give a
 * finished task's back: inline, as every task does both. */
static inline void uco__stack_pool_take(struct uco__stack_pool *pool, struct uco__stack *out)
{
	pool->reserved--; /* nfree > reserved before: one is there */
	char *base = pool->free[--pool->nfree];
	if (pool->nfree < pool->ncold)
		pool->ncold = pool->nfree;
	size_t warm = pool->nfree - pool->ncold;
	if (warm < pool->warm_low)
		pool->warm_low = warm;
	*out = (struct uco__stack){ .base = base, .size = pool->stack_size };
	uco__stack_taken(out);
}
static inline void uco__stack_pool_put(struct uco__stack_pool *pool, const struct uco__stack *s)
{
	uco__stack_returned(s);
	/* add_slab() reserved a slot for every stack it made. */
	pool->free[pool->nfree++] = s->base;
}
size_t uco__stack_pool_trim(struct uco__stack_pool *pool);
/* A stack of its own size, outside the pool. */
int uco__stack_map(size_t size, bool guard_madvise, struct uco__stack *out);
void uco__stack_unmap(const struct uco__stack *s);
size_t uco__page_size(void);

/* ring.c (its backends are behind backend.h) */
/* Ask the kernel to cancel c's operation (IORING_OP_ASYNC_CANCEL).  Never
 * lost: with no SQE to be had now, the request waits on the loop and is sent
 * at the start of the next turn, unless the operation ends first. */
void uco__cancel_request(uco_loop *loop, struct uco__completion *c);
/* At uco_loop_close, before uco__ring_exit: cancel what is still in flight
 * and close the descriptors in completions nobody will reap. */
void uco__ring_drain(uco_loop *loop);
/* An SQE whose CQE will be handed to `c` (NULL: none expected).  When the
 * SQ is full the pending SQEs are submitted first, so an operation is never
 * dropped.  NULL only if the kernel keeps refusing (-EBUSY/-ENOMEM). */
struct io_uring_sqe *uco__sqe_get(uco_loop *loop, struct uco__completion *c);
/* Make room for n SQEs in a row (a linked chain must not be split by a
 * submit in its middle).  0, or -EAGAIN/-EBUSY if the kernel refuses. */
int uco__sqe_reserve(uco_loop *loop, unsigned n);
/* One io_uring_submit of what the SQ holds, now, without reaping (safe
 * under a lock that completions may take): 0 or the error, in which case
 * nothing was consumed. */
int uco__ring_submit_now(uco_loop *loop);
/* Submit what is pending; wait for at least one CQE if `wait` (up to
 * timeout_ns when >= 0), then hand every available CQE to its completion. */
int uco__ring_turn(uco_loop *loop, bool wait, int64_t timeout_ns);
/* With SQPOLL: let the kernel's SQ thread see the SQEs written so far now
 * (liburing publishes the SQ tail only at the turn's submit), so that it
 * works on them while the loop runs its next tasks.  Only where every SQE
 * written is whole: an operation and its linked timeout, never half a
 * chain.  The SQ array is liburing's identity map, so the tail is all. */
static inline void uco__sq_publish(uco_loop *loop)
{
	if (loop->features & UCO_RING_SQPOLL)
		io_uring_smp_store_release(loop->ring.sq.ktail, loop->ring.sq.sqe_tail);
}
/* For tests: behave as if the kernel lacked `op`. */
void uco__forget_opcode(uco_loop *loop, unsigned op);

/* coro.c: the switch layer.  The loop running on this thread (set by the
 * loop's run), and switching between the scheduler and tasks. */
void uco__running_set(uco_loop *loop);
/* The loop running on this thread (the only global state uco keeps), and
 * a thread-local whose address is the thread's token.  initial-exec: read
 * with no call to __tls_get_addr, which may allocate (in a dlopen'ed
 * libuco), so that the SIGSEGV handler can read it; and read inline here,
 * because spawn, await and every ownership check read them (a call each
 * was ~15 instructions of spawn's ~140). */
extern __thread uco_loop *uco__tls_running __attribute__((tls_model("initial-exec")));
extern __thread char uco__tls_token __attribute__((tls_model("initial-exec")));
/* The token of the calling thread (the address of a thread-local). */
static inline const void *uco__thread_token(void)
{
	return &uco__tls_token;
}
/* The running task of this thread, and its loop. */
static inline uco_task *uco__self(void)
{
	uco_loop *loop = uco__tls_running;
	return loop ? loop->current : NULL;
}
/* The loop a spawn-like call works on: *loop, or (NULL) the loop running
 * on this thread.  0, -EINVAL (no loop) or -EPERM (another thread's). */
static inline int uco__spawn_loop(uco_loop **loop)
{
	if (!*loop)
		*loop = uco__tls_running;
	if (!*loop)
		return -EINVAL;
	return (*loop)->owner == &uco__tls_token ? 0 : -EPERM;
}
/* uco__coro_start and uco__coro_resume: coro.h, inline in the loop. */
void uco__coro_park(uco_loop *loop, uco_task *t);
__attribute__((noreturn)) void uco__coro_exit(uco_loop *loop, uco_task *t);
/* Forget a finished coroutine's fiber state: only TSan has any (inline
 * nothing otherwise, on every task's finish). */
#ifdef UCO__TSAN
void uco__coro_release(uco_task *t);
#else
static inline void uco__coro_release(uco_task *t)
{
	(void)t;
}
#endif

/* thread.c: a thread of uco's own (executor workers and any other
 * helper thread), with every asynchronous signal blocked so that signals
 * go to the program's threads.  0 or -errno. */
int uco__thread_create(pthread_t *thread, void *(*fn)(void *), void *arg);

/* overflow.c: the stack-overflow report (a SIGSEGV handler on an
 * alternate signal stack), watched for while this thread has a loop. */
void uco__overflow_watch(void);
void uco__overflow_unwatch(void);

/* time.c: the clock and the timers. */
int uco__timers_init(struct uco__timers *tm);

/* The timer side of a deadline on any wait (wait.c's uco__deadline_set
 * and uco__park_until use them): arm puts t on the bucket that ends at
 * `deadline` (-ETIMEDOUT if past); when it fires it interrupts t's wait
 * and marks it timed out; disarm takes t off and turns `result` into
 * -ETIMEDOUT if the deadline came first. */
int uco__timer_arm(uco_task *t, int64_t deadline);
int uco__timer_disarm(uco_task *t, int result);
/* A sleep: t joins the sleepers of the bucket that ends `ns` (> 0) from
 * now, rounded up; uco__timer_unsleep takes it off again (a cancel). */
int uco__timer_sleep(uco_task *t, int64_t ns);
void uco__timer_unsleep(uco_task *t);
/* At least how long until sleeping t wakes (for dumps; never negative). */
int64_t uco__timer_sleep_left(const uco_task *t, int64_t now);
void uco__timers_destroy(struct uco__timers *tm);
/* At least how long until b's timer fires (for dumps; never negative). */
int64_t uco__timer_left(const struct uco__timer_bucket *b, int64_t now);

/* debug.c */
/* Name a task's function for a human: its symbol, else "file+0xoffset"
 * (for addr2line), else the address.  snprintf's return. */
int uco__describe_fn(uco_fn fn, char *buf, size_t len);
/* "850 ns", "40.0 us", "12.5 ms", "3.0 s". */
int uco__format_ns(int64_t ns, char *buf, size_t len);
/* Debug mode: t ran ran_ns without yielding, more than limit_ns. */
void uco__slow_report(const uco_loop *loop, const uco_task *t, int64_t ran_ns,
                      int64_t limit_ns);

/* wait.c: waiting and waking.  Waking (and the run queue it pushes onto)
 * is inline: it is on every operation's path, and the timers (time.c)
 * wake sleepers without depending on the wait module. */

/* The run queue has room for every task (reserved at spawn). */
static inline void uco__ready_push(uco_loop *loop, uco_task *t)
{
	struct uco__taskq *q = &loop->ready;
	q->slots[(q->head + q->len++) & (q->cap - 1)] = t;
}

static inline void uco__wake(uco_loop *loop, uco_task *t, int result)
{
	t->wake_result = result;
	t->run_state = UCO__READY;
	uco__ready_push(loop, t);
}

/* Interrupt parked t's wait through its cancel hook, taken and cleared
 * first so that it runs once (a cancel, a deadline).  false: not parked,
 * or the wait has no hook (or already used it). */
static inline bool uco__interrupt(uco_task *t)
{
	if (t->run_state != UCO__PARKED || !t->wait_cancel)
		return false;
	void (*hook)(uco_task *) = t->wait_cancel;
	t->wait_cancel = NULL;
	hook(t);
	return true;
}

static inline void uco__waitq_push(struct uco__waitq *q, uco_task *t)
{
	t->wait.queue = q;
	uco__list_push(&q->tasks, &t->wait.link);
}

static inline void uco__waitq_remove(uco_task *t)
{
	if (t->wait.queue) {
		uco__list_remove(&t->wait.queue->tasks, &t->wait.link);
		t->wait.queue = NULL;
	}
}

static inline uco_task *uco__waitq_pop(struct uco__waitq *q)
{
	struct uco__link *l = uco__list_pop(&q->tasks);
	if (!l)
		return NULL;
	uco_task *t = UCO__LIST_ENTRY(l, uco_task, wait.link);
	t->wait.queue = NULL;
	return t;
}

static inline bool uco__waitq_empty(const struct uco__waitq *q)
{
	return uco__list_empty(&q->tasks);
}

int uco__ready_reserve(uco_loop *loop, size_t n);
/* uco__park(), uco__park_only(): park.h. */
static inline bool uco__cancel_due(uco_task *t)
{
	if (!t->cancelling)
		return false;
	t->cancelling = false;
	return true;
}
/*
 * Every wait with a deadline is these two steps around joining the wait:
 * uco__deadline_set (0; -ETIMEDOUT if already past, -ENOMEM/-EAGAIN; no-op
 * for a negative deadline, "none"), then, once joined, uco__park_until:
 * uco__park that, if the deadline came first (it interrupted the wait
 * through the cancel hook), reports -ETIMEDOUT.  Never early, like
 * uco_sleep().
 */
int uco__deadline_set(uco_task *t, int64_t deadline);
int uco__park_until(uco_task *t, const struct uco__wait_kind *why,
                    void (*cancel)(uco_task *t));
/* Park the running task in q until something wakes it (0, or the wake
 * result), a cancel (-ECANCELED) or the deadline (-ETIMEDOUT; -1: none). */
int uco__wait_in(uco_task *self, struct uco__waitq *q, const struct uco__wait_kind *why,
                 int64_t deadline);

/* task.c */
void uco__task_finish(uco_loop *loop, uco_task *t);
void uco__run_callbacks(uco_task *t);
void uco__task_unref(uco_task *t);
/* What a cancel of an awaiting task does: pass it on to the awaited task
 * and go on waiting (uco_await), or leave at once and let the awaited
 * task go on (uco_shield). */
enum uco__await_mode { UCO__AWAIT, UCO__SHIELD };
/* Await `task`; a deadline (>= 0) interrupts as a cancel of the caller
 * would, and an expired one reports -ETIMEDOUT unless the task ended with
 * a value. */
int uco__await(uco_task *task, void **value, enum uco__await_mode mode, int64_t deadline);
size_t uco__task_cache_trim(uco_loop *loop, size_t keep);
void uco__watch_add(uco_task *t, struct uco__watch *w);
void uco__watch_remove(struct uco__watch *w);

/* uco_spawn() of a task that owns `mem` (malloc'ed): freed once the task
 * has ended, however it ends, even cancelled before it ran; freed at once
 * when the spawn fails. */
int uco__spawn_owning(uco_loop *loop, uco_task **out, uco_fn fn, void *mem);

/* inbox.c: a loop's inbox, how other threads hand it work.
 * Something another thread hands to a loop: its completion runs on the
 * loop's thread.  Posted through the loop's inbox (uco__post_to, from any
 * thread), the doorbell rung under the inbox lock so that a loop can never
 * have closed before its doorbell lands.  Counted posts were added to the
 * target loop's inflight by that loop before it waited for them. */
struct uco__post {
	struct uco__completion done;    /* dispatched on the loop */
	struct uco__post *next_posted;  /* inbox list link */
	struct uco__inbox *to;          /* the loop it goes to */
};
int uco__inbox_create(uco_loop *loop);
void uco__inbox_destroy(struct uco__inbox *in);
/* Post p to p->to; `own` is the poster's ring for a MSG_RING doorbell
 * (an executor worker's), or NULL (the posting loop's ring, else the
 * eventfd). */
void uco__inbox_post(struct uco__post *p, struct io_uring *own);
void uco__post_to(uco_loop *loop, struct uco__post *p);
/* Doorbells that `own` rang and the target refused: ring their eventfds. */
void uco__inbox_reap_bells(struct io_uring *own);
/* Run what other threads posted so far, without waiting for the doorbell
 * (a run that found no work left): true if anything was posted. */
bool uco__inbox_take(uco_loop *loop);
/* uco_loop_call() whose arg is the caller's malloc'd memory, freed if the
 * loop closes before the call runs. */
int uco__loop_call_owned(uco_loop *loop, void (*fn)(void *arg), void *arg);

/* executor.c: the worker pool; the loop hands over its batch of the turn
 * and shuts its own default executor down at close. */
void uco__executor_flush(uco_loop *loop);
void uco__loop_executor_close(uco_loop *loop);

/* loop.c: resources a loop frees at close. */
void uco__resource_add(uco_loop *loop, struct uco__resource *r);
void uco__resource_remove(uco_loop *loop, struct uco__resource *r);

/* context.c: task-local context.  A spawned task shares the spawning
 * task's context (copied on write); the finish lets go of it, which runs
 * the destructors of values no other task holds. */
struct uco__ctx;
void uco__ctx_inherit(uco_task *child);
void uco__ctx_release(uco_task *t);
/* Append "ctx: name=value, ..." (the keys described for dumps) to the
 * string in buf; how many characters it added. */
size_t uco__ctx_describe(const struct uco__ctx *ctx, char *buf, size_t len);

/* tls.c (tls_none.c): the socket under a TLS connection, for the stream
 * layer's uco_stream_open_tls(); -EINVAL for NULL, -ENOTSUP without TLS. */
int uco__tls_fd(const uco_tls *t);

/* io.c: one operation (one SQE, plus a linked timeout for a deadline),
 * the calling task parked until its own CQE (the buffer rule: see io.c).
 * uco__op_start: the SQE (user_data set; room for the timeout reserved),
 * or NULL with *err (-EPERM outside a task, -EOPNOTSUPP, -ECANCELED, or
 * the ring's refusal); prepare it, then uco__op_wait: the CQE's result,
 * -ETIMEDOUT or -ECANCELED. */
struct uco__op {
	struct uco__completion done;
	uco_task *task;
	int res;
	bool cancel_sent;
	uint8_t opcode;                    /* IORING_OP_*, for dumps */
	int fd;                            /* likewise */
	struct __kernel_timespec deadline; /* read by the kernel at submit */
};
struct io_uring_sqe *uco__op_start(struct uco__op *op, unsigned opcode, int64_t deadline,
                                   int *err);
int uco__op_wait(struct uco__op *op, struct io_uring_sqe *sqe, int64_t deadline);

/* fixed_buffers.c: the buffers registered with uco_buffers_register()
 * (loop->fixed_bufs), against which every fixed read and write is checked
 * before its SQE is made, so a backend that emulates the ring may trust
 * sqe->buf_index and the range.  The kernel learns of them through
 * uco__register_buffers / uco__unregister_buffers alone (a backend without
 * a ring answers those itself: 0). */
struct uco__fixed_bufs {
	struct uco__resource resource; /* freed at the loop's close */
	unsigned n;
	unsigned inflight;             /* fixed reads and writes not yet ended */
	struct iovec iov[];            /* a copy of the caller's */
};
int uco__register_buffers(uco_loop *loop, const struct iovec *iov, unsigned n);
int uco__unregister_buffers(uco_loop *loop);

#endif
