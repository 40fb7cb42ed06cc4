/* SPDX-License-Identifier: MIT */
/*
 * Faults survived.  libuco is linked here with its allocators, mappings,
 * ring set-up and registration, eventfd/signalfd, pthread_create,
 * submits, and the readiness backend's calls (epoll, fcntl's dups, the
 * non-blocking IO calls) wrapped (tests/faults/fault.h), and each test
 * fails the nth of those calls, for n = 1, 2, ... until the operation runs
 * without reaching the nth: once (one call fails) and sticky (every call
 * from the nth on, memory that stays short).  For every n:
 *   - the operation succeeds or returns a negative errno (never a crash;
 *     never a hang: every wait has a deadline, and SIGALRM names the n);
 *   - without a failure it succeeds;
 *   - once injection stops, the loop finishes what was left, runs a task
 *     that does IO and sleeps 1 ms and returns a value, with the same ring
 *     features and opcodes as a loop made without faults, and closes;
 *   - nothing it took is still held: allocations and mappings counted by
 *     the wrappers, and descriptors; under ASan, LeakSanitizer is asked
 *     too, at the end of each test.
 * Loops use an 8-entry SQ, so that the SQ fills for real and the
 * "submit to make room" paths fail too.
 */
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"
#include "faults/fault.h"

#ifdef UCO__ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define SOON() (uco_now() + 2 * UCO_NS_PER_S)

/* ------------------------------------------------------------ fixture */

/* What one run of an operation works with; reset for every n. */
static struct fx {
	int fd[4];                /* pipes, socket pairs, clients: -1 if unused */
	int listen_fd;
	struct sockaddr_in addr;
	char path[64];
	const char *bad;          /* a broken invariant, reported with n */
	int calls_run, signal_seen, callbacks;
	uco_xchan *xc;
	pthread_t thread;
	bool thread_started;
	sem_t go;
} fx;

#define BAD(why) ((void)(fx.bad = fx.bad ? fx.bad : (why)))

static void reset_fx(void)
{
	memset(&fx, 0, sizeof fx);
	for (int i = 0; i < 4; i++)
		fx.fd[i] = -1;
	fx.listen_fd = -1;
}

static void close_fx(void)
{
	for (int i = 0; i < 4; i++)
		if (fx.fd[i] >= 0)
			close(fx.fd[i]);
	if (fx.listen_fd >= 0)
		close(fx.listen_fd);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* The backend the loops of the running case ask for (the epoll cases set
 * UCO_BACKEND_EPOLL, so that the default run covers the readiness
 * backend's calls too; UCO_BACKEND in the environment still overrides). */
static unsigned forced_backend = UCO_BACKEND_AUTO;

static uco_loop_opts small_ring(void)
{
	uco_loop_opts o;
	memset(&o, 0, sizeof o);
	o.ring_entries = 8;
	o.backend = forced_backend;
	const char *ring = getenv("UCO_TEST_RING");
	if (ring && strcmp(ring, "plain") == 0)
		o.flags |= UCO_LOOP_PLAIN_RING;
	return o;
}

/* ------------------------------------------------------------ the harness */

struct fault_case {
	const char *name;
	unsigned kinds;           /* FAULT_* families failed */
	bool creates_loop;        /* the body makes the loop itself */
	void (*setup)(void);      /* not armed: descriptors, files */
	int (*body)(uco_loop **loop); /* armed: 0 or -errno */
	uco_fn task;              /* or, with no body: run this task on the loop */
	void (*teardown)(void);   /* not armed, after the loop has closed */
	bool once_only;           /* no sticky pass (a failure retried forever) */
	unsigned sticky_kinds;    /* the families of the sticky pass, if not `kinds` */
	bool cold_pool;           /* no stack in the pool yet: the body maps slabs */
};

static int run_task(uco_loop *loop, uco_fn fn, void *arg);
static void *returns_arg(void *arg);

static const char *alarm_case;
static unsigned long alarm_n;
static bool alarm_sticky;

static void on_alarm(int sig)
{
	(void)sig;
	char msg[256];
	int len = snprintf(msg, sizeof msg, "faults: %s hung with call %lu failed (%s, first %s)\n",
	                   alarm_case, alarm_n, alarm_sticky ? "sticky" : "once",
	                   fault_first_failed());
	if (write(2, msg, (size_t)len) < 0)
		_exit(3);
	_exit(2);
}

static void *healthy(void *arg)
{
	int p[2];
	if (pipe(p))
		return uco_fail(-errno);
	char c = 'h', d = 0;
	ssize_t w = uco_write(p[1], &c, 1, -1);
	ssize_t r = uco_read_dl(p[0], &d, 1, -1, SOON());
	close(p[0]);
	close(p[1]);
	if (w != 1 || r != 1 || d != 'h')
		return uco_fail(w < 0 ? (int)w : r < 0 ? (int)r : -EIO);
	int s = uco_sleep(UCO_NS_PER_MS);
	return s ? uco_fail(s) : arg;
}

/* After the injection: the loop finishes what the operation left, still
 * works as a fresh one does, and closes. */
static void check_loop(uco_loop *loop, const uco_loop *ref, const char *name, unsigned long n,
                       const char *what)
{
	int r = uco_loop_run(loop);
	cr_assert_eq(r, 0, "%s, call %lu (%s) failed: the leftovers ran into %d", name, n, what, r);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, healthy, (void *)42), 0);
	void *v = NULL;
	r = uco_loop_run_until(loop, t, &v);
	cr_assert_eq(r, 0, "%s, call %lu (%s) failed: the loop is left broken (%d)", name, n, what,
	             r);
	cr_assert_eq(v, (void *)42);
	uco_task_release(t);
	cr_assert_eq(uco_loop_features(loop), uco_loop_features(ref),
	             "%s, call %lu (%s) failed: ring features %#x, not %#x", name, n, what,
	             uco_loop_features(loop), uco_loop_features(ref));
	cr_assert(memcmp(loop->opcodes, ref->opcodes, sizeof ref->opcodes) == 0,
	          "%s, call %lu (%s) failed: the loop lost opcodes", name, n, what);
	r = uco_loop_close(loop);
	cr_assert_eq(r, 0, "%s, call %lu (%s) failed: close gives %d", name, n, what, r);
}

static void run_case(const struct fault_case *c)
{
	uco_loop_opts o = small_ring();
	uco_loop *ref = test_loop_opts(&o);
	signal(SIGALRM, on_alarm);
	alarm_case = c->name;
	unsigned long most = 0;
	for (int sticky = 0; sticky <= !c->once_only; sticky++) {
		unsigned long n;
		for (n = 1;; n++) {
			cr_assert_lt(n, 100000, "%s: no end to the calls", c->name);
			alarm_n = n;
			alarm_sticky = sticky;
			alarm(20);
			long allocs = fault_live_allocs(), maps = fault_live_maps();
			unsigned long mark = fault_alloc_mark();
			int fds = count_fds();
			reset_fx();
			if (c->setup)
				c->setup();
			uco_loop *loop = NULL;
			if (!c->creates_loop) {
				o = small_ring();
				cr_assert_eq(uco_loop_create(&loop, &o), 0);
				/* A warm stack pool: the 64 guard pages of a new
				 * slab are failed in the spawn cases. */
				if (!c->cold_pool)
					cr_assert_eq(run_task(loop, returns_arg, NULL), 0);
			}

			fault_arm(sticky && c->sticky_kinds ? c->sticky_kinds : c->kinds, n, sticky);
			int r = c->body ? c->body(&loop) : run_task(loop, c->task, NULL);
			unsigned long failed = fault_disarm();
			const char *what = fault_first_failed();

			cr_assert(r <= 0 && r > -4096, "%s, call %lu (%s) failed: returned %d",
			          c->name, n, what, r);
			cr_assert(failed || r == 0, "%s: no call failed, yet %d (%s)", c->name, r,
			          strerror(-r));
			if (!loop) {
				o = small_ring();
				cr_assert_eq(uco_loop_create(&loop, &o), 0);
			}
			check_loop(loop, ref, c->name, n, what);
			if (c->teardown)
				c->teardown();
			close_fx();
			cr_assert(!fx.bad, "%s, call %lu (%s, %s) failed: %s", c->name, n, what,
			          sticky ? "sticky" : "once", fx.bad);
			if (fault_live_allocs() != allocs)
				fault_print_live_since(mark);
			cr_assert_eq(fault_live_allocs(), allocs,
			             "%s, call %lu (%s, %s) failed: %ld allocations leaked", c->name, n,
			             what, sticky ? "sticky" : "once", fault_live_allocs() - allocs);
			cr_assert_eq(fault_live_maps(), maps,
			             "%s, call %lu (%s, %s) failed: %ld mappings leaked", c->name, n,
			             what, sticky ? "sticky" : "once", fault_live_maps() - maps);
			cr_assert_eq(count_fds(), fds, "%s, call %lu (%s, %s) failed: %d descriptors leaked",
			             c->name, n, what, sticky ? "sticky" : "once", count_fds() - fds);
			if (!failed)
				break;
		}
		if (n - 1 > most)
			most = n - 1;
	}
	alarm(0);
#ifdef UCO__ASAN
	/* Criterion passes a test whose worker LeakSanitizer reports at exit:
	 * ask it here instead. */
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "%s: LeakSanitizer found leaks",
	             c->name);
#endif
	fprintf(stderr, "faults: %s: failed each of its %lu calls%s\n", c->name, most,
	        c->once_only ? "" : ", once and sticky");
	cr_assert_eq(uco_loop_close(ref), 0);
}

/* Run fn as a task to its end: 0, its failure, or the loop's error. */
static int run_task(uco_loop *loop, uco_fn fn, void *arg)
{
	uco_task *t;
	int err = uco_spawn(loop, &t, fn, arg);
	if (err)
		return err;
	err = uco_loop_run_until(loop, t, NULL);
	if (!err)
		err = uco_task_result(t, NULL);
	uco_task_release(t);
	return err;
}

static void *returns_arg(void *arg)
{
	return arg;
}

static void *sleeps_ms(void *arg)
{
	int r = uco_sleep((intptr_t)arg * UCO_NS_PER_MS);
	return r ? uco_fail(r) : arg;
}

static void *fails_after_1ms(void *arg)
{
	(void)arg;
	uco_sleep(UCO_NS_PER_MS);
	return uco_fail(-EIO);
}

/* Spawn fn(args[i]) for i < n from a task; on failure the ones spawned are
 * released (they run on and end by themselves). */
static int spawn_all(uco_task **out, size_t n, uco_fn fn, const intptr_t *args)
{
	for (size_t i = 0; i < n; i++) {
		int err = uco_spawn(NULL, &out[i], fn, (void *)args[i]);
		if (err) {
			while (i-- > 0)
				uco_task_release(out[i]);
			return err;
		}
	}
	return 0;
}

static void release_all(uco_task **t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		uco_task_release(t[i]);
}

/* ------------------------------------------------------------ loops and tasks */

static int body_loop_create(uco_loop **loop)
{
	uco_loop_opts o = small_ring();
	int err = uco_loop_create(loop, &o);
	if (err && *loop)
		BAD("a failed create stored a loop");
	return err;
}

Test(faults, loop_create_and_close, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "loop create", .kinds = FAULT_ALL,
	                               .creates_loop = true, .body = body_loop_create });
}

static void count_callback(uco_task *t, void *user)
{
	(void)t;
	(void)user;
	fx.callbacks++;
}

/* A failed spawn started nothing: after `spawned` spawns, as many tasks. */
static int spawn_checked(int err, uco_loop *loop, uint64_t spawned)
{
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	if (s.tasks_live_now != spawned - (err != 0))
		BAD("a failed spawn started a task, or a spawn none");
	return err;
}

static int body_spawn(uco_loop **lp)
{
	uco_loop *loop = *lp;
	uco_task *a = NULL, *b = NULL;
	int err = spawn_checked(uco_spawn(loop, &a, sleeps_ms, (void *)1), loop, 1);
	if (!err)
		err = spawn_checked(uco_spawn_sized(loop, &b, returns_arg, (void *)2, 32 * 1024),
		                    loop, 2);
	if (!err)
		err = spawn_checked(uco_spawn(loop, NULL, returns_arg, NULL), loop, 3);
	if (!err)
		err = uco_task_add_done_callback(a, count_callback, NULL);
	void *v = NULL;
	if (!err && (err = uco_loop_run_until(loop, b, &v)) == 0 &&
	    (err = uco_task_result(b, &v)) == 0 && v != (void *)2)
		BAD("wrong value");
	if (!err && (err = uco_loop_run_until(loop, a, &v)) == 0 &&
	    (err = uco_task_result(a, &v)) == 0 && v != (void *)1)
		BAD("wrong value");
	if (!err && fx.callbacks != 1)
		BAD("the done-callback did not run once");
	uco_task_release(a);
	uco_task_release(b);
	return err;
}

Test(faults, spawn_and_run, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "spawn", .kinds = FAULT_ALL,
	                               .cold_pool = true, .body = body_spawn });
}

/* Many tasks at once: the run queue and the stack pool grow (slabs of 64
 * stacks), and a sticky failure is the pool running dry. */
static int body_spawn_many(uco_loop **lp)
{
	int err = 0;
	for (intptr_t i = 0; i < 300 && !err; i++)
		err = uco_spawn(*lp, NULL, i % 2 ? sleeps_ms : returns_arg, (void *)(i % 3));
	int r = uco_loop_run(*lp);
	return err ? err : r;
}

Test(faults, spawn_many_stack_pool_growth, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "spawn many", .kinds = FAULT_ALL,
	                               .cold_pool = true, .body = body_spawn_many });
}

/* ------------------------------------------------------------ IO */

static void setup_pipe(void)
{
	cr_assert_eq(pipe2(fx.fd, O_CLOEXEC), 0);
}

static void *pipe_io(void *arg)
{
	(void)arg;
	char out[8] = "ping", in[8] = { 0 };
	ssize_t w = uco_write_dl(fx.fd[1], out, 4, -1, SOON());
	if (w < 0)
		return uco_fail((int)w);
	ssize_t r = uco_read_dl(fx.fd[0], in, sizeof in, -1, SOON());
	if (r == -ETIMEDOUT)
		BAD("a read timed out with data waiting");
	if (r < 0)
		return uco_fail((int)r);
	if (r != 4 || memcmp(in, "ping", 4))
		BAD("read the wrong bytes");
	if ((w = uco_write(fx.fd[1], out, 4, -1)) < 0)
		return uco_fail((int)w);
	if ((r = uco_read(fx.fd[0], in, 4, -1)) < 0)
		return uco_fail((int)r);
	struct iovec iov = { out, 4 };
	if ((w = uco_writev(fx.fd[1], &iov, 1, -1)) < 0)
		return uco_fail((int)w);
	iov.iov_base = in;
	if ((r = uco_readv_dl(fx.fd[0], &iov, 1, -1, SOON())) < 0)
		return uco_fail((int)r);
	/* A deadline that expires, and one that does not. */
	r = uco_read_dl(fx.fd[0], in, 1, -1, uco_now() + 2 * UCO_NS_PER_MS);
	if (r >= 0)
		BAD("read from an empty pipe");
	if (r != -ETIMEDOUT)
		return uco_fail((int)r);
	int p = uco_poll_dl(fx.fd[1], POLLOUT, SOON());
	if (p < 0)
		return uco_fail(p);
	if (!(p & POLLOUT))
		BAD("a pipe with room is not writable");
	return NULL;
}

Test(faults, io_pipe_read_write_deadlines, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "pipe IO", .kinds = FAULT_ALL,
	                               .setup = setup_pipe, .task = pipe_io });
}

static void setup_socketpair(void)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fx.fd), 0);
}

static void *socket_io(void *arg)
{
	(void)arg;
	char in[16] = { 0 };
	ssize_t n = uco_send_dl(fx.fd[0], "abc", 3, 0, SOON());
	if (n < 0)
		return uco_fail((int)n);
	n = uco_recv_dl(fx.fd[1], in, sizeof in, 0, SOON());
	if (n == -ETIMEDOUT)
		BAD("a recv timed out with data waiting");
	if (n < 0)
		return uco_fail((int)n);
	if (n != 3 || memcmp(in, "abc", 3))
		BAD("received the wrong bytes");
	struct iovec iov = { "defg", 4 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if ((n = uco_sendmsg(fx.fd[1], &msg, 0)) < 0)
		return uco_fail((int)n);
	iov = (struct iovec){ in, sizeof in };
	if ((n = uco_recvmsg_dl(fx.fd[0], &msg, 0, SOON())) < 0)
		return uco_fail((int)n);
	if (n != 4 || memcmp(in, "defg", 4))
		BAD("recvmsg got the wrong bytes");
	if ((n = uco_send(fx.fd[1], "x", 1, 0)) < 0 || (n = uco_recv(fx.fd[0], in, 1, 0)) < 0)
		return uco_fail((int)n);
	int r = uco_shutdown(fx.fd[1], SHUT_WR);
	if (r < 0)
		return uco_fail(r);
	n = uco_recv_dl(fx.fd[0], in, sizeof in, 0, SOON());
	if (n < 0)
		return uco_fail((int)n);
	if (n != 0)
		BAD("no end of stream after shutdown");
	return NULL;
}

Test(faults, io_socketpair_send_recv, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "socket IO", .kinds = FAULT_ALL,
	                               .setup = setup_socketpair, .task = socket_io });
}

static void setup_listener(void)
{
	fx.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fx.listen_fd, 0);
	fx.addr = (struct sockaddr_in){ .sin_family = AF_INET,
	                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(fx.listen_fd, (struct sockaddr *)&fx.addr, sizeof fx.addr), 0);
	cr_assert_eq(listen(fx.listen_fd, 64), 0);
	socklen_t len = sizeof fx.addr;
	cr_assert_eq(getsockname(fx.listen_fd, (struct sockaddr *)&fx.addr, &len), 0);
}

/* Connect, accept, exchange a byte: in one task, since a loopback connect
 * completes from the listener's backlog before any accept. */
static void *accept_connect(void *arg)
{
	(void)arg;
	int err, c = -1, s = uco_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return uco_fail(s);
	err = uco_connect_dl(s, (struct sockaddr *)&fx.addr, sizeof fx.addr, SOON());
	if (!err) {
		c = uco_accept_dl(fx.listen_fd, NULL, NULL, SOCK_CLOEXEC, SOON());
		if (c == -ETIMEDOUT)
			BAD("accept timed out with a connection waiting");
		err = c < 0 ? c : 0;
	}
	char b = 0;
	ssize_t n = 0;
	if (!err && (n = uco_send(s, "z", 1, 0)) >= 0)
		n = uco_recv_dl(c, &b, 1, 0, SOON());
	if (!err && n < 0)
		err = (int)n;
	if (!err && b != 'z')
		BAD("accepted the wrong connection");
	if (c >= 0) {
		int r = uco_close(c);
		if (r < 0) {
			close(c); /* the ring could not take it */
			err = err ? err : r;
		}
	}
	int r = uco_close(s);
	if (r < 0) {
		close(s);
		err = err ? err : r;
	}
	return err ? uco_fail(err) : NULL;
}

Test(faults, io_accept_connect, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "accept/connect", .kinds = FAULT_ALL,
	                               .setup = setup_listener, .task = accept_connect });
}

static void setup_file(void)
{
	snprintf(fx.path, sizeof fx.path, "/tmp/uco-faults-%d", (int)getpid());
	unlink(fx.path);
}

static void teardown_file(void)
{
	unlink(fx.path);
}

static void *file_io(void *arg)
{
	(void)arg;
	int fd = uco_openat_dl(AT_FDCWD, fx.path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600,
	                       SOON());
	if (fd < 0)
		return uco_fail(fd);
	int err = 0;
	ssize_t n = uco_write_dl(fd, "0123456789", 10, 0, SOON());
	if (n < 0)
		err = (int)n;
	if (!err)
		err = uco_fsync_dl(fd, 1, SOON());
	if (!err)
		err = uco_fallocate(fd, 0, 0, 4096);
	struct statx st;
	if (!err)
		err = uco_statx_dl(AT_FDCWD, fx.path, 0, STATX_SIZE, &st, SOON());
	if (!err && st.stx_size != 4096)
		BAD("statx gives the wrong size");
	char in[10];
	if (!err && (n = uco_read(fd, in, sizeof in, 0)) < 0)
		err = (int)n;
	if (!err && memcmp(in, "0123456789", 10))
		BAD("read back the wrong bytes");
	int r = uco_close(fd);
	if (r < 0) {
		close(fd);
		err = err ? err : r;
	}
	return err ? uco_fail(err) : NULL;
}

Test(faults, io_file_openat_statx_close, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "file IO", .kinds = FAULT_ALL,
	                               .setup = setup_file, .task = file_io,
	                               .teardown = teardown_file });
}

/* A registered (fixed) descriptor. */
static void *fixed_io(void *arg)
{
	(void)arg;
	int h = uco_fd_register(NULL, fx.fd[0]);
	if (h < 0)
		return uco_fail(h);
	char c = 0;
	ssize_t n = write(fx.fd[1], "f", 1);
	if (n == 1)
		n = uco_read_dl(h, &c, 1, -1, SOON());
	if (n == 1 && c != 'f')
		BAD("read the wrong byte through a fixed file");
	int r = uco_fd_unregister(NULL, h);
	if (n < 0)
		return uco_fail((int)n);
	return r < 0 ? uco_fail(r) : NULL;
}

Test(faults, io_fixed_files, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "fixed files", .kinds = FAULT_ALL,
	                               .setup = setup_pipe, .task = fixed_io });
}

/* The multishot acceptor, with two clients waiting in the backlog. */
static void setup_acceptor(void)
{
	setup_listener();
	for (int i = 0; i < 2; i++) {
		fx.fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(fx.fd[i], 0);
		cr_assert_eq(connect(fx.fd[i], (struct sockaddr *)&fx.addr, sizeof fx.addr), 0);
	}
}

static void *acceptor_task(void *arg)
{
	uco_acceptor *a = arg;
	int err = 0;
	for (int i = 0; i < 2 && !err; i++) {
		int c = uco_acceptor_next_dl(a, SOON());
		if (c == -ETIMEDOUT)
			BAD("the acceptor timed out with clients waiting");
		if (c < 0)
			err = c;
		else
			close(c);
	}
	uco_acceptor_close(a);
	return err ? uco_fail(err) : NULL;
}

static int body_acceptor(uco_loop **lp)
{
	uco_acceptor *a;
	int err = uco_acceptor_open(*lp, &a, fx.listen_fd, SOCK_CLOEXEC);
	if (err)
		return err;
	uco_task *t;
	err = uco_spawn(*lp, &t, acceptor_task, a);
	if (err) {
		uco_acceptor_close(a);
		return err;
	}
	err = uco_loop_run_until(*lp, t, NULL);
	if (!err)
		err = uco_task_result(t, NULL);
	uco_task_release(t);
	return err;
}

Test(faults, io_acceptor, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "acceptor", .kinds = FAULT_ALL,
	                               .setup = setup_acceptor, .body = body_acceptor });
}

/* A provided-buffer ring and a receive stream on it. */
static void setup_stream(void)
{
	setup_socketpair();
	cr_assert_eq(write(fx.fd[1], "hello", 5), 5);
}

static void *stream_task(void *arg)
{
	uco_recv_stream *s = arg;
	const void *data = NULL;
	ssize_t n = uco_recv_stream_next_dl(s, &data, SOON());
	if (n == -ETIMEDOUT)
		BAD("the stream timed out with data waiting");
	if (n > 0 && (n != 5 || memcmp(data, "hello", 5)))
		BAD("the stream gave the wrong bytes");
	uco_recv_stream_close(s);
	return n < 0 ? uco_fail((int)n) : NULL;
}

static int body_stream(uco_loop **lp)
{
	uco_bufring *br;
	uco_recv_stream *s;
	int err = uco_bufring_create(*lp, &br, 8, 256);
	if (err)
		return err;
	err = uco_recv_stream_open(&s, fx.fd[0], br);
	if (err) {
		if (uco_bufring_destroy(br))
			BAD("a bufring without streams refused to go");
		return err;
	}
	uco_task *t;
	err = uco_spawn(*lp, &t, stream_task, s);
	if (err) {
		uco_recv_stream_close(s);
	} else {
		err = uco_loop_run_until(*lp, t, NULL);
		if (!err)
			err = uco_task_result(t, NULL);
		uco_task_release(t);
	}
	/* -EBUSY while the stream's cancel is on its way: the close frees it. */
	uco_bufring_destroy(br);
	return err;
}

Test(faults, io_bufring_recv_stream, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "bufring stream", .kinds = FAULT_ALL,
	                               .setup = setup_stream, .body = body_stream });
}

/* A buffered stream (stream.c): a line in, a line out, drain, close. */
static void setup_buffered_stream(void)
{
	setup_socketpair();
	cr_assert_eq(write(fx.fd[1], "hello\n", 6), 6);
	/* The peer's end is read below while armed: read(2) on a non-blocking
	 * end, since recv is one of the wrapped calls. */
	cr_assert_eq(fcntl(fx.fd[1], F_SETFL, O_NONBLOCK), 0);
}

static void *buffered_stream_task(void *arg)
{
	uco_bufring *br = NULL; /* with arg: receive through it (freed with the loop) */
	if (arg) {
		int err = uco_bufring_create(NULL, &br, 8, 256);
		if (err)
			return uco_fail(err);
	}
	uco_stream *s;
	int err = uco_stream_open(&s, fx.fd[0], &(uco_stream_opts){ .flags = UCO_STREAM_KEEP_FD,
	                                                            .bufring = br });
	if (err)
		return uco_fail(err);
	const char *line;
	ssize_t n = uco_stream_readline_dl(s, &line, SOON());
	if (n == -ENOMEM) /* no byte lost: the next call may find the memory */
		n = uco_stream_readline_dl(s, &line, SOON());
	if (n == -ETIMEDOUT)
		BAD("the stream timed out with a line waiting");
	if (n >= 0 && (n != 6 || memcmp(line, "hello\n", 6)))
		BAD("the stream gave the wrong line");
	if (n >= 0)
		n = uco_stream_write(s, "world\n", 6);
	if (n >= 0)
		n = uco_stream_drain_dl(s, SOON());
	int c = uco_stream_close_dl(s, SOON());
	char back[8];
	if (n >= 0 && c == 0 && read(fx.fd[1], back, sizeof back) != 6)
		BAD("close said it flushed, and the peer has not got the line");
	return n < 0 ? uco_fail((int)n) : c < 0 ? uco_fail(c) : NULL;
}

Test(faults, io_buffered_stream, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "buffered stream", .kinds = FAULT_ALL,
	                               .setup = setup_buffered_stream,
	                               .task = buffered_stream_task });
}

static void *buffered_stream_bufring_task(void *arg)
{
	(void)arg;
	return buffered_stream_task((void *)1);
}

Test(faults, io_buffered_stream_bufring, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "buffered stream on a bufring", .kinds = FAULT_ALL,
	                               .setup = setup_buffered_stream,
	                               .task = buffered_stream_bufring_task });
}

/* ------------------------------------------------------------ time */

static void *wait_forever(void *arg)
{
	(void)arg;
	int r = uco_sleep(10 * UCO_NS_PER_S);
	return r ? uco_fail(r) : NULL;
}

static void *timers_task(void *arg)
{
	(void)arg;
	/* More distinct lengths than the SQ holds: one timeout SQE each. */
	enum { N = 12 };
	static const intptr_t ms[N] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	uco_task *t[N];
	int err = spawn_all(t, N, sleeps_ms, ms);
	if (err)
		return uco_fail(err);
	for (size_t i = 0; i < N && !err; i++) {
		void *v;
		err = uco_await(t[i], &v);
		if (!err && v != (void *)ms[i])
			BAD("a sleeper returned the wrong value");
	}
	release_all(t, N);
	if (!err)
		err = uco_sleep_until(uco_now() + UCO_NS_PER_MS);
	/* A cancelled sleeper. */
	uco_task *s;
	if (!err && !(err = uco_spawn(NULL, &s, wait_forever, NULL))) {
		uco_yield();
		uco_task_cancel(s);
		int r = uco_await(s, NULL);
		if (r != -ECANCELED && r != -ENOMEM && r != -EAGAIN)
			BAD("a cancelled sleeper did not end cancelled");
		uco_task_release(s);
	}
	/* A deadline on a wait. */
	uco_event e;
	uco_event_init(&e);
	if (!err) {
		int r = uco_event_wait_dl(&e, uco_now() + UCO_NS_PER_MS);
		if (r != -ETIMEDOUT)
			err = r ? r : -EPROTO;
	}
	return err ? uco_fail(err) : NULL;
}

Test(faults, sleeps_and_timers, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "timers", .kinds = FAULT_ALL,
	                               .task = timers_task });
}

/* ------------------------------------------------------------ timer handles, subprocesses */

static void count_handle(void *arg)
{
	(void)arg;
	fx.callbacks++;
}

static void *call_later_task(void *arg)
{
	(void)arg;
	uco_timer *keep = NULL, *drop = NULL;
	int err = uco_call_later(NULL, UCO_NS_PER_MS, count_handle, NULL, NULL);
	int want = !err;
	if (!err && !(err = uco_call_later(NULL, 2 * UCO_NS_PER_MS, count_handle, NULL, &keep)))
		want++;
	if (!err && !(err = uco_call_at(NULL, uco_now(), count_handle, NULL, &drop)) &&
	    uco_timer_cancel(drop) != 0)
		BAD("a pending handle could not be cancelled");
	/* Handles do not keep the loop running: wait for them here. */
	for (int i = 0; i < 200 && fx.callbacks < want; i++) {
		int r = uco_sleep(UCO_NS_PER_MS);
		if (r < 0 && !err)
			err = r;
		if (r < 0)
			break;
	}
	if (!err && fx.callbacks != want)
		BAD("a timer handle did not run, or a cancelled one did");
	uco_timer_release(keep);
	uco_timer_release(drop);
	return err ? uco_fail(err) : NULL;
}

Test(faults, timer_handles, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "timer handles", .kinds = FAULT_ALL,
	                               .task = call_later_task });
}

/* cat through pipes both ways, and the release of a child not waited for
 * (reaped in the background, or killed here when things failed). */
static void *subprocess_task(void *arg)
{
	(void)arg;
	uco_process_opts o;
	memset(&o, 0, sizeof o);
	o.argv = (char *const[]){ (char *)"cat", NULL };
	o.stdio[0].mode = o.stdio[1].mode = UCO_STDIO_PIPE;
	uco_process *p;
	int err = uco_process_spawn(NULL, &p, &o);
	if (err)
		return uco_fail(err);
	uco_process_output out = { 0 };
	int st = uco_process_communicate_dl(p, "ping", 4, &out, NULL, SOON());
	if (st == 0 && (out.len != 4 || memcmp(out.data, "ping", 4)))
		BAD("communicate read the wrong bytes");
	if (st > 0)
		BAD("cat failed");
	if (st < 0) {
		/* Stop it and reap it, so that no child outlives the run. */
		uco_process_kill(p, SIGKILL);
		uco_process_wait_dl(p, SOON());
		err = st;
	}
	free(out.data);
	uco_process_release(p);
	o.stdio[0].mode = UCO_STDIO_DEVNULL;
	o.stdio[1].mode = UCO_STDIO_DEVNULL;
	if (!err && !(err = uco_process_spawn(NULL, &p, &o)))
		uco_process_release(p); /* exits at once; the loop reaps it */
	return err ? uco_fail(err) : NULL;
}

Test(faults, subprocess, .timeout = 120)
{
	run_case(&(struct fault_case){ .name = "subprocess", .kinds = FAULT_ALL,
	                               .task = subprocess_task });
}

/* ------------------------------------------------------------ the executor */

static void *blocking_add_one(void *arg)
{
	return (void *)((intptr_t)arg + 1);
}

static void *executor_task(void *arg)
{
	(void)arg;
	uco_executor_opts o = { .threads = 2 };
	uco_executor *ex;
	int err = uco_executor_create(&ex, &o);
	if (err)
		return uco_fail(err);
	void *v = NULL;
	err = uco_run_in_executor(ex, blocking_add_one, (void *)1, &v);
	if (!err && v != (void *)2)
		BAD("run_in_executor: wrong value");
	uco_task *t;
	if (!err && !(err = uco_spawn_in_executor(NULL, &t, ex, blocking_add_one, (void *)5))) {
		err = uco_await(t, &v);
		if (!err && v != (void *)6)
			BAD("spawn_in_executor: wrong value");
		uco_task_release(t);
	}
	/* The loop's default executor, made on first use. */
	if (!err && !(err = uco_run_in_executor(NULL, blocking_add_one, (void *)7, &v)) &&
	    v != (void *)8)
		BAD("default executor: wrong value");
	int r = uco_executor_shutdown(ex, 0);
	if (r)
		BAD("shutdown failed");
	return err ? uco_fail(err) : NULL;
}

Test(faults, executor, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "executor", .kinds = FAULT_ALL,
	                               .task = executor_task });
}

/* Through the eventfd inbox instead of MSG_RING. */
static void *executor_inbox_task(void *arg)
{
	(void)arg;
	uco_executor_opts o = { .threads = 1, .flags = UCO_EXECUTOR_NO_MSG_RING };
	uco_executor *ex;
	int err = uco_executor_create(&ex, &o);
	if (err)
		return uco_fail(err);
	void *v = NULL;
	err = uco_run_in_executor(ex, blocking_add_one, (void *)1, &v);
	if (!err && v != (void *)2)
		BAD("run_in_executor: wrong value");
	uco_executor_shutdown(ex, 0);
	return err ? uco_fail(err) : NULL;
}

Test(faults, executor_inbox, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "executor inbox", .kinds = FAULT_ALL,
	                               .task = executor_inbox_task });
}

/* ------------------------------------------------------------ combinators */

static void *combinators_task(void *arg)
{
	(void)arg;
	static const intptr_t ms[3] = { 1, 2, 3 };
	uco_task *t[3];
	void *values[3];
	int errors[3];
	int err = spawn_all(t, 3, sleeps_ms, ms);
	if (err)
		return uco_fail(err);
	err = uco_gather(t, 3, values, NULL, 0);
	if (!err && (values[0] != (void *)1 || values[2] != (void *)3))
		BAD("gather: wrong values");
	release_all(t, 3);

	/* COLLECT with one failure. */
	if (!err && !(err = uco_spawn(NULL, &t[0], fails_after_1ms, NULL))) {
		if (!(err = uco_spawn(NULL, &t[1], sleeps_ms, (void *)1))) {
			int r = uco_gather(t, 2, values, errors, UCO_GATHER_COLLECT);
			if (r < 0)
				err = r;
			else if (errors[0] != -EIO)
				BAD("gather COLLECT lost the failure");
			uco_task_release(t[1]);
		}
		uco_task_release(t[0]);
	}

	/* wait FIRST_COMPLETED, then next_completed over the rest. */
	if (!err && !(err = spawn_all(t, 3, sleeps_ms, ms))) {
		unsigned char done[3] = { 0 };
		int r = uco_wait(t, 3, UCO_WAIT_FIRST_COMPLETED, SOON(), done);
		if (r < 0)
			err = r;
		unsigned char taken[3] = { 0 };
		for (int i = 0; i < 3 && !err; i++) {
			r = uco_next_completed(t, 3, taken, SOON());
			if (r < 0)
				err = r;
		}
		uco_wait(t, 3, UCO_WAIT_ALL_COMPLETED, SOON(), NULL);
		release_all(t, 3);
	}

	/* wait_for that expires: the task is cancelled and waited for. */
	if (!err && !(err = uco_spawn(NULL, &t[0], wait_forever, NULL))) {
		int r = uco_wait_for(t[0], uco_now() + UCO_NS_PER_MS, NULL);
		if (r != -ETIMEDOUT)
			err = r ? r : -EPROTO;
		if (r == -ETIMEDOUT && uco_task_state_get(t[0]) == UCO_TASK_PENDING)
			BAD("wait_for returned before its task ended");
		if (r != -ETIMEDOUT) { /* it could not wait (no timer): stop it */
			uco_task_cancel(t[0]);
			uco_await(t[0], NULL);
		}
		uco_task_release(t[0]);
	}

	/* shield, and a gather as a task. */
	if (!err && !(err = uco_spawn(NULL, &t[0], sleeps_ms, (void *)1))) {
		void *v = NULL;
		err = uco_shield(t[0], &v);
		if (!err && v != (void *)1)
			BAD("shield: wrong value");
		uco_task_release(t[0]);
	}
	if (!err && !(err = spawn_all(t, 2, sleeps_ms, ms))) {
		uco_task *g;
		if (!(err = uco_spawn_gather(NULL, &g, t, 2, 0))) {
			err = uco_await(g, NULL);
			uco_task_release(g);
		} else {
			uco_gather(t, 2, NULL, NULL, UCO_GATHER_COLLECT); /* t must outlive */
		}
		release_all(t, 2);
	}
	return err ? uco_fail(err) : NULL;
}

Test(faults, combinators, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "combinators", .kinds = FAULT_ALL,
	                               .task = combinators_task });
}

static void *group_task(void *arg)
{
	(void)arg;
	uco_group *g;
	int err = uco_group_create(NULL, &g);
	if (err)
		return uco_fail(err);
	/* More members than the first array holds (8). */
	for (intptr_t i = 0; i < 10 && !err; i++)
		err = uco_group_spawn(g, NULL, i == 5 ? fails_after_1ms : sleeps_ms,
		                      (void *)(i % 3 + 1));
	int r = uco_group_wait(g);
	if (!err && r != -EIO && r >= 0)
		BAD("the group lost its member's failure");
	if (!err && r != -EIO)
		err = r;
	uco_group_destroy(g);
	return err ? uco_fail(err) : NULL;
}

Test(faults, groups, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "groups", .kinds = FAULT_ALL,
	                               .task = group_task });
}

/* ------------------------------------------------------------ synchronisation */

static void *chan_receiver(void *arg)
{
	uco_chan *c = arg;
	for (intptr_t i = 1; i <= 6; i++) {
		void *item;
		int r = uco_chan_recv_dl(c, &item, SOON());
		if (r == -ETIMEDOUT)
			BAD("a receiver timed out");
		if (r < 0) {
			uco_chan_close(c); /* the sender stops waiting */
			return uco_fail(r);
		}
		if (item != (void *)i)
			BAD("items out of order");
	}
	return NULL;
}

static void *chan_task(void *arg)
{
	size_t capacity = (size_t)(intptr_t)arg;
	uco_chan *c;
	int err = uco_chan_create(&c, capacity);
	if (err)
		return uco_fail(err);
	uco_task *rx;
	if (!(err = uco_spawn(NULL, &rx, chan_receiver, c))) {
		for (intptr_t i = 1; i <= 6 && !err; i++)
			err = uco_chan_send_dl(c, (void *)i, SOON());
		if (err)
			uco_chan_close(c); /* the receiver ends with -EPIPE */
		int r = uco_await(rx, NULL);
		err = err ? err : r;
		uco_task_release(rx);
	}
	/* A mutex and a semaphore allocate nothing: they must just work. */
	uco_mutex m;
	uco_mutex_init(&m);
	if (uco_mutex_lock_dl(&m, SOON()) || uco_mutex_unlock(&m))
		BAD("an uncontended mutex failed");
	if (uco_chan_destroy(c))
		BAD("a channel nobody waits on refused to go");
	return err ? uco_fail(err) : NULL;
}

static int body_chan(uco_loop **lp)
{
	int err = run_task(*lp, chan_task, (void *)0);
	return err ? err : run_task(*lp, chan_task, (void *)2);
}

Test(faults, sync_channels, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "channels", .kinds = FAULT_ALL,
	                               .body = body_chan });
}

/* ------------------------------------------------------------ signals */

static void setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	raise(SIGUSR1); /* pending until a signal wait takes it */
}

static void teardown_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	struct timespec zero = { 0, 0 };
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
}

static void on_usr2(int signo, void *user)
{
	(void)user;
	if (signo == SIGUSR2)
		fx.signal_seen++;
}

static void *signal_task(void *arg)
{
	uco_loop *loop = arg;
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, SIGUSR1);
	int r = uco_signal_wait(&one, SOON());
	if (r == -ETIMEDOUT)
		BAD("a pending signal was not seen");
	if (r < 0)
		return uco_fail(r);
	if (r != SIGUSR1)
		BAD("the wrong signal");
	r = uco_loop_on_signal(loop, SIGUSR2, on_usr2, NULL);
	if (r < 0)
		return uco_fail(r);
	raise(SIGUSR2);
	for (int i = 0; i < 200 && !fx.signal_seen; i++)
		if ((r = uco_sleep(UCO_NS_PER_MS)) < 0)
			return uco_fail(r);
	if (!fx.signal_seen)
		BAD("the signal handler never ran");
	return NULL;
}

static int body_signals(uco_loop **lp)
{
	return run_task(*lp, signal_task, *lp);
}

Test(faults, signals, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "signals", .kinds = FAULT_ALL,
	                               .setup = setup_signals, .body = body_signals,
	                               .teardown = teardown_signals });
}

/* ------------------------------------------------------------ many loops */

static void count_call(void *arg)
{
	(void)arg;
	fx.calls_run++;
}

static void *spawned_remotely(void *arg)
{
	(void)arg;
	fx.calls_run += 10;
	return NULL;
}

static void *waits_for_calls(void *arg)
{
	int want = (int)(intptr_t)arg;
	for (int i = 0; i < 200 && fx.calls_run < want; i++) {
		int r = uco_sleep(UCO_NS_PER_MS);
		if (r < 0)
			return uco_fail(r);
	}
	return NULL;
}

static int body_threadsafe(uco_loop **lp)
{
	uco_loop *loop = *lp;
	int want = 0;
	int err = uco_loop_call(loop, count_call, NULL);
	if (!err) {
		want += 1;
		err = uco_loop_spawn_threadsafe(loop, spawned_remotely, NULL);
		if (!err)
			want += 10;
	}
	/* The posts do not keep a loop running: a task waits for them. */
	int r = run_task(loop, waits_for_calls, (void *)(intptr_t)want);
	/* A remote spawn may itself fail on the loop, silently (its caller
	 * has long returned 0); the call must have run. */
	if (!r && want && fx.calls_run % 10 != 1)
		BAD("a posted call never ran");
	return err ? err : r;
}

Test(faults, loop_call_and_spawn_threadsafe, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "loop_call", .kinds = FAULT_ALL,
	                               .body = body_threadsafe });
}

/* xchan: items from a task of this loop to one on another thread's loop. */
static void *xchan_receiver(void *arg)
{
	(void)arg;
	for (intptr_t i = 1; i <= 3; i++) {
		void *item;
		int r = uco_xchan_recv_dl(fx.xc, &item, SOON());
		if (r == -ETIMEDOUT)
			BAD("an xchan receiver timed out");
		if (r < 0)
			return uco_fail(r);
		if (item != (void *)i)
			BAD("xchan items out of order");
	}
	return NULL;
}

static void *other_thread(void *arg)
{
	(void)arg;
	sem_wait(&fx.go);
	if (!fx.xc)
		return NULL;
	uco_loop_opts o = small_ring();
	uco_loop *loop;
	uco_task *t = NULL;
	int err = uco_loop_create(&loop, &o);
	if (err) {
		uco_xchan_close(fx.xc); /* so that the sender does not wait */
		return NULL;
	}
	if (uco_spawn(loop, &t, xchan_receiver, NULL) == 0) {
		/* Injected submit failures stop a run: go on until the task
		 * has ended (the injection stops after the sender's side). */
		while (uco_loop_run_until(loop, t, NULL) < 0 &&
		       uco_task_state_get(t) == UCO_TASK_PENDING)
			usleep(200);
		uco_task_release(t);
	}
	uco_xchan_close(fx.xc);
	while (uco_loop_run(loop) < 0)
		usleep(200);
	if (uco_loop_close(loop))
		BAD("the other loop did not close");
	return NULL;
}

static void setup_xchan(void)
{
	cr_assert_eq(sem_init(&fx.go, 0, 0), 0);
	cr_assert_eq(pthread_create(&fx.thread, NULL, other_thread, NULL), 0);
	fx.thread_started = true;
}

static void teardown_xchan(void)
{
	sem_post(&fx.go); /* in case the body never got that far */
	pthread_join(fx.thread, NULL);
	sem_destroy(&fx.go);
	if (fx.xc && uco_xchan_destroy(fx.xc))
		BAD("an xchan nobody waits on refused to go");
}

static void *xchan_sender(void *arg)
{
	(void)arg;
	int err = 0;
	for (intptr_t i = 1; i <= 3 && !err; i++) {
		err = uco_xchan_send_dl(fx.xc, (void *)i, SOON());
		if (err == -ETIMEDOUT)
			BAD("an xchan sender timed out");
	}
	return err ? uco_fail(err) : NULL;
}

static int body_xchan(uco_loop **lp)
{
	int err = uco_xchan_create(&fx.xc, 1);
	sem_post(&fx.go);
	if (err)
		return err;
	err = run_task(*lp, xchan_sender, NULL);
	if (err)
		uco_xchan_close(fx.xc); /* the receiver stops waiting */
	return err;
}

Test(faults, xchan_between_loops, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "xchan", .kinds = FAULT_ALL,
	                               .setup = setup_xchan, .body = body_xchan,
	                               .teardown = teardown_xchan });
}

static int run_threads_setup(uco_loop *loop, unsigned index, void *arg)
{
	(void)arg;
	return uco_spawn(loop, NULL, sleeps_ms, (void *)(intptr_t)(index + 1));
}

static int body_run_threads(uco_loop **lp)
{
	(void)lp;
	return uco_run_threads(2, 0, run_threads_setup, NULL);
}

Test(faults, run_threads, .timeout = 60)
{
	/* Not sticky for submits: a loop whose ring refuses every submit can
	 * never finish its tasks, and its thread must leave it (leaked, as
	 * the kernel may still hold their memory). */
	run_case(&(struct fault_case){ .name = "run_threads", .kinds = FAULT_ALL,
	                               .sticky_kinds = FAULT_ALL & ~FAULT_SUBMIT,
	                               .body = body_run_threads });
}

/* ------------------------------------------------------------ what the kernel answers */

/* -EAGAIN and -EBUSY are what io_uring_enter really answers when it is
 * short of memory or of CQ room: the loop retries them (once only: a
 * kernel that answers so forever keeps the loop retrying). */
static void submit_errors(int err)
{
	fault_submit_errno(err);
	run_case(&(struct fault_case){ .name = "timers, submit", .kinds = FAULT_SUBMIT,
	                               .task = timers_task, .once_only = true });
	run_case(&(struct fault_case){ .name = "pipe IO, submit", .kinds = FAULT_SUBMIT,
	                               .setup = setup_pipe, .task = pipe_io, .once_only = true });
	run_case(&(struct fault_case){ .name = "executor, submit", .kinds = FAULT_SUBMIT,
	                               .task = executor_task, .once_only = true });
	run_case(&(struct fault_case){ .name = "timer handles, submit", .kinds = FAULT_SUBMIT,
	                               .task = call_later_task, .once_only = true });
	run_case(&(struct fault_case){ .name = "subprocess, submit", .kinds = FAULT_SUBMIT,
	                               .task = subprocess_task, .once_only = true });
	fault_submit_errno(-ENOMEM);
}

Test(faults, submit_EAGAIN_is_retried, .timeout = 60)
{
	submit_errors(-EAGAIN);
}

Test(faults, submit_EBUSY_is_retried, .timeout = 60)
{
	submit_errors(-EBUSY);
}

/* ------------------------------------------------------------ closing */

static void never_runs(void *arg)
{
	(void)arg;
	fx.calls_run++;
}

/* A loop that closes before it ran the calls posted to it drops them, as
 * asyncio's close() does, and frees them (a remote spawn's too). */
Test(faults, calls_posted_to_a_loop_that_closes_are_freed)
{
	long allocs = fault_live_allocs();
	uco_loop_opts o = small_ring();
	uco_loop *loop = test_loop_opts(&o);
	reset_fx();
	cr_assert_eq(uco_loop_call(loop, never_runs, NULL), 0);
	cr_assert_eq(uco_loop_spawn_threadsafe(loop, spawned_remotely, NULL), 0);
	cr_assert_eq(uco_loop_close(loop), 0);
	cr_assert_eq(fx.calls_run, 0);
	cr_assert_eq(fault_live_allocs(), allocs, "%ld allocations leaked",
	             fault_live_allocs() - allocs);
}

/* Tasks that own a heap record (spawn_in_executor's call, spawn_gather's
 * arguments) free it even when cancelled before they first ran. */

Test(faults, owning_tasks_cancelled_before_they_ran_free_what_they_own)
{
	long allocs = fault_live_allocs();
	uco_loop_opts o = small_ring();
	uco_loop *loop = test_loop_opts(&o);
	uco_task *t[2];
	cr_assert_eq(uco_spawn_in_executor(loop, &t[0], NULL, returns_arg, NULL), 0);
	cr_assert_eq(uco_spawn_gather(loop, &t[1], t, 1, 0), 0);
	cr_assert_eq(uco_task_cancel(t[0]), 0);
	cr_assert_eq(uco_task_cancel(t[1]), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_state_get(t[0]), UCO_TASK_CANCELLED);
	cr_assert_eq(uco_task_state_get(t[1]), UCO_TASK_CANCELLED);
	uco_task_release(t[0]);
	uco_task_release(t[1]);
	cr_assert_eq(uco_loop_close(loop), 0);
	cr_assert_eq(fault_live_allocs(), allocs, "%ld allocations leaked",
	             fault_live_allocs() - allocs);
}

/* ------------------------------------------------------------ lost cancels */

/* A cancel is a request the cancelled task waits on: one lost because the
 * kernel refused submissions while the SQ was full would leave its task
 * waiting for good.  A tiny ring full of pipe reads, every one cancelled
 * while the kernel answers -EBUSY; once it takes submissions again, every
 * read must end cancelled. */
enum { CANCELLED_READERS = 64 };

static struct {
	int fds[2];
	uco_task *readers[CANCELLED_READERS];
	int res[CANCELLED_READERS];
	int ended;
	unsigned long refused;
} lc;

static void *blocked_reader(void *arg)
{
	char b[4];
	lc.res[(intptr_t)arg] = (int)uco_read(lc.fds[0], b, sizeof b, -1);
	lc.ended++;
	return NULL;
}

static void *cancels_while_refused(void *arg)
{
	(void)arg;
	uco_yield(); /* every read submitted, and the SQ empty again */
	fault_submit_errno(-EBUSY);
	fault_arm(FAULT_SUBMIT, 1, true);
	for (int i = 0; i < CANCELLED_READERS; i++)
		uco_task_cancel(lc.readers[i]);
	lc.refused = fault_disarm();
	fault_submit_errno(-ENOMEM);
	/* Until every read has ended, or long enough to say one never will
	 * (a timeout here only fails a test that is failing anyway). */
	for (int i = 0; i < 5000 && lc.ended < CANCELLED_READERS; i++)
		uco_sleep(UCO_NS_PER_MS);
	return NULL;
}

Test(faults, cancels_refused_by_a_full_ring_are_sent_later, .timeout = 60)
{
	uco_loop_opts o = { .ring_entries = 2 };
	uco_loop *loop = test_loop_opts(&o);
	cr_assert_eq(pipe(lc.fds), 0);
	for (intptr_t i = 0; i < CANCELLED_READERS; i++)
		cr_assert_eq(uco_spawn(loop, &lc.readers[i], blocked_reader, (void *)i), 0);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, cancels_while_refused, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	if (uco_loop_features(loop) & UCO_RING_EPOLL)
		/* The epoll backend takes every submission: each cancel went
		 * at once, and each read ended. */
		cr_assert_eq(lc.ended, CANCELLED_READERS);
	else
		cr_assert_gt(lc.refused, 0, "the kernel never refused: nothing was tested");
	int left = CANCELLED_READERS - lc.ended;
	if (left)
		cr_assert_eq(write(lc.fds[1], "xxxx", 4 * (size_t)left) >= 0, 1); /* let them go */
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(left, 0, "%d cancels were lost", left);
	for (int i = 0; i < CANCELLED_READERS; i++) {
		cr_assert_eq(lc.res[i], -ECANCELED, "reader %d: %d", i, lc.res[i]);
		uco_task_release(lc.readers[i]);
	}
	uco_task_release(t);
	close(lc.fds[0]);
	close(lc.fds[1]);
	cr_assert_eq(uco_loop_close(loop), 0);
}

/* ------------------------------------------------------------ context, spawn_wait */

/* Task-local context and spawn_wait: every allocation they make may fail.
 * However a set fails, each value a set accepted is destroyed exactly
 * once by the time the loop has closed (a failed set keeps nothing). */
static uco_ctx_key *ctx_keys[3];
static int ctx_vals[8];
static int ctx_given, ctx_destroyed;

static void ctx_count_destroyed(void *v)
{
	(void)v;
	ctx_destroyed++;
}

static void ctx_setup(void)
{
	ctx_given = ctx_destroyed = 0;
	for (int i = 0; i < 3; i++)
		cr_assert_eq(uco_ctx_key_create(&ctx_keys[i], ctx_count_destroyed), 0);
}

static void ctx_teardown(void)
{
	for (int i = 0; i < 3; i++)
		uco_ctx_key_delete(ctx_keys[i]);
	if (ctx_destroyed != ctx_given)
		BAD("a context value was not destroyed exactly once");
}

static void *ctx_child(void *arg)
{
	(void)arg;
	void *v = NULL;
	if (uco_ctx_get(ctx_keys[0], &v) != 0 || v != &ctx_vals[3])
		BAD("a child did not inherit its parent's value");
	int err = uco_ctx_set(ctx_keys[1], &ctx_vals[6]); /* copy on write */
	ctx_given += !err;
	return err ? uco_fail(err) : NULL;
}

static void *context_task(void *arg)
{
	(void)arg;
	int err = 0;
	for (int i = 0; i < 6 && !err; i++) {
		err = uco_ctx_set(ctx_keys[i % 3], &ctx_vals[i]); /* the second round replaces */
		ctx_given += !err;
	}
	uco_task *t[2], *w;
	if (!err && !(err = uco_spawn(NULL, &t[0], ctx_child, NULL))) {
		err = uco_await(t[0], NULL);
		uco_task_release(t[0]);
	}
	static const intptr_t ms[2] = { 1, 2 };
	if (!err && !(err = spawn_all(t, 2, sleeps_ms, ms))) {
		if (!(err = uco_spawn_wait(NULL, &w, t, 2, UCO_WAIT_ALL_COMPLETED, SOON(), NULL))) {
			void *v = NULL;
			err = uco_await(w, &v);
			/* A count short of 2 is allowed: no timer for the
			 * deadline makes uco_wait return at once (uco_wait(3)). */
			uintptr_t fin = (uco_task_state_get(t[0]) != UCO_TASK_PENDING) +
			                (uco_task_state_get(t[1]) != UCO_TASK_PENDING);
			if (!err && (uintptr_t)v != fin)
				BAD("spawn_wait: a count that is not the tasks' finished");
			uco_task_release(w);
		} else {
			uco_wait(t, 2, UCO_WAIT_ALL_COMPLETED, SOON(), NULL); /* t must outlive */
		}
		release_all(t, 2);
	}
	return err ? uco_fail(err) : NULL;
}

Test(faults, context_and_spawn_wait, .timeout = 60)
{
	run_case(&(struct fault_case){ .name = "context", .kinds = FAULT_ALL,
	                               .setup = ctx_setup, .task = context_task,
	                               .teardown = ctx_teardown });
}

/* ------------------------------------------------------------ the readiness backend */

/*
 * The epoll backend's own calls (FAULT_EPOLL, FAULT_WAIT, FAULT_IO,
 * FAULT_AGAIN) alone, on loops that ask for that backend: the faults-epoll
 * run fails them among all the others, and these cases cover them in the
 * default run too.
 */
#define EPOLL_KINDS (FAULT_EPOLL | FAULT_WAIT | FAULT_IO | FAULT_AGAIN)

/* UCO_BACKEND in the environment overrides a loop's choice: these cases
 * have nothing to fail where it says io_uring. */
static void skip_unless_epoll_allowed(void)
{
	const char *env = getenv("UCO_BACKEND");
	if (env && strcmp(env, "io_uring") == 0)
		cr_skip_test("UCO_BACKEND=io_uring: no readiness backend to fail");
}

static void run_epoll_case(struct fault_case c)
{
	skip_unless_epoll_allowed();
	forced_backend = UCO_BACKEND_EPOLL;
	run_case(&c);
	forced_backend = UCO_BACKEND_AUTO;
}

/* Creating the loop fails at each of the engine's calls (epoll_create1,
 * the eventfd, epoll_ctl for it, the allocations): an error, nothing
 * left. */
Test(faults, epoll_loop_create, .timeout = 60)
{
	run_epoll_case((struct fault_case){ .name = "epoll loop create", .kinds = FAULT_ALL,
	                                    .creates_loop = true, .body = body_loop_create });
}

/* Each of the engine's own set-up calls, by name: the loop is not made,
 * with that call's error, and nothing is left open. */
Test(faults, epoll_loop_create_each_call, .timeout = 60)
{
	static const struct {
		unsigned kinds;
		unsigned long nth;
		const char *fn;
		int err;
	} calls[] = {
		{ FAULT_EPOLL, 1, "epoll_create1", -EMFILE },
		{ FAULT_FD, 1, "eventfd", -EMFILE },
		{ FAULT_EPOLL, 2, "epoll_ctl", -ENOMEM }, /* the workers' eventfd */
	};
	skip_unless_epoll_allowed();
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		int fds = count_fds();
		long allocs = fault_live_allocs();
		uco_loop_opts o = { .ring_entries = 8, .backend = UCO_BACKEND_EPOLL };
		uco_loop *loop = NULL;
		fault_arm(calls[i].kinds, calls[i].nth, false);
		int r = uco_loop_create(&loop, &o);
		fault_disarm();
		cr_assert_str_eq(fault_first_failed(), calls[i].fn);
		cr_assert_eq(r, calls[i].err, "%s failed: create gives %d", calls[i].fn, r);
		cr_assert_null(loop);
		cr_assert_eq(count_fds(), fds, "%s failed: descriptors leaked", calls[i].fn);
		cr_assert_eq(fault_live_allocs(), allocs, "%s failed: allocations leaked",
		             calls[i].fn);
	}
}

/* More operations end at once in one turn than the small ring's CQ holds:
 * the epoll engine keeps the rest in its overflow list, which takes memory.
 * Where none is left, it takes no more SQEs until the loop has reaped (the
 * enter says -EBUSY, as the kernel's), so each write is done and reported
 * exactly once, and none is lost or aborts the process. */
#define OVERFLOW_WRITES 160 /* more than the CQ (8 entries: 64 CQEs) */

static void *writes_one_byte(void *arg)
{
	(void)arg;
	ssize_t n = uco_write(fx.fd[1], "x", 1, -1);
	return n == 1 ? NULL : uco_fail(n < 0 ? (int)n : -EIO);
}

static void *overflowing_turn(void *arg)
{
	(void)arg;
	uco_task *t[OVERFLOW_WRITES];
	size_t spawned = 0, written = 0;
	int err = 0;
	for (; spawned < OVERFLOW_WRITES; spawned++) {
		err = uco_spawn(NULL, &t[spawned], writes_one_byte, NULL);
		if (err)
			break;
	}
	/* They all run in the next turn, each queueing its write. */
	for (size_t i = 0; i < spawned; i++) {
		int r = uco_await(t[i], NULL);
		if (r == 0)
			written++;
		else if (r != -ENOMEM && !err)
			err = r;
		uco_task_release(t[i]);
	}
	char buf[OVERFLOW_WRITES + 1];
	ssize_t got = read(fx.fd[0], buf, sizeof buf); /* the pipe holds them all */
	if (got < 0 ? written != 0 : (size_t)got != written)
		BAD("a write was lost or reported twice");
	return err ? uco_fail(err) : NULL;
}

static void setup_nonblocking_pipe(void)
{
	cr_assert_eq(pipe2(fx.fd, O_CLOEXEC | O_NONBLOCK), 0);
}

Test(faults, epoll_cq_overflow_without_memory, .timeout = 120)
{
	run_epoll_case((struct fault_case){ .name = "epoll: CQ overflow", .kinds = FAULT_ALLOC,
	                                    .setup = setup_nonblocking_pipe,
	                                    .task = overflowing_turn });
}

/* Many reads wait on one pipe; the bytes come all at once, and more reads
 * end in that report than the CQ holds.  With memory short for good and
 * the engine's re-arm of the pipe for the reads still waiting refused (as
 * when another thread has closed it: EBADF), those fail with the error
 * instead of aborting the process, and none of them takes a byte: every
 * byte written is read exactly once, by a read that reported it, or left in
 * the pipe. */
#define OVERFLOW_READS 160

static void *reads_one_byte(void *arg)
{
	char b;
	ssize_t n = uco_read(fx.fd[0], &b, 1, -1);
	if (n == 1)
		++*(size_t *)arg;
	return n == 1 || n == -ENOMEM || n == -EBADF ? NULL : uco_fail(n < 0 ? (int)n : -EIO);
}

static void *overflowing_report(void *arg)
{
	(void)arg;
	uco_task *t[OVERFLOW_READS];
	size_t spawned = 0, read_ok = 0;
	int err = 0;
	for (; spawned < OVERFLOW_READS; spawned++) {
		err = uco_spawn(NULL, &t[spawned], reads_one_byte, &read_ok);
		if (err)
			break;
	}
	/* Every reader runs and parks on the empty pipe before this goes on
	 * (or fails without memory); then all the bytes come at once.  A
	 * sleep, not a yield: the readers' SQEs reach the engine at the end
	 * of the turn. */
	int r = uco_sleep(UCO_NS_PER_MS);
	if (r < 0 && r != -ENOMEM && !err)
		err = r;
	char buf[OVERFLOW_READS + 1];
	memset(buf, 'x', sizeof buf);
	ssize_t written = write(fx.fd[1], buf, OVERFLOW_READS);
	if (written < 0)
		written = 0;
	for (size_t i = 0; i < spawned; i++) {
		r = uco_await(t[i], NULL);
		if (r < 0 && r != -ENOMEM && !err)
			err = r;
		uco_task_release(t[i]);
	}
	ssize_t left = read(fx.fd[0], buf, sizeof buf);
	if (left < 0)
		left = 0;
	if (read_ok + (size_t)left != (size_t)written)
		BAD("a byte was lost or read twice");
	return err ? uco_fail(err) : NULL;
}

Test(faults, epoll_rearm_refused_with_the_cq_full, .timeout = 120)
{
	run_epoll_case((struct fault_case){ .name = "epoll: re-arm refused, CQ full",
	                                    .kinds = FAULT_ALLOC | FAULT_EPOLL_MOD,
	                                    .setup = setup_nonblocking_pipe,
	                                    .task = overflowing_report });
}

/* The IO cases, with only the engine's calls failing. */
Test(faults, epoll_io_calls, .timeout = 120)
{
	run_epoll_case((struct fault_case){ .name = "epoll: pipe IO", .kinds = EPOLL_KINDS,
	                                    .setup = setup_pipe, .task = pipe_io });
	run_epoll_case((struct fault_case){ .name = "epoll: socket IO", .kinds = EPOLL_KINDS,
	                                    .setup = setup_socketpair, .task = socket_io });
	run_epoll_case((struct fault_case){ .name = "epoll: accept/connect", .kinds = EPOLL_KINDS,
	                                    .setup = setup_listener, .task = accept_connect });
	run_epoll_case((struct fault_case){ .name = "epoll: file IO", .kinds = EPOLL_KINDS,
	                                    .setup = setup_file, .task = file_io,
	                                    .teardown = teardown_file });
	run_epoll_case((struct fault_case){ .name = "epoll: fixed files", .kinds = EPOLL_KINDS,
	                                    .setup = setup_socketpair, .task = fixed_io });
	run_epoll_case((struct fault_case){ .name = "epoll: acceptor", .kinds = EPOLL_KINDS,
	                                    .setup = setup_acceptor, .body = body_acceptor });
	run_epoll_case((struct fault_case){ .name = "epoll: bufring stream", .kinds = EPOLL_KINDS,
	                                    .setup = setup_stream, .body = body_stream });
	run_epoll_case((struct fault_case){ .name = "epoll: buffered stream", .kinds = EPOLL_KINDS,
	                                    .setup = setup_buffered_stream,
	                                    .task = buffered_stream_bufring_task });
}

Test(faults, epoll_timers_executor_signals, .timeout = 120)
{
	run_epoll_case((struct fault_case){ .name = "epoll: timers", .kinds = EPOLL_KINDS,
	                                    .task = timers_task });
	run_epoll_case((struct fault_case){ .name = "epoll: executor", .kinds = EPOLL_KINDS,
	                                    .task = executor_task });
	run_epoll_case((struct fault_case){ .name = "epoll: subprocess", .kinds = EPOLL_KINDS,
	                                    .task = subprocess_task });
	/* Once only: with every signalfd read failing from the nth on (and
	 * no allocation failing to end the case first), a handler can never
	 * be told of its signal; that is memory short for good, not a fault
	 * to survive. */
	run_epoll_case((struct fault_case){ .name = "epoll: signals", .kinds = EPOLL_KINDS,
	                                    .setup = setup_signals, .body = body_signals,
	                                    .teardown = teardown_signals, .once_only = true });
}

/* epoll_ctl(ADD) refused at the limit of /proc/sys/fs/epoll/max_user_watches
 * (ENOSPC) rather than for memory. */
Test(faults, epoll_ctl_ENOSPC, .timeout = 120)
{
	fault_epoll_ctl_errno(ENOSPC);
	run_epoll_case((struct fault_case){ .name = "epoll ENOSPC: pipe IO", .kinds = FAULT_EPOLL,
	                                    .setup = setup_pipe, .task = pipe_io });
	run_epoll_case((struct fault_case){ .name = "epoll ENOSPC: accept/connect",
	                                    .kinds = FAULT_EPOLL, .setup = setup_listener,
	                                    .task = accept_connect });
	run_epoll_case((struct fault_case){ .name = "epoll ENOSPC: acceptor", .kinds = FAULT_EPOLL,
	                                    .setup = setup_acceptor, .body = body_acceptor });
	fault_epoll_ctl_errno(ENOMEM);
}

/*
 * An operation that would block and whose epoll_ctl(ADD) is refused
 * completes with that error at once, and leaves nothing waiting: the byte
 * that arrives afterwards goes to the next read, not to a forgotten one.
 */
static int ctl_refused_op(int kind, int fd)
{
	char b;
	switch (kind) {
	case 0: return (int)uco_read_dl(fd, &b, 1, -1, SOON());
	case 1: return (int)uco_recv_dl(fd, &b, 1, 0, SOON());
	case 2: return uco_poll_dl(fd, POLLIN, SOON());
	default: return uco_accept_dl(fd, NULL, NULL, SOCK_CLOEXEC, SOON());
	}
}

static void *ctl_refused_task(void *arg)
{
	(void)arg;
	uco_sleep(UCO_NS_PER_MS); /* the loop's own descriptors in the epoll set */
	for (int kind = 0; kind < 4; kind++) {
		int fd = kind == 0 ? fx.fd[0] : kind == 3 ? fx.listen_fd : fx.fd[2];
		fault_arm(FAULT_EPOLL, 1, false);
		int r = ctl_refused_op(kind, fd);
		unsigned long failed = fault_disarm();
		if (failed != 1 || r != -ENOSPC) {
			fprintf(stderr, "kind %d: %d, %lu failed\n", kind, r, failed);
			BAD("an operation whose epoll_ctl failed did not end with its error");
			return NULL;
		}
		/* Now what it waited for comes: the next one gets it. */
		int c = -1;
		if (kind == 0)
			r = (int)write(fx.fd[1], "a", 1);
		else if (kind == 3) {
			/* Loopback: the connection is in the backlog at once. */
			c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			r = c < 0 ? c : connect(c, (struct sockaddr *)&fx.addr, sizeof fx.addr);
		} else
			r = (int)write(fx.fd[3], "b", 1);
		if (r < 0) {
			BAD("the test's own write or connect failed");
			return NULL;
		}
		uco_sleep(UCO_NS_PER_MS); /* a forgotten waiter would take it here */
		r = ctl_refused_op(kind, fd);
		if (kind == 3 && r >= 0)
			close(r);
		if (kind == 2 && r > 0) { /* poll consumes nothing: read the byte */
			char b;
			r = (int)uco_recv_dl(fd, &b, 1, 0, SOON());
		}
		if (c >= 0)
			close(c);
		if (r <= 0 || (kind != 3 && kind != 2 && r != 1))
			BAD("the operation after the refused one did not get what came");
	}
	return NULL;
}

Test(faults, epoll_ctl_refused_ends_the_operation, .timeout = 60)
{
	skip_unless_epoll_allowed();
	int fds = count_fds();
	long allocs = fault_live_allocs();
	uco_loop_opts o = { .ring_entries = 8, .backend = UCO_BACKEND_EPOLL };
	uco_loop *loop = test_loop_opts(&o);
	reset_fx();
	setup_listener();
	cr_assert_eq(pipe2(fx.fd, O_CLOEXEC), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fx.fd + 2), 0);
	fault_epoll_ctl_errno(ENOSPC);
	cr_assert_eq(run_task(loop, ctl_refused_task, NULL), 0);
	fault_epoll_ctl_errno(ENOMEM);
	cr_assert(!fx.bad, "%s", fx.bad);
	cr_assert_eq(uco_loop_run(loop), 0);
	close_fx();
	cr_assert_eq(uco_loop_close(loop), 0);
	cr_assert_eq(count_fds(), fds, "%d descriptors leaked", count_fds() - fds);
	cr_assert_eq(fault_live_allocs(), allocs, "%ld allocations leaked",
	             fault_live_allocs() - allocs);
}

/*
 * A wait a signal interrupts (EINTR) changes nothing: sleeps never end
 * early, readiness that came meanwhile is still seen, for each wait of
 * the run in turn.
 */
static void *interrupted_waits_task(void *arg)
{
	(void)arg;
	for (int i = 1; i <= 5; i++) {
		int64_t until = uco_now() + i * UCO_NS_PER_MS;
		int r = uco_sleep_until(until);
		if (r)
			return uco_fail(r);
		if (uco_now() < until)
			BAD("an interrupted wait ended a sleep early");
	}
	char b = 'w', c = 0;
	if (write(fx.fd[1], &b, 1) != 1)
		return uco_fail(-errno);
	ssize_t n = uco_read_dl(fx.fd[0], &c, 1, -1, SOON());
	if (n == -ETIMEDOUT)
		BAD("an interrupted wait lost the readiness");
	return n < 0 ? uco_fail((int)n) : NULL;
}

Test(faults, epoll_wait_interrupted_changes_nothing, .timeout = 60)
{
	run_epoll_case((struct fault_case){ .name = "epoll: interrupted waits", .kinds = FAULT_WAIT,
	                                    .setup = setup_pipe, .task = interrupted_waits_task,
	                                    .once_only = true });
}

/* The same before Linux 5.11 (no epoll_pwait2): the wait is epoll_wait's,
 * in milliseconds rounded up, and sleeps still never end early. */
Test(faults, epoll_wait_without_pwait2, .timeout = 60)
{
	fault_no_epoll_pwait2(true);
	run_epoll_case((struct fault_case){ .name = "epoll_wait: interrupted waits",
	                                    .kinds = FAULT_WAIT, .setup = setup_pipe,
	                                    .task = interrupted_waits_task, .once_only = true });
	run_epoll_case((struct fault_case){ .name = "epoll_wait: timers", .kinds = EPOLL_KINDS,
	                                    .task = timers_task });
	fault_no_epoll_pwait2(false);
}

/*
 * A wait that cannot be timed (no memory to grow the timer heap) ends
 * with -ENOMEM and leaves its descriptor as if never waited on: once the
 * user closes it with close(2) and gets its number back for a new pipe, a
 * read there must still see the data that comes.
 */
enum { HEAP_FIRST = 256, SLAB_GROW = 300 }; /* the engine's first heap; > one slab */

static struct {
	int a[2], b[2];
	int ended;
} hf;

static void *heap_reader(void *arg)
{
	char c;
	if (uco_read_dl(hf.a[0], &c, 1, -1, arg ? SOON() : -1) == 1)
		hf.ended++;
	return NULL;
}

static void *writes_b_later(void *arg)
{
	(void)arg;
	uco_sleep(UCO_NS_PER_MS);
	if (write(hf.b[1], "b", 1) != 1)
		BAD("the test's write failed");
	return NULL;
}

static int spawn_readers(int n, bool deadline)
{
	for (int i = 0; i < n; i++) {
		int err = uco_spawn(NULL, NULL, heap_reader, deadline ? (void *)1 : NULL);
		if (err)
			return err;
	}
	return 0;
}

static int release_readers(int n)
{
	char bytes[SLAB_GROW] = { 0 };
	hf.ended = 0;
	if (write(hf.a[1], bytes, (size_t)n) != n)
		return -EIO;
	while (hf.ended < n)
		uco_sleep(UCO_NS_PER_MS);
	return 0;
}

static void *heap_full_task(void *arg)
{
	(void)arg;
	/* More operation records than one slab: the engine keeps them. */
	int err = spawn_readers(SLAB_GROW, false);
	if (!err)
		uco_sleep(UCO_NS_PER_MS);
	if (!err)
		err = release_readers(SLAB_GROW);
	/* The heap full of timed reads, then one more on another pipe. */
	if (!err)
		err = spawn_readers(HEAP_FIRST, true);
	if (err)
		return uco_fail(err);
	uco_yield(); /* they run and submit first */
	fault_arm(FAULT_ALLOC, 1, false);
	char c;
	ssize_t r = uco_read_dl(hf.b[0], &c, 1, -1, SOON());
	fault_disarm();
	if (strcmp(fault_first_failed(), "realloc") || r != -ENOMEM) {
		fprintf(stderr, "heap full: %zd, %s failed\n", r, fault_first_failed());
		BAD("the read past the full heap did not fail for the heap's memory");
	}
	int old = hf.b[0];
	close(hf.b[0]);
	close(hf.b[1]);
	if ((err = release_readers(HEAP_FIRST)))
		return uco_fail(err);
	if (pipe2(hf.b, O_CLOEXEC))
		return uco_fail(-errno);
	if (hf.b[0] != old)
		BAD("the new pipe did not get the old number: nothing tested");
	if ((err = uco_spawn(NULL, NULL, writes_b_later, NULL)))
		return uco_fail(err);
	r = uco_read_dl(hf.b[0], &c, 1, -1, SOON());
	if (r != 1)
		BAD("a read on a reused descriptor number never saw its data");
	return NULL;
}

Test(faults, epoll_heap_full_leaves_no_stale_interest, .timeout = 60)
{
	skip_unless_epoll_allowed();
	uco_loop_opts o = { .ring_entries = 8, .backend = UCO_BACKEND_EPOLL };
	uco_loop *loop = test_loop_opts(&o);
	reset_fx();
	cr_assert_eq(pipe2(hf.a, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(hf.b, O_CLOEXEC), 0);
	cr_assert_eq(run_task(loop, heap_full_task, NULL), 0);
	cr_assert(!fx.bad, "%s", fx.bad);
	cr_assert_eq(uco_loop_close(loop), 0);
	close(hf.a[0]);
	close(hf.a[1]);
	close(hf.b[0]);
	close(hf.b[1]);
}

/*
 * More completions at once than the CQ holds (the engine keeps the rest
 * for later, as the kernel's overflow list does) while memory is short:
 * no crash, and each read ends exactly once with its byte when memory is
 * back.  The readers are parked first; then every allocation from the nth
 * on fails while the bytes arrive.
 */
static void *overflow_task(void *arg)
{
	unsigned long nth = (unsigned long)(uintptr_t)arg;
	int err = spawn_readers(SLAB_GROW, false);
	if (err)
		return uco_fail(err);
	uco_sleep(UCO_NS_PER_MS);
	char bytes[SLAB_GROW] = { 0 };
	hf.ended = 0;
	fault_arm(FAULT_ALLOC, nth, true);
	if (write(hf.a[1], bytes, SLAB_GROW) != SLAB_GROW)
		BAD("the test's write failed");
	for (int i = 0; i < 20 && hf.ended < SLAB_GROW; i++)
		uco_yield(); /* turns of the loop, short of memory */
	fault_disarm();
	while (hf.ended < SLAB_GROW)
		uco_sleep(UCO_NS_PER_MS);
	return NULL;
}

/* Run `task` (given the nth allocation to fail from) on fresh epoll loops
 * for nth = 1 .. most, on hf.a: a pipe, or the file at `path`. */
static void past_the_cq(uco_fn task, uintptr_t most, const char *path)
{
	skip_unless_epoll_allowed();
	for (uintptr_t nth = 1; nth <= most; nth++) {
		uco_loop_opts o = { .ring_entries = 8, .backend = UCO_BACKEND_EPOLL };
		uco_loop *loop = test_loop_opts(&o);
		reset_fx();
		if (path)
			cr_assert_geq(hf.a[0] = hf.a[1] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600),
			              0);
		else
			cr_assert_eq(pipe2(hf.a, O_CLOEXEC), 0);
		cr_assert_eq(run_task(loop, task, (void *)nth), 0);
		cr_assert(!fx.bad, "%s", fx.bad);
		cr_assert_eq(hf.ended, SLAB_GROW);
		cr_assert_eq(uco_loop_close(loop), 0);
		close(hf.a[0]);
		if (!path)
			close(hf.a[1]);
	}
}

Test(faults, epoll_completions_past_the_cq_while_memory_is_short, .timeout = 60)
{
	past_the_cq(overflow_task, 8, NULL);
}

/* The same for deadlines: more timed reads than the CQ holds expire
 * together while memory is short. */
static void *heap_reader_until(void *arg)
{
	char c;
	int64_t deadline = *(const int64_t *)arg;
	if (uco_read_dl(hf.a[0], &c, 1, -1, deadline) == -ETIMEDOUT)
		hf.ended++;
	return NULL;
}

static void *expiry_overflow_task(void *arg)
{
	unsigned long nth = (unsigned long)(uintptr_t)arg;
	static int64_t deadline;
	deadline = uco_now() + 20 * UCO_NS_PER_MS;
	hf.ended = 0;
	for (int i = 0; i < SLAB_GROW; i++) {
		int err = uco_spawn(NULL, NULL, heap_reader_until, &deadline);
		if (err)
			return uco_fail(err);
	}
	uco_sleep(UCO_NS_PER_MS); /* all parked */
	fault_arm(FAULT_ALLOC, nth, true);
	while (uco_now() < deadline + 2 * UCO_NS_PER_MS)
		uco_yield(); /* turns of the loop, short of memory */
	fault_disarm();
	while (hf.ended < SLAB_GROW)
		uco_sleep(UCO_NS_PER_MS);
	return NULL;
}

Test(faults, epoll_expiries_past_the_cq_while_memory_is_short, .timeout = 60)
{
	past_the_cq(expiry_overflow_task, 4, NULL);
}

/* The same for the file workers' results: many fsyncs end together while
 * memory is short. */
static void *fsyncs(void *arg)
{
	(void)arg;
	uco_fsync(hf.a[0], 1); /* done, or -ENOMEM */
	hf.ended++;
	return NULL;
}

static void *worker_overflow_task(void *arg)
{
	unsigned long nth = (unsigned long)(uintptr_t)arg;
	hf.ended = 0;
	for (int i = 0; i < SLAB_GROW; i++) {
		int err = uco_spawn(NULL, NULL, fsyncs, NULL);
		if (err)
			return uco_fail(err);
	}
	fault_arm(FAULT_ALLOC, nth, true);
	for (int i = 0; i < 200 && hf.ended < SLAB_GROW; i++)
		uco_yield(); /* turns of the loop, short of memory */
	fault_disarm();
	while (hf.ended < SLAB_GROW)
		uco_sleep(UCO_NS_PER_MS);
	return NULL;
}

Test(faults, epoll_worker_results_past_the_cq_while_memory_is_short, .timeout = 60)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/uco-faults-w-%d", (int)getpid());
	past_the_cq(worker_overflow_task, 4, path);
	unlink(path);
}
