/* SPDX-License-Identifier: MIT */
/*
 * Choosing a loop's backend (backend.h), and the names of the operation
 * kinds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define OP_NAME(op, name) [IORING_OP_##op] = name,
#define IORING_OP_WAITID UCO__OP_WAITID
static const char *const op_names[256] = { UCO__OPS(OP_NAME) };
#undef IORING_OP_WAITID

const char *uco__op_name(unsigned op)
{
	return op < 256 ? op_names[op] : NULL;
}

/* UCO_BACKEND from the environment: 0 and *choice, or -EINVAL for a value
 * it does not know; 1 if unset (or empty). */
static int backend_from_env(unsigned *choice)
{
	const char *v = getenv("UCO_BACKEND");
	if (!v || !*v)
		return 1;
	if (!strcmp(v, "auto"))
		*choice = UCO_BACKEND_AUTO;
	else if (!strcmp(v, "io_uring"))
		*choice = UCO_BACKEND_IO_URING;
	else if (!strcmp(v, "epoll"))
		*choice = UCO_BACKEND_EPOLL;
	else
		return -EINVAL;
	return 0;
}

/* What io_uring_setup answers where io_uring is refused or missing:
 * seccomp profiles and the sysctl (EPERM), kernels without it and
 * qemu-user (ENOSYS), some sandboxes (EOPNOTSUPP). */
static bool refused(int err)
{
	return err == -EPERM || err == -ENOSYS || err == -EOPNOTSUPP;
}

int uco__backend_init(uco_loop *loop, unsigned requested, unsigned entries, unsigned flags)
{
	if (requested > UCO_BACKEND_EPOLL)
		return -EINVAL;
	int err = backend_from_env(&requested);
	if (err < 0)
		return err;
	if (requested != UCO_BACKEND_EPOLL) {
		loop->backend = &uco__backend_uring;
		err = loop->backend->init(loop, entries, flags);
		/* The polling options are io_uring's: where they are
		 * refused, say so rather than run without them. */
		if (!err || requested == UCO_BACKEND_IO_URING || !refused(err) ||
		    (flags & (UCO_LOOP_SQPOLL | UCO_LOOP_NAPI)))
			return err;
		/* Said once, quietly: uco_loop_backend() and the dump tell. */
		loop->backend_why = uco_loop_strerror(err);
		memset(&loop->ring, 0, sizeof loop->ring);
	}
	if (flags & (UCO_LOOP_SQPOLL | UCO_LOOP_NAPI))
		return -EOPNOTSUPP; /* io_uring's alone */
	loop->backend = &uco__backend_epoll;
	loop->features |= UCO_RING_EPOLL;
	return loop->backend->init(loop, entries, flags);
}

const char *uco_loop_backend(const uco_loop *loop, const char **why)
{
	if (why)
		*why = loop ? loop->backend_why : NULL;
	return loop ? loop->backend->name : NULL;
}
