/* SPDX-License-Identifier: MIT */
/*
 * The switch layer: which loop (and so which task) runs on this thread,
 * and switching between the scheduler (the thread's own stack) and tasks.
 * It calls nothing above it; the loop drives it (and times tasks for the
 * slow-task warning).
 *
 * Every switch goes through here or coro.h (the switch into a task,
 * inline in the scheduler's loop) so that the sanitizer annotations sit in
 * one place: ASan must be told which stack is about to run
 * (__sanitizer_start_switch_fiber just before the switch) and that the
 * switch happened (__sanitizer_finish_switch_fiber first thing after it),
 * in that order (Boost #65 had them reversed).  TSan must be told which
 * fiber runs next, immediately before the switch.
 */
#include <errno.h>

#include "coro.h"

/* The loop running on this thread and the thread's token (internal.h
 * says why they are initial-exec and read inline). */
__thread uco_loop *uco__tls_running __attribute__((tls_model("initial-exec")));
__thread char uco__tls_token __attribute__((tls_model("initial-exec")));

uco_loop *uco_loop_current(void)
{
	return uco__tls_running;
}

void uco__running_set(uco_loop *loop)
{
	uco__tls_running = loop;
}

/* The C entry of every task, called by the arch trampoline on a fresh
 * stack.  It never returns: uco__coro_exit() leaves the stack for good. */
static void task_entry(void *arg)
{
	uco_task *t = arg;
	uco_loop *loop = t->loop;
#ifdef UCO__ASAN
	__sanitizer_finish_switch_fiber(NULL, &loop->asan_sched_bottom,
	                                &loop->asan_sched_size);
#endif
	void *value = t->fn(t->arg);
	t->value = value;
	uco__coro_exit(loop, t);
}

/* For coro.h's start; the frame keeps the name task_entry (backtraces,
 * tools/uco-gdb.py and its test look for it). */
void (*const uco__task_entry)(void *arg) = task_entry;

void uco__coro_park(uco_loop *loop, uco_task *t)
{
#ifdef UCO__TSAN
	__tsan_switch_to_fiber(loop->tsan_sched_fiber, 0);
#endif
#ifdef UCO__ASAN
	__sanitizer_start_switch_fiber(&t->asan_fake_stack, loop->asan_sched_bottom,
	                               loop->asan_sched_size);
#endif
	uco__switch(&t->sp, loop->sched_sp);
#ifdef UCO__ASAN
	__sanitizer_finish_switch_fiber(t->asan_fake_stack, &loop->asan_sched_bottom,
	                                &loop->asan_sched_size);
#endif
}

void uco__coro_exit(uco_loop *loop, uco_task *t)
{
	t->run_state = UCO__FINISHED;
#ifdef UCO__TSAN
	__tsan_switch_to_fiber(loop->tsan_sched_fiber, 0);
#endif
#ifdef UCO__ASAN
	/* NULL: this fiber is gone, ASan may drop its fake stack. */
	__sanitizer_start_switch_fiber(NULL, loop->asan_sched_bottom,
	                               loop->asan_sched_size);
#endif
#ifdef UCO__HAVE_SWITCH_EXIT
	uco__switch_exit(loop->sched_sp);
#else
	uco__switch(&t->sp, loop->sched_sp);
	__builtin_unreachable();
#endif
}

#ifdef UCO__TSAN
/* The coroutine has ended and the scheduler runs: forget its fiber state
 * (TSan's fiber may only be destroyed when it is not the current one). */
void uco__coro_release(uco_task *t)
{
	if (t->tsan_fiber)
		__tsan_destroy_fiber(t->tsan_fiber);
	t->tsan_fiber = NULL;
}
#endif
