/* SPDX-License-Identifier: MIT */
/* When io_uring is refused, creating a loop says why.  Each Criterion test
 * runs in its own process, so the seccomp filter stays in that process. */
#include "helpers.h"
#include "no_io_uring.h"

/* Refuse io_uring with `err`, as Docker's default profile does. */
static void refuse_io_uring(int err)
{
	cr_assert_eq(no_io_uring(err), 0);
}

static int io_uring_disabled(void)
{
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
	int v = 0;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static const uco_loop_opts io_uring_only = { .backend = UCO_BACKEND_IO_URING };

Test(setup, seccomp_refusal_is_EPERM_and_names_seccomp)
{
	refuse_io_uring(EPERM);
	unsetenv("UCO_BACKEND");
	uco_loop *loop = (uco_loop *)0x1;
	int err = uco_loop_create(&loop, &io_uring_only);
	cr_assert_eq(err, -EPERM);
	cr_assert_eq(loop, (uco_loop *)0x1, "*out untouched on failure");
	if (io_uring_disabled() == 0)
		cr_assert(strstr(uco_loop_strerror(err), "seccomp"), "%s", uco_loop_strerror(err));
	else
		cr_assert(strstr(uco_loop_strerror(err), "io_uring_disabled"));
}

Test(setup, missing_io_uring_is_ENOSYS)
{
	refuse_io_uring(ENOSYS);
	unsetenv("UCO_BACKEND");
	uco_loop *loop;
	int err = uco_loop_create(&loop, &io_uring_only);
	cr_assert_eq(err, -ENOSYS);
	cr_assert(strstr(uco_loop_strerror(err), "kernel"), "%s", uco_loop_strerror(err));
}

/* A task that sleeps and reads a pipe: enough to see the loop work. */
static void *sleep_and_read(void *arg)
{
	(void)arg;
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "x", 1), 1);
	cr_assert_eq(uco_sleep(1000000), 0);
	char c;
	cr_assert_eq(uco_read(p[0], &c, 1, -1), 1);
	close(p[0]);
	close(p[1]);
	return (void *)1;
}

static void falls_back_to_epoll(int refusal, const char *why_names)
{
	refuse_io_uring(refusal);
	unsetenv("UCO_BACKEND");
	uco_loop *loop;
	cr_assert_eq(uco_loop_create(&loop, NULL), 0);
	const char *why = NULL;
	cr_assert_str_eq(uco_loop_backend(loop, &why), "epoll");
	cr_assert(uco_loop_features(loop) & UCO_RING_EPOLL);
	cr_assert(why && strstr(why, why_names), "%s", why ? why : "(null)");
	uco_task *t;
	void *value;
	cr_assert_eq(uco_spawn(loop, &t, sleep_and_read, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &value), 0);
	cr_assert_eq(value, (void *)1);
	uco_task_release(t);
	cr_assert_eq(uco_loop_close(loop), 0);
}

Test(setup, auto_runs_on_epoll_where_seccomp_refuses_io_uring)
{
	falls_back_to_epoll(EPERM, io_uring_disabled() == 0 ? "seccomp" : "io_uring_disabled");
}

Test(setup, auto_runs_on_epoll_where_io_uring_is_missing)
{
	falls_back_to_epoll(ENOSYS, "kernel");
}

Test(setup, auto_runs_on_epoll_where_a_sandbox_says_EOPNOTSUPP)
{
	falls_back_to_epoll(EOPNOTSUPP, "");
}

Test(setup, other_setup_errors_do_not_fall_back)
{
	/* No memory is not a refusal: AUTO reports it rather than hide it. */
	refuse_io_uring(ENOMEM);
	unsetenv("UCO_BACKEND");
	uco_loop *loop;
	cr_assert_eq(uco_loop_create(&loop, NULL), -ENOMEM);
}

Test(setup, the_environment_chooses_the_backend)
{
	uco_loop *loop;
	setenv("UCO_BACKEND", "epoll", 1);
	cr_assert_eq(uco_loop_create(&loop, &io_uring_only), 0, "the environment overrides");
	const char *why = "x";
	cr_assert_str_eq(uco_loop_backend(loop, &why), "epoll");
	cr_assert_null(why, "asked for, not a fallback");
	cr_assert_eq(uco_loop_close(loop), 0);
	setenv("UCO_BACKEND", "io_uring", 1);
	uco_loop_opts epoll = { .backend = UCO_BACKEND_EPOLL };
	int err = uco_loop_create(&loop, &epoll);
	if (getenv("UCO_TEST_NO_IO_URING")) {
		/* Under tests/tools/no-io-uring: io_uring, as asked, refused. */
		cr_assert(err == -EPERM || err == -ENOSYS || err == -EOPNOTSUPP, "%d", err);
	} else {
		cr_assert_eq(err, 0);
		cr_assert_str_eq(uco_loop_backend(loop, NULL), "io_uring");
		cr_assert_eq(uco_loop_features(loop) & UCO_RING_EPOLL, 0);
		cr_assert_eq(uco_loop_close(loop), 0);
	}
	setenv("UCO_BACKEND", "kqueue", 1);
	cr_assert_eq(uco_loop_create(&loop, NULL), -EINVAL);
	cr_assert_null(uco_loop_backend(NULL, NULL));
}

Test(setup, a_plain_ring_works_when_flags_are_refused)
{
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.flags = UCO_LOOP_PLAIN_RING;
	uco_loop *loop = test_loop_opts(&opts);
	cr_assert_eq(uco_loop_features(loop) & (UCO_RING_DEFER_TASKRUN | UCO_RING_COOP_TASKRUN |
	                                         UCO_RING_SINGLE_ISSUER), 0);
	test_close(loop);
}

/* ---- the opt-in polling options (ring.c) */

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

static void *pipe_round_trip(void *arg)
{
	(void)arg;
	int fds[2];
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	char got[8];
	cr_assert_eq(uco_write(fds[1], "polled", 6, -1), 6);
	cr_assert_eq(uco_read_dl(fds[0], got, sizeof got, -1, uco_now() + MS(5000)), 6);
	cr_assert_arr_eq(got, "polled", 6);
	close(fds[0]);
	close(fds[1]);
	return NULL;
}

static void polled_loop_works(unsigned flag, unsigned feature)
{
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.flags = flag;
	opts.busy_poll_us = 2000;
	uco_loop *loop = NULL;
	int err = uco_loop_create(&loop, &opts);
	if (err == -EOPNOTSUPP || err == -EPERM || err == -ENOSYS)
		cr_skip_test("refused here: %s", uco_loop_strerror(err));
	cr_assert_eq(err, 0, "%d", err);
	unsigned f = uco_loop_features(loop);
	cr_assert(f & feature, "features %#x", f);
	if (flag == UCO_LOOP_SQPOLL)
		cr_assert_eq(f & (UCO_RING_DEFER_TASKRUN | UCO_RING_COOP_TASKRUN), 0,
		             "the kernel refuses them with SQPOLL");
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, pipe_round_trip, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE);
	uco_task_release(t);
	test_close(loop);
}

Test(setup, sqpoll_is_opt_in_and_says_so)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_loop_features(loop) & (UCO_RING_SQPOLL | UCO_RING_NAPI), 0, "off by default");
	test_close(loop);
	polled_loop_works(UCO_LOOP_SQPOLL, UCO_RING_SQPOLL);
}

Test(setup, napi_is_opt_in_and_says_so)
{
	polled_loop_works(UCO_LOOP_NAPI, UCO_RING_NAPI);
}

/* With SQPOLL an operation goes to the kernel's SQ thread as soon as its
 * SQEs are whole, not at the end of the loop's turn: the writer task's
 * write and deadline (a linked timeout, never split) are taken while the
 * watcher, the next task of the same turn, blocks the loop thread in
 * poll(2) for the byte.  Without that, the byte arrives only after the turn's
 * submit, which the blocked turn never reaches: poll times out. */
struct sq_early {
	int fds[2];
	int polled;    /* poll(2)'s answer in the watcher */
	ssize_t wrote; /* the writer's result */
};

static void *sq_early_writer(void *arg)
{
	struct sq_early *e = arg;
	e->wrote = uco_write_dl(e->fds[1], "x", 1, -1, uco_now() + MS(60000));
	return NULL;
}

/* The SQ thread starts asleep (IORING_SQ_NEED_WAKEUP) until a submit
 * wakes it; after one round trip it stays awake for its idle time. */
static void *sq_early_wake(void *arg)
{
	struct sq_early *e = arg;
	char c;
	cr_assert_eq(uco_write(e->fds[1], "w", 1, -1), 1);
	cr_assert_eq(uco_read(e->fds[0], &c, 1, -1), 1);
	return NULL;
}

static void *sq_early_watcher(void *arg)
{
	struct sq_early *e = arg;
	struct pollfd p = { .fd = e->fds[0], .events = POLLIN };
	e->polled = poll(&p, 1, 30000);
	return NULL;
}

Test(setup, sqpoll_takes_an_operation_before_the_turn_ends)
{
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.flags = UCO_LOOP_SQPOLL;
	/* The SQ thread stays awake (no wake-up needed) for 60 s. */
	opts.busy_poll_us = 60u * 1000 * 1000;
	uco_loop *loop = NULL;
	int err = uco_loop_create(&loop, &opts);
	if (err == -EOPNOTSUPP || err == -EPERM || err == -ENOSYS)
		cr_skip_test("refused here: %s", uco_loop_strerror(err));
	cr_assert_eq(err, 0, "%d", err);
	struct sq_early e = { .polled = -2 };
	cr_assert_eq(pipe2(e.fds, O_CLOEXEC), 0);
	cr_assert_eq(uco_spawn(loop, NULL, sq_early_wake, &e), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	/* Spawned in this order, they run in this order in the next turn. */
	cr_assert_eq(uco_spawn(loop, NULL, sq_early_writer, &e), 0);
	cr_assert_eq(uco_spawn(loop, NULL, sq_early_watcher, &e), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(e.polled, 1, "the write reached the kernel only at the turn's end");
	cr_assert_eq(e.wrote, 1);
	close(e.fds[0]);
	close(e.fds[1]);
	test_close(loop);
}

/* Answer io_uring_setup (any) or io_uring_register (opcode `reg_op` only)
 * with EINVAL, as a kernel without the feature does. */
static void refuse_with_einval(long nr, long reg_op)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NO_IO_URING_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)reg_op, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	if (reg_op < 0) /* any call of nr */
		filter[6] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA | BPF_K, 0);
	struct sock_fprog prog = { sizeof filter / sizeof filter[0], filter };
	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

Test(setup, napi_where_the_kernel_lacks_it_is_EOPNOTSUPP)
{
	if (getenv("UCO_TEST_NO_IO_URING")) /* tests/tools/no-io-uring */
		cr_skip_test("io_uring only: the ring is refused here before NAPI is asked");
	refuse_with_einval(__NR_io_uring_register, 27 /* IORING_REGISTER_NAPI */);
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.flags = UCO_LOOP_NAPI;
	uco_loop *loop = NULL;
	int err = uco_loop_create(&loop, &opts);
	cr_assert_eq(err, -EOPNOTSUPP, "%d", err);
	cr_assert_null(loop);
	cr_assert(strstr(uco_loop_strerror(err), "UCO_LOOP_NAPI"), "%s", uco_loop_strerror(err));
	loop = test_loop();
	cr_assert_eq(uco_loop_features(loop) & UCO_RING_NAPI, 0);
	test_close(loop);
}

Test(setup, sqpoll_where_the_kernel_lacks_it_is_EOPNOTSUPP)
{
	refuse_with_einval(__NR_io_uring_setup, -1);
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.flags = UCO_LOOP_SQPOLL;
	uco_loop *loop = NULL;
	int err = uco_loop_create(&loop, &opts);
	cr_assert_eq(err, -EOPNOTSUPP, "%d", err);
	cr_assert(strstr(uco_loop_strerror(err), "UCO_LOOP_SQPOLL"), "%s", uco_loop_strerror(err));
	/* Without it, the kernel's EINVAL as before (on io_uring). */
	opts.flags = 0;
	opts.backend = UCO_BACKEND_IO_URING;
	if (!getenv("UCO_BACKEND"))
		cr_assert_eq(uco_loop_create(&loop, &opts), -EINVAL);
}

Test(setup, the_epoll_backend_refuses_the_polling_options)
{
	if (getenv("UCO_BACKEND"))
		cr_skip_test("UCO_BACKEND overrides the backend asked for");
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.backend = UCO_BACKEND_EPOLL;
	uco_loop *loop = NULL;
	for (unsigned flag = UCO_LOOP_SQPOLL; flag <= UCO_LOOP_NAPI; flag <<= 1) {
		opts.flags = flag;
		cr_assert_eq(uco_loop_create(&loop, &opts), -EOPNOTSUPP, "flag %#x", flag);
		cr_assert_null(loop);
	}
}
