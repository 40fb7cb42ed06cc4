/* SPDX-License-Identifier: MIT */
/*
 * Parking the running task: the inline step between every blocking call
 * and the switch (coro.c's uco__coro_park).  A header of its own, not a
 * part of internal.h, so that internal.h, which coro.c includes, names
 * nothing coro.c defines: only the files that park include this.
 */
#ifndef UCO_PARK_H
#define UCO_PARK_H

#include "internal.h"

/*
 * Suspend the current task until uco__wake(); returns the wake result.
 * `cancel` says how uco_task_cancel() interrupts this wait: it must make
 * the task be woken with -ECANCELED, now or (for a wait the kernel or a
 * worker still holds memory for) once it is safe.  Blocking calls first
 * ask uco__cancel_due() and return -ECANCELED without waiting if a
 * cancellation is pending.  uco__park_only is the same without the
 * delivery of a cancellation, for a wait (io.c's) whose wake result is
 * not a uco code but a CQE's res.  Inline, as is uco__cancel_due(): one frame
 * less between every blocking call and the switch, so one stack line less
 * to write at the park and to bring back at the resume.
 */
static inline void uco__park_only(uco_loop *loop, uco_task *t, const struct uco__wait_kind *why,
                                  void (*cancel)(uco_task *t))
{
	t->run_state = UCO__PARKED;
	t->why = why;
	t->wait_cancel = cancel;
	uco__coro_park(loop, t);
	t->wait_cancel = NULL;
}

static inline int uco__park(uco_loop *loop, uco_task *t, const struct uco__wait_kind *why,
                            void (*cancel)(uco_task *t))
{
	uco__park_only(loop, t, why, cancel);
	int r = t->wake_result;
	if (r == -ECANCELED && t->cancelling)
		t->cancelling = false; /* delivered */
	return r;
}

#endif
