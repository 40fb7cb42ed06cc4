/* SPDX-License-Identifier: MIT */
/*
 * uco_getaddrinfo: getaddrinfo(3) on the loop's default executor (it
 * blocks, and io_uring has no resolver), with its EAI_* codes folded into
 * uco's negative error space, and uco_gai_strerror to name them.
 */
#include <errno.h>
#include <netdb.h>
#include <string.h>

#include "internal.h"

struct gai_call {
	const char *node, *service;
	const struct addrinfo *hints;
	struct addrinfo *res;
	int err, sys_errno;
};

static void *run_getaddrinfo(void *arg)
{
	struct gai_call *c = arg;
	c->err = getaddrinfo(c->node, c->service, c->hints, &c->res);
	c->sys_errno = errno;
	return NULL;
}

int uco_getaddrinfo(const char *node, const char *service,
                    const struct addrinfo *hints, struct addrinfo **res)
{
	if (!res || (!node && !service))
		return -EINVAL;
	struct gai_call c = { node, service, hints, NULL, 0, 0 };
	int err = uco_run_in_executor(NULL, run_getaddrinfo, &c, NULL);
	if (err) {
		/* Cancelled: the job never ran, or has ended and its
		 * answer is ours to free. */
		if (c.res)
			freeaddrinfo(c.res);
		return err;
	}
	if (c.err == EAI_SYSTEM)
		return c.sys_errno ? -c.sys_errno : -EIO;
	if (c.err == EAI_MEMORY)
		return -ENOMEM;
	if (c.err)
		return UCO_EAI_ERROR(c.err);
	*res = c.res;
	return 0;
}

const char *uco_gai_strerror(int err)
{
	int eai = err + UCO_EAI_BASE;
	if (err < 0 && eai < 0 && eai > -200)
		return gai_strerror(eai);
	return strerror(err < 0 ? -err : err);
}
