/* SPDX-License-Identifier: MIT */
/*
 * The wrappers behind fault.h.  Each __wrap_X counts the call when X's
 * family is armed and fails the chosen one; otherwise it calls __real_X,
 * which the linker binds to the real X.  free and munmap are wrapped only
 * to count what is still live: releasing never fails.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <spawn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <liburing.h>

#include "fault.h"

/* ------------------------------------------------------------ arming */

static unsigned armed_kinds;       /* atomic */
static unsigned long armed_nth;
static bool armed_sticky;
static unsigned long seen, failed; /* atomic */
static const char *first_failed;
static int submit_err = -ENOMEM;
static int epoll_ctl_err = ENOMEM;
static bool no_pwait2;

void fault_arm(unsigned kinds, unsigned long nth, bool sticky)
{
	__atomic_store_n(&armed_kinds, 0, __ATOMIC_SEQ_CST);
	armed_nth = nth;
	armed_sticky = sticky;
	__atomic_store_n(&seen, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&failed, 0, __ATOMIC_SEQ_CST);
	first_failed = "";
	__atomic_store_n(&armed_kinds, kinds, __ATOMIC_SEQ_CST);
}

unsigned long fault_disarm(void)
{
	__atomic_store_n(&armed_kinds, 0, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&failed, __ATOMIC_SEQ_CST);
}

unsigned long fault_calls(void)
{
	return __atomic_load_n(&seen, __ATOMIC_SEQ_CST);
}

const char *fault_first_failed(void)
{
	return first_failed;
}

void fault_submit_errno(int err)
{
	submit_err = err;
}

void fault_epoll_ctl_errno(int err)
{
	epoll_ctl_err = err;
}

void fault_no_epoll_pwait2(bool missing)
{
	__atomic_store_n(&no_pwait2, missing, __ATOMIC_SEQ_CST);
}

/* Is this call of family `kind` (function `fn`) to fail? */
static bool fail_now(unsigned kind, const char *fn)
{
	if (!(__atomic_load_n(&armed_kinds, __ATOMIC_SEQ_CST) & kind))
		return false;
	unsigned long n = __atomic_add_fetch(&seen, 1, __ATOMIC_SEQ_CST);
	bool sticky = armed_sticky && !(kind & (FAULT_WAIT | FAULT_AGAIN));
	if (n != armed_nth && !(sticky && n > armed_nth))
		return false;
	if (__atomic_fetch_add(&failed, 1, __ATOMIC_SEQ_CST) == 0)
		first_failed = fn;
	return true;
}

/* ------------------------------------------------------------ leak accounting */

/* The live allocations, by address: an open-addressing set (linear
 * probing, backward-shift deletion), so that free() of memory the
 * wrappers never saw (glibc's, say) is not counted. */
#define SLOTS (UINT32_C(1) << 20)
static void *slots[SLOTS];
static struct origin {
	unsigned long seq;        /* allocations made before it */
	void *caller;
} origins[SLOTS];
static unsigned long alloc_seq;
static long live_allocs, live_maps;
static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t slot_of(const void *p)
{
	return (uint32_t)(((uintptr_t)p * UINT64_C(0x9e3779b97f4a7c15)) >> 44) & (SLOTS - 1);
}

static void track(void *p, void *caller)
{
	if (!p)
		return;
	pthread_mutex_lock(&track_lock);
	uint32_t i = slot_of(p);
	while (slots[i])
		i = (i + 1) & (SLOTS - 1);
	slots[i] = p;
	origins[i] = (struct origin){ alloc_seq++, caller };
	live_allocs++;
	pthread_mutex_unlock(&track_lock);
}

static void untrack(void *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&track_lock);
	uint32_t i = slot_of(p);
	while (slots[i] && slots[i] != p)
		i = (i + 1) & (SLOTS - 1);
	if (slots[i]) {
		live_allocs--;
		/* Shift back the entries that probed past the hole. */
		for (uint32_t j = (i + 1) & (SLOTS - 1); slots[j]; j = (j + 1) & (SLOTS - 1)) {
			uint32_t home = slot_of(slots[j]);
			bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
			if (movable) {
				slots[i] = slots[j];
				origins[i] = origins[j];
				i = j;
			}
		}
		slots[i] = NULL;
	}
	pthread_mutex_unlock(&track_lock);
}

long fault_live_allocs(void)
{
	pthread_mutex_lock(&track_lock);
	long n = live_allocs;
	pthread_mutex_unlock(&track_lock);
	return n;
}

unsigned long fault_alloc_mark(void)
{
	pthread_mutex_lock(&track_lock);
	unsigned long seq = alloc_seq;
	pthread_mutex_unlock(&track_lock);
	return seq;
}

void fault_print_live_since(unsigned long mark)
{
	pthread_mutex_lock(&track_lock);
	for (uint32_t i = 0; i < SLOTS; i++)
		if (slots[i] && origins[i].seq >= mark) {
			Dl_info info = { 0 };
			dladdr(origins[i].caller, &info);
			fprintf(stderr, "faults: still allocated: %p, from %s+%#lx\n", slots[i],
			        info.dli_fname ? info.dli_fname : "?",
			        (unsigned long)((char *)origins[i].caller - (char *)info.dli_fbase));
		}
	pthread_mutex_unlock(&track_lock);
}

long fault_live_maps(void)
{
	return __atomic_load_n(&live_maps, __ATOMIC_SEQ_CST);
}

/* ------------------------------------------------------------ allocators */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);
int __real_posix_memalign(void **out, size_t align, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);
int __wrap_posix_memalign(void **out, size_t align, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);

void *__wrap_malloc(size_t size)
{
	if (fail_now(FAULT_ALLOC, "malloc")) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = __real_malloc(size);
	track(p, __builtin_return_address(0));
	return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
	if (fail_now(FAULT_ALLOC, "calloc")) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = __real_calloc(n, size);
	track(p, __builtin_return_address(0));
	return p;
}

void *__wrap_realloc(void *p, size_t size)
{
	if (fail_now(FAULT_ALLOC, "realloc")) {
		errno = ENOMEM;
		return NULL; /* p stays valid, as realloc leaves it */
	}
	void *q = __real_realloc(p, size);
	if (q) {
		untrack(p);
		track(q, __builtin_return_address(0));
	}
	return q;
}

void __wrap_free(void *p)
{
	untrack(p);
	__real_free(p);
}

int __wrap_posix_memalign(void **out, size_t align, size_t size)
{
	if (fail_now(FAULT_ALLOC, "posix_memalign"))
		return ENOMEM;
	int err = __real_posix_memalign(out, align, size);
	if (!err)
		track(*out, __builtin_return_address(0));
	return err;
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
	if (fail_now(FAULT_ALLOC, "aligned_alloc")) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = __real_aligned_alloc(align, size);
	track(p, __builtin_return_address(0));
	return p;
}

/* ------------------------------------------------------------ mappings */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off);
int __real_munmap(void *addr, size_t len);
int __real_madvise(void *addr, size_t len, int advice);
int __real_mprotect(void *addr, size_t len, int prot);

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off);
int __wrap_munmap(void *addr, size_t len);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_mprotect(void *addr, size_t len, int prot);

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fail_now(FAULT_MAP, "mmap")) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	void *p = __real_mmap(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED)
		__atomic_add_fetch(&live_maps, 1, __ATOMIC_SEQ_CST);
	return p;
}

/* With _FILE_OFFSET_BITS=64 (Meson's default) glibc's header turns mmap
 * into mmap64. */
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	if (fail_now(FAULT_MAP, "mmap64")) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	void *p = __real_mmap64(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED)
		__atomic_add_fetch(&live_maps, 1, __ATOMIC_SEQ_CST);
	return p;
}

/* libuco unmaps whole mappings only, so one munmap ends one mmap. */
int __wrap_munmap(void *addr, size_t len)
{
	int r = __real_munmap(addr, len);
	if (r == 0)
		__atomic_sub_fetch(&live_maps, 1, __ATOMIC_SEQ_CST);
	return r;
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	if (fail_now(FAULT_MAP, "madvise")) {
		errno = ENOMEM;
		return -1;
	}
	return __real_madvise(addr, len, advice);
}

int __wrap_mprotect(void *addr, size_t len, int prot)
{
	if (fail_now(FAULT_MAP, "mprotect")) {
		errno = ENOMEM; /* what vm.max_map_count gives */
		return -1;
	}
	return __real_mprotect(addr, len, prot);
}

/* ------------------------------------------------------------ descriptors, threads */

int __real_eventfd(unsigned initval, int flags);
int __real_signalfd(int fd, const sigset_t *mask, int flags);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg);

int __wrap_eventfd(unsigned initval, int flags);
int __wrap_signalfd(int fd, const sigset_t *mask, int flags);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg);

int __wrap_eventfd(unsigned initval, int flags)
{
	if (fail_now(FAULT_FD, "eventfd")) {
		errno = EMFILE;
		return -1;
	}
	return __real_eventfd(initval, flags);
}

int __wrap_signalfd(int fd, const sigset_t *mask, int flags)
{
	if (fail_now(FAULT_FD, "signalfd")) {
		errno = fd < 0 ? EMFILE : ENOMEM;
		return -1;
	}
	return __real_signalfd(fd, mask, flags);
}

/* Subprocesses (process.c): a pipe, a spawn. */
int __real_pipe2(int fds[2], int flags);
int __real_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int __real_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int __wrap_pipe2(int fds[2], int flags);
int __wrap_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int __wrap_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);

int __wrap_pipe2(int fds[2], int flags)
{
	if (fail_now(FAULT_FD, "pipe2")) {
		errno = EMFILE;
		return -1;
	}
	return __real_pipe2(fds, flags);
}

/* posix_spawn returns the error (EAGAIN: RLIMIT_NPROC, or no memory for
 * the child's stack). */
int __wrap_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	if (fail_now(FAULT_FD, "posix_spawn"))
		return EAGAIN;
	return __real_posix_spawn(pid, path, fa, attr, argv, envp);
}

int __wrap_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	if (fail_now(FAULT_FD, "posix_spawnp"))
		return EAGAIN;
	return __real_posix_spawnp(pid, file, fa, attr, argv, envp);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg)
{
	if (fail_now(FAULT_THREAD, "pthread_create"))
		return EAGAIN;
	return __real_pthread_create(t, attr, fn, arg);
}

/* ------------------------------------------------------------ liburing */

/*
 * The entry points libuco calls (`nm` on libuco.a lists them: submits are
 * real calls).  io_uring_get_sqe is header-inline, so there is no call to
 * wrap; it fails only when the SQ is full, which the tests' 8-entry SQ
 * produces for real, and failing it with room left would fake a state the
 * kernel cannot be in.  The other inline helpers (prep, CQE iteration,
 * buffer-ring adds) cannot fail.  io_uring_queue_exit and
 * io_uring_unregister_buf_ring release, and never fail.
 */
#define WRAP_INT(kind, name, params, args, fail)           \
	int __real_##name params;                           \
	int __wrap_##name params;                           \
	int __wrap_##name params                            \
	{                                                   \
		if (fail_now(kind, #name))                  \
			return (fail);                      \
		return __real_##name args;                  \
	}

WRAP_INT(FAULT_RING, io_uring_queue_init,
         (unsigned entries, struct io_uring *ring, unsigned flags),
         (entries, ring, flags), -ENOMEM)
WRAP_INT(FAULT_RING, io_uring_queue_init_params,
         (unsigned entries, struct io_uring *ring, struct io_uring_params *p),
         (entries, ring, p), -ENOMEM)
WRAP_INT(FAULT_REGISTER, io_uring_register_ring_fd, (struct io_uring *ring), (ring), -ENOMEM)
WRAP_INT(FAULT_REGISTER, io_uring_register_probe,
         (struct io_uring *ring, struct io_uring_probe *p, unsigned nr), (ring, p, nr), -ENOMEM)
WRAP_INT(FAULT_REGISTER, io_uring_register_files,
         (struct io_uring *ring, const int *files, unsigned nr), (ring, files, nr), -ENOMEM)
WRAP_INT(FAULT_REGISTER, io_uring_register_files_sparse, (struct io_uring *ring, unsigned nr),
         (ring, nr), -ENOMEM)
WRAP_INT(FAULT_REGISTER, io_uring_register_files_update,
         (struct io_uring *ring, unsigned off, const int *files, unsigned nr),
         (ring, off, files, nr), -ENOMEM)
WRAP_INT(FAULT_REGISTER, io_uring_register_buf_ring,
         (struct io_uring *ring, struct io_uring_buf_reg *reg, unsigned flags),
         (ring, reg, flags), -ENOMEM)
WRAP_INT(FAULT_SUBMIT, io_uring_submit, (struct io_uring *ring), (ring), submit_err)
WRAP_INT(FAULT_SUBMIT, io_uring_submit_and_wait, (struct io_uring *ring, unsigned nr),
         (ring, nr), submit_err)
WRAP_INT(FAULT_SUBMIT, io_uring_submit_and_wait_timeout,
         (struct io_uring *ring, struct io_uring_cqe **cqe, unsigned nr,
          struct __kernel_timespec *ts, sigset_t *sigmask),
         (ring, cqe, nr, ts, sigmask), submit_err)
WRAP_INT(FAULT_SUBMIT, io_uring_submit_and_get_events, (struct io_uring *ring), (ring),
         submit_err)
WRAP_INT(FAULT_SUBMIT, io_uring_get_events, (struct io_uring *ring), (ring), submit_err)

struct io_uring_probe *__real_io_uring_get_probe(void);
struct io_uring_probe *__real_io_uring_get_probe_ring(struct io_uring *ring);
struct io_uring_probe *__wrap_io_uring_get_probe(void);
struct io_uring_probe *__wrap_io_uring_get_probe_ring(struct io_uring *ring);

struct io_uring_probe *__wrap_io_uring_get_probe(void)
{
	return fail_now(FAULT_RING, "io_uring_get_probe") ? NULL : __real_io_uring_get_probe();
}

struct io_uring_probe *__wrap_io_uring_get_probe_ring(struct io_uring *ring)
{
	return fail_now(FAULT_RING, "io_uring_get_probe_ring") ? NULL
	       : __real_io_uring_get_probe_ring(ring);
}

/* ------------------------------------------------------------ the readiness backend */

/*
 * epoll itself: create (a descriptor, and memory), ADD (an epitem, counted
 * against max_user_watches), and the wait, which a signal interrupts.
 */
int __real_epoll_create1(int flags);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __real_epoll_wait(int epfd, struct epoll_event *evs, int max, int ms);
int __real_epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
                        const sigset_t *mask);
int __wrap_epoll_create1(int flags);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int ms);
int __wrap_epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
                        const sigset_t *mask);

int __wrap_epoll_create1(int flags)
{
	if (fail_now(FAULT_EPOLL, "epoll_create1")) {
		errno = EMFILE;
		return -1;
	}
	return __real_epoll_create1(flags);
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (op == EPOLL_CTL_ADD && fail_now(FAULT_EPOLL, "epoll_ctl")) {
		errno = epoll_ctl_err;
		return -1;
	}
	if (op == EPOLL_CTL_MOD && fail_now(FAULT_EPOLL_MOD, "epoll_ctl(MOD)")) {
		errno = EBADF;
		return -1;
	}
	return __real_epoll_ctl(epfd, op, fd, ev);
}

int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int ms)
{
	if (fail_now(FAULT_WAIT, "epoll_wait")) {
		errno = EINTR;
		return -1;
	}
	return __real_epoll_wait(epfd, evs, max, ms);
}

int __wrap_epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
                        const sigset_t *mask)
{
	if (__atomic_load_n(&no_pwait2, __ATOMIC_SEQ_CST)) {
		errno = ENOSYS;
		return -1;
	}
	if (fail_now(FAULT_WAIT, "epoll_pwait2")) {
		errno = EINTR;
		return -1;
	}
	return __real_epoll_pwait2(epfd, evs, max, ts, mask);
}

/* fcntl: only the duplicating commands can fail on an open descriptor
 * (EMFILE).  With _FILE_OFFSET_BITS=64 glibc's header names it fcntl64;
 * both are wrapped.  Every command libuco uses takes one argument or none
 * (glibc's own fcntl reads one either way). */
int __real_fcntl(int fd, int cmd, ...);
int __real_fcntl64(int fd, int cmd, ...);
int __wrap_fcntl(int fd, int cmd, ...);
int __wrap_fcntl64(int fd, int cmd, ...);

static bool dup_fails(int cmd, const char *fn)
{
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && fail_now(FAULT_FD, fn)) {
		errno = EMFILE;
		return true;
	}
	return false;
}

#define WRAP_FCNTL(name)                                              \
	int __wrap_##name(int fd, int cmd, ...)                       \
	{                                                             \
		va_list ap;                                           \
		va_start(ap, cmd);                                    \
		void *arg = va_arg(ap, void *);                       \
		va_end(ap);                                           \
		return dup_fails(cmd, #name) ? -1 : __real_##name(fd, cmd, arg); \
	}

WRAP_FCNTL(fcntl)
WRAP_FCNTL(fcntl64)

/*
 * The non-blocking IO calls.  FAULT_IO: the error each really gives when
 * the kernel is short (memory for an iovec copy or a socket buffer, a
 * descriptor for an accepted connection, a local port).  FAULT_AGAIN: a
 * would-block the caller did not expect, only on calls made non-blocking
 * (MSG_DONTWAIT, RWF_NOWAIT; accept4 on the engine's O_NONBLOCK listener).
 */
static bool io_fails(const char *fn, int err, bool nonblocking)
{
	if (fail_now(FAULT_IO, fn)) {
		errno = err;
		return true;
	}
	if (nonblocking && fail_now(FAULT_AGAIN, fn)) {
		errno = EAGAIN;
		return true;
	}
	return false;
}

#define WRAP_IO(ret, name, params, args, err, nonblocking) \
	ret __real_##name params;                           \
	ret __wrap_##name params;                           \
	ret __wrap_##name params                            \
	{                                                   \
		if (io_fails(#name, err, nonblocking))      \
			return -1;                          \
		return __real_##name args;                  \
	}

WRAP_IO(ssize_t, preadv2, (int fd, const struct iovec *iov, int n, off_t off, int flags),
        (fd, iov, n, off, flags), ENOMEM, flags & RWF_NOWAIT)
WRAP_IO(ssize_t, pwritev2, (int fd, const struct iovec *iov, int n, off_t off, int flags),
        (fd, iov, n, off, flags), ENOMEM, flags & RWF_NOWAIT)
WRAP_IO(ssize_t, preadv64v2, (int fd, const struct iovec *iov, int n, off64_t off, int flags),
        (fd, iov, n, off, flags), ENOMEM, flags & RWF_NOWAIT)
WRAP_IO(ssize_t, pwritev64v2, (int fd, const struct iovec *iov, int n, off64_t off, int flags),
        (fd, iov, n, off, flags), ENOMEM, flags & RWF_NOWAIT)
WRAP_IO(ssize_t, recv, (int fd, void *buf, size_t len, int flags), (fd, buf, len, flags),
        ENOMEM, flags & MSG_DONTWAIT)
WRAP_IO(ssize_t, send, (int fd, const void *buf, size_t len, int flags), (fd, buf, len, flags),
        ENOBUFS, flags & MSG_DONTWAIT)
WRAP_IO(ssize_t, recvmsg, (int fd, struct msghdr *msg, int flags), (fd, msg, flags), ENOMEM,
        flags & MSG_DONTWAIT)
WRAP_IO(ssize_t, sendmsg, (int fd, const struct msghdr *msg, int flags), (fd, msg, flags),
        ENOBUFS, flags & MSG_DONTWAIT)
WRAP_IO(int, accept4, (int fd, struct sockaddr *addr, socklen_t *len, int flags),
        (fd, addr, len, flags), EMFILE, true)
/* connect's EAGAIN: a UNIX socket's full backlog, or (other families) no
 * routing cache entry: nothing started, unlike EINPROGRESS. */
WRAP_IO(int, connect, (int fd, const struct sockaddr *addr, socklen_t len), (fd, addr, len),
        EADDRNOTAVAIL, true)
WRAP_IO(int, poll, (struct pollfd *fds, nfds_t n, int ms), (fds, n, ms), ENOMEM, false)
