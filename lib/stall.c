/* SPDX-License-Identifier: MIT */
/*
 * The live stall report (uco_loop_set_stall_report): while a task runs
 * without yielding for longer than a threshold, say so while it is still
 * stuck, with a backtrace of where, as Seastar's and glommio's stall
 * detectors do.  The slow-task warning (debug.c) speaks only after the task
 * has yielded, and cannot say where it spent the time.
 *
 * Three parties:
 *  - the loop thread counts its switches into and out of tasks (stall.h:
 *    one relaxed store each, nothing else, and only while this is on);
 *  - a watchdog thread per loop, blocking every signal, samples that count
 *    every half threshold; when it has seen the same odd count (the same
 *    run of one task) for the threshold, it interrupts the loop thread
 *    with a real-time signal (pthread_sigqueue, carrying which loop);
 *  - the handler, on the loop thread, checks that the run still goes on
 *    and writes the running task, its function and the backtrace of the
 *    interrupted code to stderr, async-signal-safely: hand-made lines
 *    (report.c), backtrace() (whose libgcc is loaded beforehand, so it does
 *    not allocate) and names from the symbol tables (report.c).
 *
 * The signal is the highest real-time signal nobody has a handler for,
 * chosen once per process; a user's handlers are never replaced.  Reports
 * are rate-limited per loop: each stall once when it passes the threshold,
 * and none sooner than REPEAT_NS after the last (a stall that goes on is
 * reported again each REPEAT_NS; stalls left unreported are counted in the
 * next report).
 */
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "report.h"
#include "stall.h"

#define REPEAT_NS (10 * UCO_NS_PER_S)
#define MIN_TICK_NS UCO_NS_PER_MS
#define MAX_FRAMES 64

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int stall_signo; /* 0: no real-time signal was free */

/* ------------------------------------------------------------ the handler */

/* "52.3 ms" */
static void put_ms(struct uco__msg *m, int64_t ns)
{
	uint64_t tenths = (uint64_t)(ns < 0 ? 0 : ns) / (UCO_NS_PER_MS / 10);
	uco__msg_dec(m, tenths / 10);
	uco__msg_put(m, ".");
	uco__msg_dec(m, tenths % 10);
	uco__msg_put(m, " ms");
}

/* The interrupted code's frames, from the one that was running (the
 * signal frame and this handler's are skipped). */
static void put_backtrace(struct uco__msg *m, const void *context)
{
	void *frames[MAX_FRAMES];
	int n = backtrace(frames, MAX_FRAMES);
	uintptr_t pc, sp;
	uco__interrupted_at(context, &pc, &sp);
	int first = 0;
	for (int i = 0; i < n; i++)
		if ((uintptr_t)frames[i] == pc) {
			first = i;
			break;
		}
	for (int i = first; i < n; i++) {
		uco__msg_put(m, "uco:   #");
		uco__msg_dec(m, (uint64_t)(i - first));
		uco__msg_put(m, " ");
		uco__msg_hex(m, (uintptr_t)frames[i]);
		uco__msg_put(m, " ");
		uco__msg_frame(m, frames[i], i > first);
		uco__msg_put(m, "\n");
		uco__msg_flush(m);
	}
}

static void report(struct uco__stall *s, const void *context)
{
	uco_loop *loop = uco_loop_current();
	if (!loop || loop->stall != s)
		return; /* sent for a loop this thread no longer runs */
	uint64_t run = atomic_load_explicit(&s->report_run, memory_order_relaxed);
	const uco_task *t = loop->current;
	if (!t || atomic_load_explicit(&s->run, memory_order_relaxed) != run)
		return; /* the task yielded since */
	struct uco__msg m = { .len = 0 };
	uco__msg_put(&m, "uco: stall: ");
	uco__msg_task(&m, loop, t);
	uco__msg_put(&m, " has run for ");
	put_ms(&m, atomic_load_explicit(&s->report_ns, memory_order_relaxed));
	uco__msg_put(&m, " without yielding (threshold ");
	put_ms(&m, atomic_load_explicit(&s->threshold_ns, memory_order_relaxed));
	uco__msg_put(&m, ")");
	uint64_t skipped = atomic_load_explicit(&s->report_skipped, memory_order_relaxed);
	if (skipped) {
		uco__msg_put(&m, "; ");
		uco__msg_dec(&m, skipped);
		uco__msg_put(&m, " other stalls since the last report went unreported");
	}
	uco__msg_put(&m, "; it is at:\n");
	uco__msg_flush(&m);
	put_backtrace(&m, context);
	uco__msg_addr2line_hint(&m, t->fn);
	uco__msg_put(&m, "uco: blocking work belongs in uco_run_in_executor()\n");
	uco__msg_flush(&m);
}

static void on_signal(int signo, siginfo_t *si, void *context)
{
	(void)signo;
	int saved_errno = errno;
	/* Only what a watchdog of this process queued: a stray kill() of
	 * this signal carries no loop. */
	if (si->si_code == SI_QUEUE && si->si_pid == getpid() && si->si_value.sival_ptr)
		report(si->si_value.sival_ptr, context);
	errno = saved_errno;
}

/* Take the highest real-time signal that has no handler; load what
 * backtrace() loads on its first call (libgcc_s, through malloc), so that
 * the handler's calls do not. */
static void install(void)
{
	void *warm[2];
	(void)backtrace(warm, 2);
	for (int sig = SIGRTMAX; sig >= SIGRTMIN; sig--) {
		struct sigaction old;
		if (sigaction(sig, NULL, &old) || (old.sa_flags & SA_SIGINFO) ||
		    old.sa_handler != SIG_DFL)
			continue;
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = on_signal;
		/* On the alternate stack the overflow report gives each loop
		 * thread, so that a task stuck near its stack's end has room. */
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		if (sigaction(sig, &sa, NULL) == 0) {
			stall_signo = sig;
			return;
		}
	}
}

/* ------------------------------------------------------------ the watchdog */

static int64_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * UCO_NS_PER_S + ts.tv_nsec;
}

/* What the watchdog knows of the run it watches. */
struct watch {
	uint64_t run;        /* the odd count seen, or 0 */
	int64_t since;       /* when it was first seen */
	bool reported, counted;
	int64_t last_report; /* of any stall of this loop */
	uint64_t skipped;    /* stalls not reported since */
};

/* One sample of the loop's count at `now`; true when a report is due. */
static bool sample(struct watch *w, uint64_t run, int64_t threshold, int64_t now)
{
	if (!(run & 1)) {
		w->run = 0; /* between tasks, or waiting for IO */
		return false;
	}
	if (run != w->run) {
		*w = (struct watch){ run, now, false, false, w->last_report, w->skipped };
		return false;
	}
	if (now - w->since < threshold)
		return false;
	if (now - w->last_report < REPEAT_NS) {
		if (!w->reported && !w->counted) {
			w->skipped++;
			w->counted = true;
		}
		return false;
	}
	if (w->counted) {
		w->skipped--; /* reported after all */
		w->counted = false;
	}
	return true;
}

static void *watchdog(void *arg)
{
	struct uco__stall *s = arg;
	struct watch w = { .last_report = INT64_MIN / 2 };
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		int64_t threshold = atomic_load_explicit(&s->threshold_ns, memory_order_relaxed);
		int64_t tick = threshold / 2 > MIN_TICK_NS ? threshold / 2 : MIN_TICK_NS;
		int64_t at = mono_now() + tick;
		struct timespec ts = { (time_t)(at / UCO_NS_PER_S), (long)(at % UCO_NS_PER_S) };
		pthread_cond_timedwait(&s->wake, &s->lock, &ts);
		if (s->stop)
			break;
		int64_t now = mono_now();
		uint64_t run = atomic_load_explicit(&s->run, memory_order_relaxed);
		if (!sample(&w, run, threshold, now))
			continue;
		atomic_store_explicit(&s->report_run, run, memory_order_relaxed);
		atomic_store_explicit(&s->report_ns, now - w.since, memory_order_relaxed);
		atomic_store_explicit(&s->report_skipped, w.skipped, memory_order_relaxed);
		union sigval v = { .sival_ptr = s };
		/* The kernel's queueing of the signal orders the stores above
		 * before the handler's loads. */
		if (pthread_sigqueue(s->loop_thread, stall_signo, v) == 0) {
			w.last_report = now;
			w.reported = true;
			w.skipped = 0;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int start(uco_loop *loop, int64_t threshold_ns)
{
	struct uco__stall *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	/* Odd while a task runs: this call may come from one. */
	atomic_init(&s->run, loop->current ? 1 : 0);
	atomic_init(&s->threshold_ns, threshold_ns);
	s->loop = loop;
	s->loop_thread = pthread_self();
	pthread_condattr_t ca;
	int err = pthread_mutex_init(&s->lock, NULL);
	if (err)
		goto out_free;
	if ((err = pthread_condattr_init(&ca)))
		goto out_mutex;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	err = pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (err)
		goto out_mutex;
	/* The watchdog blocks every signal: none meant for the program may
	 * land on it. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&s->watchdog, NULL, watchdog, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto out_cond;
	loop->stall = s;
	return 0;
out_cond:
	pthread_cond_destroy(&s->wake);
out_mutex:
	pthread_mutex_destroy(&s->lock);
out_free:
	free(s);
	return -err;
}

void uco__stall_stop(uco_loop *loop)
{
	struct uco__stall *s = loop->stall;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	/* A signal the watchdog sent before it stopped was delivered to this
	 * (the loop's) thread at the latest when the join returned to user
	 * space; its handler finds loop->stall still set and the run over. */
	pthread_join(s->watchdog, NULL);
	loop->stall = NULL;
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int uco_loop_set_stall_report(uco_loop *loop, int64_t threshold_ns)
{
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	if (threshold_ns < 0)
		return -EINVAL;
	if (threshold_ns == 0) {
		uco__stall_stop(loop);
		return 0;
	}
	pthread_once(&install_once, install);
	if (!stall_signo)
		return -EBUSY;
	struct uco__stall *s = loop->stall;
	if (!s)
		return start(loop, threshold_ns);
	pthread_mutex_lock(&s->lock);
	atomic_store_explicit(&s->threshold_ns, threshold_ns, memory_order_relaxed);
	pthread_cond_signal(&s->wake); /* sample at the new pace */
	pthread_mutex_unlock(&s->lock);
	return 0;
}
