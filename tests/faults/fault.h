/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for tests: the test executable links libuco's static
 * archive with -Wl,--wrap=<function> for each function below (see
 * tests/meson.build), so libuco's own calls to them land in fault.c,
 * which passes them through, or, while armed, fails the nth one the way
 * the real function fails.  Nothing of this is compiled into the library.
 *
 * --wrap only redirects references that are undefined in the objects of
 * the executable being linked: libuco's objects and the test's, not calls
 * made inside liburing.so or libc.  So liburing's entry points are wrapped
 * where libuco calls them.  The test's own calls are wrapped too: it makes
 * none of these calls while armed, or only knowingly.
 */
#ifndef UCO_TEST_FAULT_H
#define UCO_TEST_FAULT_H

#include <stdbool.h>

/* Families of wrapped calls, as a mask.  Each fails with its function's
 * own convention. */
enum {
	FAULT_ALLOC = 1u << 0,    /* malloc calloc realloc posix_memalign aligned_alloc: ENOMEM */
	FAULT_MAP = 1u << 1,      /* mmap (MAP_FAILED), madvise mprotect (-1): ENOMEM */
	FAULT_RING = 1u << 2,     /* io_uring_queue_init(_params): -ENOMEM;
	                           * io_uring_get_probe(_ring): NULL */
	FAULT_REGISTER = 1u << 3, /* io_uring_register_*: -ENOMEM */
	FAULT_FD = 1u << 4,       /* eventfd signalfd pipe2: -1, EMFILE;
	                           * posix_spawn(p): EAGAIN */
	FAULT_THREAD = 1u << 5,   /* pthread_create: EAGAIN */
	FAULT_SUBMIT = 1u << 6,   /* io_uring_submit*, io_uring_get_events: fault_submit_errno() */
	/* The readiness backend's calls (lib/backend_epoll.c, lib/epoll_ops.c). */
	FAULT_EPOLL = 1u << 7,    /* epoll_create1: -1, EMFILE; epoll_ctl's ADD: -1,
	                           * fault_epoll_ctl_errno() (ENOMEM, or ENOSPC: the
	                           * max_user_watches limit).  MOD and DEL allocate
	                           * nothing and are never failed. */
	FAULT_WAIT = 1u << 8,     /* epoll_wait epoll_pwait2: -1, EINTR (a signal came) */
	FAULT_IO = 1u << 9,       /* the non-blocking IO calls: preadv2 pwritev2 recv recvmsg
	                           * poll: ENOMEM; send sendmsg: ENOBUFS; accept4: EMFILE;
	                           * connect: EADDRNOTAVAIL (no local port left) */
	FAULT_AGAIN = 1u << 10,   /* the same calls but poll: -1, EAGAIN when the
	                           * descriptor was ready (readiness raced: another
	                           * thread or process took the data or the connection;
	                           * connect: a UNIX socket's full backlog) */
	FAULT_ALL = (1u << 11) - 1,
	/* Not in FAULT_ALL: epoll_ctl's MOD: -1, EBADF, as when another thread
	 * closed a descriptor that operations wait on (the engine's re-arm
	 * after epoll reported it). */
	FAULT_EPOLL_MOD = 1u << 11,
};
/* FAULT_WAIT and FAULT_AGAIN never fail sticky, only the nth call: a
 * signal interrupts one wait, a race loses one try; failing every later
 * one is a livelock no loop can get out of, not a fault to survive.
 * fcntl is wrapped too: its F_DUPFD(_CLOEXEC) fails in FAULT_FD (EMFILE);
 * F_GETFL/F_SETFL cannot fail on an open descriptor and are not counted. */

/* Fail the nth call (counting from 1) of the `kinds` families, counted
 * over all threads; with `sticky`, that call and every later one (memory
 * that stays short). */
void fault_arm(unsigned kinds, unsigned long nth, bool sticky);

/* Stop failing.  Returns how many calls were failed since fault_arm(): 0
 * means the operation ran to its end without reaching the nth call. */
unsigned long fault_disarm(void);

/* Calls of the armed families seen since fault_arm(). */
unsigned long fault_calls(void);

/* The function whose call was failed first since fault_arm(), or "". */
const char *fault_first_failed(void);

/* What an injected io_uring_submit* failure returns: -ENOMEM unless set
 * (-EAGAIN and -EBUSY are what a kernel short of memory or of CQ room
 * really answers; the loop retries those). */
void fault_submit_errno(int err);

/* What an injected epoll_ctl(EPOLL_CTL_ADD) failure sets errno to: ENOMEM
 * unless set (ENOSPC: /proc/sys/fs/epoll/max_user_watches reached). */
void fault_epoll_ctl_errno(int err);

/* With `missing`, epoll_pwait2 answers ENOSYS, as before Linux 5.11 (not
 * a counted fault: the kernel lacks it for good), so that the backend
 * waits with epoll_wait's milliseconds. */
void fault_no_epoll_pwait2(bool missing);

/* Leak accounting, whether armed or not: allocations made through the
 * wrapped allocators and not yet freed, and mmaps not yet munmapped. */
long fault_live_allocs(void);
long fault_live_maps(void);

/* For a leak's report: a mark, then where the allocations made since it
 * and still live came from (return addresses, for addr2line). */
unsigned long fault_alloc_mark(void);
void fault_print_live_since(unsigned long mark);

#endif
