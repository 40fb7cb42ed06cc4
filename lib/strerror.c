/* SPDX-License-Identifier: MIT */
/*
 * uco_strerror(): one sentence for every error a uco call returns.
 *
 * Each errno uco returns gets its general meaning followed by what uco
 * means by it, so that "-EDEADLK from uco_loop_run" reads as "tasks are
 * left that nothing can wake" rather than libc's "Resource deadlock
 * avoided".  The table is indexed by errno (one designated initializer per
 * code, as the kernel's opdef table); codes outside it fall back to libc's
 * text, and codes nobody returns get "unknown error N".  tests/test_strerror.c
 * checks that every errno named in a man page's ERRORS section has an entry.
 *
 * uco_loop_strerror(): why a loop could not be set up, in the words of
 * what to change (the sysctl, the seccomp profile, RLIMIT_MEMLOCK).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *const messages[] = {
	[0] = "success",
	[EPERM] = "operation not permitted: called outside a coroutine, or from another "
	          "thread than the loop's, or io_uring is refused by the "
	          "kernel.io_uring_disabled sysctl or a seccomp filter "
	          "(uco_loop_strerror() tells which)",
	[ENOENT] = "no such entry: the file or directory does not exist, every task was "
	           "already taken (uco_next_completed), or the task has no value for "
	           "this context key (uco_ctx_get)",
	[ESRCH] = "no such process: the child has already been reaped",
	[EINTR] = "interrupted: uco_loop_stop() stopped the loop before the task "
	          "finished (uco_loop_run_until), or a system call was interrupted",
	[EIO] = "input/output error reported by the device or file system",
	[ENXIO] = "no such device or address: nothing registered (a fixed read or write "
	          "with no buffers registered, or uco_buffers_unregister with none)",
	[E2BIG] = "argument list or environment too long for the program",
	[ENOEXEC] = "exec format error: the file is not an executable the kernel can run",
	[EBADF] = "bad file descriptor: not open, not open for this operation, or not "
	          "a descriptor the loop registered (uco_fd_register)",
	[ECHILD] = "no child to wait for: something else reaped it and its status is "
	           "lost (SIGCHLD ignored?); or, from a uco_spawn_gather task with "
	           "UCO_GATHER_COLLECT, one or more of the gathered tasks failed",
	[EAGAIN] = "try again: nothing is ready yet, the executor's queue is full, or no "
	           "timer or submission queue entry could be had right now",
	[ENOMEM] = "out of memory: no memory, address space or vm.max_map_count left for "
	           "a task, its stack or the ring (or RLIMIT_MEMLOCK too small for a ring)",
	[EACCES] = "permission denied by the file's mode or a security policy",
	[EFAULT] = "bad address: a buffer or pointer argument lies outside the process's "
	           "memory, or outside the registered buffer a fixed read or write names",
	[EBUSY] = "busy: a loop already runs on this thread, the loop still runs or has "
	          "unfinished tasks (uco_loop_close), or the object is still in use",
	[EEXIST] = "the file or entry already exists",
	[EXDEV] = "wrong loop: the task or object belongs to another loop (or to one "
	          "that was closed), or the link crosses file systems",
	[ENOTDIR] = "a component of the path is not a directory",
	[EISDIR] = "the path is a directory",
	[EINVAL] = "invalid argument: a NULL or out-of-range argument, an unknown flag, "
	           "a non-zero reserved field, or an operation the kernel rejects with "
	           "these arguments",
	[ENFILE] = "too many open files in the system",
	[EMFILE] = "no file descriptor left in this process (RLIMIT_NOFILE)",
	[ENOTTY] = "inappropriate operation for this kind of descriptor",
	[ETXTBSY] = "the executable is open for writing",
	[ENOSPC] = "no space left: on the device, or in the loop's registered-file "
	           "table (uco_fd_register)",
	[ESPIPE] = "illegal seek: an offset was given for a pipe or socket (use -1)",
	[EROFS] = "read-only file system: nothing can be created, written or changed there",
	[EPIPE] = "broken pipe: the peer closed its end, or the channel was closed "
	          "(uco_chan, uco_xchan)",
	[EKEYREJECTED] = "key was rejected: the peer's certificate failed verification "
	                 "(uco_tls_verify_error() says why)",
	[ERANGE] = "result out of range",
	[EDEADLK] = "deadlock avoided: a task would wait for itself, or tasks are left "
	            "that nothing can ever wake (no task runnable, no operation in "
	            "flight: uco_loop_run, uco_loop_run_until)",
	[ENOSYS] = "not implemented: the kernel has no io_uring (older than 5.1, built "
	           "without CONFIG_IO_URING, or a seccomp filter answers ENOSYS)",
	[ELOOP] = "too many symbolic links in the path",
	[ENONET] = "machine is not on the network: a temporary accept error (the "
	           "connection is dropped, the acceptor goes on)",
	[ENODATA] = "no data available: the end of the stream came in the middle of a "
	            "record (asyncio's IncompleteReadError; the bytes read stay buffered)",
	[EOVERFLOW] = "value too large for its type",
	[EILSEQ] = "invalid byte sequence",
	[ENOTSOCK] = "the descriptor is not a socket",
	[EDESTADDRREQ] = "the socket has no destination address",
	[EMSGSIZE] = "message too long: it does not fit the buffer or the limit (what "
	             "was read stays buffered)",
	[EPROTO] = "protocol error: the peer does not speak TLS, or sent a bad record "
	           "or an alert (uco_tls_error() names which)",
	[EPROTOTYPE] = "wrong protocol type for the socket",
	[ENOPROTOOPT] = "protocol option not available",
	[EOPNOTSUPP] = "not supported: this kernel lacks the io_uring operation or "
	               "feature (probed once per loop), or the descriptor does not "
	               "support it",
	[EAFNOSUPPORT] = "address family not supported by the protocol",
	[EADDRINUSE] = "address already in use (a listener, or one just closed, still "
	               "holds the port)",
	[EADDRNOTAVAIL] = "the address is not available on this machine",
	[ENETDOWN] = "the network is down",
	[ENETUNREACH] = "the network is unreachable",
	[ECONNABORTED] = "the connection was aborted before it was accepted",
	[ECONNRESET] = "connection reset by the peer",
	[ENOBUFS] = "no buffer space: the kernel is short of buffers, or the provided "
	            "buffer ring ran empty",
	[EISCONN] = "the socket is already connected",
	[ENOTCONN] = "the socket is not connected",
	[ESHUTDOWN] = "shut down: the executor is shutting down, the acceptor or receive "
	              "stream was closed while the call waited, or the task's loop is "
	              "closed",
	[ETIMEDOUT] = "timed out: the deadline passed before the operation completed "
	              "(the operation was cancelled and no data was lost)",
	[ECONNREFUSED] = "connection refused: nothing listens at that address",
	[EHOSTDOWN] = "the host is down",
	[EHOSTUNREACH] = "no route to the host",
	[EALREADY] = "already done: the task had already finished (uco_task_cancel), or "
	             "the operation is already in progress",
	[EINPROGRESS] = "the operation is in progress",
	[ECANCELED] = "cancelled: the calling task was cancelled (uco_task_cancel, a "
	              "group's failure, a signal's cancel_all), or the task it awaited "
	              "ended cancelled",
	[EOWNERDEAD] = "the owner of the lock died",
};

/* Room for "unknown error -2147483648". */
static __thread char unknown[40];

const char *uco_strerror(int err)
{
	/* UCO_EAI_ERROR(code): a resolver error of uco_getaddrinfo(). */
	int eai = err + UCO_EAI_BASE;
	if (err < 0 && eai < 0 && eai > -200)
		return gai_strerror(eai);
	/* |err| without negating INT_MIN (which has no positive twin). */
	unsigned e = err < 0 ? 0u - (unsigned)err : (unsigned)err;
	if (e < sizeof messages / sizeof messages[0] && messages[e])
		return messages[e];
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	/* Thread-safe and static, unlike strerror(). */
	const char *desc = e < 4096 ? strerrordesc_np((int)e) : NULL;
	if (desc)
		return desc;
#endif
	snprintf(unknown, sizeof unknown, "unknown error %d", err);
	return unknown;
}

/* ------------------------------------------------------------ loop set-up */

/* Is io_uring switched off by the sysctl (and to what)?  -1: can't tell. */
static int io_uring_disabled_sysctl(void)
{
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
	int v = -1;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

const char *uco_loop_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -ENOSYS:
		return "io_uring is not available: the kernel is older than 5.1, "
		       "was built without CONFIG_IO_URING, or a seccomp filter "
		       "answers io_uring_setup with ENOSYS";
	case -EPERM:
		switch (io_uring_disabled_sysctl()) {
		case 2:
			return "io_uring is disabled on this machine: sysctl "
			       "kernel.io_uring_disabled=2 (set it to 0 to allow it)";
		case 1:
			return "io_uring is restricted: sysctl kernel.io_uring_disabled=1 "
			       "allows it only to members of kernel.io_uring_group";
		default:
			return "io_uring_setup was refused with EPERM although the "
			       "kernel.io_uring_disabled sysctl allows it: a seccomp "
			       "filter blocks it (Docker's default profile does; run "
			       "with a profile that allows io_uring_setup, "
			       "io_uring_enter and io_uring_register)";
		}
	case -ENOMEM:
		return "not enough memory for the ring, or RLIMIT_MEMLOCK too small "
		       "(kernels before 5.12 charge rings to it: raise ulimit -l)";
	case -EINVAL:
		return "invalid loop options, or the kernel rejected every ring "
		       "configuration uco knows (kernel too old?)";
	case -EOPNOTSUPP:
		return "the kernel lacks the ring feature a loop option asked for: "
		       "UCO_LOOP_SQPOLL needs IORING_SETUP_SQPOLL (Linux 5.11 "
		       "without privileges), UCO_LOOP_NAPI needs "
		       "io_uring_register_napi (Linux 6.9, CONFIG_NET_RX_BUSY_POLL); "
		       "the epoll backend has neither";
	case -EMFILE:
	case -ENFILE:
		return "no file descriptor left for the ring";
	default:
		return "io_uring set-up failed";
	}
}
