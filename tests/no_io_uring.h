/* SPDX-License-Identifier: MIT */
/* A seccomp filter that refuses io_uring the way Docker's, containerd's and
 * Kubernetes' RuntimeDefault profiles do: io_uring_setup, io_uring_enter and
 * io_uring_register fail with one errno (EPERM there; ENOSYS where a kernel
 * or qemu-user lacks io_uring; EOPNOTSUPP in some sandboxes), every other
 * system call is allowed.  Shared by test_setup.c (one test process) and the
 * no-io-uring wrapper (a whole program and its children). */
#ifndef UCO_TEST_NO_IO_URING_H
#define UCO_TEST_NO_IO_URING_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#define NO_IO_URING_ARCH AUDIT_ARCH_X86_64
/* x32 calls come with this arch too, numbered with bit 30 set: masked off
 * before comparing, so an x32 io_uring_setup is refused as well. */
#define NO_IO_URING_NR_MASK (~0x40000000u)
#elif defined(__aarch64__)
#define NO_IO_URING_ARCH AUDIT_ARCH_AARCH64
#define NO_IO_URING_NR_MASK (~0u)
#else
#error "no_io_uring.h knows the seccomp arch of x86_64 and aarch64 only"
#endif

#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS SECCOMP_RET_KILL
#endif

/* Install the filter on the calling thread (and what it execs and forks).
 * 0, or -errno from prctl. */
static inline int no_io_uring(int err)
{
	struct sock_filter filter[] = {
		/* A call from another ABI has other numbers: the filter cannot
		 * judge it, so it kills rather than let io_uring through. */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NO_IO_URING_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_STMT(BPF_ALU | BPF_AND | BPF_K, NO_IO_URING_NR_MASK),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
	};
	struct sock_fprog prog = { sizeof filter / sizeof filter[0], filter };
	/* Without privileges, a filter may only be installed with
	 * no_new_privs set (so that a setuid exec cannot be fooled by it). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}

/* The errno a name says (EPERM, ENOSYS, EOPNOTSUPP, EACCES or a number),
 * -1 for anything else. */
static inline int no_io_uring_errno(const char *s)
{
	static const struct {
		const char *name;
		int value;
	} names[] = {
		{ "EPERM", EPERM },
		{ "ENOSYS", ENOSYS },
		{ "EOPNOTSUPP", EOPNOTSUPP },
		{ "EACCES", EACCES },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].value;
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v > 0 && v < 4096 ? (int)v : -1;
}

#endif
