/* SPDX-License-Identifier: MIT */
/*
 * Subprocesses: spawn (posix_spawn + a pidfd), wait for the exit through the
 * ring, kill, release with reaping in the background.  communicate() is in
 * communicate.c.
 *
 * Spawning: glibc's posix_spawn clones with CLONE_VM | CLONE_VFORK, the
 * fastest way to start a program, and gets file actions, the signal mask
 * and dispositions right in the child.  The pidfd comes from pidfd_open
 * right after posix_spawn: the child cannot have been reaped in between
 * unless something else reaps this process's children (SIGCHLD ignored, a
 * waitpid(-1) elsewhere), and then its status is lost anyway (-ECHILD).
 * (glibc 2.39's pidfd_spawn closes even that window; not used yet, as the
 * glibc here is older.)
 *
 * Reaping: one operation per process, started by the first wait (or by
 * release): IORING_OP_WAITID on the pidfd (6.7+), or where the kernel lacks
 * it a POLL_ADD of the pidfd (readable once the child has exited) followed
 * by waitid(P_PIDFD, WNOHANG).  It stays in the ring until the child exits,
 * whoever waits: tasks waiting share it, and a wait that is cancelled or
 * times out leaves it there, so the child is reaped anyway and never stays a
 * zombie.  While a task waits it counts as work in flight; with nobody
 * waiting it is a background listener that keeps nothing running.  No
 * SIGCHLD handler is needed, and none is installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "process.h"

extern char **environ;

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void prep_waitid(struct io_uring_sqe *sqe, int pidfd, siginfo_t *info, int options)
{
	io_uring_prep_rw(UCO__OP_WAITID, sqe, pidfd, NULL, P_PIDFD, 0);
	sqe->file_index = (unsigned)options;
	sqe->addr2 = (uint64_t)(uintptr_t)info;
}

static int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The wait status waitpid() would have stored, from waitid()'s siginfo. */
static int wait_status(const siginfo_t *info)
{
	switch (info->si_code) {
	case CLD_EXITED:
		return (info->si_status & 0xff) << 8;
	case CLD_KILLED:
		return info->si_status & 0x7f;
	case CLD_DUMPED:
		return (info->si_status & 0x7f) | 0x80;
	default:
		return -EPROTO; /* stopped or continued: not asked for */
	}
}

/* ------------------------------------------------------------ reaping */

static void free_process(uco_process *p)
{
	for (int i = 0; i < 3; i++)
		if (p->fds[i] >= 0)
			close(p->fds[i]);
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->loop)
		uco__resource_remove(p->loop, &p->resource);
	free(p);
}

static void record_exit(uco_process *p, int status)
{
	p->reaped = true;
	p->status = status;
	/* The pidfd has served: a kill now is -ESRCH, without a call. */
	close(p->pidfd);
	p->pidfd = -1;
	uco_task *t;
	while ((t = uco__waitq_pop(&p->waiters)))
		uco__wake(p->loop, t, 0);
}

/* waitid(WNOHANG) now: true if the child is gone (reaped here, or by
 * something else: -ECHILD).  Not while the ring's operation is in flight:
 * both would race for the same child. */
static bool reap_now(uco_process *p)
{
	siginfo_t info;
	memset(&info, 0, sizeof info);
	if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &info, WEXITED | WNOHANG) < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return false;
		p->reaped = true;
		p->status = -errno;
		return true;
	}
	if (info.si_pid == 0)
		return false; /* still running */
	p->reaped = true;
	p->status = wait_status(&info);
	return true;
}

static int start_reap(uco_process *p);

static void reap_done(uco_loop *loop, struct uco__completion *c, const struct io_uring_cqe *cqe)
{
	(void)loop;
	uco_process *p = UCO__CONTAINER_OF(c, uco_process, reap_done);
	p->reap_inflight = false;
	if (!p->reap_poll) {
		if (cqe->res == -EINTR || cqe->res == -EAGAIN) {
			if (start_reap(p) == 0)
				return;
		}
		record_exit(p, cqe->res < 0 ? cqe->res : wait_status(&p->info));
	} else {
		/* Readable: the child has exited (or the poll failed, and
		 * waitid says what there is to say). */
		siginfo_t info;
		memset(&info, 0, sizeof info);
		int r = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &info, WEXITED | WNOHANG);
		if (r < 0 && errno != EINTR)
			record_exit(p, -errno);
		else if (r == 0 && info.si_pid != 0)
			record_exit(p, wait_status(&info));
		else if (start_reap(p) != 0)
			record_exit(p, -EAGAIN); /* no SQE to watch it with */
	}
	if (p->reaped && p->released)
		free_process(p);
}

/* Count the reaping operation as work in flight (a task waits for it) or
 * not (a background listener).  dispatch() decrements inflight at the CQE
 * for a counted completion only, so the count moves with the flag. */
static void set_counted(uco_process *p, bool counted)
{
	if (!p->reap_inflight || p->reap_done.uncounted == !counted)
		return;
	p->reap_done.uncounted = !counted;
	if (counted)
		p->loop->inflight++;
	else
		p->loop->inflight--;
}

/* Put the reaping operation in the ring: 0, or -EAGAIN (no SQE). */
static int start_reap(uco_process *p)
{
	uco_loop *loop = p->loop;
	p->reap_done.complete = reap_done;
	p->reap_done.uncounted = uco__list_empty(&p->waiters.tasks);
	struct io_uring_sqe *sqe = uco__sqe_get(loop, &p->reap_done);
	if (!sqe)
		return -EAGAIN;
	p->reap_poll = !uco__has_op(loop, UCO__OP_WAITID);
	if (p->reap_poll) {
		io_uring_prep_poll_add(sqe, p->pidfd, POLLIN);
	} else {
		memset(&p->info, 0, sizeof p->info);
		prep_waitid(sqe, p->pidfd, &p->info, WEXITED);
	}
	p->reap_inflight = true;
	return 0;
}

/* At uco_loop_close(), after the ring is gone (the kernel holds nothing of
 * p): a released process is freed, its child reaped if it has exited; one
 * the user still holds is detached (its waits say -ESHUTDOWN). */
static void destroy_process(struct uco__resource *r)
{
	uco_process *p = UCO__CONTAINER_OF(r, uco_process, resource);
	p->reap_inflight = false;
	p->loop = NULL;
	if (p->released) {
		if (!p->reaped)
			reap_now(p);
		free_process(p);
	}
}

/* ------------------------------------------------------------ spawn */

/* Descriptors 0-2 given to the child must not be among the targets of the
 * dup2s that come before them in the child: move such a source above 2
 * (close-on-exec) for the spawn.  *tmp gets the copy to close after. */
static int lift(int fd, int *tmp)
{
	if (fd > 2)
		return fd;
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0)
		return -errno;
	*tmp = copy;
	return copy;
}

static bool opts_valid(const uco_process_opts *o)
{
	if (!o || !o->argv || !o->argv[0])
		return false;
	if (!uco__all_zero(o->reserved_, sizeof o->reserved_ / sizeof o->reserved_[0]))
		return false;
	if (o->flags & ~(UCO_PROCESS_NO_PATH_SEARCH | UCO_PROCESS_NEW_SESSION))
		return false;
	for (int i = 0; i < 3; i++) {
		int m = o->stdio[i].mode;
		if (m < UCO_STDIO_INHERIT || m > UCO_STDIO_STDOUT)
			return false;
		if (m == UCO_STDIO_STDOUT && i != 2)
			return false;
		if (m == UCO_STDIO_FD && o->stdio[i].fd < 0)
			return false;
	}
	return true;
}

/* Is there a pidfd_open (5.3) and waitid(P_PIDFD) (5.4)?  Asked once per
 * process: 1 yes, -1 no, 0 not asked yet. */
static int pidfd_works;

static bool have_pidfd(void)
{
	int known = __atomic_load_n(&pidfd_works, __ATOMIC_RELAXED);
	if (known)
		return known > 0;
	int fd = sys_pidfd_open(getpid());
	bool ok = fd >= 0 || errno != ENOSYS;
	if (fd >= 0) {
		/* P_PIDFD came one release after pidfd_open. */
		siginfo_t info;
		if (waitid((idtype_t)P_PIDFD, (id_t)fd, &info, WEXITED | WNOHANG) < 0 &&
		    errno == EINVAL)
			ok = false;
		close(fd);
	}
	__atomic_store_n(&pidfd_works, ok ? 1 : -1, __ATOMIC_RELAXED);
	return ok;
}

/* The child's side of each descriptor: file actions, and this side's pipe
 * ends in p->fds.  tmp[] collects descriptors to close after the spawn. */
static int stdio_actions(uco_process *p, const uco_process_opts *o,
                         posix_spawn_file_actions_t *fa, int tmp[6])
{
	for (int i = 0; i < 3; i++) {
		int src, r;
		switch (o->stdio[i].mode) {
		case UCO_STDIO_INHERIT:
			continue;
		case UCO_STDIO_DEVNULL:
			r = posix_spawn_file_actions_addopen(fa, i, "/dev/null",
			                                     i == 0 ? O_RDONLY : O_WRONLY, 0);
			if (r)
				return -r;
			continue;
		case UCO_STDIO_STDOUT:
			r = posix_spawn_file_actions_adddup2(fa, 1, 2);
			if (r)
				return -r;
			continue;
		case UCO_STDIO_FD:
			src = lift(o->stdio[i].fd, &tmp[i]);
			break;
		default: { /* UCO_STDIO_PIPE */
			int pp[2];
			if (pipe2(pp, O_CLOEXEC))
				return -errno;
			int mine = i == 0 ? pp[1] : pp[0];
			int theirs = i == 0 ? pp[0] : pp[1];
			tmp[3 + i] = theirs;
			p->fds[i] = mine;
			if (mine <= 2) {
				int lifted = -1;
				r = lift(mine, &lifted);
				if (r < 0)
					return r;
				close(mine);
				p->fds[i] = lifted;
			}
			src = lift(theirs, &tmp[i]);
			break;
		}
		}
		if (src < 0)
			return src;
		r = posix_spawn_file_actions_adddup2(fa, src, i);
		if (r)
			return -r;
	}
	return 0;
}

static int spawn_child(uco_process *p, const uco_process_opts *o)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int tmp[6] = { -1, -1, -1, -1, -1, -1 };
	int err = posix_spawn_file_actions_init(&fa);
	if (err)
		return -err;
	err = posix_spawnattr_init(&attr);
	if (err) {
		posix_spawn_file_actions_destroy(&fa);
		return -err;
	}
	err = stdio_actions(p, o, &fa, tmp);
	if (!err && o->cwd)
		err = -posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
	if (!err) {
		/* The loop's thread may block signals (uco_loop_on_signal,
		 * uco_signal_wait) and ignore SIGPIPE: a program expects
		 * neither (as Python's restore_signals). */
		sigset_t none, defaults;
		sigemptyset(&none);
		sigemptyset(&defaults);
		sigaddset(&defaults, SIGPIPE);
		sigaddset(&defaults, SIGXFSZ);
		short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
		if (o->flags & UCO_PROCESS_NEW_SESSION)
			flags |= POSIX_SPAWN_SETSID;
		err = -posix_spawnattr_setflags(&attr, flags);
		if (!err)
			err = -posix_spawnattr_setsigmask(&attr, &none);
		if (!err)
			err = -posix_spawnattr_setsigdefault(&attr, &defaults);
	}
	if (!err) {
		const char *file = o->file ? o->file : o->argv[0];
		char *const *envp = o->envp ? o->envp : environ;
		err = (o->flags & UCO_PROCESS_NO_PATH_SEARCH)
		      ? -posix_spawn(&p->pid, file, &fa, &attr, o->argv, envp)
		      : -posix_spawnp(&p->pid, file, &fa, &attr, o->argv, envp);
	}
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 6; i++)
		if (tmp[i] >= 0)
			close(tmp[i]);
	return err;
}

int uco_process_spawn(uco_loop *loop, uco_process **out, const uco_process_opts *opts)
{
	if (!out || !opts_valid(opts))
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	if (!have_pidfd())
		return -ENOSYS;
	uco_process *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->pidfd = -1;
	p->fds[0] = p->fds[1] = p->fds[2] = -1;
	err = spawn_child(p, opts);
	if (err) {
		p->loop = NULL; /* not on the resource list yet */
		free_process(p);
		return err;
	}
	p->pidfd = sys_pidfd_open(p->pid);
	if (p->pidfd < 0) {
		if (errno == ESRCH) {
			/* Gone and reaped already, by the kernel (SIGCHLD
			 * ignored) or another waiter: its status is lost. */
			p->reaped = true;
			p->status = -ECHILD;
		} else {
			/* It runs and we cannot watch it: stop it rather
			 * than lose track of it. */
			err = -errno;
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			p->loop = NULL;
			free_process(p);
			return err;
		}
	}
	p->resource.destroy = destroy_process;
	uco__resource_add(loop, &p->resource);
	*out = p;
	return 0;
}

/* ------------------------------------------------------------ the rest */

pid_t uco_process_pid(const uco_process *p)
{
	return p ? p->pid : -EINVAL;
}

int uco_process_fd(const uco_process *p, int which)
{
	if (!p || which < 0 || which > 2)
		return -EINVAL;
	return p->fds[which] >= 0 ? p->fds[which] : -EBADF;
}

int uco_process_take_fd(uco_process *p, int which)
{
	int fd = uco_process_fd(p, which);
	if (fd >= 0)
		p->fds[which] = -1;
	return fd;
}

static void describe_wait(const uco_task *t, char *buf, size_t len)
{
	const uco_process *p = UCO__CONTAINER_OF(t->wait.queue, uco_process, waiters);
	snprintf(buf, len, "pid %ld", (long)p->pid);
}

static const struct uco__wait_kind wait_kind = { "process", describe_wait };

int uco__process_caller(const uco_process *p, uco_task **self)
{
	*self = uco__self();
	if (!*self)
		return -EPERM;
	if (!p->loop)
		return -ESHUTDOWN;
	return (*self)->loop == p->loop ? 0 : -EXDEV;
}

int uco_process_wait_dl(uco_process *p, int64_t deadline)
{
	if (!p)
		return -EINVAL;
	if (p->reaped)
		return p->status;
	uco_task *self;
	int err = uco__process_caller(p, &self);
	if (err)
		return err;
	if (!p->reap_inflight) {
		/* Try once: no need for the ring if it has exited already. */
		if (deadline == 0)
			return reap_now(p) ? p->status : -ETIMEDOUT;
		err = start_reap(p);
		if (err)
			return err;
	}
	set_counted(p, true);
	int r = uco__wait_in(self, &p->waiters, &wait_kind, deadline);
	/* Nobody waits any more: the operation goes on in the background. */
	if (uco__list_empty(&p->waiters.tasks))
		set_counted(p, false);
	return r < 0 ? r : p->status;
}

int uco_process_wait(uco_process *p)
{
	return uco_process_wait_dl(p, UCO_FOREVER);
}

int uco_process_kill(uco_process *p, int signo)
{
	if (!p || signo < 0 || signo >= NSIG)
		return -EINVAL;
	if (p->reaped)
		return -ESRCH;
	return syscall(SYS_pidfd_send_signal, p->pidfd, signo, NULL, 0) < 0 ? -errno : 0;
}

int uco_process_release(uco_process *p)
{
	if (!p)
		return -EINVAL;
	if (!uco__list_empty(&p->waiters.tasks) || p->communicating)
		return -EBUSY;
	if (p->loop && p->loop->owner != uco__thread_token())
		return -EPERM;
	for (int i = 0; i < 3; i++) {
		if (p->fds[i] >= 0)
			close(p->fds[i]);
		p->fds[i] = -1;
	}
	p->released = true;
	if (p->reaped || !p->loop) {
		if (!p->reaped)
			reap_now(p); /* a zombie, if it has exited */
		free_process(p);
		return 0;
	}
	if (p->reap_inflight)
		return 0; /* it frees p at the child's exit */
	if (reap_now(p) || start_reap(p) != 0) {
		/* Exited, or no SQE: loop close frees it (reaping what it can). */
		if (p->reaped)
			free_process(p);
	}
	return 0;
}
