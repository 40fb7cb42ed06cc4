/* SPDX-License-Identifier: MIT */
/* The process object, shared by process.c (spawn, wait, kill, release) and
 * communicate.c. */
#ifndef UCO_PROCESS_H
#define UCO_PROCESS_H

#include <signal.h>

#include "internal.h"

struct uco_process {
	struct uco__resource resource; /* on its loop's list until freed */
	uco_loop *loop;           /* NULL once the loop is closed */
	pid_t pid;
	int pidfd;                /* -1 once reaped */
	int fds[3];               /* this side's pipe ends, or -1 */
	/* The reaping operation (WAITID, or the POLL_ADD fallback). */
	struct uco__completion reap_done;
	siginfo_t info;           /* written by the kernel's WAITID */
	bool reap_inflight;
	bool reap_poll;           /* the in-flight one is the POLL_ADD */
	bool reaped;
	bool released;            /* freed once reaped */
	int status;               /* the wait status or -errno, once reaped */
	struct uco__waitq waiters;
	size_t in_done;           /* bytes of communicate's input written */
	bool communicating;       /* a communicate call uses the pipes */
};

/* The task calling a wait or communicate on p: 0 and *self, or -EPERM
 * (not in a task), -ESHUTDOWN (p's loop closed), -EXDEV (another loop). */
int uco__process_caller(const uco_process *p, uco_task **self);

#endif
