/* SPDX-License-Identifier: MIT */
/* When io_uring is refused, creating a loop says why.  Each Criterion test
 * runs in its own process, so the seccomp filter stays in that process. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "helpers.h"

#if defined(__x86_64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_AARCH64
#endif

/* Refuse io_uring_setup with `err`, as Docker's default profile does. */
static void refuse_io_uring(int err)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_HERE, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof filter / sizeof filter[0], filter };
	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
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
	cr_assert_eq(uco_loop_create(&loop, &epoll), 0);
	cr_assert_str_eq(uco_loop_backend(loop, NULL), "io_uring");
	cr_assert_eq(uco_loop_features(loop) & UCO_RING_EPOLL, 0);
	cr_assert_eq(uco_loop_close(loop), 0);
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
