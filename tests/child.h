/* SPDX-License-Identifier: MIT */
/*
 * Running a test body in a child process with its stderr captured, for the
 * reports that end the process (a stack overflow aborts it) or that the
 * test must read back.  Used by test_debug.c and test_stack.c.
 */
#ifndef UCO_TEST_CHILD_H
#define UCO_TEST_CHILD_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <uco.h>

struct child {
	int status;
	char err[16384]; /* what it wrote on stderr */
};

#define CHILD_SKIP 77

/* Run body(arg) in a child process whose stderr is captured, without core
 * dumps (it is meant to die). */
static inline void run_child(void (*body)(void *), void *arg, struct child *c)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core);
		body(arg);
		_exit(0);
	}
	close(p[1]);
	size_t used = 0;
	ssize_t n;
	while ((n = read(p[0], c->err + used, sizeof c->err - 1 - used)) > 0)
		used += (size_t)n;
	c->err[used] = '\0';
	close(p[0]);
	cr_assert_eq(waitpid(pid, &c->status, 0), pid);
	if (WIFEXITED(c->status) && WEXITSTATUS(c->status) == CHILD_SKIP)
		cr_skip_test("io_uring unavailable here");
}

static inline uco_loop *child_loop(void)
{
	uco_loop *loop;
	int err = uco_loop_create(&loop, NULL);
	if (err == -ENOSYS || err == -EPERM)
		_exit(CHILD_SKIP);
	if (err)
		_exit(3);
	return loop;
}

static inline void expect_signal(const struct child *c, int signo)
{
	cr_assert(WIFSIGNALED(c->status) && WTERMSIG(c->status) == signo,
	          "the child should die of signal %d; status %#x, stderr:\n%s", signo,
	          c->status, c->err);
}

#endif
