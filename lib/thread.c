/* SPDX-License-Identifier: MIT */
/*
 * Threads of uco's own (executor workers, and any helper thread a part of
 * uco starts): created with every asynchronous signal blocked.
 */
#include <pthread.h>
#include <signal.h>

#include "internal.h"

/*
 * A thread of uco's own (an executor worker): it blocks every signal that
 * can be blocked except the synchronous faults, so that a signal sent to
 * the process goes to a thread of the program, never here where nothing
 * listens (libuv's threadpool does the same).  Without it, SIGINT after
 * the default executor started would find a worker with the default
 * disposition and kill the process, even once uco_loop_on_signal() had
 * blocked it on the loop's thread.  The new thread inherits the mask set
 * around pthread_create; the caller's own mask is restored.
 */
int uco__thread_create(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	/* A blocked synchronous fault kills the process without a handler
	 * (and without the overflow report): leave those deliverable. */
	static const int faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS };
	for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
		sigdelset(&all, faults[i]);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(thread, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -err;
}
