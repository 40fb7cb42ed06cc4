/* SPDX-License-Identifier: MIT */
/*
 * Signals through the ring: a signalfd read is an io_uring operation like
 * any other.  uco_signal_wait() reads one in the calling coroutine; a
 * loop's handlers (uco_loop_on_signal) share one signalfd whose read is a
 * standing listener: it does not keep the loop running, and each signal's
 * callback runs on the loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "internal.h"

int uco_signal_wait(const sigset_t *set, int64_t deadline)
{
	if (!uco__self())
		return -EPERM;
	if (!set)
		return -EINVAL;
	int err = pthread_sigmask(SIG_BLOCK, set, NULL);
	if (err)
		return -err;
	/* Blocking: a non-blocking signalfd would make io_uring report
	 * -EAGAIN rather than wait for readiness. */
	int fd = signalfd(-1, set, SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct signalfd_siginfo si;
	ssize_t n = uco_read_dl(fd, &si, sizeof si, -1, deadline);
	close(fd);
	if (n < 0)
		return (int)n;
	return n == (ssize_t)sizeof si ? (int)si.ssi_signo : -EIO;
}

struct handler {
	struct handler *next;
	int signo;
	void (*cb)(int signo, void *user);
	void *user;
};

struct signals {
	struct uco__resource resource;
	struct uco__completion read_done;
	uco_loop *loop;
	int fd;
	sigset_t mask;
	struct handler *handlers;
	struct signalfd_siginfo si;
};

static int arm_read(struct signals *sg)
{
	struct io_uring_sqe *sqe = uco__sqe_get(sg->loop, &sg->read_done);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_read(sqe, sg->fd, &sg->si, sizeof sg->si, 0);
	return 0;
}

static void signal_read(uco_loop *loop, struct uco__completion *c, const struct io_uring_cqe *cqe)
{
	(void)loop;
	struct signals *sg = UCO__CONTAINER_OF(c, struct signals, read_done);
	if (cqe->res == (int)sizeof sg->si)
		for (struct handler *h = sg->handlers; h; h = h->next)
			if (h->signo == (int)sg->si.ssi_signo)
				h->cb(h->signo, h->user);
	if (cqe->res != -EBADF)
		arm_read(sg);
}

static void destroy_signals(struct uco__resource *r)
{
	struct signals *sg = UCO__CONTAINER_OF(r, struct signals, resource);
	while (sg->handlers) {
		struct handler *h = sg->handlers;
		sg->handlers = h->next;
		free(h);
	}
	close(sg->fd);
	free(sg);
}

int uco_loop_on_signal(uco_loop *loop, int signo, void (*cb)(int signo, void *user), void *user)
{
	if (!cb || signo <= 0 || signo >= NSIG)
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	struct handler *h = malloc(sizeof *h);
	if (!h)
		return -ENOMEM;
	*h = (struct handler){ NULL, signo, cb, user };
	struct signals *sg = loop->signals;
	if (!sg) {
		sg = calloc(1, sizeof *sg);
		if (!sg) {
			free(h);
			return -ENOMEM;
		}
		sg->loop = loop;
		sigemptyset(&sg->mask);
		sg->fd = -1;
		sg->read_done.complete = signal_read;
		sg->read_done.uncounted = true; /* a listener: keeps nothing alive */
	}
	sigset_t mask = sg->mask;
	sigaddset(&mask, signo);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, signo);
	err = -pthread_sigmask(SIG_BLOCK, &one, NULL);
	int fd = err ? -1 : signalfd(sg->fd, &mask, SFD_CLOEXEC);
	if (!err && fd < 0)
		err = -errno;
	if (!err && sg->fd < 0) {
		sg->fd = fd;
		err = arm_read(sg);
		if (err) {
			close(fd);
			sg->fd = -1;
		}
	}
	if (err) {
		free(h);
		if (!loop->signals)
			free(sg);
		return err;
	}
	sg->mask = mask;
	h->next = sg->handlers;
	sg->handlers = h;
	if (!loop->signals) {
		loop->signals = sg;
		sg->resource.destroy = destroy_signals;
		uco__resource_add(loop, &sg->resource);
	}
	return 0;
}
