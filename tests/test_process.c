/* SPDX-License-Identifier: MIT */
/*
 * Subprocesses with real programs (/bin/sh, cat, sleep, true, false): exit
 * codes and signal deaths, env and cwd, pipes both ways with more than a
 * pipe buffer, communicate with deadlines, cancelled waits (no zombie),
 * descriptors.  The tests that wait run twice: through IORING_OP_WAITID
 * (suite "waitid", skipped where the kernel lacks it) and through the
 * pidfd poll fallback (suite "pidfd_poll", WAITID forgotten).
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

#ifdef UCO__ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define OP_WAITID 50
#define SOON() (uco_now() + 20 * UCO_NS_PER_S)

static bool poll_fallback;

/* Criterion passes a test whose worker LeakSanitizer reports at exit: ask
 * it here instead. */
static void no_leaks(void)
{
#ifdef UCO__ASAN
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
#endif
}

static uco_loop *proc_loop(void)
{
	uco_loop *loop = test_loop();
	/* On epoll a child is waited for through its pidfd's readiness: the
	 * "poll" suite's path, so the "waitid" suite is io_uring's alone. */
	if (test_on_epoll(loop) && !poll_fallback)
		cr_skip_test("io_uring only: IORING_OP_WAITID (the pidfd suite runs on epoll)");
	if (test_on_epoll(loop))
		return loop;
	if (poll_fallback)
		uco__forget_opcode(loop, OP_WAITID);
	else if (!uco__has_op(loop, OP_WAITID))
		cr_skip_test("the kernel has no IORING_OP_WAITID (6.7+)");
	return loop;
}

/* Each body runs as a task on a fresh loop, once per path. */
#define BOTH(name)                                                         \
	static void *name##_body(void *arg);                               \
	static void name##_run(bool fallback)                              \
	{                                                                  \
		poll_fallback = fallback;                                  \
		uco_loop *loop = proc_loop();                              \
		uco_task *t;                                               \
		cr_assert_eq(uco_spawn(loop, &t, name##_body, loop), 0);   \
		cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);        \
		uco_task_release(t);                                       \
		cr_assert_eq(uco_loop_run(loop), 0);                       \
		test_close(loop);                                          \
		no_leaks();                                                \
	}                                                                  \
	Test(waitid, name) { name##_run(false); }                          \
	Test(pidfd_poll, name) { name##_run(true); }                       \
	static void *name##_body(void *arg)

static uco_process *start(char *const *argv, int in, int out, int err)
{
	uco_process_opts o;
	memset(&o, 0, sizeof o);
	o.argv = argv;
	o.stdio[0].mode = in;
	o.stdio[1].mode = out;
	o.stdio[2].mode = err;
	uco_process *p = NULL;
	int r = uco_process_spawn(NULL, &p, &o);
	cr_assert_eq(r, 0, "spawn %s: %s", argv[0], strerror(-r));
	return p;
}

#define ARGV(...) ((char *const[]){ __VA_ARGS__, NULL })
#define SH(script) ARGV("/bin/sh", "-c", script)

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	cr_assert(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Is pid still a child of ours, zombie or not? */
static bool is_our_child(pid_t pid)
{
	siginfo_t info;
	memset(&info, 0, sizeof info);
	return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* ------------------------------------------------------------ exit */

BOTH(exit_codes)
{
	(void)arg;
	uco_process *p = start(ARGV("true"), 0, 0, 0);
	int st = uco_process_wait(p);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "true: status %#x", st);
	cr_assert_eq(uco_process_wait(p), st, "a second wait gives the same status");
	uco_process_release(p);

	p = start(ARGV("false"), 0, 0, 0);
	st = uco_process_wait(p);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "false: status %#x", st);
	uco_process_release(p);

	p = start(SH("exit 42"), 0, 0, 0);
	st = uco_process_wait_dl(p, SOON());
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 42, "exit 42: status %#x", st);
	cr_assert_eq(uco_process_kill(p, SIGTERM), -ESRCH, "reaped: no signal");
	uco_process_release(p);
	return NULL;
}

BOTH(signal_death)
{
	(void)arg;
	uco_process *p = start(SH("kill -TERM $$"), 0, 0, 0);
	int st = uco_process_wait(p);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);
	uco_process_release(p);

	p = start(ARGV("sleep", "10"), 0, 0, 0);
	cr_assert_eq(uco_process_kill(p, SIGKILL), 0);
	st = uco_process_wait(p);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
	uco_process_release(p);
	return NULL;
}

/* The loop's thread may block signals (uco_loop_on_signal does): the child
 * must not inherit the mask, or SIGTERM would not stop it. */
BOTH(child_starts_with_an_empty_signal_mask)
{
	(void)arg;
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	uco_process *p = start(ARGV("sleep", "10"), 0, 0, 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	cr_assert_eq(uco_process_kill(p, SIGTERM), 0);
	int st = uco_process_wait_dl(p, SOON());
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);
	uco_process_release(p);
	return NULL;
}

static void *waits_for_status(void *arg)
{
	return (void *)(intptr_t)uco_process_wait(arg);
}

BOTH(several_tasks_wait_for_one_process)
{
	(void)arg;
	uco_process *p = start(ARGV("sleep", "0.05"), 0, 0, 0);
	uco_task *t[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(uco_spawn(NULL, &t[i], waits_for_status, p), 0);
	for (int i = 0; i < 3; i++) {
		void *v = NULL;
		cr_assert_eq(uco_await(t[i], &v), 0);
		cr_assert_eq((intptr_t)v, 0, "waiter %d: status %ld", i, (long)(intptr_t)v);
		uco_task_release(t[i]);
	}
	int st = uco_process_wait(p);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	uco_process_release(p);
	return NULL;
}

/* ------------------------------------------------------------ env, cwd, stdio */

BOTH(env_and_cwd)
{
	(void)arg;
	char dir[] = "/tmp/uco-proc-XXXXXX";
	cr_assert(mkdtemp(dir));
	uco_process_opts o;
	memset(&o, 0, sizeof o);
	o.argv = SH("printf '%s|' \"$UCO_X\" \"$HOME\"; pwd");
	o.envp = ARGV("UCO_X=forty two", "PATH=/usr/bin:/bin");
	o.cwd = dir;
	o.stdio[1].mode = UCO_STDIO_PIPE;
	uco_process *p;
	cr_assert_eq(uco_process_spawn(NULL, &p, &o), 0);
	uco_process_output out = { 0 };
	int st = uco_process_communicate_dl(p, NULL, 0, &out, NULL, SOON());
	cr_assert_eq(st, 0, "status %d", st);
	char want[64];
	snprintf(want, sizeof want, "forty two||%s\n", dir);
	cr_assert_str_eq(out.data, want);
	free(out.data);
	uco_process_release(p);
	rmdir(dir);
	return NULL;
}

BOTH(stdio_modes)
{
	(void)arg;
	/* stderr into stdout's pipe. */
	uco_process *p = start(SH("echo out; echo err >&2"), 0, UCO_STDIO_PIPE, UCO_STDIO_STDOUT);
	uco_process_output out = { 0 };
	cr_assert_eq(uco_process_communicate(p, NULL, 0, &out, NULL), 0);
	cr_assert_str_eq(out.data, "out\nerr\n");
	free(out.data);
	uco_process_release(p);

	/* /dev/null in: cat sees end of input at once. */
	p = start(ARGV("cat"), UCO_STDIO_DEVNULL, UCO_STDIO_PIPE, UCO_STDIO_DEVNULL);
	out = (uco_process_output){ 0 };
	cr_assert_eq(uco_process_communicate(p, NULL, 0, &out, NULL), 0);
	cr_assert_eq(out.len, 0);
	free(out.data);
	uco_process_release(p);

	/* A descriptor of ours as stdout (a file). */
	char path[] = "/tmp/uco-proc-out-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);
	cr_assert_geq(fd, 0);
	uco_process_opts o;
	memset(&o, 0, sizeof o);
	o.argv = SH("echo to-file; cat");
	o.stdio[0] = (uco_stdio){ UCO_STDIO_DEVNULL, 0 };
	o.stdio[1] = (uco_stdio){ UCO_STDIO_FD, fd };
	cr_assert_eq(uco_process_spawn(NULL, &p, &o), 0);
	cr_assert_eq(uco_process_fd(p, 1), -EBADF, "not a pipe");
	cr_assert_eq(uco_process_wait(p), 0);
	uco_process_release(p);
	char buf[32] = { 0 };
	cr_assert_eq(pread(fd, buf, sizeof buf - 1, 0), 8);
	cr_assert_str_eq(buf, "to-file\n");
	close(fd);
	unlink(path);
	return NULL;
}

/* ------------------------------------------------------------ pipes, communicate */

static char *pattern(size_t n, unsigned seed)
{
	char *b = malloc(n);
	cr_assert(b);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (char)(seed >> 16);
	}
	return b;
}

/* More than a pipe buffer each way at once (and on stderr): done one
 * after the other this would deadlock. */
BOTH(communicate_large_data_both_ways)
{
	(void)arg;
	size_t n = 4u << 20;
	char *in = pattern(n, 7);
	uco_process *p = start(SH("head -c 1000000 /dev/zero >&2; cat"), UCO_STDIO_PIPE,
	                       UCO_STDIO_PIPE, UCO_STDIO_PIPE);
	uco_process_output out = { 0 }, err = { 0 };
	int st = uco_process_communicate_dl(p, in, n, &out, &err, SOON());
	cr_assert_eq(st, 0, "status %d", st);
	cr_assert_eq(out.len, n);
	cr_assert(memcmp(out.data, in, n) == 0, "stdout is not stdin");
	cr_assert_eq(err.len, 1000000);
	cr_assert_eq(uco_process_fd(p, 0), -EBADF, "stdin closed");
	free(out.data);
	free(err.data);
	free(in);
	uco_process_release(p);
	return NULL;
}

/* Pipes used directly, as a stream layer would. */
BOTH(pipes_through_uco_read_and_write)
{
	(void)arg;
	uco_process *p = start(ARGV("cat"), UCO_STDIO_PIPE, UCO_STDIO_PIPE, 0);
	int in = uco_process_take_fd(p, 0);
	cr_assert_geq(in, 0);
	cr_assert_eq(uco_process_fd(p, 0), -EBADF, "taken");
	cr_assert(fcntl(in, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(uco_write_all(in, "hello\n", 6, SOON()), 6);
	close(in);
	char buf[16] = { 0 };
	cr_assert_eq(uco_read_full(uco_process_fd(p, 1), buf, sizeof buf, SOON()), 6);
	cr_assert_str_eq(buf, "hello\n");
	cr_assert_eq(uco_process_wait(p), 0);
	uco_process_release(p);
	return NULL;
}

/* A child that exits without reading its input: the rest is dropped, and
 * the SIGPIPE of the write does not kill us (its default action). */
BOTH(communicate_input_the_child_never_reads)
{
	(void)arg;
	signal(SIGPIPE, SIG_DFL);
	size_t n = 1u << 20;
	char *in = pattern(n, 3);
	uco_process *p = start(ARGV("true"), UCO_STDIO_PIPE, 0, 0);
	int st = uco_process_communicate_dl(p, in, n, NULL, NULL, SOON());
	cr_assert_eq(st, 0, "status %d", st);
	sigset_t mask;
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	cr_assert_eq(sigismember(&mask, SIGPIPE), 0, "SIGPIPE unblocked again");
	free(in);
	uco_process_release(p);
	return NULL;
}

BOTH(communicate_deadline_then_kill)
{
	(void)arg;
	/* sleep never reads its 1 MiB of input nor writes: the deadline. */
	size_t n = 1u << 20;
	char *in = pattern(n, 5);
	uco_process *p = start(ARGV("sleep", "10"), UCO_STDIO_PIPE, UCO_STDIO_PIPE, 0);
	uco_process_output out = { 0 };
	int64_t t0 = uco_now();
	int r = uco_process_communicate_dl(p, in, n, &out, NULL, uco_now() + MS(100));
	cr_assert_eq(r, -ETIMEDOUT);
	cr_assert_geq(uco_now() - t0, MS(100), "never early");
	cr_assert_eq(out.len, 0);
	cr_assert_geq(uco_process_fd(p, 0), 0, "stdin stays open for a retry");
	cr_assert_eq(uco_process_kill(p, SIGKILL), 0);
	/* Again: the write now fails with EPIPE (dropped), stdout ends. */
	int st = uco_process_communicate_dl(p, in, n, &out, NULL, SOON());
	cr_assert(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
	free(out.data);
	free(in);
	uco_process_release(p);
	return NULL;
}

static void *communicates(void *arg)
{
	uco_process_output out = { 0 };
	int r = uco_process_communicate(arg, NULL, 0, &out, NULL);
	free(out.data);
	return r == -ECANCELED ? NULL : uco_fail(r < 0 ? r : -EPROTO);
}

BOTH(communicate_cancelled)
{
	(void)arg;
	uco_process *p = start(ARGV("sleep", "10"), UCO_STDIO_PIPE, UCO_STDIO_PIPE, 0);
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, communicates, p), 0);
	cr_assert_eq(uco_sleep(MS(20)), 0);
	cr_assert_eq(uco_process_communicate(p, NULL, 0, NULL, NULL), -EBUSY, "one at a time");
	cr_assert_eq(uco_process_release(p), -EBUSY, "in use");
	cr_assert_eq(uco_task_cancel(t), 0);
	void *v = (void *)1;
	cr_assert_eq(uco_await(t, &v), 0);
	uco_task_release(t);
	cr_assert_eq(uco_process_kill(p, SIGKILL), 0);
	cr_assert_eq(uco_process_wait(p), SIGKILL);
	uco_process_release(p);
	return NULL;
}

/* ------------------------------------------------------------ no zombies */

/* Cancelled, normally; on a machine stalled for the child's whole 0.3 s
 * the wait may have ended first, which is no failure of this test. */
static void *waits(void *arg)
{
	int r = uco_process_wait(arg);
	return r == -ECANCELED || r == 0 ? NULL : uco_fail(r < 0 ? r : -EPROTO);
}

BOTH(cancelled_wait_leaves_no_zombie)
{
	(void)arg;
	uco_process *p = start(ARGV("sleep", "0.3"), 0, 0, 0);
	pid_t pid = uco_process_pid(p);
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, waits, p), 0);
	cr_assert_eq(uco_sleep(MS(10)), 0);
	uco_task_cancel(t);
	cr_assert_eq(uco_await(t, NULL), 0);
	uco_task_release(t);
	/* Nobody waits now; the child exits and is reaped all the same. */
	for (int i = 0; i < 2000 && is_our_child(pid); i++)
		uco_sleep(MS(5));
	cr_assert(!is_our_child(pid), "the child stayed a zombie");
	/* Its status was kept: no waiting now. */
	cr_assert_eq(uco_process_wait_dl(p, 0), 0);
	uco_process_release(p);
	return NULL;
}

BOTH(wait_deadline_then_try_once)
{
	(void)arg;
	uco_process *p = start(ARGV("sleep", "10"), 0, 0, 0);
	cr_assert_eq(uco_process_wait_dl(p, 0), -ETIMEDOUT, "try once: still running");
	int64_t t0 = uco_now();
	cr_assert_eq(uco_process_wait_dl(p, uco_now() + MS(30)), -ETIMEDOUT);
	cr_assert_geq(uco_now() - t0, MS(30));
	cr_assert_eq(uco_process_kill(p, SIGKILL), 0);
	cr_assert_eq(uco_process_wait(p), SIGKILL);
	uco_process_release(p);
	return NULL;
}

BOTH(release_without_wait_reaps_in_the_background)
{
	(void)arg;
	uco_process *p = start(ARGV("sleep", "0.05"), 0, 0, 0);
	pid_t pid = uco_process_pid(p);
	cr_assert_eq(uco_process_release(p), 0);
	for (int i = 0; i < 2000 && is_our_child(pid); i++)
		uco_sleep(MS(5));
	cr_assert(!is_our_child(pid), "the child stayed a zombie");
	return NULL;
}

/* SIGCHLD ignored: the kernel reaps children itself, the status is lost. */
BOTH(sigchld_ignored_gives_ECHILD)
{
	(void)arg;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	sigaction(SIGCHLD, &ign, &old);
	uco_process *p = start(ARGV("sleep", "0.02"), 0, 0, 0);
	int r = uco_process_wait_dl(p, SOON());
	cr_assert_eq(r, -ECHILD, "wait: %d", r);
	uco_process_release(p);
	sigaction(SIGCHLD, &old, NULL);
	struct sigaction now;
	sigaction(SIGCHLD, NULL, &now);
	cr_assert_eq(now.sa_handler, SIG_DFL, "uco left the disposition alone");
	return NULL;
}

/* ------------------------------------------------------------ descriptors */

BOTH(no_descriptor_leaks)
{
	uco_loop *loop = arg;
	int before = count_fds();
	uco_process *p = start(SH("ls /proc/self/fd"), UCO_STDIO_PIPE, UCO_STDIO_PIPE,
	                       UCO_STDIO_PIPE);
	int mine[3];
	for (int i = 0; i < 3; i++)
		mine[i] = uco_process_fd(p, i);
	uco_process_output out = { 0 };
	cr_assert_eq(uco_process_communicate(p, NULL, 0, &out, NULL), 0);
	/* The child saw none of ours: not the pipes, not the ring. */
	/* On epoll there is no ring; its epoll descriptor (epfd, private to
	 * lib/backend_epoll.c) would be the one to check here. */
	int ring = test_on_epoll(loop) ? -1 : loop->ring.ring_fd;
	for (char *tok = strtok(out.data, "\n"); tok; tok = strtok(NULL, "\n")) {
		int fd = atoi(tok);
		cr_assert(fd != ring && fd != mine[0] && fd != mine[1] && fd != mine[2],
		          "descriptor %d leaked into the child", fd);
	}
	free(out.data);
	uco_process_release(p);
	cr_assert_eq(count_fds(), before);

	/* A failed spawn leaves nothing either. */
	uco_process_opts o;
	memset(&o, 0, sizeof o);
	o.argv = ARGV("/nonexistent/uco-no-such-program");
	o.stdio[0].mode = o.stdio[1].mode = o.stdio[2].mode = UCO_STDIO_PIPE;
	cr_assert_eq(uco_process_spawn(NULL, &p, &o), -ENOENT);
	o.argv = ARGV("uco-no-such-program-in-path");
	cr_assert_eq(uco_process_spawn(NULL, &p, &o), -ENOENT);
	cr_assert_eq(count_fds(), before);
	return NULL;
}

/* ------------------------------------------------------------ not per path */

Test(process, bad_arguments)
{
	uco_loop *loop = test_loop();
	uco_process_opts o;
	memset(&o, 0, sizeof o);
	uco_process *p = NULL;
	cr_assert_eq(uco_process_spawn(loop, &p, &o), -EINVAL, "no argv");
	o.argv = ARGV("true");
	cr_assert_eq(uco_process_spawn(loop, NULL, &o), -EINVAL);
	o.stdio[0].mode = UCO_STDIO_STDOUT;
	cr_assert_eq(uco_process_spawn(loop, &p, &o), -EINVAL, "STDOUT is for stderr");
	o.stdio[0].mode = UCO_STDIO_FD;
	o.stdio[0].fd = -1;
	cr_assert_eq(uco_process_spawn(loop, &p, &o), -EINVAL);
	o.stdio[0].mode = 99;
	cr_assert_eq(uco_process_spawn(loop, &p, &o), -EINVAL);
	memset(&o, 0, sizeof o);
	o.argv = ARGV("true");
	o.reserved_[0] = 1;
	cr_assert_eq(uco_process_spawn(loop, &p, &o), -EINVAL);
	o.reserved_[0] = 0;
	o.flags = 1u << 30;
	cr_assert_eq(uco_process_spawn(loop, &p, &o), -EINVAL);
	o.flags = UCO_PROCESS_NO_PATH_SEARCH;
	cr_assert_eq(uco_process_spawn(loop, &p, &o), -ENOENT, "\"true\" is not a path");
	o.flags = 0;
	cr_assert_eq(uco_process_spawn(NULL, &p, &o), -EINVAL, "no loop runs");

	/* Outside a task: waits need one, until the status is known. */
	cr_assert_eq(uco_process_spawn(loop, &p, &o), 0);
	cr_assert_eq(uco_process_wait(p), -EPERM);
	cr_assert_eq(uco_process_communicate(p, NULL, 0, NULL, NULL), -EPERM);
	cr_assert_eq(uco_process_kill(p, -1), -EINVAL);
	cr_assert_eq(uco_process_fd(p, 3), -EINVAL);
	cr_assert_eq(uco_process_fd(p, 0), -EBADF);
	cr_assert_eq(uco_process_release(NULL), -EINVAL);
	cr_assert_eq(uco_process_release(p), 0);
	test_close(loop);
}

static void *communicate_without_stdin(void *arg)
{
	(void)arg;
	uco_process *p = start(ARGV("true"), 0, 0, 0);
	cr_assert_eq(uco_process_communicate(p, "x", 1, NULL, NULL), -EINVAL);
	cr_assert_eq(uco_process_communicate(p, NULL, 0, NULL, NULL), 0, "nothing to pipe");
	uco_process_release(p);
	return NULL;
}

Test(process, communicate_input_needs_a_stdin_pipe)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, communicate_without_stdin, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	uco_task_release(t);
	test_close(loop);
}

/* The loop closes with a child still running: the handle outlives it,
 * detached (waits say -ESHUTDOWN); releasing it later is fine. */
Test(process, loop_closes_first)
{
	uco_loop *loop = test_loop();
	uco_process *p;
	uco_process_opts o;
	memset(&o, 0, sizeof o);
	o.argv = ARGV("sleep", "10");
	cr_assert_eq(uco_process_spawn(loop, &p, &o), 0);
	pid_t pid = uco_process_pid(p);
	/* Another, released: the loop's close frees it. */
	uco_process *q;
	cr_assert_eq(uco_process_spawn(loop, &q, &o), 0);
	pid_t qpid = uco_process_pid(q);
	cr_assert_eq(uco_process_release(q), 0);
	test_close(loop);
	cr_assert_eq(uco_process_kill(p, SIGKILL), 0, "the pidfd still works");
	cr_assert_eq(uco_process_release(p), 0);
	/* Clean up after the test: the children are ours to reap now. */
	waitpid(pid, NULL, 0);
	kill(qpid, SIGKILL);
	waitpid(qpid, NULL, 0);
	no_leaks();
}
