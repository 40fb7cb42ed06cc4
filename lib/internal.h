/* SPDX-License-Identifier: MIT */
/*
 * What the files of lib/ share.  Nothing here is public: `uco__` names are
 * hidden from the shared library.
 */
#ifndef UCO_INTERNAL_H
#define UCO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

#include "uco.h"
#include "arch/switch.h"

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

int uco__stack_pool_init(struct uco__stack_pool *pool, size_t stack_size,
                         size_t keep_warm);
void uco__stack_pool_destroy(struct uco__stack_pool *pool);
int uco__stack_pool_get(struct uco__stack_pool *pool, struct uco__stack *out);
void uco__stack_pool_put(struct uco__stack_pool *pool, const struct uco__stack *s);
size_t uco__stack_pool_trim(struct uco__stack_pool *pool);
/* A stack of its own size, outside the pool. */
int uco__stack_map(size_t size, bool guard_madvise, struct uco__stack *out);
void uco__stack_unmap(const struct uco__stack *s);
size_t uco__page_size(void);

/* ------------------------------------------------------------ waiting */

/* An intrusive FIFO of tasks waiting for one thing (a timer bucket, a task
 * to finish).  A task waits for at most one thing at a time, through the
 * links in its `wait` member. */
struct uco__waitq {
	uco_task *head, *tail;
};

struct uco__wait {
	uco_task *prev, *next;
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

void uco__waitq_push(struct uco__waitq *q, uco_task *t);
void uco__waitq_remove(uco_task *t);
uco_task *uco__waitq_pop(struct uco__waitq *q);

/* The run queue: a ring of task pointers.  An array rather than a linked
 * list so that the scheduler can prefetch tasks far ahead without chasing
 * pointers.  Its capacity is reserved at spawn for every task the loop
 * holds (a task is in it at most once), so pushing never fails. */
struct uco__taskq {
	uco_task **slots;
	size_t head, len, cap; /* cap: a power of two, or 0 */
};

/* ------------------------------------------------------------ completions */

/* Every SQE uco submits carries a pointer to one of these as user_data; the
 * reaper calls `complete` with the CQE.  user_data 0 means "no completion
 * wanted". */
struct uco__completion {
	void (*complete)(uco_loop *loop, struct uco__completion *c,
	                 const struct io_uring_cqe *cqe);
	/* A standing listener (the executor inbox's eventfd read): it does
	 * not count as work in flight, so it never keeps a loop running. */
	bool uncounted;
};

/* ------------------------------------------------------------ resources */

/* Things a loop frees at close if the user did not (acceptors, receive
 * streams, buffer rings), after the ring is gone so the kernel has let go
 * of them. */
struct uco__resource {
	struct uco__resource *prev, *next;
	void (*destroy)(struct uco__resource *r);
};

void uco__resource_add(uco_loop *loop, struct uco__resource *r);
void uco__resource_remove(uco_loop *loop, struct uco__resource *r);

/* ------------------------------------------------------------ timers */

struct uco__timer_bucket;

struct uco__timers {
	struct uco__timer_bucket **heads; /* hash of buckets by deadline */
	unsigned mask;
	size_t count;
	struct uco__timer_bucket *last;   /* most recently used bucket */
};

int uco__timers_init(struct uco__timers *tm);

/*
 * A deadline on any wait.  Arm it before joining the wait (0, -ETIMEDOUT if
 * already past, -ENOMEM/-EAGAIN), park with a cancel hook as usual, then
 * pass the park's result through uco__timer_disarm(): if the deadline came
 * first it interrupted the wait through that hook and the result becomes
 * -ETIMEDOUT.  Never early, like uco_sleep().
 */
int uco__timer_arm(uco_task *t, int64_t deadline);
int uco__timer_disarm(uco_task *t, int result);
void uco__timers_destroy(struct uco__timers *tm);
/* At least how long until b's timer fires (for dumps; never negative). */
int64_t uco__timer_left(const struct uco__timer_bucket *b, int64_t now);

/* ------------------------------------------------------------ tasks */

/* A removable watch on a task: `fired` runs synchronously when the task
 * finishes (on the scheduler, before its awaiters run).  The combinators
 * (gather, wait, groups) are built on it. */
struct uco__watch {
	struct uco__watch *prev, *next;
	uco_task *task;
	void (*fired)(struct uco__watch *w, uco_task *finished);
};

void uco__watch_add(uco_task *t, struct uco__watch *w);
void uco__watch_remove(struct uco__watch *w);

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

struct uco_task {
	void *sp;                 /* saved stack pointer while suspended */
	uco_task *next_free;      /* link in the loop's cache of task objects */
	uco_loop *loop;           /* NULL once the loop is closed */
	uint8_t run_state;        /* enum uco__run_state */
	uint8_t state;            /* uco_task_state */
	bool pooled_stack;
	bool in_cb_queue;         /* finished, in the run queue for callbacks */
	int error;                /* the failure code, when FAILED/CANCELLED */
	int wake_result;          /* what the thing waited for reports */
	int fail_pending;         /* set by uco_fail(), read at return */
	/* A cancellation was requested and not yet delivered (no blocking
	 * call has returned -ECANCELED for it yet). */
	bool cancelling;
	/* While parked: how to interrupt this wait (see uco__park()), and
	 * what the waiting primitive needs for it. */
	void (*wait_cancel)(uco_task *t);
	void *wait_data;
	const struct uco__wait_kind *why; /* what it parks for, while PARKED */
	uint32_t refs;
	uco_fn fn;
	void *arg;
	void *value;
	struct uco__stack stack;
	struct uco__wait wait;    /* what this task waits for */
	/* A deadline on the current wait: the timer bucket it waits in. */
	struct uco__timer_bucket *timer_bucket;
	uco_task *timer_prev, *timer_next;
	bool timed_out;           /* the deadline interrupted the wait */
	uco_task *awaiting;       /* the task it awaits, for cycle checks */
	struct uco__waitq awaiters; /* tasks awaiting this one */
	struct uco__watch *watches; /* fired when it finishes */
	uint64_t finish_seq;      /* the order it finished in (0: not yet) */
	struct uco__done_cb *cb_head, **cb_tail;
	uco_task *all_prev, *all_next; /* every task the loop knows */
#ifdef UCO__ASAN
	void *asan_fake_stack;
#endif
#ifdef UCO__TSAN
	void *tsan_fiber;
#endif
};

/* ------------------------------------------------------------ the loop */

struct uco__inbox;
struct uco__job;
struct signals;
struct uco__call_timers;

struct uco_loop {
	struct io_uring ring;
	const void *owner;        /* thread token of the creating thread */
	uco_task *current;        /* the task running now, or NULL */
	void *sched_sp;           /* the scheduler's context while a task runs */
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
	struct uco__resource *resources;
	struct signals *signals;  /* uco_loop_on_signal's listener */
	struct uco__call_timers *call_timers; /* uco_call_later's (timer_handle.c) */
	uint16_t next_bgid;       /* provided-buffer group ids handed out */
	uint64_t *fixed_used;     /* bitmap of the fixed-file table, or NULL */
	uco_executor *executor;   /* the default executor, if any */
	/* Executor jobs submitted this turn, for batch_ex, handed over in
	 * one go at the end of the turn (struct job, executor.c). */
	struct uco__job *batch_head, *batch_tail;
	uco_executor *batch_ex;
	bool owns_executor;
	/* Debug mode: warn when a task runs longer than this without
	 * yielding (0: off; see debug.c). */
	int64_t slow_ns;
	uco_loop_stats stats;
#ifdef UCO__ASAN
	void *asan_fake_stack;
	const void *asan_sched_bottom;
	size_t asan_sched_size;
#endif
#ifdef UCO__TSAN
	void *tsan_sched_fiber;
#endif
};

/* uco_spawn() of a task that owns `mem` (malloc'ed): freed once the task
 * has ended, however it ends, even cancelled before it ran; freed at once
 * when the spawn fails. */
int uco__spawn_owning(uco_loop *loop, uco_task **out, uco_fn fn, void *mem);

/* The token of the calling thread (the address of a thread-local). */
const void *uco__thread_token(void);

static inline bool uco__has_op(const uco_loop *loop, unsigned op)
{
	return op < 256 && (loop->opcodes[op / 64] >> (op % 64) & 1);
}

/* For tests: behave as if the kernel lacked `op`. */
void uco__forget_opcode(uco_loop *loop, unsigned op);

/* ring.c */
int uco__ring_init(uco_loop *loop, unsigned entries, unsigned flags);
void uco__ring_exit(uco_loop *loop);
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

/* coro.c: switching between the scheduler and tasks */
void uco__coro_start(uco_loop *loop, uco_task *t);
void uco__coro_resume(uco_loop *loop, uco_task *t);
void uco__coro_park(uco_loop *loop, uco_task *t);
__attribute__((noreturn)) void uco__coro_exit(uco_loop *loop, uco_task *t);
void uco__coro_release(uco_task *t);

/* task.c */
void uco__task_finish(uco_loop *loop, uco_task *t);
void uco__run_callbacks(uco_task *t);
void uco__task_unref(uco_task *t);
/* The cancel hook of an await (passes the cancellation on). */
void uco__cancel_await(uco_task *self);
int uco__await(uco_task *task, void **value, void (*hook)(uco_task *), int64_t deadline);
size_t uco__task_cache_trim(uco_loop *loop, size_t keep);

/* executor.c */
/* Something another thread hands to a loop: its completion runs on the
 * loop's thread.  Posted through the loop's inbox (uco__post_to, from any
 * thread), the doorbell rung under the inbox lock so that a loop can never
 * have closed before its doorbell lands.  Counted posts were added to the
 * target loop's inflight by that loop before it waited for them. */
struct uco__post {
	struct uco__completion done;    /* dispatched on the loop */
	struct uco__post *next_posted;  /* inbox list link */
	struct uco__inbox *to;          /* the loop it goes to */
};
void uco__post_to(uco_loop *loop, struct uco__post *p);
/* uco_loop_call() whose arg is the caller's malloc'd memory, freed if the
 * loop closes before the call runs. */
int uco__loop_call_owned(uco_loop *loop, void (*fn)(void *arg), void *arg);

void uco__inbox_destroy(struct uco__inbox *in);
int uco__inbox_create(uco_loop *loop);
void uco__executor_flush(uco_loop *loop);
void uco__loop_executor_close(uco_loop *loop);

/* loop.c */
void uco__ready_push(uco_loop *loop, uco_task *t);
int uco__ready_reserve(uco_loop *loop, size_t n);
void uco__wake(uco_loop *loop, uco_task *t, int result);
/*
 * Suspend the current task until uco__wake(); returns the wake result.
 * `cancel` says how uco_task_cancel() interrupts this wait: it must make
 * the task be woken with -ECANCELED, now or (for a wait the kernel or a
 * worker still holds memory for) once it is safe.  Blocking calls first
 * ask uco__cancel_due() and return -ECANCELED without waiting if a
 * cancellation is pending.
 */
int uco__park(uco_loop *loop, uco_task *t, const struct uco__wait_kind *why,
              void (*cancel)(uco_task *t));
bool uco__cancel_due(uco_task *t);
/* Park the running task in q until something wakes it (0, or the wake
 * result), a cancel (-ECANCELED) or the deadline (-ETIMEDOUT; -1: none). */
int uco__wait_in(uco_task *self, struct uco__waitq *q, const struct uco__wait_kind *why,
                 int64_t deadline);
/* The running task of this thread, and its loop. */
uco_task *uco__self(void);
/* The loop a spawn-like call works on: *loop, or (NULL) the loop running
 * on this thread.  0, -EINVAL (no loop) or -EPERM (another thread's). */
int uco__spawn_loop(uco_loop **loop);

/* debug.c */
/* Name a task's function for a human: its symbol, else "file+0xoffset"
 * (for addr2line), else the address.  snprintf's return. */
int uco__describe_fn(uco_fn fn, char *buf, size_t len);
/* "850 ns", "40.0 us", "12.5 ms", "3.0 s". */
int uco__format_ns(int64_t ns, char *buf, size_t len);
/* Debug mode: t ran ran_ns without yielding, more than limit_ns. */
void uco__slow_report(const uco_loop *loop, const uco_task *t, int64_t ran_ns,
                      int64_t limit_ns);

/* overflow.c: the stack-overflow report (a SIGSEGV handler on an
 * alternate signal stack), watched for while this thread has a loop. */
void uco__overflow_watch(void);
void uco__overflow_unwatch(void);

#endif
