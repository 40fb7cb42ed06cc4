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

Test(setup, seccomp_refusal_is_EPERM_and_names_seccomp)
{
	refuse_io_uring(EPERM);
	uco_loop *loop = (uco_loop *)0x1;
	int err = uco_loop_create(&loop, NULL);
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
	uco_loop *loop;
	int err = uco_loop_create(&loop, NULL);
	cr_assert_eq(err, -ENOSYS);
	cr_assert(strstr(uco_loop_strerror(err), "kernel"), "%s", uco_loop_strerror(err));
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
