/* SPDX-License-Identifier: MIT */
/* The no-io-uring wrapper's test: run under it (or not), this program
 * checks what a program there sees.
 *
 *   no_io_uring_check syscalls ERRNO   the three io_uring calls fail with ERRNO
 *                                      and other calls still work
 *   no_io_uring_check syscalls works   io_uring_setup succeeds (no wrapper)
 *   no_io_uring_check uco ERRNO        libuco: UCO_BACKEND_IO_URING fails with
 *                                      -ERRNO, AUTO runs a loop on epoll
 *
 * Exit 0 when it holds, 1 when not, 77 (Meson's skip) when the check cannot
 * be made here. */
#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <uco.h>

#include "../no_io_uring.h"

static int failed;

static void check(int ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	failed |= !ok;
}

/* -errno of a raw system call (no liburing: it may retry or map). */
static long raw(long r)
{
	return r < 0 ? -errno : r;
}

static int syscalls(const char *expect)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	long fd = raw(syscall(__NR_io_uring_setup, 4, &p));
	if (strcmp(expect, "works") == 0) {
		if (fd == -EPERM || fd == -ENOSYS || fd == -EOPNOTSUPP) {
			printf("skip: io_uring is refused here already (%s)\n", strerror((int)-fd));
			return 77;
		}
		check(fd >= 0, "io_uring_setup works without the wrapper");
		if (fd >= 0)
			close((int)fd);
		return failed;
	}
	int err = no_io_uring_errno(expect);
	char what[128];
	snprintf(what, sizeof what, "io_uring_setup fails with %s (%ld)", strerror(err), fd);
	check(fd == -err, what);
	long r = raw(syscall(__NR_io_uring_enter, -1, 0, 0, 0, NULL, 0));
	snprintf(what, sizeof what, "io_uring_enter fails with %s, not EBADF (%ld)", strerror(err), r);
	check(r == -err, what);
	r = raw(syscall(__NR_io_uring_register, -1, 0, NULL, 0));
	snprintf(what, sizeof what, "io_uring_register fails with %s, not EBADF (%ld)",
	         strerror(err), r);
	check(r == -err, what);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	check(ep >= 0, "epoll_create1 still works");
	if (ep >= 0)
		close(ep);
	check(getppid() > 0, "other calls still work");
	return failed;
}

static void *sleeper(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_sleep(UCO_NS_PER_MS);
}

static int loops(const char *expect)
{
	int err = no_io_uring_errno(expect);
	/* A libuco without a readiness backend answers EPOLL with io_uring
	 * (or fails here): nothing to check yet, until tests/meson.build says
	 * it has one (UCO_TEST_EPOLL_BUILT=1). */
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.backend = UCO_BACKEND_EPOLL;
	uco_loop *loop = NULL;
	int r = uco_loop_create(&loop, &opts);
	const char *built = getenv("UCO_TEST_EPOLL_BUILT");
	if ((r < 0 || !(uco_loop_features(loop) & UCO_RING_EPOLL)) && !(built && *built == '1')) {
		printf("skip: this libuco has no readiness backend (UCO_BACKEND_EPOLL: %s)\n",
		       r < 0 ? uco_loop_strerror(r) : "io_uring");
		if (r == 0)
			uco_loop_close(loop);
		return 77;
	}
	check(r == 0 && (uco_loop_features(loop) & UCO_RING_EPOLL), "UCO_BACKEND_EPOLL runs epoll");
	if (r == 0)
		uco_loop_close(loop);

	opts.backend = UCO_BACKEND_IO_URING;
	r = uco_loop_create(&loop, &opts);
	char what[256];
	snprintf(what, sizeof what, "UCO_BACKEND_IO_URING fails with -%s (%d: %s)", expect, r,
	         r < 0 ? uco_loop_strerror(r) : "created");
	check(r == -err, what);
	if (r == 0)
		uco_loop_close(loop);

	opts.backend = UCO_BACKEND_AUTO;
	r = uco_loop_create(&loop, &opts);
	check(r == 0, "UCO_BACKEND_AUTO creates a loop");
	if (r)
		return 1;
	const char *why = NULL;
	const char *name = uco_loop_backend(loop, &why);
	snprintf(what, sizeof what, "AUTO fell back to epoll (%s, why: %s)", name ? name : "NULL",
	         why ? why : "NULL");
	check(name && strcmp(name, "epoll") == 0 && why != NULL, what);
	check(uco_loop_features(loop) & UCO_RING_EPOLL, "uco_loop_features has UCO_RING_EPOLL");
	uco_task *t = NULL;
	check(uco_spawn(loop, &t, sleeper, NULL) == 0, "spawn");
	check(uco_loop_run(loop) == 0, "the loop runs");
	void *res = (void *)1;
	check(t && uco_task_result(t, &res) == 0 && res == NULL, "a sleep ends, with 0");
	if (t)
		uco_task_release(t);
	check(uco_loop_close(loop) == 0, "uco_loop_close");
	return failed;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "syscalls") && strcmp(argv[1], "uco"))) {
		fprintf(stderr, "usage: no_io_uring_check syscalls|uco ERRNO|works\n");
		return 2;
	}
	return strcmp(argv[1], "syscalls") == 0 ? syscalls(argv[2]) : loops(argv[2]);
}
