/* SPDX-License-Identifier: MIT */
/* no-io-uring: run a program where io_uring is refused, as under Docker's
 * default seccomp profile.
 *
 *   no-io-uring [--errno EPERM|ENOSYS|EOPNOTSUPP|N] [--] PROGRAM [ARG...]
 *
 * io_uring_setup, io_uring_enter and io_uring_register fail with the errno
 * (EPERM by default) in PROGRAM and everything it starts; nothing else
 * changes but UCO_TEST_NO_IO_URING=<the errno> in the environment.  CI runs the test suite under it
 * (`meson test --wrapper 'build/tests/no-io-uring --errno ENOSYS'`), so that
 * UCO_BACKEND=auto has to take the readiness backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../no_io_uring.h"

static int usage(void)
{
	fprintf(stderr, "usage: no-io-uring [--errno EPERM|ENOSYS|EOPNOTSUPP|EACCES|N] [--] "
	                "PROGRAM [ARG...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int err = EPERM, i = 1;
	const char *name = "EPERM";
	if (i + 1 < argc && strcmp(argv[i], "--errno") == 0) {
		name = argv[i + 1];
		err = no_io_uring_errno(argv[i + 1]);
		if (err < 0)
			return usage();
		i += 2;
	}
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (i >= argc)
		return usage();
	int r = no_io_uring(err);
	if (r) {
		fprintf(stderr, "no-io-uring: installing the seccomp filter: %s\n", strerror(-r));
		return 126;
	}
	/* Tests that want to know (tests/helpers.h) read it here. */
	setenv("UCO_TEST_NO_IO_URING", name, 1);
	execvp(argv[i], argv + i);
	fprintf(stderr, "no-io-uring: %s: %s\n", argv[i], strerror(errno));
	return 127;
}
