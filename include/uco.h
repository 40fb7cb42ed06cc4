/* SPDX-License-Identifier: MIT */
/*
 * uco: an io_uring-native coroutine runtime.
 *
 * A loop (one per thread) runs tasks: stackful coroutines switched by uco's
 * own assembly.  Every sleep is an io_uring timeout; the loop submits all the
 * SQEs of one turn in one system call and a completion reaper resumes the
 * coroutines whose operations finished.
 *
 * Conventions, as in liburing and libuv:
 *   - every call returns >= 0 on success and a negative errno on failure;
 *     nothing is ever left in errno;
 *   - handles are opaque;
 *   - no global state beyond "the loop running on this thread".
 */
#ifndef UCO_H
#define UCO_H

#include <errno.h> /* the negative errno values every call returns */
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>

struct addrinfo;
struct iovec;
struct statx;

#include "uco/version.h"

#if defined(_WIN32)
#error "uco is Linux-only"
#endif

#if defined(UCO_BUILDING_LIBRARY)
#define UCO_API __attribute__((visibility("default")))
#else
#define UCO_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct uco_loop uco_loop;
typedef struct uco_task uco_task;

/* The body of a task.  Its return value is the task's value (asyncio's
 * `return`); to end the task with a failure instead, `return uco_fail(err)`. */
typedef void *(*uco_fn)(void *arg);

/* A done-callback: runs once on the loop (never inside a coroutine), after the
 * task has finished, with the user pointer given at registration. */
typedef void (*uco_done_cb)(uco_task *task, void *user);

/* "x.y.z" of the library actually loaded (compare with UCO_VERSION). */
UCO_API const char *uco_version(void);

/* ---------------------------------------------------------------- loops */

/* Options for uco_loop_create().  Zero-initialise, then set what you need:
 * every field left 0 takes the documented default. */
typedef struct uco_loop_opts {
	/* Stack size of each task, rounded up to whole pages.  Default
	 * UCO_STACK_SIZE_DEFAULT; at least UCO_STACK_SIZE_MIN. */
	size_t stack_size;
	/* Stacks the pool keeps warm (memory committed) however long they stay
	 * unused.  Warm stacks beyond this that were not needed for a whole
	 * trim period (about a second) give their memory back to the kernel.
	 * Default 64. */
	size_t stack_keep_warm;
	/* Submission queue entries (power of two).  Default 1024.  The
	 * completion queue is made 8 times larger. */
	unsigned ring_entries;
	/* UCO_LOOP_* flags. */
	unsigned flags;
	/* Buffers a receive stream may hold unconsumed before it stops
	 * receiving until its task has taken half of them (so that one stalled
	 * connection cannot drain a shared buffer ring).  Default: an eighth
	 * of the stream's ring's buffers, 1 to 16. */
	unsigned recv_stream_hold;
	/* Which backend runs the loop: UCO_BACKEND_AUTO (0, the default),
	 * UCO_BACKEND_IO_URING or UCO_BACKEND_EPOLL.  The environment variable
	 * UCO_BACKEND=auto|io_uring|epoll, when set, overrides it. */
	unsigned backend;
	/* How long the kernel busy-polls before it sleeps, in microseconds,
	 * for the polling flags: with UCO_LOOP_SQPOLL the SQ thread's idle
	 * time after its last work (whole milliseconds, rounded up; default
	 * one second, the kernel's), with UCO_LOOP_NAPI the NAPI busy-poll
	 * timeout (default 50).  0: the defaults. */
	unsigned busy_poll_us;
	unsigned reserved_[1]; /* must be zero */
} uco_loop_opts;

/* io_uring where the kernel allows it; the readiness (epoll) backend where
 * setting up a ring is refused or missing (EPERM from a seccomp profile or
 * the kernel.io_uring_disabled sysctl, ENOSYS, EOPNOTSUPP). */
#define UCO_BACKEND_AUTO 0u
/* io_uring only: uco_loop_create() fails where it is refused. */
#define UCO_BACKEND_IO_URING 1u
/* The readiness backend (epoll), even where io_uring works. */
#define UCO_BACKEND_EPOLL 2u

#define UCO_STACK_SIZE_DEFAULT (64u * 1024)
#define UCO_STACK_SIZE_MIN (16u * 1024)

/* Set up the ring with no optional flag at all (no SINGLE_ISSUER,
 * DEFER_TASKRUN or COOP_TASKRUN): the most portable configuration. */
#define UCO_LOOP_PLAIN_RING (1u << 0)
/* Opt-in polling, each at a cost (uco_loop_create(3), docs/polling.md):
 * SQPOLL: a kernel thread takes SQEs as they are written, so a busy loop
 * submits without system calls; that thread spins on a core of its own
 * while there is work and for busy_poll_us after (IORING_SETUP_SQPOLL;
 * no DEFER_TASKRUN or COOP_TASKRUN with it).  NAPI: waits for
 * completions busy-poll the network device's queues instead of sleeping
 * until its interrupt, for lower receive latency at the price of the
 * waiting core (io_uring_register_napi, Linux 6.9+).  -EOPNOTSUPP where
 * the kernel lacks the one asked for. */
#define UCO_LOOP_SQPOLL (1u << 1)
#define UCO_LOOP_NAPI (1u << 2)

/* Create a loop bound to the calling thread (io_uring's SINGLE_ISSUER: only
 * this thread may run it).  opts may be NULL.  Returns 0 and stores the loop
 * in *out, or:
 *   -ENOSYS  the kernel has no io_uring (too old, or compiled out);
 *   -EPERM   io_uring is refused (kernel.io_uring_disabled sysctl, or a
 *            seccomp filter such as Docker's default profile);
 *   -ENOMEM  no memory, or RLIMIT_MEMLOCK too small for the ring;
 *   -EINVAL  bad options.
 * uco_loop_strerror() explains a failure in a sentence for the user. */
UCO_API int uco_loop_create(uco_loop **out, const uco_loop_opts *opts);

/* A sentence that says what a uco_loop_create() error means and what to do
 * about it (which cause, which sysctl or profile).  Never NULL. */
UCO_API const char *uco_loop_strerror(int err);

/* Run until no task is left and no call from another thread is posted (0),
 * or until uco_loop_stop() was called (1; the tasks left are kept, and a
 * later run continues them).  -EBUSY if a loop
 * is already running on this thread, -EPERM from another thread than the
 * creator, -EINVAL for NULL, -EDEADLK if tasks are left that nothing can
 * ever wake (no operation in flight), or io_uring_enter's error. */
UCO_API int uco_loop_run(uco_loop *loop);

/* Run until `task` has finished, however it finished: 0, with *value (if
 * not NULL) the task's value, or NULL if it failed or was cancelled; its
 * outcome is the task's to tell (uco_task_result, uco_task_state_get).  A
 * negative result is always the loop's error, the task not finished.
 * Other tasks keep running meanwhile and stay in the loop afterwards.
 * Beyond the uco_loop_run() errors: -EINTR if uco_loop_stop() stopped the loop first,
 * -EDEADLK if nothing can ever finish the task (no task runnable, no
 * operation in flight). */
UCO_API int uco_loop_run_until(uco_loop *loop, uco_task *task, void **value);

/* Ask a running loop to return after the current turn (asyncio's stop()).
 * Called when the loop is not running, the next run returns after one turn.
 * A stop waits for the cancellations on their way (requested, not yet
 * delivered to a task that waits for the kernel or a worker), so that
 * cancel all, stop, run once more, close works as in asyncio. */
UCO_API int uco_loop_stop(uco_loop *loop);

/* Destroy a loop that is not running and has no unfinished task (-EBUSY
 * otherwise: the loop is left as it was; -EPERM from another thread).
 * Task handles the user still holds stay valid for uco_task_state_get,
 * uco_task_result, retain and release; adding a done-callback returns
 * -ESHUTDOWN, cancelling -EALREADY (they have all finished), and awaiting
 * one from another loop -EXDEV. */
UCO_API int uco_loop_close(uco_loop *loop);

/* The loop running on this thread, or NULL. */
UCO_API uco_loop *uco_loop_current(void);

/* Give every warm stack beyond stack_keep_warm back to the kernel now (the
 * loop also does this by itself, at most once a second).  Returns how many
 * stacks were trimmed. */
UCO_API int uco_loop_trim(uco_loop *loop);

/* Per-loop counters.  Every field only grows, except the two *_now ones. */
typedef struct uco_loop_stats {
	uint64_t sqes_submitted; /* SQEs handed to the kernel */
	uint64_t submit_calls;   /* io_uring_enter system calls */
	uint64_t cqes_reaped;    /* completions consumed */
	uint64_t switches;       /* coroutine switches (into and out of) */
	uint64_t tasks_spawned;
	uint64_t timer_sqes;     /* timeout SQEs armed for sleeps */
	uint64_t stacks_mapped;  /* stacks ever created (pool misses) */
	uint64_t stacks_trimmed; /* stacks whose memory went back */
	uint64_t tasks_live_now; /* spawned and not finished */
	uint64_t ready_now;      /* tasks in the run queue */
} uco_loop_stats;

UCO_API int uco_loop_stats_get(const uco_loop *loop, uco_loop_stats *out);

/* Ring features actually in use, UCO_RING_* bits (for logs and tests). */
#define UCO_RING_SINGLE_ISSUER (1u << 0)
#define UCO_RING_DEFER_TASKRUN (1u << 1)
#define UCO_RING_COOP_TASKRUN (1u << 2)
#define UCO_RING_GUARD_MADVISE (1u << 3) /* stacks guarded by MADV_GUARD_INSTALL */
#define UCO_RING_EPOLL (1u << 4) /* the readiness backend runs the loop: no ring */
#define UCO_RING_SQPOLL (1u << 5) /* UCO_LOOP_SQPOLL: a kernel SQ thread submits */
#define UCO_RING_NAPI (1u << 6)   /* UCO_LOOP_NAPI: waits busy-poll NAPI */
UCO_API unsigned uco_loop_features(const uco_loop *loop);

/* The backend running the loop, "io_uring" or "epoll" (NULL for NULL).
 * With `why` not NULL, *why is set to the sentence that says why AUTO fell
 * back to epoll (which call io_uring refused, and with what), or NULL when
 * it did not fall back. */
UCO_API const char *uco_loop_backend(const uco_loop *loop, const char **why);

/* ---------------------------------------------------------------- debugging */

/*
 * A task that overflows its stack is reported on stderr (which task, its
 * function, its stack size and how to raise it) before the process aborts;
 * UCO_OVERFLOW_REPORT=0 in the environment turns that off.  The README's
 * "Debugging" section has the rest: the gdb commands, Valgrind.
 */

/* Debug mode's slow-task warning (asyncio's slow_callback_duration): each
 * time a task of `loop` (NULL: the loop running on this thread) runs longer
 * than threshold_ns without yielding or blocking, one line on stderr names
 * it and says for how long it ran.  0 turns it off (the default); while on,
 * each switch into a task reads the clock twice.  -EINVAL for a negative
 * threshold or no loop, -EPERM from another thread than the loop's. */
UCO_API int uco_loop_set_slow_warning(uco_loop *loop, int64_t threshold_ns);

/* The live stall report (Seastar's stall detector): while a task of `loop`
 * (NULL: the loop running on this thread) runs longer than threshold_ns
 * without yielding, a watchdog thread interrupts the loop thread with a
 * real-time signal and its handler writes the task, its function and a
 * backtrace of where it is stuck to stderr, at most once per stall and
 * every 10 s.  0 turns it off (the default); while on, each switch into
 * and out of a task is one relaxed store.  -EINVAL (negative threshold, no
 * loop), -EPERM (another thread), -EBUSY (no real-time signal free),
 * -ENOMEM/-EAGAIN (no watchdog thread). */
UCO_API int uco_loop_set_stall_report(uco_loop *loop, int64_t threshold_ns);

/* Write a report of every task of `loop` (NULL: the loop running on this
 * thread) to fd, one line each: its state (runnable, running, waiting,
 * done), its function, its stack size and use, and what it waits for
 * (a sleep and the time left, an IO operation and its fd, the task it
 * awaits, a mutex, channel, executor job, gather ...).  From the loop's
 * thread, inside a task or not.  Returns how many tasks it listed,
 * -EINVAL (no loop), -EPERM (another thread), -EBADF, or a write error. */
UCO_API int uco_loop_dump(uco_loop *loop, int fd);

/* ---------------------------------------------------------------- tasks */

/* Start fn(arg) as a task on `loop` (NULL: the loop running on this thread),
 * from inside or outside a coroutine.  The task first runs on a later turn
 * of the loop, never inside this call.
 *
 * With `out` non-NULL the caller owns one reference to the task and must
 * give it back with uco_task_release(); with `out` NULL the task is
 * detached and the loop frees it when it ends.
 *
 * Only from the loop's own thread.  On failure nothing was started, no
 * callback will ever run, and *out is untouched: -EINVAL (fn NULL, no loop,
 * or a stack size below UCO_STACK_SIZE_MIN), -ENOMEM (no task or no stack:
 * memory, address space or vm.max_map_count), -EPERM (another thread). */
UCO_API int uco_spawn(uco_loop *loop, uco_task **out, uco_fn fn, void *arg);

/* uco_spawn() with this task's own stack size (rounded up to pages; 0 means
 * the loop's).  Stacks of another size than the loop's are not pooled. */
UCO_API int uco_spawn_sized(uco_loop *loop, uco_task **out, uco_fn fn,
                            void *arg, size_t stack_size);

/* Inside a task: record `err` (a negative errno) as the task's failure and
 * return NULL, so that `return uco_fail(-ENOENT);` ends the task failed.
 * A non-negative err is recorded as -EINVAL.  Outside a task it does
 * nothing and returns NULL. */
UCO_API void *uco_fail(int err);

/* Task states.  A task ends in exactly one of the three final ones. */
typedef enum uco_task_state {
	UCO_TASK_PENDING = 0, /* spawned, running or suspended */
	UCO_TASK_DONE = 1,    /* returned a value */
	UCO_TASK_FAILED = 2,  /* returned uco_fail(err) */
	UCO_TASK_CANCELLED = 3,
} uco_task_state;

/* The task's state, or -EINVAL for NULL. */
UCO_API int uco_task_state_get(const uco_task *task);

/* The result of a finished task: 0 and the value in *value (value may be
 * NULL), the failure code it reported, -ECANCELED if it was cancelled,
 * -EAGAIN while it is still pending, -EINVAL for NULL. */
UCO_API int uco_task_result(const uco_task *task, void **value);

/* Inside a coroutine: wait until `task` has finished, then return like
 * uco_task_result().  -EPERM outside a coroutine, -EDEADLK for the calling
 * task itself, -EXDEV for a task of another loop, -EINVAL for NULL.
 * Awaiting a finished task returns at once (without switching). */
UCO_API int uco_await(uco_task *task, void **value);

/* Register cb(task, user) to run once after the task has finished.  Callbacks
 * run in registration order, on the loop's own stack, never inside this call:
 * when the task finishes they are queued behind the tasks already ready, as
 * asyncio's call_soon does (so also when the task has already finished).
 * -ENOMEM: not registered; -ESHUTDOWN: the task's loop is closed. */
UCO_API int uco_task_add_done_callback(uco_task *task, uco_done_cb cb,
                                       void *user);

/* Reference counting.  A reference keeps the handle (state and value)
 * valid; the coroutine itself runs whether or not anyone holds one. */
UCO_API uco_task *uco_task_retain(uco_task *task);
UCO_API void uco_task_release(uco_task *task);

/* The task running on this thread, or NULL outside any coroutine. */
UCO_API uco_task *uco_task_current(void);

/* ---------------------------------------------------------------- cancellation */

/* Ask `task` to stop, as asyncio's Task.cancel() does.
 *   - A task that has not run yet ends cancelled without running.
 *   - A task blocked in uco_sleep, uco_await, uco_run_in_executor (or any
 *     blocking call) is woken: that call returns -ECANCELED.  An await
 *     passes the cancellation on to the awaited task and returns when that
 *     task has finished.  A job already running in an executor cannot be
 *     stopped: the call returns -ECANCELED once the job has ended.
 *   - A task that is running or ready gets -ECANCELED from its next
 *     blocking call.
 * The task may clean up and even carry on: it ends UCO_TASK_CANCELLED if
 * it returns uco_fail(-ECANCELED), or if the cancellation was never
 * delivered to it; otherwise it ends with what it returns.  Several
 * requests before delivery are one cancellation.  Returns 0 when the
 * request was recorded, -EALREADY if the task had already finished
 * (nothing changes), -EINVAL for NULL, -EPERM from another thread. */
UCO_API int uco_task_cancel(uco_task *task);

/* ---------------------------------------------------------------- combinators */

/*
 * asyncio's gather, wait, wait_for, as_completed, shield and TaskGroup, for
 * coroutines.  None of them takes ownership of the task handles passed in.
 */

/* Wait for every task; values[i] gets task i's value (in the order given,
 * not the order they finished).  Returns 0 when all returned values, else
 * the first failure in completion order, at once (the other tasks go on,
 * as in asyncio).  With UCO_GATHER_COLLECT it waits for all and fills
 * errors[i] (0, a failure code, or -ECANCELED) instead, returning how many
 * failed.  Cancelling the gathering coroutine cancels every task and
 * returns -ECANCELED once they have all finished.  values and errors may
 * be NULL.  -EPERM outside a coroutine, -EINVAL for bad arguments,
 * -EXDEV for a task of another loop, -EDEADLK if the caller is among the
 * tasks (the same checks hold for uco_wait and uco_next_completed). */
#define UCO_GATHER_COLLECT (1u << 0)
UCO_API int uco_gather(uco_task *const *tasks, size_t n, void **values, int *errors,
                       unsigned flags);

/* A task that gathers `tasks` (asyncio's gather() future, for groups of
 * groups): it ends with uco_gather()'s failure as its own, or value NULL;
 * with UCO_GATHER_COLLECT it ends done, its value the number that failed
 * (cast to uintptr_t).  The array must outlive it.  Cancelling it cancels them all once it runs; cancelled
 * before it first ran, it ends without gathering (nor cancelling). */
UCO_API int uco_spawn_gather(uco_loop *loop, uco_task **out, uco_task *const *tasks,
                             size_t n, unsigned flags);

/* Wait until the condition holds or the deadline passes; cancels nothing.
 * done[i] (if given) is set to 1 for the tasks that have finished and 0
 * for the others.  Returns how many have finished, -ETIMEDOUT if the
 * deadline passed first (done[] written), -ECANCELED, -EPERM, -EINVAL. */
#define UCO_WAIT_ALL_COMPLETED 0
#define UCO_WAIT_FIRST_COMPLETED 1
#define UCO_WAIT_FIRST_EXCEPTION 2 /* a failure or cancellation, or all done */
UCO_API int uco_wait(uco_task *const *tasks, size_t n, int mode, int64_t deadline,
                     unsigned char *done);

/* Await `task` with a deadline: on expiry the task is cancelled and, once
 * it has really finished, -ETIMEDOUT is returned (its value instead if it
 * finished with one regardless). */
UCO_API int uco_wait_for(uco_task *task, int64_t deadline, void **value);

/* Await `task`, but a cancellation of the caller does not reach it: the
 * caller gets -ECANCELED at once and the task goes on (asyncio.shield). */
UCO_API int uco_shield(uco_task *task, void **value);

/* as_completed: the index of the next task to finish among those whose
 * taken[i] is 0 (it is then set to 1), in completion order; -ENOENT when
 * all are taken, -ETIMEDOUT, -ECANCELED. */
UCO_API int uco_next_completed(uco_task *const *tasks, size_t n, unsigned char *taken,
                               int64_t deadline);

/* A task group (structured concurrency): tasks spawned into it are
 * awaited together by uco_group_wait(); when one fails, the others are
 * cancelled and the group reports that first failure.  Cancelling the
 * waiting coroutine cancels them all.  Destroy the group after the wait. */
typedef struct uco_group uco_group;
UCO_API int uco_group_create(uco_loop *loop, uco_group **out);
UCO_API int uco_group_spawn(uco_group *g, uco_task **out, uco_fn fn, void *arg);
UCO_API int uco_group_wait(uco_group *g);
UCO_API void uco_group_destroy(uco_group *g);

/* asyncio.all_tasks: up to cap retained references to the loop's
 * unfinished tasks (release each); returns how many there are. */
UCO_API size_t uco_loop_tasks(uco_loop *loop, uco_task **out, size_t cap);
/* Cancel every unfinished task of the loop; returns how many. */
UCO_API int uco_loop_cancel_all(uco_loop *loop);

/* ---------------------------------------------------------------- synchronisation */

/*
 * asyncio's Lock, Event, Condition, Semaphore and Queue, for the coroutines
 * of one loop (they are not for threads).  Waiters are served first come,
 * first served.  Each blocking call has a _dl form (-ETIMEDOUT) and returns
 * -ECANCELED when its task is cancelled; -EPERM outside a coroutine.  The
 * small ones are embedded in the caller's memory (init them; nothing to
 * free); channels are allocated.
 */
typedef struct uco_mutex { uintptr_t opaque_[4]; } uco_mutex;
typedef struct uco_event { uintptr_t opaque_[4]; } uco_event;
typedef struct uco_cond { uintptr_t opaque_[4]; } uco_cond;
typedef struct uco_sem { uintptr_t opaque_[4]; } uco_sem;

UCO_API void uco_mutex_init(uco_mutex *m);
UCO_API int uco_mutex_lock(uco_mutex *m);
UCO_API int uco_mutex_lock_dl(uco_mutex *m, int64_t deadline);
UCO_API int uco_mutex_trylock(uco_mutex *m);       /* 0, or -EBUSY */
/* -EPERM unless the calling task holds it; hands it to the first waiter. */
UCO_API int uco_mutex_unlock(uco_mutex *m);

UCO_API void uco_event_init(uco_event *e);
UCO_API int uco_event_wait(uco_event *e);
UCO_API int uco_event_wait_dl(uco_event *e, int64_t deadline);
UCO_API void uco_event_set(uco_event *e);          /* wakes every waiter */
UCO_API void uco_event_clear(uco_event *e);
UCO_API int uco_event_is_set(const uco_event *e);

/* Wait releases m (held by the caller) and takes it back before returning,
 * whatever the outcome. */
UCO_API void uco_cond_init(uco_cond *c);
UCO_API int uco_cond_wait(uco_cond *c, uco_mutex *m);
UCO_API int uco_cond_wait_dl(uco_cond *c, uco_mutex *m, int64_t deadline);
UCO_API void uco_cond_signal(uco_cond *c);
UCO_API void uco_cond_broadcast(uco_cond *c);

UCO_API void uco_sem_init(uco_sem *s, unsigned value);
UCO_API int uco_sem_acquire(uco_sem *s);
UCO_API int uco_sem_acquire_dl(uco_sem *s, int64_t deadline);
UCO_API int uco_sem_tryacquire(uco_sem *s);        /* 0, or -EAGAIN */
UCO_API void uco_sem_release(uco_sem *s);

/* A bounded channel of pointers (capacity 0: each send waits for its
 * receiver).  An item is either delivered to exactly one receiver or still
 * in the channel, cancellations and deadlines included.  After close,
 * receivers drain what is left, then get -EPIPE; senders get -EPIPE. */
typedef struct uco_chan uco_chan;
UCO_API int uco_chan_create(uco_chan **out, size_t capacity);
UCO_API int uco_chan_send(uco_chan *c, void *item);
UCO_API int uco_chan_send_dl(uco_chan *c, void *item, int64_t deadline);
UCO_API int uco_chan_recv(uco_chan *c, void **item);
UCO_API int uco_chan_recv_dl(uco_chan *c, void **item, int64_t deadline);
UCO_API int uco_chan_close(uco_chan *c);
/* Free a channel nobody waits on (-EBUSY otherwise). */
UCO_API int uco_chan_destroy(uco_chan *c);

/* ---------------------------------------------------------------- many loops */

/* From any thread (asyncio's call_soon_threadsafe): run fn(arg) on the
 * loop's own thread, on the loop's stack, in a later turn.  The loop is
 * woken if it waits, and a run takes posted calls even when no task is
 * live (a spawn into an idle loop runs at its next run).  Not after
 * uco_loop_close().  -ENOMEM, -EINVAL. */
UCO_API int uco_loop_call(uco_loop *loop, void (*fn)(void *arg), void *arg);

/* A bounded channel whose ends may live on different loops (threads): the
 * same contract as uco_chan (exactly once, close, _dl, -ECANCELED), for
 * coroutines of any loop.  A waiter on another loop is woken through that
 * loop's inbox, an eventfd read in its ring.  Free it when nobody waits
 * (-EBUSY otherwise). */
typedef struct uco_xchan uco_xchan;
UCO_API int uco_xchan_create(uco_xchan **out, size_t capacity);
UCO_API int uco_xchan_send(uco_xchan *c, void *item);
UCO_API int uco_xchan_send_dl(uco_xchan *c, void *item, int64_t deadline);
UCO_API int uco_xchan_recv(uco_xchan *c, void **item);
UCO_API int uco_xchan_recv_dl(uco_xchan *c, void **item, int64_t deadline);
UCO_API int uco_xchan_close(uco_xchan *c);
UCO_API int uco_xchan_destroy(uco_xchan *c);

/* From any thread: spawn fn(arg) as a detached task on `loop`. */
UCO_API int uco_loop_spawn_threadsafe(uco_loop *loop, uco_fn fn, void *arg);

/* Thread per core: start n threads, each with its own loop (pinned to CPU
 * i % CPUs when pin is set), call setup(loop, i, arg) on each to spawn its
 * tasks, run each loop until no task is left, close it, and return when
 * every thread has ended: 0, or the first error a thread met.  When a
 * thread fails (loop, setup or run), the other loops are stopped through
 * their inboxes, their tasks cancelled, and that failure returned. */
UCO_API int uco_run_threads(unsigned n, int pin,
                            int (*setup)(uco_loop *loop, unsigned index, void *arg),
                            void *arg);

/* A listening TCP socket with SO_REUSEPORT, so that each loop's own
 * listener (and acceptor) on the same address gets a share of the
 * connections.  Returns the descriptor or -errno. */
UCO_API int uco_listen_reuseport(const struct sockaddr *addr, socklen_t addrlen, int backlog);

/* ---------------------------------------------------------------- signals */

/* Inside a coroutine: wait for one of the signals in `set` (a signalfd read
 * through the ring) and return its number, or -ETIMEDOUT, -ECANCELED.  The
 * signals must be blocked in every thread (pthread_sigmask before creating
 * threads), or they may be delivered elsewhere; this call blocks them in
 * the calling thread. */
UCO_API int uco_signal_wait(const sigset_t *set, int64_t deadline);

/* Run cb(signo, user) on the loop each time signo arrives (asyncio's
 * loop.add_signal_handler), until the loop closes.  It is a standing
 * signalfd read, not a task: it does not keep the loop running by itself,
 * and cb runs on the loop's own stack, outside any coroutine (it may spawn,
 * cancel and stop, but not block). */
UCO_API int uco_loop_on_signal(uco_loop *loop, int signo, void (*cb)(int signo, void *user),
                               void *user);

/* ---------------------------------------------------------------- executor */

/* A pool of worker threads for blocking calls (asyncio's executors): a
 * coroutine hands it a function and is parked until a worker has run it;
 * the result comes back through the loop's own ring (IORING_OP_MSG_RING
 * from a worker's small ring, or an eventfd the loop reads, where
 * MSG_RING is missing).  One executor may serve many loops (threads); each
 * result goes back to the loop that asked. */
typedef struct uco_executor uco_executor;

typedef struct uco_executor_opts {
	/* Worker threads.  Default: min(32, online CPUs + 4), as asyncio. */
	unsigned threads;
	/* Jobs that may wait for a worker; 0: no limit.  When full, a
	 * coroutine waits for room and a call from outside one gets -EAGAIN. */
	unsigned queue_max;
	/* How long an idle worker spins for the next job before it sleeps
	 * (one worker at a time), in microseconds.  Default 50; set
	 * UCO_EXECUTOR_NO_SPIN in flags for none. */
	unsigned spin_us;
	unsigned flags; /* UCO_EXECUTOR_* */
	unsigned reserved_[4]; /* must be zero */
} uco_executor_opts;

#define UCO_EXECUTOR_NO_SPIN (1u << 0)
/* Post completions through the eventfd path even where MSG_RING works. */
#define UCO_EXECUTOR_NO_MSG_RING (1u << 1)

/* Start an executor.  opts may be NULL.  -EINVAL (bad options), -ENOMEM,
 * -EAGAIN (no thread could be started), or a ring set-up error. */
UCO_API int uco_executor_create(uco_executor **out, const uco_executor_opts *opts);

/* Stop an executor and free it, blocking the calling thread until every
 * running job has ended.  Queued jobs run first, or with
 * UCO_EXECUTOR_CANCEL_QUEUED are dropped (their callers get -ECANCELED).
 * Submissions racing with this call get -ESHUTDOWN; once it has returned
 * the executor is gone (use it no more).  Not from a job. */
#define UCO_EXECUTOR_CANCEL_QUEUED (1u << 0)
UCO_API int uco_executor_shutdown(uco_executor *ex, unsigned flags);

/* Inside a coroutine: run fn(arg) on a worker of `ex` (NULL: the loop's
 * default executor, made on first use) and wait for it; 0 and fn's return
 * value in *value (value may be NULL).  Only this coroutine waits; the
 * loop goes on.  Like SQEs, the jobs of one loop turn are handed to the
 * executor together when the turn ends (at once, for a bounded queue).  -EPERM outside a coroutine, -ECANCELED if the task was
 * cancelled (the job was dropped if it had not started, or has ended),
 * -ESHUTDOWN if the executor is shutting down, -ENOMEM. */
UCO_API int uco_run_in_executor(uco_executor *ex, uco_fn fn, void *arg, void **value);

/* From anywhere on the loop's thread: a task (asyncio's future) that runs
 * fn(arg) on `ex` (NULL: the loop's default executor) and ends with its
 * value; await it, gather it, or add callbacks.  Like uco_spawn(), plus
 * -EAGAIN when ex has a queue_max and its queue is full right now. */
UCO_API int uco_spawn_in_executor(uco_loop *loop, uco_task **out, uco_executor *ex,
                                  uco_fn fn, void *arg);

/* Make `ex` the default executor of `loop` (the loop does not own it:
 * shut it down yourself after closing the loops that use it).  -EBUSY if
 * the loop already made its own default executor. */
UCO_API int uco_loop_set_executor(uco_loop *loop, uco_executor *ex);

/* getaddrinfo() on the loop's default executor, from a coroutine.  0, a
 * negative errno (-EPERM outside a coroutine, -ECANCELED, -ENOMEM ...), or
 * UCO_EAI_ERROR(code) for a resolver error: uco_gai_strerror() names it.
 * Free *res with freeaddrinfo(). */
UCO_API int uco_getaddrinfo(const char *node, const char *service,
                            const struct addrinfo *hints, struct addrinfo **res);
#define UCO_EAI_BASE 3000
#define UCO_EAI_ERROR(eai) (-(UCO_EAI_BASE - (eai))) /* glibc's EAI_* are < 0 */
UCO_API const char *uco_gai_strerror(int err);

/* ---------------------------------------------------------------- IO */

/*
 * Every call below is one io_uring operation; only the calling coroutine
 * waits, and the loop submits the SQEs of a turn together.  Results are the
 * CQE's: >= 0 (bytes, a descriptor, revents) or -errno.  -EPERM outside a
 * coroutine.
 *
 * Deadlines (the _dl forms) are absolute uco_now() times; UCO_FOREVER
 * waits forever and 0 tries once.  On expiry the call returns -ETIMEDOUT,
 * unless the kernel completed the operation first: then its result wins
 * and no data is lost.
 *
 * Buffers belong to the kernel until the call returns, and a cancelled or
 * timed-out call returns only once the kernel is done with them (the
 * operation's own completion has arrived), so stack buffers are safe.
 */
#define UCO_FOREVER INT64_C(-1)

/* pread/pwrite at `offset`, or at the file position for offset -1. */
UCO_API ssize_t uco_read(int fd, void *buf, size_t len, int64_t offset);
UCO_API ssize_t uco_read_dl(int fd, void *buf, size_t len, int64_t offset, int64_t deadline);
UCO_API ssize_t uco_write(int fd, const void *buf, size_t len, int64_t offset);
UCO_API ssize_t uco_write_dl(int fd, const void *buf, size_t len, int64_t offset,
                             int64_t deadline);

UCO_API ssize_t uco_recv(int fd, void *buf, size_t len, int flags);
UCO_API ssize_t uco_recv_dl(int fd, void *buf, size_t len, int flags, int64_t deadline);
UCO_API ssize_t uco_send(int fd, const void *buf, size_t len, int flags);
UCO_API ssize_t uco_send_dl(int fd, const void *buf, size_t len, int flags, int64_t deadline);

/* Zero-copy send (IORING_OP_SEND_ZC, 6.0+; -EOPNOTSUPP before): for large
 * buffers, where copying costs more than pinning pages.  Returns once the
 * kernel no longer needs buf (its notification has arrived). */
UCO_API ssize_t uco_send_zc(int fd, const void *buf, size_t len, int flags);
UCO_API ssize_t uco_send_zc_dl(int fd, const void *buf, size_t len, int flags,
                               int64_t deadline);

/* A connected descriptor (with SOCK_CLOEXEC | SOCK_NONBLOCK from flags). */
UCO_API int uco_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
UCO_API int uco_accept_dl(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                          int64_t deadline);
UCO_API int uco_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
UCO_API int uco_connect_dl(int fd, const struct sockaddr *addr, socklen_t addrlen,
                           int64_t deadline);

/* Wait until fd is ready for `events` (POLLIN, POLLOUT ...): the revents.
 * For descriptors uco does not own. */
UCO_API int uco_poll(int fd, unsigned events);
UCO_API int uco_poll_dl(int fd, unsigned events, int64_t deadline);

UCO_API ssize_t uco_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
UCO_API ssize_t uco_readv_dl(int fd, const struct iovec *iov, int iovcnt, int64_t offset,
                             int64_t deadline);
UCO_API ssize_t uco_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
UCO_API ssize_t uco_writev_dl(int fd, const struct iovec *iov, int iovcnt, int64_t offset,
                              int64_t deadline);

/* UDP and ancillary data. */
UCO_API ssize_t uco_recvmsg(int fd, struct msghdr *msg, int flags);
UCO_API ssize_t uco_recvmsg_dl(int fd, struct msghdr *msg, int flags, int64_t deadline);
UCO_API ssize_t uco_sendmsg(int fd, const struct msghdr *msg, int flags);
UCO_API ssize_t uco_sendmsg_dl(int fd, const struct msghdr *msg, int flags, int64_t deadline);

/* Exactly len bytes, through short reads and writes: len on success; for
 * a read, the bytes read before end-of-file when it comes first (< len);
 * -errno on error (the bytes moved before it are not reported). */
UCO_API ssize_t uco_read_full(int fd, void *buf, size_t len, int64_t deadline);
UCO_API ssize_t uco_write_all(int fd, const void *buf, size_t len, int64_t deadline);

UCO_API int uco_socket(int domain, int type, int protocol);
UCO_API int uco_shutdown(int fd, int how);
UCO_API int uco_openat(int dirfd, const char *path, int flags, mode_t mode);
UCO_API int uco_openat_dl(int dirfd, const char *path, int flags, mode_t mode,
                          int64_t deadline);
/* Closes fd whatever happens, as close(2): a cancellation neither stops nor
 * interrupts it (it stays pending for the next blocking call). */
UCO_API int uco_close(int fd);
/* fsync, or fdatasync with datasync != 0. */
UCO_API int uco_fsync(int fd, int datasync);
UCO_API int uco_fsync_dl(int fd, int datasync, int64_t deadline);
UCO_API int uco_fallocate(int fd, int mode, int64_t offset, int64_t len);
UCO_API int uco_fallocate_dl(int fd, int mode, int64_t offset, int64_t len, int64_t deadline);
UCO_API int uco_statx(int dirfd, const char *path, int flags, unsigned mask,
                      struct statx *out);
UCO_API int uco_statx_dl(int dirfd, const char *path, int flags, unsigned mask,
                         struct statx *out, int64_t deadline);
/* Move up to len bytes between two descriptors, one of them a pipe
 * (offsets -1: the current position, or none for a pipe or socket). */
UCO_API ssize_t uco_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
                           size_t len, unsigned flags);
UCO_API ssize_t uco_splice_dl(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
                              size_t len, unsigned flags, int64_t deadline);

/* A multishot acceptor on a listening socket: the kernel accepts
 * connections as they arrive (IORING_ACCEPT_MULTISHOT, 5.19+; one accept at
 * a time on older kernels) and uco_acceptor_next() hands them out in
 * arrival order.  Open it on the loop's thread; flags are accept4()'s.  A
 * loop runs while tasks are alive (a server's acceptor task, say); one left
 * open is freed by uco_loop_close(). */
typedef struct uco_acceptor uco_acceptor;
UCO_API int uco_acceptor_open(uco_loop *loop, uco_acceptor **out, int listen_fd, int flags);
/* From a coroutine: the next accepted descriptor (yours to close), or
 * -errno: an accept error (the acceptor goes on; -EMFILE, -ENFILE,
 * -ENOBUFS, -ENOMEM: back off, then ask again; -ECONNABORTED and network
 * errors: ask again; see uco_acceptor_open(3)), -ETIMEDOUT,
 * -ECANCELED, -ESHUTDOWN if the acceptor was closed while this call
 * waited (after uco_acceptor_close() the handle is gone). */
UCO_API int uco_acceptor_next(uco_acceptor *a);
UCO_API int uco_acceptor_next_dl(uco_acceptor *a, int64_t deadline);
/* Stop accepting: waiting coroutines get -ESHUTDOWN, connections accepted
 * but not handed out are closed, and the acceptor is freed once the kernel
 * has let go of it.  The listening socket stays open (it is yours). */
UCO_API int uco_acceptor_close(uco_acceptor *a);

/* Provided buffers for servers with many connections: a ring of `count`
 * buffers (a power of two, at most 32768) of `size` bytes, lent to the
 * kernel (IORING_REGISTER_PBUF_RING, 5.19+; -EOPNOTSUPP before), which picks
 * one only when data arrives, so idle connections hold no buffer.  Destroy
 * it after its streams (-EBUSY before); uco_loop_close() frees one left. */
typedef struct uco_bufring uco_bufring;
UCO_API int uco_bufring_create(uco_loop *loop, uco_bufring **out, unsigned count, unsigned size);
UCO_API int uco_bufring_destroy(uco_bufring *br);

/* A multishot receive on a connected socket into br's buffers.  A stream
 * holds at most about uco_loop_opts.recv_stream_hold buffers unconsumed
 * (then stops receiving until its task takes chunks), so that one stalled
 * connection cannot drain a ring that others share. */
typedef struct uco_recv_stream uco_recv_stream;
UCO_API int uco_recv_stream_open(uco_recv_stream **out, int fd, uco_bufring *br);
/* From a coroutine: the next chunk, its bytes at *data, valid until the
 * next call or the close (the buffer then goes back to the ring); 0 at the
 * end of the stream; -errno (-ECONNRESET ...), -ECANCELED, -ESHUTDOWN. */
UCO_API ssize_t uco_recv_stream_next(uco_recv_stream *s, const void **data);
UCO_API ssize_t uco_recv_stream_next_dl(uco_recv_stream *s, const void **data,
                                        int64_t deadline);
/* Stop receiving; the socket stays open (it is yours). */
UCO_API int uco_recv_stream_close(uco_recv_stream *s);

/* Registered (fixed) files for hot descriptors: uco_fd_register() puts fd
 * in the loop's fixed-file table and returns a handle (fd | UCO_FIXED_FD)
 * to pass instead of fd to the IO calls above (not to splice or close),
 * which then skip the kernel's descriptor lookup.  fd itself stays yours:
 * unregister the handle before closing it.  -ENOSPC when the table (4096
 * entries) is full, -EOPNOTSUPP where the kernel cannot register files. */
#define UCO_FIXED_FD 0x40000000
UCO_API int uco_fd_register(uco_loop *loop, int fd);
UCO_API int uco_fd_unregister(uco_loop *loop, int handle);

/* Registered (fixed) buffers: uco_buffers_register() lends n buffers to
 * the loop's ring once (the kernel pins their pages, counted against
 * RLIMIT_MEMLOCK), and the fixed reads and writes below then move data
 * into and out of them without the per-call page pinning of uco_read().
 * One registration per loop at a time: -EBUSY while one exists;
 * uco_buffers_unregister() first (-EBUSY while a fixed call is in flight,
 * -ENXIO with none).  The buffers stay the caller's memory. */
UCO_API int uco_buffers_register(uco_loop *loop, const struct iovec *iov, unsigned n);
UCO_API int uco_buffers_unregister(uco_loop *loop);
/* uco_read()/uco_write() through registered buffer buf_index; [buf,
 * buf + len) must lie inside it: -EFAULT if not, -EINVAL for an index
 * beyond the registration, -ENXIO with no buffers registered. */
UCO_API ssize_t uco_read_fixed(int fd, void *buf, size_t len, int64_t offset,
                               unsigned buf_index);
UCO_API ssize_t uco_read_fixed_dl(int fd, void *buf, size_t len, int64_t offset,
                                  unsigned buf_index, int64_t deadline);
UCO_API ssize_t uco_write_fixed(int fd, const void *buf, size_t len, int64_t offset,
                                unsigned buf_index);
UCO_API ssize_t uco_write_fixed_dl(int fd, const void *buf, size_t len, int64_t offset,
                                   unsigned buf_index, int64_t deadline);

/* Kernels differ: each operation's opcode is probed once per loop.  Where
 * one is missing, socket, shutdown and close fall back to the plain system
 * call (none of them blocks); every other call returns -EOPNOTSUPP. */

/* ---------------------------------------------------------------- time */

/* CLOCK_MONOTONIC now, in nanoseconds (the clock every deadline uses). */
UCO_API int64_t uco_now(void);

/* Suspend the calling task for at least `ns` nanoseconds, never less.  The
 * kernel timer starts when the loop submits it at the end of the current
 * turn, and sleeps of about the same length share one timer, so a sleep may
 * end up to 1/32 of its length (1 ms at most) plus the rest of the turn
 * late.  0 on wake-up; ns == 0 yields.  -EPERM outside a coroutine, -EINVAL
 * for ns < 0, -ENOMEM/-EAGAIN if no timer could be set up (nothing waits). */
UCO_API int uco_sleep(int64_t ns);

/* uco_sleep() until the uco_now() time `deadline` (never before it); a
 * deadline already past yields. */
UCO_API int uco_sleep_until(int64_t deadline);

/* Move the calling task to the back of the run queue.  0, or -EPERM outside
 * a coroutine. */
UCO_API int uco_yield(void);

#define UCO_NS_PER_MS INT64_C(1000000)
#define UCO_NS_PER_S INT64_C(1000000000)

/* ---------------------------------------------------------------- task-local context */

/*
 * asyncio's contextvars for tasks: a key is a ContextVar, and each task has
 * its own value for it.  A task spawned from inside a task starts with the
 * spawner's values (copied at spawn, as asyncio copies the context); later
 * sets in either one do not show in the other.  Tasks spawned from outside
 * any task (main, done-callbacks, uco_loop_spawn_threadsafe) start empty,
 * and executor jobs see no context at all (as asyncio's run_in_executor):
 * pass what a job needs in its arg.  See uco_ctx_set(3).
 */
typedef struct uco_ctx_key uco_ctx_key;

/* A new key; dtor (may be NULL) destroys each non-NULL value set with it,
 * once, when the last task holding that value has ended or replaced it.
 * Keys may be used by any thread.  -EINVAL, -ENOMEM. */
UCO_API int uco_ctx_key_create(uco_ctx_key **out, void (*dtor)(void *value));

/* Show the key's values in uco_loop_dump() as name=..., formatted by fmt
 * (snprintf-style; NULL prints the pointer).  Keys not described are not
 * shown.  Call it before the key is used.  -EINVAL, -ENOMEM. */
UCO_API int uco_ctx_key_describe(uco_ctx_key *key, const char *name,
                                 int (*fmt)(const void *value, char *buf, size_t len));

/* Forget the key: values still held keep their destructor, which runs when
 * their last task lets go.  The handle must not be used again. */
UCO_API int uco_ctx_key_delete(uco_ctx_key *key);

/* In a task: make value the calling task's value for key; the value it
 * replaces is released (destroyed if no other task holds it).  On failure
 * the caller still owns value.  -EPERM outside a task, -EINVAL, -ENOMEM. */
UCO_API int uco_ctx_set(uco_ctx_key *key, void *value);

/* In a task: 0 and the calling task's value in *value (may be NULL);
 * -ENOENT if it has none (asyncio's LookupError), -EPERM outside a task,
 * -EINVAL. */
UCO_API int uco_ctx_get(const uco_ctx_key *key, void **value);

/* ---------------------------------------------------------------- spawnable wait */

/* A task that runs uco_wait(tasks, n, mode, deadline, done), so that code
 * outside a task can wait on a set (asyncio's
 * run_until_complete(wait(...))):
 *     uco_spawn_wait(loop, &w, tasks, n, UCO_WAIT_FIRST_COMPLETED, dl, done);
 *     uco_loop_run_until(loop, w, &v);   // (size_t)(uintptr_t)v finished
 * It ends with the count of finished tasks as its value, or failed with
 * uco_wait's error; done[] is filled when it ends with a count.  tasks and
 * done must outlive it.  Spawn errors as uco_spawn(), and -EINVAL for a bad
 * mode or tasks NULL with n > 0. */
UCO_API int uco_spawn_wait(uco_loop *loop, uco_task **out, uco_task *const *tasks,
                           size_t n, int mode, int64_t deadline, unsigned char *done);

/* ---------------------------------------------------------------- error messages */

/* One sentence for any negative errno a uco call returns: what it means in
 * general and what uco means by it (-EDEADLK from a run, -ECANCELED ...);
 * UCO_EAI_ERROR codes get gai_strerror's text.  Never NULL; thread-safe;
 * "unknown error N" for codes nobody returns.  uco_loop_strerror() remains
 * the diagnosis of a failed uco_loop_create() (it reads the sysctl). */
UCO_API const char *uco_strerror(int err);


/* ---------------------------------------------------------------- streams */

/*
 * Buffered streams over a connected socket or a pipe (asyncio's
 * StreamReader and StreamWriter in one handle): readline, readuntil and
 * readexactly on the read side, write + drain with back-pressure on the
 * write side.  Sockets use recv/send (send with MSG_NOSIGNAL), other
 * descriptors read/write.  At most one task reads at a time (-EBUSY);
 * use a stream on its loop's thread.  docs/streams.md has the details;
 * uco_stream_open_tls (with the TLS calls below) puts one on a TLS
 * connection.
 *
 * Nothing is lost to a deadline or a cancel: a read call that returns
 * -ETIMEDOUT or -ECANCELED leaves every byte received in the stream for
 * the next call, and an interrupted drain leaves the unsent bytes queued
 * (they keep being sent).
 */
typedef struct uco_stream uco_stream;

typedef struct uco_stream_opts {
	/* The loop (NULL: the one running on this thread). */
	uco_loop *loop;
	/* Longest record readuntil/readline accept, separator not counted
	 * (asyncio's limit).  Default 64 KiB. */
	size_t limit;
	/* Write buffer marks: drain() waits while more than hwm bytes are
	 * unsent, until at most lwm are.  Defaults 64 KiB and hwm / 4. */
	size_t hwm, lwm;
	/* Receive through this ring's provided buffers (a ring of the same
	 * loop, destroyed after its streams; a socket only, ignored
	 * for other descriptors): a stream waiting with nothing buffered
	 * then holds no memory, for servers with many idle connections;
	 * each byte is copied once more.  NULL: plain receives into the
	 * stream's own buffer (64 KiB while it waits), the faster path. */
	uco_bufring *bufring;
	unsigned flags;        /* UCO_STREAM_* */
	unsigned reserved_[4]; /* must be zero */
} uco_stream_opts;

/* Leave the descriptor open at close (by default the stream owns it). */
#define UCO_STREAM_KEEP_FD (1u << 0)
/* uco_stream_open_tls: close flushes only; no close_notify, and the
 * uco_tls and its socket stay the caller's. */
#define UCO_STREAM_KEEP_TLS (1u << 1)

/* A stream on fd; opts may be NULL.  From the loop's thread.  -EINVAL,
 * -EBADF (fstat), -ENOMEM, -EPERM (another thread's loop).  On failure
 * fd is left open. */
UCO_API int uco_stream_open(uco_stream **out, int fd, const uco_stream_opts *opts);
/* The stream's descriptor. */
UCO_API int uco_stream_fd(const uco_stream *s);

/* Up to n bytes (buffered ones first, else one receive): the count, 0 at
 * end of file. */
UCO_API ssize_t uco_stream_read(uco_stream *s, void *buf, size_t n);
UCO_API ssize_t uco_stream_read_dl(uco_stream *s, void *buf, size_t n, int64_t deadline);
/* Exactly n bytes: n; 0 at end of file with nothing buffered; -ENODATA
 * if end of file came after some bytes (they stay buffered: see
 * uco_stream_buffered, asyncio's IncompleteReadError.partial). */
UCO_API ssize_t uco_stream_readexactly(uco_stream *s, void *buf, size_t n);
UCO_API ssize_t uco_stream_readexactly_dl(uco_stream *s, void *buf, size_t n,
                                          int64_t deadline);
/* The next record ending with the separator (any length): its length with
 * the separator, *record pointing at it inside the stream, valid until the
 * next read-side call on s.  0 at end of file with nothing buffered;
 * -ENODATA at end of file mid-record; -EMSGSIZE if more than `limit`
 * bytes come before the separator.  Both keep the bytes buffered. */
UCO_API ssize_t uco_stream_readuntil(uco_stream *s, const void *sep, size_t seplen,
                                     const char **record);
UCO_API ssize_t uco_stream_readuntil_dl(uco_stream *s, const void *sep, size_t seplen,
                                        const char **record, int64_t deadline);
/* readuntil("\n"), except that at end of file a last line without its
 * newline is returned as it is (as asyncio's readline). */
UCO_API ssize_t uco_stream_readline(uco_stream *s, const char **line);
UCO_API ssize_t uco_stream_readline_dl(uco_stream *s, const char **line, int64_t deadline);
/* The bytes buffered for reading, without waiting (*data may be NULL when
 * there are none), and dropping n of them (-EINVAL beyond what is there). */
UCO_API ssize_t uco_stream_buffered(const uco_stream *s, const char **data);
UCO_API int uco_stream_consume(uco_stream *s, size_t n);

/* Queue n bytes and start sending them; never waits.  n, or the send
 * error that stopped the writer (-EPIPE, -ECONNRESET ...), -ENOMEM. */
UCO_API ssize_t uco_stream_write(uco_stream *s, const void *data, size_t n);
/* Bytes written and not yet sent. */
UCO_API size_t uco_stream_write_buffered(const uco_stream *s);
/* Back-pressure: returns at once while at most hwm bytes are unsent, else
 * waits until at most lwm are.  0, the send error, -ETIMEDOUT, -ECANCELED
 * (the bytes stay queued and keep being sent). */
UCO_API int uco_stream_drain(uco_stream *s);
UCO_API int uco_stream_drain_dl(uco_stream *s, int64_t deadline);
/* Send what is queued, then free the stream and close the descriptor
 * (unless UCO_STREAM_KEEP_FD).  -EBUSY, changing nothing, while another
 * task is in a call on s.  Otherwise the handle is gone on return: 0 when
 * every byte was sent; else the send error, -ETIMEDOUT or -ECANCELED, and
 * the bytes unsent were dropped.  Outside a coroutine it cannot wait (as
 * deadline 0). */
UCO_API int uco_stream_close(uco_stream *s);
UCO_API int uco_stream_close_dl(uco_stream *s, int64_t deadline);
/* ---------------------------------------------------------------- timer handles */

/*
 * asyncio's loop.call_later/call_at (libuv's uv_timer): run cb(arg) on the
 * loop's thread at a time, without a task.  The callback runs on the
 * loop's own stack, outside any coroutine, as signal handlers do: it may
 * spawn, cancel, set events, stop the loop and call uco_call_later again,
 * but not block.  Never early: it runs once uco_now() >= its time; handles
 * due together run in time order, equal times in call order.
 *
 * A pending handle does not keep uco_loop_run() running (a loop runs while
 * it has tasks, as with uco_loop_call); it runs when it is due while the
 * loop runs.  uco_loop_close() discards pending handles: their callbacks
 * never run.  Only from the loop's thread (`loop` NULL: the loop running
 * on it).
 *
 * With `out` non-NULL the caller gets a handle to cancel it with, valid
 * until uco_timer_release() (before or after it ran, or the loop closed);
 * with `out` NULL the loop frees it once it has run.  0, or -EINVAL (cb
 * NULL, delay < 0, no loop), -EPERM (another thread), -ENOMEM, -EAGAIN (no
 * SQE): then nothing was scheduled.
 */
typedef struct uco_timer uco_timer;
UCO_API int uco_call_later(uco_loop *loop, int64_t delay_ns, void (*cb)(void *arg), void *arg,
                           uco_timer **out);
/* The same at the uco_now() time `when` (one already past: as soon as
 * possible, on a later turn). */
UCO_API int uco_call_at(uco_loop *loop, int64_t when, void (*cb)(void *arg), void *arg,
                        uco_timer **out);
/* The callback will not run: 0; -EALREADY if it has run, is running, or
 * was cancelled (nothing changes; so cancelling twice, or from inside the
 * callback, is harmless); -EPERM from another thread. */
UCO_API int uco_timer_cancel(uco_timer *t);
/* Give the caller's reference back (does not cancel). */
UCO_API void uco_timer_release(uco_timer *t);

/* ---------------------------------------------------------------- subprocesses */

/*
 * asyncio's create_subprocess_exec, wait, communicate, kill (libuv's
 * uv_spawn).  The child starts with posix_spawn (vfork speed) and is
 * watched through a pidfd: its exit is waited for in the ring
 * (IORING_OP_WAITID, 6.7+; a poll of the pidfd then waitid(WNOHANG) where
 * that is missing).  uco installs no SIGCHLD handler and leaves the
 * program's SIGCHLD disposition alone; every descriptor it opens is
 * close-on-exec.  See docs/subprocess.md.
 */
typedef struct uco_process uco_process;

/* What a child's stdin, stdout or stderr is (uco_process_opts.stdio[i]). */
#define UCO_STDIO_INHERIT 0 /* this process's own descriptor 0, 1 or 2 */
#define UCO_STDIO_DEVNULL 1 /* /dev/null */
#define UCO_STDIO_PIPE 2    /* a new pipe; this side's end: uco_process_fd() */
#define UCO_STDIO_FD 3      /* a duplicate of stdio[i].fd (which stays yours) */
#define UCO_STDIO_STDOUT 4  /* stderr only: wherever stdout goes */

typedef struct uco_stdio {
	int mode; /* UCO_STDIO_* */
	int fd;   /* for UCO_STDIO_FD */
} uco_stdio;

typedef struct uco_process_opts {
	/* The program: a path, or a name without '/' looked up in PATH (as
	 * execvp(3); this process's PATH).  NULL: argv[0]. */
	const char *file;
	char *const *argv;  /* argv[0], ..., NULL: required */
	char *const *envp;  /* NULL: this process's environment */
	const char *cwd;    /* the child's working directory; NULL: this one's */
	uco_stdio stdio[3]; /* stdin, stdout, stderr; zero: inherit */
	unsigned flags;     /* UCO_PROCESS_* */
	unsigned reserved_[4]; /* must be zero */
} uco_process_opts;

/* `file` is a path even without a '/': no PATH search. */
#define UCO_PROCESS_NO_PATH_SEARCH (1u << 0)
/* The child starts a new session (setsid; asyncio's start_new_session). */
#define UCO_PROCESS_NEW_SESSION (1u << 1)

/* Start a child bound to `loop` (NULL: the loop running on this thread),
 * from the loop's thread, in a task or not.  It starts with an empty
 * signal mask and SIGPIPE and SIGXFSZ at their defaults.  0 and *out, or:
 * -EINVAL (bad options, no loop), -EPERM (another thread), -ENOENT,
 * -EACCES ... (the program could not be run: nothing was started),
 * -ENOSYS (no pidfd: kernel before 5.4), -EMFILE, -ENOMEM. */
UCO_API int uco_process_spawn(uco_loop *loop, uco_process **out, const uco_process_opts *opts);

UCO_API pid_t uco_process_pid(const uco_process *p);

/* This side's end of the child's descriptor `which` (0, 1, 2) when it is
 * a pipe (blocking, close-on-exec: use it through uco's calls), owned by
 * p; -EBADF when none.  uco_process_take_fd() hands it over (close it
 * yourself: closing stdin is how the child sees end of input). */
UCO_API int uco_process_fd(const uco_process *p, int which);
UCO_API int uco_process_take_fd(uco_process *p, int which);

/* From a task of p's loop: wait for the child to exit and return its wait
 * status (>= 0: test it with WIFEXITED/WEXITSTATUS, WIFSIGNALED/WTERMSIG
 * of <sys/wait.h>, as waitpid's), at once if it was already reaped (from
 * anywhere then).  Several tasks may wait.  -ETIMEDOUT, -ECANCELED (the
 * child is still reaped, when it exits), -ECHILD (something else reaped
 * it: SIGCHLD set to SIG_IGN or SA_NOCLDWAIT, a waitpid(-1) elsewhere),
 * -EPERM outside a task, -EXDEV (a task of another loop), -ESHUTDOWN (the
 * loop closed first). */
UCO_API int uco_process_wait(uco_process *p);
UCO_API int uco_process_wait_dl(uco_process *p, int64_t deadline);

/* Send signo to the child (pidfd_send_signal: never to a recycled pid);
 * asyncio's terminate() is SIGTERM, kill() SIGKILL.  0, -ESRCH once it has
 * been reaped, -EINVAL. */
UCO_API int uco_process_kill(uco_process *p, int signo);

/* Bytes a child wrote: malloc'd, NUL-terminated past len; free data. */
typedef struct uco_process_output {
	char *data;
	size_t len;
} uco_process_output;

/* From a task: write in[0, inlen) to the child's stdin pipe and close it,
 * read its stdout and stderr pipes to their ends, all at once (no
 * deadlock, whatever the sizes), then wait for it: its wait status, or
 * -errno.  What was read is appended to *out and *err (start them zeroed;
 * NULL: discarded), whatever the result; free their data.  On -ETIMEDOUT
 * or -ECANCELED the child is not killed, and calling again with the same
 * input goes on where this call stopped.  A child that exits without
 * reading its input is not an error (the rest is dropped, and no SIGPIPE
 * reaches the program).  -EINVAL: input but no stdin pipe; -EBUSY: another
 * task communicates with p. */
UCO_API int uco_process_communicate(uco_process *p, const void *in, size_t inlen,
                                    uco_process_output *out, uco_process_output *err);
UCO_API int uco_process_communicate_dl(uco_process *p, const void *in, size_t inlen,
                                       uco_process_output *out, uco_process_output *err,
                                       int64_t deadline);

/* Close this side's pipe ends and free p, from the loop's thread, when no
 * task waits or communicates with it (-EBUSY otherwise).  A child still running is not
 * killed: the loop reaps it in the background when it exits (no zombie
 * left), as long as the loop is open. */
UCO_API int uco_process_release(uco_process *p);
/* ---------------------------------------------------------------- TLS */

/*
 * TLS on OpenSSL 3, its bytes moving through the ring like any socket's
 * (docs/tls.md).  The block is always declared; UCO_HAVE_TLS (uco/version.h)
 * is 1 when libuco was built with OpenSSL, and without it every call fails
 * with -ENOTSUP (NULL for the pointer-returning ones).
 *
 * A context holds certificates, trust and settings, shared by connections
 * of any thread; a connection wraps a connected socket (which stays yours:
 * close it after uco_tls_close()).
 */
typedef struct uco_tls_ctx uco_tls_ctx;
typedef struct uco_tls uco_tls;

#define UCO_TLS_SERVER      (1u << 0) /* accept (else connect) */
#define UCO_TLS_NO_VERIFY   (1u << 1) /* client: do not check the server */
#define UCO_TLS_VERIFY_PEER (1u << 2) /* server: require a client certificate */
#define UCO_TLS_KTLS        (1u << 3) /* kernel TLS where the kernel has it */

typedef struct uco_tls_ctx_opts {
	unsigned flags;           /* UCO_TLS_* */
	const char *cert_file;    /* PEM chain: a server's (needed) or a client's */
	const char *key_file;     /* PEM key (NULL: in cert_file) */
	const char *ca_file;      /* trust (both NULL: the system's) */
	const char *ca_dir;
	const char *alpn;         /* "h2,http/1.1": offered, or accepted in this order */
	const char *ciphersuites; /* TLS 1.3 (OpenSSL names, ':'-separated) */
	const char *cipher_list;  /* TLS 1.2 */
	const char *groups;       /* key exchange groups, "P-256:X25519" */
	void *reserved_[4];       /* must be NULL */
} uco_tls_ctx_opts;

/* A context.  -EINVAL (bad options or files: why[] says which and why),
 * -ENOENT/-EACCES (a file), -ENOMEM.  why may be NULL. */
UCO_API int uco_tls_ctx_create(uco_tls_ctx **out, const uco_tls_ctx_opts *opts,
                               char *why, size_t why_len);
/* Let go of a context; it lives on while connections use it. */
UCO_API void uco_tls_ctx_destroy(uco_tls_ctx *ctx);
/* Server SNI: a client asking for `name` ("*.example.com" matches one
 * label) gets for_name's certificate.  Before the context is in use. */
UCO_API int uco_tls_ctx_add_server_name(uco_tls_ctx *ctx, const char *name,
                                        uco_tls_ctx *for_name);
/* The SSL_CTX *, for settings uco does not wrap. */
UCO_API void *uco_tls_ctx_native(uco_tls_ctx *ctx);

/* A connection over the connected socket fd.  A client gives the server's
 * name (SNI, and the name its certificate must carry; an IP address is
 * checked but not sent); verifying without one is -EINVAL. */
UCO_API int uco_tls_open(uco_tls **out, uco_tls_ctx *ctx, int fd, const char *server_name);
/* Free it (no close_notify: see uco_tls_shutdown); fd stays open. */
UCO_API void uco_tls_close(uco_tls *t);

/* From a coroutine.  Errors: -ETIMEDOUT, -ECANCELED (the connection goes
 * on, except after a write: see below), -EKEYREJECTED (the certificate
 * failed verification: uco_tls_verify_error), -EPROTO (a TLS error),
 * -ECONNRESET (closed without close_notify), a socket's -errno; after
 * any but the first two, every later call returns the same error, and
 * uco_tls_error() says why.  Read and write do the handshake if needed. */
UCO_API int uco_tls_handshake(uco_tls *t);
UCO_API int uco_tls_handshake_dl(uco_tls *t, int64_t deadline);
/* Up to len bytes; 0 once the peer sent close_notify.  A cancelled read
 * loses nothing: the next one gets the bytes. */
UCO_API ssize_t uco_tls_read(uco_tls *t, void *buf, size_t len);
UCO_API ssize_t uco_tls_read_dl(uco_tls *t, void *buf, size_t len, int64_t deadline);
/* All len bytes: len, or an error.  A write cancelled or timed out after
 * it began leaves the connection unable to write (-EPIPE from then on,
 * uco_tls_shutdown included; reads go on): part of it may have gone. */
UCO_API ssize_t uco_tls_write(uco_tls *t, const void *buf, size_t len);
UCO_API ssize_t uco_tls_write_dl(uco_tls *t, const void *buf, size_t len, int64_t deadline);
/* Send close_notify (the peer's is not waited for).  -ENOTCONN before the
 * handshake has ended. */
UCO_API int uco_tls_shutdown(uco_tls *t);
UCO_API int uco_tls_shutdown_dl(uco_tls *t, int64_t deadline);

/* The protocol ALPN chose, the name the client asked for (SNI), why the
 * peer's certificate failed verification, why the connection failed:
 * NULL for none.  Valid until the next call on t. */
UCO_API const char *uco_tls_alpn(uco_tls *t);
UCO_API const char *uco_tls_server_name(uco_tls *t);
UCO_API const char *uco_tls_verify_error(uco_tls *t);
UCO_API const char *uco_tls_error(uco_tls *t);
/* The SSL *, for what uco does not wrap. */
UCO_API void *uco_tls_native(uco_tls *t);

/* Kernel TLS.  uco_tls_ktls(): which directions the kernel encrypts after
 * the handshake (then plain send, splice and recv on fd carry TLS data).
 * uco_tls_ktls_available(): 0 if the kernel has the TLS ULP, else
 * -ENOENT (no CONFIG_TLS) or -errno. */
#define UCO_TLS_KTLS_SEND (1 << 0)
#define UCO_TLS_KTLS_RECV (1 << 1)
UCO_API int uco_tls_ktls(uco_tls *t);
UCO_API int uco_tls_ktls_available(void);

/* A stream over an established (or still to be handshaken) TLS connection
 * (uco_tls_open): reads decrypt through uco_tls_read_dl, and a sender task
 * of the stream's writes through uco_tls_write_dl, so a cancelled or
 * timed-out drain never cuts a record (docs/streams.md).  The stream owns
 * conn: close flushes, sends close_notify, frees conn and closes its socket
 * (not with UCO_STREAM_KEEP_FD); with UCO_STREAM_KEEP_TLS it only flushes,
 * and conn and the socket stay the caller's.  opts.bufring must be NULL.
 * -EINVAL, -ENOMEM, -EPERM as uco_stream_open; -ENOTSUP without TLS.  On
 * failure conn is left as it was. */
UCO_API int uco_stream_open_tls(uco_stream **out, uco_tls *conn, const uco_stream_opts *opts);

#ifdef __cplusplus
}
#endif

#endif /* UCO_H */
