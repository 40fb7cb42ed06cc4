/* SPDX-License-Identifier: MIT */
/*
 * The program test_gdb.py runs under gdb with tools/uco-gdb.py: a loop with
 * tasks suspended in known places (a sleep two calls deep, an await, a
 * mutex), then a task that stops the program with SIGTRAP from inside
 * gdb_stop_here().  Without a debugger the SIGTRAP would kill it, so it
 * only does that when asked (argv[1] == "stop").
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uco.h>

/* Globals, so that the test can name them in gdb commands. */
uco_loop *the_loop;
uco_task *sleeping_task, *awaiting_task, *locking_task, *stopping_task, *reading_task;
static uco_mutex lock;
static int pipe_fds[2];
static volatile int depth_marker;
static int stop;

/* Two real frames between the task's function and the sleep: noinline, and
 * work after each call, so that neither is inlined nor a tail call. */
__attribute__((noinline)) static int nap_inner(void)
{
	int r = uco_sleep(60 * UCO_NS_PER_S);
	depth_marker = 2;
	return r;
}

__attribute__((noinline)) static int nap_outer(void)
{
	int r = nap_inner();
	depth_marker = 1;
	return r;
}

void *sleeper(void *arg);
void *sleeper(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)nap_outer();
}

void *awaiter(void *arg);
void *awaiter(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_await(sleeping_task, NULL);
}

void *locker(void *arg);
void *locker(void *arg)
{
	(void)arg;
	if (uco_mutex_lock(&lock) == 0)
		uco_mutex_unlock(&lock);
	return NULL;
}

void *reader(void *arg);
void *reader(void *arg)
{
	(void)arg;
	char c;
	return (void *)uco_read(pipe_fds[0], &c, 1, -1);
}

/* Where gdb stops (a breakpoint on it works as well). */
__attribute__((noinline)) void gdb_stop_here(void);
__attribute__((noinline)) void gdb_stop_here(void)
{
	if (stop)
		raise(SIGTRAP);
	depth_marker = 3;
}

void *stopper(void *arg);
void *stopper(void *arg)
{
	(void)arg;
	uco_mutex_lock(&lock); /* locker waits for it */
	uco_sleep(10 * UCO_NS_PER_MS); /* everyone else reaches their wait */
	gdb_stop_here();
	uco_mutex_unlock(&lock);
	close(pipe_fds[1]); /* the reader gets end-of-file */
	uco_loop_cancel_all(NULL);
	return NULL;
}

int main(int argc, char **argv)
{
	stop = argc > 1 && strcmp(argv[1], "stop") == 0;
	int err = uco_loop_create(&the_loop, NULL);
	if (err == -ENOSYS || err == -EPERM) {
		fprintf(stderr, "io_uring unavailable: %s\n", uco_loop_strerror(err));
		return 77;
	}
	uco_mutex_init(&lock);
	if (err || pipe(pipe_fds) || uco_spawn(the_loop, &sleeping_task, sleeper, NULL) ||
	    uco_spawn(the_loop, &awaiting_task, awaiter, NULL) ||
	    uco_spawn(the_loop, &stopping_task, stopper, NULL) ||
	    uco_spawn(the_loop, &locking_task, locker, NULL) ||
	    uco_spawn(the_loop, &reading_task, reader, NULL))
		return 1;
	printf("loop=%p sleeping=%p awaiting=%p locking=%p stopping=%p reading=%p fd=%d\n",
	       (void *)the_loop, (void *)sleeping_task, (void *)awaiting_task,
	       (void *)locking_task, (void *)stopping_task, (void *)reading_task, pipe_fds[0]);
	fflush(stdout);
	err = uco_loop_run(the_loop);
	uco_task_release(sleeping_task);
	uco_task_release(awaiting_task);
	uco_task_release(locking_task);
	uco_task_release(stopping_task);
	uco_task_release(reading_task);
	return err || uco_loop_close(the_loop) ? 1 : 0;
}
