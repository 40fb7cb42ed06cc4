/* SPDX-License-Identifier: MIT */
/*
 * The switch layer's half that runs on the scheduler: starting or resuming
 * a task, inline in the loop's run loop (loop.c), and the sanitizer
 * declarations both halves use (coro.c holds the other half and says what
 * the annotations must do).
 *
 * Inline because of the return-stack predictor: the task's own calls
 * (its entry, the function, the exit's call to uco__switch) are pushed on
 * it and never returned from, so the first `ret` on the scheduler's side
 * after a switch back always mispredicts.  As a function of coro.c, that
 * was its own return to the run loop, once per task run; inline, the run
 * loop goes on with no `ret` until its own calls, which return where the
 * predictor expects.
 */
#ifndef UCO_CORO_H
#define UCO_CORO_H

#include "internal.h"

#ifdef UCO__ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#ifdef UCO__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* The C entry of every task, called by the arch trampoline on a fresh
 * stack (coro.c's task_entry). */
extern void (*const uco__task_entry)(void *arg);

/*
 * Read the scheduler's MXCSR and x87 control word again (x86_64): the
 * switch into a task saves the scheduler's from loop->sched_fpctl rather
 * than reading them each time (switch_x86_64.S says why), so the loop
 * calls this before each turn's tasks (what ran on its stack since: the
 * caller of uco_loop_run, completions' callbacks such as signal handlers,
 * uco_loop_call's calls and call_later/call_at handles) and after user
 * code it runs between them (done-callbacks, context destructors),
 * because such code may change them (fesetround) and the change must
 * persist, as it did when every switch read them.  Nothing inside a task:
 * completions are reaped there too (ring.c's submit_pending), and their
 * callbacks then run with the task's state, not the scheduler's.
 */
static inline void uco__sched_fpctl_note(uco_loop *loop)
{
#ifdef UCO__HAVE_SWITCH_IN
	if (!loop->current)
		loop->sched_fpctl = uco__fpctl_read();
#else
	(void)loop;
#endif
}

/* Switch from the scheduler into t, until t parks or ends; `first`: t
 * has never run (a constant at each call). */
static inline __attribute__((always_inline)) void switch_in(uco_loop *loop, uco_task *t,
                                                            bool first)
{
	loop->current = t;
	t->run_state = UCO__RUNNING;
	loop->stats.switches += 2; /* in, and back out */
#ifdef UCO__TSAN
	loop->tsan_sched_fiber = __tsan_get_current_fiber();
	if (!t->tsan_fiber)
		t->tsan_fiber = __tsan_create_fiber(0);
	__tsan_switch_to_fiber(t->tsan_fiber, 0);
#endif
#ifdef UCO__ASAN
	__sanitizer_start_switch_fiber(&loop->asan_fake_stack, t->stack.base,
	                               t->stack.size);
#endif
#ifdef UCO__HAVE_SWITCH_IN
	if (first)
		uco__switch_start_in(&loop->sched_sp, uco__stack_top(&t->stack), uco__task_entry, t,
		                     loop->sched_fpctl);
	else
		uco__switch_in(&loop->sched_sp, t->sp, loop->sched_fpctl);
#else
	(void)first;
	uco__switch(&loop->sched_sp, t->sp);
#endif
#ifdef UCO__ASAN
	__sanitizer_finish_switch_fiber(loop->asan_fake_stack, NULL, NULL);
#endif
	loop->current = NULL;
}

static inline void uco__coro_start(uco_loop *loop, uco_task *t)
{
	if (!t->stack.base) /* reserved at spawn; the scheduler may have taken it */
		uco__stack_pool_take(&loop->pool, &t->stack);
#ifndef UCO__HAVE_SWITCH_IN
	t->sp = uco__context_init(uco__stack_top(&t->stack), uco__task_entry, t);
#endif
	switch_in(loop, t, true);
}

static inline void uco__coro_resume(uco_loop *loop, uco_task *t)
{
	switch_in(loop, t, false);
}

#endif
