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
	unsigned reserved_[4]; /* must be zero */
} uco_loop_opts;

#define UCO_STACK_SIZE_DEFAULT (64u * 1024)
#define UCO_STACK_SIZE_MIN (16u * 1024)

/* Set up the ring with no optional flag at all (no SINGLE_ISSUER,
 * DEFER_TASKRUN or COOP_TASKRUN): the most portable configuration. */
#define UCO_LOOP_PLAIN_RING (1u << 0)

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

/* Run until no task is left (0), or until uco_loop_stop() was called (1; the
 * tasks left are kept, and a later run continues them).  -EBUSY if a loop
 * is already running on this thread, -EPERM from another thread than the
 * creator, -EINVAL for NULL, -EDEADLK if tasks are left that nothing can
 * ever wake (no operation in flight), or io_uring_enter's error. */
UCO_API int uco_loop_run(uco_loop *loop);

/* Run until `task` has finished, then return like uco_task_result().  Other
 * tasks keep running meanwhile and stay in the loop afterwards.  Beyond the
 * uco_loop_run() errors: -EINTR if uco_loop_stop() stopped the loop first,
 * -EDEADLK if nothing can ever finish the task (no task runnable, no
 * operation in flight). */
UCO_API int uco_loop_run_until(uco_loop *loop, uco_task *task, void **value);

/* Ask a running loop to return after the current turn (asyncio's stop()).
 * Called when the loop is not running, the next run returns after one turn. */
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
UCO_API unsigned uco_loop_features(const uco_loop *loop);

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
 * groups): it ends with uco_gather()'s failure as its own, -ECHILD with
 * UCO_GATHER_COLLECT when some failed, or value NULL.  The array must
 * outlive it.  Cancelling it cancels them all once it runs; cancelled
 * before it first ran, it ends without gathering (nor cancelling). */
UCO_API int uco_spawn_gather(uco_loop *loop, uco_task **out, uco_task *const *tasks,
                             size_t n, unsigned flags);

/* Wait until the condition holds or the deadline passes; cancels nothing.
 * done[i] (if given) is set to 1 for the tasks that have finished and 0
 * for the others.  Returns how many have finished, -ECANCELED, -EPERM,
 * -EINVAL. */
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
 * woken if it waits.  A call does not keep the loop running: it runs when
 * the loop next runs.  Not after uco_loop_close().  -ENOMEM, -EINVAL. */
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
 * every thread has ended: 0, or the first error a thread met. */
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
 * -errno: an accept error (-EMFILE ...; the acceptor goes on), -ETIMEDOUT,
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

/* A multishot receive on a connected socket into br's buffers. */
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

#ifdef __cplusplus
}
#endif

#endif /* UCO_H */
