/* SPDX-License-Identifier: MIT */
/* IO through the ring: pipes, TCP on loopback, files; deadlines,
 * cancellation with stack buffers, bad descriptors, batching. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "helpers.h"

static int ticks;

static void *ticker(void *arg)
{
	int *stop = arg;
	while (!*stop) {
		uco_sleep(UCO_NS_PER_MS);
		ticks++;
	}
	return NULL;
}

struct pipe_case {
	int fds[2];
	int stop;
	char got[32];
	ssize_t n;
};

static void *pipe_reader(void *arg)
{
	struct pipe_case *c = arg;
	c->n = uco_read(c->fds[0], c->got, sizeof c->got, -1);
	c->stop = 1;
	return NULL;
}

static void *pipe_writer(void *arg)
{
	struct pipe_case *c = arg;
	uco_sleep(5 * UCO_NS_PER_MS);
	cr_assert_eq(uco_write(c->fds[1], "hello", 5, -1), 5);
	return NULL;
}

Test(io, a_read_blocks_only_its_coroutine)
{
	uco_loop *loop = test_loop();
	struct pipe_case c = { .n = -1 };
	cr_assert_eq(pipe(c.fds), 0);
	ticks = 0;
	cr_assert_eq(uco_spawn(loop, NULL, pipe_reader, &c), 0);
	cr_assert_eq(uco_spawn(loop, NULL, pipe_writer, &c), 0);
	cr_assert_eq(uco_spawn(loop, NULL, ticker, &c.stop), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(c.n, 5);
	cr_assert_arr_eq(c.got, "hello", 5);
	cr_assert_gt(ticks, 0, "the loop ran other tasks while the read waited");
	close(c.fds[0]);
	close(c.fds[1]);
	test_close(loop);
}

struct deadline_case {
	int fd;
	ssize_t forever_after_data, once_empty, deadline_empty, once_full;
	int64_t waited;
};

static void *reads_with_deadlines(void *arg)
{
	struct deadline_case *c = arg;
	char buf[16];
	c->once_empty = uco_read_dl(c->fd, buf, sizeof buf, -1, 0);
	int64_t t0 = uco_now();
	c->deadline_empty = uco_read_dl(c->fd, buf, sizeof buf, -1, t0 + 20 * UCO_NS_PER_MS);
	c->waited = uco_now() - t0;
	return NULL;
}

Test(io, deadlines_time_out_and_try_once)
{
	uco_loop *loop = test_loop();
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct deadline_case c = { .fd = fds[0] };
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, reads_with_deadlines, &c), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(c.once_empty, -ETIMEDOUT, "try once on an empty pipe: %zd", c.once_empty);
	cr_assert_eq(c.deadline_empty, -ETIMEDOUT, "%zd", c.deadline_empty);
	cr_assert_geq(c.waited, 20 * UCO_NS_PER_MS, "never before the deadline");
	uco_task_release(t);

	/* Data already there: the try-once read gets it, the deadline loses. */
	cr_assert_eq(write(fds[1], "abc", 3), 3);
	cr_assert_eq(uco_spawn(loop, &t, reads_with_deadlines, &c), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(c.once_empty, 3, "the data wins over an expired deadline");
	uco_task_release(t);
	close(fds[0]);
	close(fds[1]);
	test_close(loop);
}

struct cancel_read {
	int fd;
	ssize_t res;
};

static void *reads_into_its_stack(void *arg)
{
	struct cancel_read *c = arg;
	char stack_buf[64];
	memset(stack_buf, 'x', sizeof stack_buf);
	c->res = uco_read(c->fd, stack_buf, sizeof stack_buf, -1);
	/* Return: this stack frame is gone, and so must the kernel's use of
	 * stack_buf be. */
	return NULL;
}

static void *cancels_soon(void *arg)
{
	uco_sleep(2 * UCO_NS_PER_MS);
	cr_assert_eq(uco_task_cancel(arg), 0);
	return NULL;
}

Test(io, a_cancelled_read_returns_after_the_kernel_let_go_of_its_buffer)
{
	uco_loop *loop = test_loop();
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct cancel_read c = { fds[0], 0 };
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, reads_into_its_stack, &c), 0);
	cr_assert_eq(uco_spawn(loop, NULL, cancels_soon, t), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(c.res, -ECANCELED);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE, "it returned normally");
	/* The cancelled read consumed nothing: data written now is all there
	 * for the next reader, and nothing went into the old stack buffer. */
	cr_assert_eq(write(fds[1], "later", 5), 5);
	char buf[8];
	cr_assert_eq(read(fds[0], buf, sizeof buf), 5);
	uco_task_release(t);
	close(fds[0]);
	close(fds[1]);
	test_close(loop);
}

/* ---- TCP on loopback */

struct tcp_case {
	int listener;
	struct sockaddr_in addr;
	char echoed[64];
	ssize_t got;
	int accepted;
};

static void *tcp_server(void *arg)
{
	struct tcp_case *c = arg;
	int fd = uco_accept(c->listener, NULL, NULL, SOCK_CLOEXEC);
	c->accepted = fd;
	if (fd < 0)
		return uco_fail(fd);
	char buf[64];
	ssize_t n = uco_recv(fd, buf, sizeof buf, 0);
	if (n > 0)
		cr_assert_eq(uco_send(fd, buf, (size_t)n, 0), n);
	cr_assert_eq(uco_close(fd), 0);
	return NULL;
}

static void *tcp_client(void *arg)
{
	struct tcp_case *c = arg;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	int r = uco_connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr);
	cr_assert_eq(r, 0, "connect: %d", r);
	cr_assert_eq(uco_send(fd, "ping over io_uring", 18, 0), 18);
	c->got = uco_recv(fd, c->echoed, sizeof c->echoed, 0);
	cr_assert_eq(uco_close(fd), 0);
	return NULL;
}

static int listen_loopback(struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	memset(addr, 0, sizeof *addr);
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)addr, sizeof *addr), 0);
	socklen_t len = sizeof *addr;
	cr_assert_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	cr_assert_eq(listen(fd, 16), 0);
	return fd;
}

Test(io, tcp_accept_connect_send_recv_on_loopback)
{
	uco_loop *loop = test_loop();
	struct tcp_case c = { .got = -1 };
	c.listener = listen_loopback(&c.addr);
	cr_assert_eq(uco_spawn(loop, NULL, tcp_server, &c), 0);
	cr_assert_eq(uco_spawn(loop, NULL, tcp_client, &c), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_geq(c.accepted, 0);
	cr_assert_eq(c.got, 18);
	cr_assert_arr_eq(c.echoed, "ping over io_uring", 18);
	close(c.listener);
	test_close(loop);
}

static void *bad_input(void *arg)
{
	(void)arg;
	char buf[8];
	cr_assert_eq(uco_read(-1, buf, sizeof buf, -1), -EBADF);
	cr_assert_eq(uco_write(12345, buf, sizeof buf, -1), -EBADF);
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	close(l); /* nothing listens there now */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(uco_connect(fd, (struct sockaddr *)&addr, sizeof addr), -ECONNREFUSED);
	close(fd);
	cr_assert_eq(uco_accept_dl(-1, NULL, NULL, 0, UCO_FOREVER), -EBADF);
	return "healthy";
}

Test(io, bad_input_gets_errno_and_the_loop_stays_healthy)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, bad_input, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_str_eq(v, "healthy");
	uco_task_release(t);
	char buf[4];
	cr_assert_eq(uco_read(0, buf, sizeof buf, -1), -EPERM, "outside a coroutine");
	test_close(loop);
}

/* ---- files */

/* Run fn(path) as a task on a fresh loop, with a new temporary file at
 * path, removed afterwards. */
static void run_on_temp_file(uco_fn fn)
{
	uco_loop *loop = test_loop();
	char path[] = "/tmp/uco-test-XXXXXX";
	int tmp = mkstemp(path);
	cr_assert_geq(tmp, 0);
	close(tmp);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, fn, path), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	unlink(path);
	uco_task_release(t);
	test_close(loop);
}

static void *file_round_trip(void *arg)
{
	const char *path = arg;
	int fd = uco_openat(AT_FDCWD, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "openat: %d", fd);
	cr_assert_eq(uco_write(fd, "0123456789", 10, 0), 10);
	cr_assert_eq(uco_write(fd, "AB", 2, 4), 2);
	cr_assert_eq(uco_fsync(fd, 0), 0);
	cr_assert_eq(uco_fsync(fd, 1), 0);
	char buf[16] = { 0 };
	cr_assert_eq(uco_read(fd, buf, sizeof buf, 0), 10);
	cr_assert_str_eq(buf, "0123AB6789");
	cr_assert_eq(uco_read(fd, buf, sizeof buf, 10), 0, "end of file");
	cr_assert_eq(uco_close(fd), 0);
	cr_assert_eq(uco_close(fd), -EBADF, "closed once");
	cr_assert_eq(uco_openat(AT_FDCWD, "/nonexistent/dir/file", O_RDONLY, 0), -ENOENT);
	return NULL;
}

Test(io, files_open_write_at_offsets_sync_read_close)
{
	run_on_temp_file(file_round_trip);
}

/* ---- poll, and batching of many operations */

static void *polls(void *arg)
{
	int *fds = arg;
	return (void *)(intptr_t)uco_poll(fds[0], POLLIN);
}

static void *writes_later(void *arg)
{
	int *fds = arg;
	uco_sleep(2 * UCO_NS_PER_MS);
	cr_assert_eq(write(fds[1], "x", 1), 1);
	return NULL;
}

Test(io, poll_waits_for_readiness)
{
	uco_loop *loop = test_loop();
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, polls, fds), 0);
	cr_assert_eq(uco_spawn(loop, NULL, writes_later, fds), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert((intptr_t)v & POLLIN);
	uco_task_release(t);
	close(fds[0]);
	close(fds[1]);
	test_close(loop);
}

static void *reads_one(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c;
	return (void *)(intptr_t)uco_read(fd, &c, 1, -1);
}

Test(io, many_concurrent_reads_cost_few_system_calls)
{
	uco_loop *loop = test_loop();
	/* Readiness equivalent (for the epoll backend): a read whose data is
	 * there is one read(2) and no epoll_ctl or epoll_wait, which a
	 * counter of epoll calls in uco_loop_stats could check. */
	skip_on_epoll(loop, "SQEs batched into few io_uring_enter calls");
	enum { N = 200 };
	int fds[N][2];
	uco_task *t[N];
	for (int i = 0; i < N; i++) {
		cr_assert_eq(pipe(fds[i]), 0);
		cr_assert_eq(write(fds[i][1], "y", 1), 1);
		cr_assert_eq(uco_spawn(loop, &t[i], reads_one, (void *)(intptr_t)fds[i][0]), 0);
	}
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	for (int i = 0; i < N; i++) {
		void *v;
		cr_assert_eq(uco_task_result(t[i], &v), 0);
		cr_assert_eq((intptr_t)v, 1);
		uco_task_release(t[i]);
		close(fds[i][0]);
		close(fds[i][1]);
	}
	cr_assert_geq(s.sqes_submitted, N);
	cr_assert_leq(s.submit_calls, 5, "%lu system calls for %d reads",
	              (unsigned long)s.submit_calls, N);
	test_close(loop);
}

/* ---- vectored IO, fallocate, statx, splice */

static void *file_ops(void *arg)
{
	const char *path = arg;
	int fd = uco_openat(AT_FDCWD, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	struct iovec out[2] = { { "head-", 5 }, { "tail", 4 } };
	cr_assert_eq(uco_writev(fd, out, 2, 0), 9);
	char a[5], b[4];
	struct iovec in[2] = { { a, 5 }, { b, 4 } };
	cr_assert_eq(uco_readv(fd, in, 2, 0), 9);
	cr_assert_arr_eq(a, "head-", 5);
	cr_assert_arr_eq(b, "tail", 4);
	cr_assert_eq(uco_fallocate(fd, 0, 0, 65536), 0);
	struct statx st;
	cr_assert_eq(uco_statx(AT_FDCWD, path, 0, STATX_SIZE, &st), 0);
	cr_assert_eq(st.stx_size, 65536);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(uco_splice(fd, 0, p[1], -1, 9, 0), 9, "file to pipe");
	char back[9];
	cr_assert_eq(uco_read(p[0], back, 9, -1), 9);
	cr_assert_arr_eq(back, "head-tail", 9);
	close(p[0]);
	close(p[1]);
	cr_assert_eq(uco_close(fd), 0);
	return NULL;
}

Test(io, vectored_io_fallocate_statx_splice)
{
	run_on_temp_file(file_ops);
}

/* ---- UDP */

static void *udp_exchange(void *arg)
{
	(void)arg;
	int a = uco_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int b = uco_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(a, 0);
	cr_assert_geq(b, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof addr;
	cr_assert_eq(bind(b, (struct sockaddr *)&addr, sizeof addr), 0);
	cr_assert_eq(getsockname(b, (struct sockaddr *)&addr, &len), 0);

	struct iovec iov = { "datagram", 8 };
	struct msghdr out = { .msg_name = &addr, .msg_namelen = sizeof addr, .msg_iov = &iov,
	                      .msg_iovlen = 1 };
	cr_assert_eq(uco_sendmsg(a, &out, 0), 8);
	char buf[32];
	struct sockaddr_in from;
	struct iovec in_iov = { buf, sizeof buf };
	struct msghdr in = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &in_iov,
	                     .msg_iovlen = 1 };
	cr_assert_eq(uco_recvmsg(b, &in, 0), 8);
	cr_assert_arr_eq(buf, "datagram", 8);
	cr_assert_eq(in.msg_namelen, sizeof from);
	cr_assert_eq(uco_recvmsg_dl(b, &in, 0, uco_now() + 5 * UCO_NS_PER_MS), -ETIMEDOUT);
	uco_close(a);
	uco_close(b);
	return NULL;
}

Test(io, udp_sendmsg_recvmsg_on_loopback)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, udp_exchange, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	uco_task_release(t);
	test_close(loop);
}

/* ---- a few megabytes echoed, byte for byte */

enum { ECHO_BYTES = 4 << 20 };

static void *echo_back(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096]; /* its own: a thousand of these run at once */
	for (;;) {
		ssize_t n = uco_recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		cr_assert_eq(uco_write_all(fd, buf, (size_t)n, UCO_FOREVER), n);
	}
	uco_close(fd);
	return NULL;
}

static void *sends_and_checks(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *out = malloc(ECHO_BYTES), *in = malloc(ECHO_BYTES);
	for (size_t i = 0; i < ECHO_BYTES; i++)
		out[i] = (char)(i * 2654435761u >> 24);
	size_t sent = 0, got = 0;
	while (got < ECHO_BYTES) {
		if (sent < ECHO_BYTES) {
			size_t chunk = ECHO_BYTES - sent < 100000 ? ECHO_BYTES - sent : 100000;
			cr_assert_eq(uco_write_all(fd, out + sent, chunk, UCO_FOREVER), (ssize_t)chunk);
			sent += chunk;
		}
		size_t want = sent - got;
		cr_assert_eq(uco_read_full(fd, in + got, want, UCO_FOREVER), (ssize_t)want);
		got += want;
	}
	cr_assert_eq(memcmp(out, in, ECHO_BYTES), 0, "every byte came back");
	uco_shutdown(fd, SHUT_WR);
	char c;
	cr_assert_eq(uco_read_full(fd, &c, 1, UCO_FOREVER), 0, "end of file is reported as 0");
	uco_close(fd);
	free(out);
	free(in);
	return NULL;
}

Test(io, megabytes_echoed_between_two_coroutines)
{
	uco_loop *loop = test_loop();
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, NULL, echo_back, (void *)(intptr_t)sv[0]), 0);
	cr_assert_eq(uco_spawn(loop, &t, sends_and_checks, (void *)(intptr_t)sv[1]), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE);
	uco_task_release(t);
	test_close(loop);
}

/* ---- a thousand connections through the multishot acceptor */

enum { CONNS = 1000 };

struct server {
	uco_acceptor *acceptor;
	int served;
};

static void *serves(void *arg)
{
	struct server *s = arg;
	while (s->served < CONNS) {
		int fd = uco_acceptor_next(s->acceptor);
		if (fd < 0)
			return uco_fail(fd);
		s->served++;
		cr_assert_eq(uco_spawn(NULL, NULL, echo_back, (void *)(intptr_t)fd), 0);
	}
	cr_assert_eq(uco_acceptor_close(s->acceptor), 0);
	return NULL;
}

static struct sockaddr_in server_addr;
static int clients_ok;

static void *client(void *arg)
{
	intptr_t id = (intptr_t)arg;
	int fd = uco_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	int r = uco_connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr);
	if (r)
		return uco_fail(r);
	char msg[16], back[16];
	snprintf(msg, sizeof msg, "client %5ld", (long)id);
	cr_assert_eq(uco_write_all(fd, msg, sizeof msg, UCO_FOREVER), (ssize_t)sizeof msg);
	cr_assert_eq(uco_read_full(fd, back, sizeof back, UCO_FOREVER), (ssize_t)sizeof back);
	if (memcmp(msg, back, sizeof msg) == 0)
		clients_ok++;
	uco_close(fd);
	return NULL;
}

Test(io, a_thousand_concurrent_connections_on_one_loop, .timeout = 60)
{
	uco_loop *loop = test_loop();
	int l = listen_loopback(&server_addr);
	cr_assert_eq(listen(l, 1024), 0);
	struct server s = { NULL, 0 };
	cr_assert_eq(uco_acceptor_open(loop, &s.acceptor, l, SOCK_CLOEXEC), 0);
	uco_task *server;
	cr_assert_eq(uco_spawn(loop, &server, serves, &s), 0);
	for (intptr_t i = 0; i < CONNS; i++)
		cr_assert_eq(uco_spawn(loop, NULL, client, (void *)i), 0);
	cr_assert_eq(uco_loop_run(loop), 0, "closing the acceptor lets the loop end");
	cr_assert_eq(uco_task_result(server, NULL), 0);
	cr_assert_eq(s.served, CONNS);
	cr_assert_eq(clients_ok, CONNS);
	uco_task_release(server);
	close(l);
	test_close(loop);
}

/* ---- more completions than the CQ holds; bad buffers; resets; fallbacks */

Test(io, more_operations_in_flight_than_the_cq_holds)
{
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.ring_entries = 4; /* CQ of 32 */
	uco_loop *loop = test_loop_opts(&opts);
	enum { N = 300 };
	static int fds[N][2];
	uco_task *t[N];
	for (int i = 0; i < N; i++) {
		cr_assert_eq(pipe(fds[i]), 0);
		cr_assert_eq(uco_spawn(loop, &t[i], reads_one, (void *)(intptr_t)fds[i][0]), 0);
	}
	uco_loop_stop(loop);
	uco_loop_run(loop); /* all N reads in flight */
	for (int i = 0; i < N; i++)
		cr_assert_eq(write(fds[i][1], "z", 1), 1); /* N completions at once */
	cr_assert_eq(uco_loop_run(loop), 0);
	for (int i = 0; i < N; i++) {
		void *v;
		cr_assert_eq(uco_task_result(t[i], &v), 0);
		cr_assert_eq((intptr_t)v, 1, "read %d lost or duplicated", i);
		uco_task_release(t[i]);
		close(fds[i][0]);
		close(fds[i][1]);
	}
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	/* CQEs are io_uring's; on epoll the results above are the check. */
	if (!test_on_epoll(loop))
		cr_assert_eq(s.cqes_reaped, N, "every completion once");
	test_close(loop);
}

static void *misuses(void *arg)
{
	(void)arg;
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "data", 4), 4);
	cr_assert_eq(uco_read(p[0], NULL, 4, -1), -EFAULT, "NULL buffer, non-zero length");
	cr_assert_eq(uco_write(p[1], NULL, 4, -1), -EFAULT);
	close(p[0]);
	close(p[1]);

	/* A peer that resets the connection. */
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	int c = uco_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(uco_connect(c, (struct sockaddr *)&addr, sizeof addr), 0);
	int s = uco_accept(l, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(s, 0);
	struct linger lg = { 1, 0 };
	cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	cr_assert_eq(close(s), 0); /* RST */
	char buf[8];
	cr_assert_eq(uco_recv(c, buf, sizeof buf, 0), -ECONNRESET);
	uco_close(c);
	close(l);
	return "healthy";
}

Test(io, bad_buffers_and_resets_are_errors_not_crashes)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, misuses, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_str_eq(v, "healthy");
	uco_task_release(t);
	test_close(loop);
}

static void *deadline_not_reached(void *arg)
{
	int *fds = arg;
	char buf[4];
	return (void *)(intptr_t)uco_read_dl(fds[0], buf, sizeof buf, -1, uco_now() + UCO_NS_PER_S);
}

Test(io, a_deadline_that_does_not_expire_changes_nothing)
{
	uco_loop *loop = test_loop();
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn(loop, &t, deadline_not_reached, fds), 0);
	cr_assert_eq(uco_spawn(loop, NULL, writes_later, fds), 0);
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, 1);
	cr_assert_lt(uco_now() - t0, UCO_NS_PER_S, "returned with the data, not at the deadline");
	cr_assert_eq(uco_loop_run(loop), 0, "the cancelled link timeout keeps nothing alive");
	uco_task_release(t);
	close(fds[0]);
	close(fds[1]);
	test_close(loop);
}

void uco__forget_opcode(uco_loop *loop, unsigned op);

static void *without_opcodes(void *arg)
{
	(void)arg;
	int fd = uco_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0, "socket falls back to the system call");
	cr_assert_eq(uco_shutdown(fd, SHUT_RDWR), -ENOTCONN, "so does shutdown");
	cr_assert_eq(uco_close(fd), 0, "and close");
	char buf[4];
	cr_assert_eq(uco_read(0, buf, sizeof buf, -1), -EOPNOTSUPP);
	return NULL;
}

Test(io, missing_opcodes_fall_back_or_say_so)
{
	uco_loop *loop = test_loop();
	/* The readiness backend has no opcodes: it makes these system calls
	 * itself, which the other io tests cover on it. */
	skip_on_epoll(loop, "opcodes a kernel may lack (uco__forget_opcode)");
	uco__forget_opcode(loop, IORING_OP_SOCKET);
	uco__forget_opcode(loop, IORING_OP_SHUTDOWN);
	uco__forget_opcode(loop, IORING_OP_CLOSE);
	uco__forget_opcode(loop, IORING_OP_READ);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, without_opcodes, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	uco_task_release(t);
	test_close(loop);
}

/* ---- zero-copy send, provided buffers and multishot receive */

struct zc_case {
	int fd;
	char *buf;
	size_t len;
};

static void *zc_sender(void *arg)
{
	struct zc_case *c = arg;
	ssize_t n = uco_send_zc(c->fd, c->buf, c->len, 0);
	if (n == -EOPNOTSUPP || n == -EINVAL)
		return (void *)"unsupported";
	cr_assert_geq(n, 1, "send_zc: %zd", n);
	/* The notification came: the buffer is ours again. */
	memset(c->buf, 0, (size_t)n);
	uco_shutdown(c->fd, SHUT_WR);
	return (void *)(intptr_t)n;
}

static void *zc_receiver(void *arg)
{
	struct zc_case *c = arg;
	char *got = malloc(c->len);
	ssize_t n = uco_read_full(c->fd, got, c->len, UCO_FOREVER);
	for (ssize_t i = 0; i < n; i++)
		cr_assert_eq(got[i], (char)(i * 7), "byte %zd", i);
	free(got);
	return (void *)(intptr_t)n;
}

Test(io, zero_copy_send_returns_when_the_buffer_is_free_again)
{
	uco_loop *loop = test_loop();
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	int a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(a, (struct sockaddr *)&addr, sizeof addr), 0);
	int b = accept(l, NULL, NULL);
	enum { LEN = 1 << 20 };
	struct zc_case snd = { a, malloc(LEN), LEN }, rcv = { b, NULL, LEN };
	for (size_t i = 0; i < LEN; i++)
		snd.buf[i] = (char)(i * 7);
	uco_task *s, *r;
	cr_assert_eq(uco_spawn(loop, &s, zc_sender, &snd), 0);
	cr_assert_eq(uco_spawn(loop, &r, zc_receiver, &rcv), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	void *sent, *got;
	cr_assert_eq(uco_task_result(s, &sent), 0);
	if ((char *)sent != (char *)"unsupported") {
		cr_assert_eq(uco_task_result(r, &got), 0);
		cr_assert_eq((intptr_t)got, (intptr_t)sent, "what was sent arrived, unchanged");
	}
	uco_task_release(s);
	uco_task_release(r);
	free(snd.buf);
	close(a);
	close(b);
	close(l);
	test_close(loop);
}

struct stream_case {
	uco_bufring *br;
	int fd;
	size_t expect, got;
	bool intact;
};

static void *consumes_stream(void *arg)
{
	struct stream_case *c = arg;
	uco_recv_stream *s;
	int err = uco_recv_stream_open(&s, c->fd, c->br);
	if (err)
		return uco_fail(err);
	c->intact = true;
	for (;;) {
		const void *data;
		ssize_t n = uco_recv_stream_next(s, &data);
		if (n < 0)
			return uco_fail((int)n);
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (((const unsigned char *)data)[i] != (unsigned char)((c->got + (size_t)i) * 13))
				c->intact = false;
		c->got += (size_t)n;
		uco_sleep(0); /* let buffers pile up: the ring runs dry now and then */
	}
	cr_assert_eq(uco_recv_stream_close(s), 0);
	return NULL;
}

static void *produces(void *arg)
{
	struct stream_case *c = arg;
	unsigned char chunk[1000];
	for (size_t sent = 0; sent < c->expect;) {
		size_t n = c->expect - sent < sizeof chunk ? c->expect - sent : sizeof chunk;
		for (size_t i = 0; i < n; i++)
			chunk[i] = (unsigned char)((sent + i) * 13);
		cr_assert_eq(uco_write_all(c->fd, chunk, n, UCO_FOREVER), (ssize_t)n);
		sent += n;
	}
	uco_shutdown(c->fd, SHUT_WR);
	return NULL;
}

Test(io, a_multishot_stream_through_few_provided_buffers)
{
	uco_loop *loop = test_loop();
	uco_bufring *br;
	int err = uco_bufring_create(loop, &br, 8, 2048);
	if (err == -EOPNOTSUPP)
		cr_skip_test("no provided buffer rings (Linux < 5.19)");
	cr_assert_eq(err, 0);
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	int a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(a, (struct sockaddr *)&addr, sizeof addr), 0);
	int b = accept(l, NULL, NULL);
	struct stream_case cons = { br, b, 200000, 0, false }, prod = { br, a, 200000, 0, false };
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, consumes_stream, &cons), 0);
	cr_assert_eq(uco_spawn(loop, NULL, produces, &prod), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(uco_task_result(t, NULL), 0);
	cr_assert_eq(cons.got, 200000, "every byte, through 8 buffers of 2 KiB");
	cr_assert(cons.intact, "in order and unchanged");
	cr_assert_eq(uco_bufring_destroy(br), 0);
	uco_task_release(t);
	close(a);
	close(b);
	close(l);
	test_close(loop);
}

enum { IDLE = 200 };

struct idle_conn {
	uco_bufring *br;
	int fd;
	char got[8];
	ssize_t n;
};

static void *idle_reader(void *arg)
{
	struct idle_conn *c = arg;
	uco_recv_stream *s;
	cr_assert_eq(uco_recv_stream_open(&s, c->fd, c->br), 0);
	const void *data;
	c->n = uco_recv_stream_next(s, &data);
	if (c->n > 0)
		memcpy(c->got, data, (size_t)c->n < sizeof c->got ? (size_t)c->n : sizeof c->got);
	uco_recv_stream_close(s);
	return NULL;
}

Test(io, idle_connections_hold_no_buffer)
{
	uco_loop *loop = test_loop();
	uco_bufring *br;
	int err = uco_bufring_create(loop, &br, 8, 512);
	if (err == -EOPNOTSUPP)
		cr_skip_test("no provided buffer rings (Linux < 5.19)");
	cr_assert_eq(err, 0);
	static struct idle_conn conns[IDLE];
	static int peers[IDLE];
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	cr_assert_eq(listen(l, IDLE), 0);
	for (int i = 0; i < IDLE; i++) {
		peers[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_eq(connect(peers[i], (struct sockaddr *)&addr, sizeof addr), 0);
		conns[i] = (struct idle_conn){ br, accept(l, NULL, NULL), { 0 }, -1 };
		cr_assert_eq(uco_spawn(loop, NULL, idle_reader, &conns[i]), 0);
	}
	/* 200 streams armed on 8 buffers, all idle; then each gets a message,
	 * one at a time.  A stream holding a buffer while idle would starve
	 * the others. */
	uco_loop_stop(loop);
	uco_loop_run(loop);
	for (int i = 0; i < IDLE; i++) {
		char msg[8];
		snprintf(msg, sizeof msg, "m%05d", i);
		cr_assert_eq(write(peers[i], msg, sizeof msg), (ssize_t)sizeof msg);
		uco_loop_stop(loop);
		uco_loop_run(loop);
	}
	cr_assert_eq(uco_loop_run(loop), 0);
	for (int i = 0; i < IDLE; i++) {
		char msg[8];
		snprintf(msg, sizeof msg, "m%05d", i);
		cr_assert_eq(conns[i].n, 8, "connection %d: %zd", i, conns[i].n);
		cr_assert_str_eq(conns[i].got, msg);
		close(conns[i].fd);
		close(peers[i]);
	}
	close(l);
	test_close(loop); /* the buffer ring is freed with the loop */
}

static void *waits_on_stream(void *arg)
{
	const void *data;
	return (void *)(intptr_t)uco_recv_stream_next(arg, &data);
}

static void ignore_signal(int signo, void *user)
{
	(void)signo;
	(void)user;
}

Test(io, closing_a_loop_frees_what_was_left_open)
{
	uco_loop *loop = test_loop();
	uco_bufring *br;
	if (uco_bufring_create(loop, &br, 4, 256) == -EOPNOTSUPP)
		cr_skip_test("no provided buffer rings (Linux < 5.19)");
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	uco_recv_stream *s;
	cr_assert_eq(uco_recv_stream_open(&s, sv[0], br), 0);
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	uco_acceptor *a;
	cr_assert_eq(uco_acceptor_open(loop, &a, l, 0), 0);
	/* A signal listener last: it is freed first at close, and the stream
	 * unlinks itself after it (a use after free, once). */
	cr_assert_eq(uco_loop_on_signal(loop, SIGUSR2, ignore_signal, NULL), 0);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, waits_on_stream, s), 0);
	cr_assert_eq(write(sv[1], "x", 1), 1);
	void *v;
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, 1);
	uco_task_release(t);
	/* Stream, acceptor and buffer ring still open: the loop frees them
	 * (ASan would report the leak otherwise). */
	test_close(loop);
	close(sv[0]);
	close(sv[1]);
	close(l);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void *opens_acceptor(void *arg)
{
	uco_acceptor *a;
	return (void *)(intptr_t)uco_acceptor_open(NULL, &a, *(int *)arg, SOCK_CLOEXEC);
}

/* On a plain ring the kernel accepts as soon as a client connects (task
 * work run on the way back from any system call) and posts the new
 * descriptor in a CQE, whether or not the loop ever reaps it again. */
static void accepted_but_never_reaped(unsigned flags)
{
	int before = count_fds();
	uco_loop_opts opts = { .flags = flags };
	uco_loop *loop = test_loop_opts(&opts);
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, opens_acceptor, &l), 0);
	void *v;
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0); /* the accept is submitted */
	cr_assert_eq((intptr_t)v, 0);
	uco_task_release(t);
	enum { CLIENTS = 3 };
	int c[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_eq(connect(c[i], (struct sockaddr *)&addr, sizeof addr), 0);
	}
	usleep(10000); /* more system calls: the task work has run */
	test_close(loop);
	for (int i = 0; i < CLIENTS; i++)
		close(c[i]);
	close(l);
	cr_assert_eq(count_fds(), before, "%d descriptors leaked", count_fds() - before);
}

Test(io, closing_a_loop_closes_connections_accepted_but_never_reaped)
{
	accepted_but_never_reaped(UCO_LOOP_PLAIN_RING);
	accepted_but_never_reaped(0); /* the default ring, where the close itself asks for events */
}

/* ---- one client that never reads its replies, beside many that do */

/* A server on the multishot acceptor and receive streams sharing one
 * buffer ring answers each 8-byte request with 2 KiB.  One client
 * pipelines requests without ever reading: its connection's task blocks
 * in a send while its data keeps arriving.  Every other client, old or
 * new, must still get its answers. */
enum { POLITE = 20, ROUNDS = 5, REQ = 8, REPLY = 2048, RING_BUFS = 32, BUF_SIZE = 256 };

static struct {
	uco_bufring *br;
	int listen_fd;
	struct sockaddr_in addr;
	uco_event flooded;  /* the rude client has sent more than the ring holds */
	int answered;       /* polite round trips that got their reply */
	size_t rude_sent;
} pl;

static char reply_bytes[REPLY];

static void *serves_connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	int small = 4096; /* replies back up at once for a client that does not read */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	uco_recv_stream *s;
	if (uco_recv_stream_open(&s, fd, pl.br) == 0) {
		size_t pending = 0;
		const void *data;
		ssize_t n;
		while ((n = uco_recv_stream_next(s, &data)) > 0)
			for (pending += (size_t)n; pending >= REQ; pending -= REQ)
				if (uco_write_all(fd, reply_bytes, REPLY, UCO_FOREVER) != REPLY)
					goto out;
	out:
		uco_recv_stream_close(s);
	}
	uco_close(fd);
	return NULL;
}

static void *pipelining_server(void *arg)
{
	(void)arg;
	uco_acceptor *a;
	cr_assert_eq(uco_acceptor_open(NULL, &a, pl.listen_fd, SOCK_CLOEXEC), 0);
	int fd;
	while ((fd = uco_acceptor_next(a)) >= 0)
		cr_assert_eq(uco_spawn(NULL, NULL, serves_connection, (void *)(intptr_t)fd), 0);
	uco_acceptor_close(a);
	return NULL;
}

static int client_socket(int rcvbuf)
{
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(c, 0);
	if (rcvbuf)
		setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	cr_assert_eq(uco_connect(c, (struct sockaddr *)&pl.addr, sizeof pl.addr), 0);
	return c;
}

/* Sends requests in 256-byte batches and never reads a reply. */
static void *rude_client(void *arg)
{
	(void)arg;
	int c = client_socket(4096);
	int one = 1; /* every batch on the wire at once, not held for an ACK */
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	char batch[BUF_SIZE];
	memset(batch, 'R', sizeof batch);
	while (uco_write_all(c, batch, sizeof batch, UCO_FOREVER) == (ssize_t)sizeof batch) {
		pl.rude_sent += sizeof batch;
		if (pl.rude_sent >= 2 * RING_BUFS * BUF_SIZE)
			uco_event_set(&pl.flooded);
	}
	close(c);
	return NULL;
}

static void *polite_client(void *arg)
{
	(void)arg;
	cr_assert_eq(uco_event_wait(&pl.flooded), 0);
	int c = client_socket(0);
	static char got[REPLY];
	for (int r = 0; r < ROUNDS; r++) {
		if (uco_write_all(c, "PING\r\n\r\n", REQ, UCO_FOREVER) != REQ)
			break;
		/* Generous: only a starved client gets anywhere near it. */
		if (uco_read_full(c, got, REPLY, uco_now() + 10 * UCO_NS_PER_S) != REPLY)
			break;
		pl.answered++;
	}
	close(c);
	return NULL;
}

static void *polite_clients_then_stop(void *arg)
{
	(void)arg;
	uco_task *t[POLITE];
	for (int i = 0; i < POLITE; i++)
		cr_assert_eq(uco_spawn(NULL, &t[i], polite_client, NULL), 0);
	uco_wait(t, POLITE, UCO_WAIT_ALL_COMPLETED, UCO_FOREVER, NULL);
	for (int i = 0; i < POLITE; i++)
		uco_task_release(t[i]);
	uco_loop_cancel_all(uco_loop_current()); /* the server, the rude client */
	return NULL;
}

static void pipelining_beside_polite_clients(unsigned hold)
{
	memset(&pl, 0, sizeof pl);
	uco_loop_opts opts = { .recv_stream_hold = hold };
	uco_loop *loop = test_loop_opts(&opts);
	int err = uco_bufring_create(loop, &pl.br, RING_BUFS, BUF_SIZE);
	if (err == -EOPNOTSUPP)
		cr_skip_test("no provided buffer rings (Linux < 5.19)");
	cr_assert_eq(err, 0);
	pl.listen_fd = listen_loopback(&pl.addr);
	cr_assert_eq(listen(pl.listen_fd, 64), 0);
	uco_event_init(&pl.flooded);
	cr_assert_eq(uco_spawn(loop, NULL, pipelining_server, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, rude_client, NULL), 0);
	cr_assert_eq(uco_spawn(loop, NULL, polite_clients_then_stop, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_gt(pl.rude_sent, (size_t)RING_BUFS * BUF_SIZE, "the rude client sent %zu bytes",
	             pl.rude_sent);
	cr_assert_eq(pl.answered, POLITE * ROUNDS, "%d of %d requests answered", pl.answered,
	             POLITE * ROUNDS);
	close(pl.listen_fd);
	test_close(loop);
}

Test(io, a_client_that_never_reads_cannot_starve_the_others_of_buffers, .timeout = 60)
{
	pipelining_beside_polite_clients(0); /* the default bound: 4 of 32 */
}

Test(io, the_buffers_a_stream_may_hold_are_set_with_the_loop, .timeout = 60)
{
	pipelining_beside_polite_clients(1);
	pipelining_beside_polite_clients(RING_BUFS / 2);
}

/* ---- a burst into a stalled stream stays within its bound */

/* Can the kernel end a multishot receive at a byte limit (sqe->optlen,
 * Linux 6.17)?  Older ones refuse the field with -EINVAL. */
static bool kernel_limits_multishot(void)
{
	struct io_uring ring;
	if (io_uring_queue_init(4, &ring, 0))
		return false;
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	static char buf[4][64];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_provide_buffers(sqe, buf, sizeof buf[0], 4, 1, 0);
	io_uring_sqe_set_data64(sqe, 1);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 1;
	sqe->file_index = 16;
	io_uring_sqe_set_data64(sqe, 2);
	io_uring_submit(&ring);
	cr_assert_eq(write(sv[1], "x", 1), 1);
	struct io_uring_cqe *cqe;
	bool ok = false;
	while (io_uring_wait_cqe(&ring, &cqe) == 0) {
		bool recv = cqe->user_data == 2;
		ok = recv && cqe->res > 0;
		io_uring_cqe_seen(&ring, cqe);
		if (recv)
			break;
	}
	io_uring_queue_exit(&ring);
	close(sv[0]);
	close(sv[1]);
	return ok;
}

enum { BURST_BUFS = 16, BURST_HOLD = 4, HOLDERS = 8 };

static struct {
	uco_bufring *br;
	int stalled[2], holder[HOLDERS][2];
	uco_event release, all_in;
	int got, failed;
} bu;

static void *stalls_after_one_chunk(void *arg)
{
	(void)arg;
	uco_recv_stream *s;
	cr_assert_eq(uco_recv_stream_open(&s, bu.stalled[0], bu.br), 0);
	const void *data;
	cr_assert_gt(uco_recv_stream_next(s, &data), 0);
	/* The peer's burst lands now, while this task is busy elsewhere. */
	static char burst[256 * 1024];
	cr_assert_gt(write(bu.stalled[1], burst, sizeof burst), 0);
	uco_event_wait(&bu.release);
	uco_recv_stream_close(s);
	return NULL;
}

static void *holds_one_chunk(void *arg)
{
	int (*fds)[2] = arg;
	uco_recv_stream *s;
	cr_assert_eq(uco_recv_stream_open(&s, (*fds)[0], bu.br), 0);
	uco_sleep(MS(5)); /* after the burst */
	cr_assert_eq(write((*fds)[1], "m", 1), 1);
	const void *data;
	if (uco_recv_stream_next_dl(s, &data, uco_now() + 5 * UCO_NS_PER_S) == 1)
		bu.got++;
	else
		bu.failed++;
	if (bu.got + bu.failed == HOLDERS)
		uco_event_set(&bu.all_in);
	uco_event_wait(&bu.release); /* its buffer stays taken until then */
	uco_recv_stream_close(s);
	return NULL;
}

static void *releases_when_all_in(void *arg)
{
	(void)arg;
	uco_event_wait(&bu.all_in);
	uco_event_set(&bu.release);
	return NULL;
}

Test(io, a_burst_into_a_stalled_stream_stays_within_its_bound, .timeout = 60)
{
	if (!kernel_limits_multishot())
		cr_skip_test("the kernel cannot end a multishot receive at a byte limit");
	uco_loop_opts opts = { .recv_stream_hold = BURST_HOLD };
	uco_loop *loop = test_loop_opts(&opts);
	int err = uco_bufring_create(loop, &bu.br, BURST_BUFS, 1024);
	if (err == -EOPNOTSUPP)
		cr_skip_test("no provided buffer rings (Linux < 5.19)");
	cr_assert_eq(err, 0);
	uco_event_init(&bu.release);
	uco_event_init(&bu.all_in);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	                        bu.stalled), 0);
	cr_assert_eq(write(bu.stalled[1], "1", 1), 1);
	cr_assert_eq(uco_spawn(loop, NULL, stalls_after_one_chunk, NULL), 0);
	for (int i = 0; i < HOLDERS; i++) {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bu.holder[i]), 0);
		cr_assert_eq(uco_spawn(loop, NULL, holds_one_chunk, &bu.holder[i]), 0);
	}
	cr_assert_eq(uco_spawn(loop, NULL, releases_when_all_in, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	/* 16 buffers: the stalled stream may hold 4, so 8 holders fit. */
	cr_assert_eq(bu.got, HOLDERS, "%d of %d streams starved", bu.failed, HOLDERS);
	for (int i = 0; i < HOLDERS; i++) {
		close(bu.holder[i][0]);
		close(bu.holder[i][1]);
	}
	close(bu.stalled[0]);
	close(bu.stalled[1]);
	test_close(loop);
}

/* ---- deadlines on the acceptor and on receive streams */

struct timed_waits {
	uco_acceptor *acceptor;
	uco_recv_stream *stream;
	int acc_timeout, acc_then;
	ssize_t str_timeout, str_then;
	int64_t waited;
	uco_event timed_out; /* both first waits are over */
	int late[2];
};

static void *waits_with_deadlines(void *arg)
{
	struct timed_waits *w = arg;
	int64_t t0 = uco_now();
	w->acc_timeout = uco_acceptor_next_dl(w->acceptor, t0 + 10 * UCO_NS_PER_MS);
	w->waited = uco_now() - t0;
	const void *data;
	w->str_timeout = uco_recv_stream_next_dl(w->stream, &data, uco_now() + 5 * UCO_NS_PER_MS);
	uco_event_set(&w->timed_out); /* now the connection may come */
	/* After a timeout both still work, and a deadline far away does not
	 * hold back what arrives. */
	w->acc_then = uco_acceptor_next_dl(w->acceptor, uco_now() + 10 * UCO_NS_PER_S);
	w->str_then = uco_recv_stream_next_dl(w->stream, &data, uco_now() + 10 * UCO_NS_PER_S);
	return NULL;
}

static void *connects_later(void *arg)
{
	struct timed_waits *w = arg; /* the peer's fd in late[1], the new one to late[0] */
	/* Only once both first waits have timed out, however slow the
	 * machine (a fixed sleep let the data come first under load). */
	uco_event_wait(&w->timed_out);
	int *fds = w->late;
	int c = uco_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(uco_connect(c, (struct sockaddr *)&server_addr, sizeof server_addr), 0);
	cr_assert_eq(write(fds[1], "late", 4), 4);
	fds[0] = c;
	return NULL;
}

Test(io, acceptor_and_stream_waits_time_out_and_go_on)
{
	uco_loop *loop = test_loop();
	uco_bufring *br;
	if (uco_bufring_create(loop, &br, 4, 256) == -EOPNOTSUPP)
		cr_skip_test("no provided buffer rings (Linux < 5.19)");
	int l = listen_loopback(&server_addr);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct timed_waits w;
	memset(&w, 0, sizeof w);
	cr_assert_eq(uco_acceptor_open(loop, &w.acceptor, l, SOCK_CLOEXEC), 0);
	cr_assert_eq(uco_recv_stream_open(&w.stream, sv[0], br), 0);
	uco_event_init(&w.timed_out);
	w.late[0] = -1;
	w.late[1] = sv[1];
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, waits_with_deadlines, &w), 0);
	cr_assert_eq(uco_spawn(loop, NULL, connects_later, &w), 0);
	int64_t t0 = uco_now();
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(w.acc_timeout, -ETIMEDOUT);
	cr_assert_geq(w.waited, 10 * UCO_NS_PER_MS, "never before the deadline");
	cr_assert_eq(w.str_timeout, -ETIMEDOUT);
	cr_assert_geq(w.acc_then, 0, "a connection after a timeout: %d", w.acc_then);
	cr_assert_eq(w.str_then, 4);
	cr_assert_lt(uco_now() - t0, 5 * UCO_NS_PER_S, "far deadlines held nothing back");
	cr_assert_eq(uco_acceptor_close(w.acceptor), 0);
	cr_assert_eq(uco_recv_stream_close(w.stream), 0);
	cr_assert_eq(uco_loop_run(loop), 0, "no timer of theirs keeps the loop");
	close(w.acc_then);
	close(w.late[0]);
	close(sv[0]);
	close(sv[1]);
	close(l);
	uco_task_release(t);
	test_close(loop);
}

/* ---- a waiting stream after the buffers ran out */

struct drought {
	uco_bufring *br;
	int a[2], b[2];
	uco_recv_stream *sa, *sb;
	ssize_t got;
	int64_t waited;
};

static void *waits_on_b(void *arg)
{
	struct drought *d = arg;
	const void *data;
	int64_t t0 = uco_now();
	d->got = uco_recv_stream_next_dl(d->sb, &data, uco_now() + 3 * UCO_NS_PER_S);
	d->waited = uco_now() - t0;
	return NULL;
}

static void *drives_the_drought(void *arg)
{
	struct drought *d = arg;
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, waits_on_b, d), 0);
	uco_sleep(5 * UCO_NS_PER_MS);
	/* A's bytes take both buffers (nobody reads A), so B's receive ends
	 * with -ENOBUFS while B's task waits. */
	cr_assert_eq(write(d->a[1], "1", 1), 1);
	uco_sleep(5 * UCO_NS_PER_MS);
	cr_assert_eq(write(d->a[1], "2", 1), 1);
	uco_sleep(5 * UCO_NS_PER_MS);
	cr_assert_eq(write(d->b[1], "B", 1), 1);
	uco_sleep(5 * UCO_NS_PER_MS);
	cr_assert_eq(uco_recv_stream_close(d->sa), 0); /* its buffers come back */
	cr_assert_eq(uco_await(t, NULL), 0);
	uco_task_release(t);
	return NULL;
}

Test(io, a_stream_starved_of_buffers_wakes_when_one_comes_back)
{
	uco_loop *loop = test_loop();
	struct drought d;
	memset(&d, 0, sizeof d);
	if (uco_bufring_create(loop, &d.br, 2, 64) == -EOPNOTSUPP)
		cr_skip_test("no provided buffer rings (Linux < 5.19)");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, d.a), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, d.b), 0);
	cr_assert_eq(uco_recv_stream_open(&d.sa, d.a[0], d.br), 0);
	cr_assert_eq(uco_recv_stream_open(&d.sb, d.b[0], d.br), 0);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, drives_the_drought, &d), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(d.got, 1, "B's byte: %zd", d.got);
	cr_assert_lt(d.waited, UCO_NS_PER_S, "woken when a buffer came back, not at the deadline");
	cr_assert_eq(uco_recv_stream_close(d.sb), 0);
	/* The ring goes with the loop, once B's receive has been cancelled. */
	for (int i = 0; i < 2; i++) {
		close(d.a[i]);
		close(d.b[i]);
	}
	uco_task_release(t);
	test_close(loop);
}

/* ---- registered files */

static void *reads_through_handle(void *arg)
{
	int *h = arg;
	char buf[8];
	ssize_t n = uco_read(h[0], buf, sizeof buf, -1);
	cr_assert_eq(n, 5, "%zd", n);
	cr_assert_arr_eq(buf, "fixed", 5);
	cr_assert_eq(uco_write(h[1], "again", 5, -1), 5, "write through a handle");
	n = uco_read(h[0], buf, sizeof buf, -1);
	cr_assert_eq(n, 5);
	cr_assert_eq(uco_read(UCO_FIXED_FD | 4000, buf, sizeof buf, -1), -EBADF, "an empty slot");
	return NULL;
}

Test(io, registered_files_serve_io_calls)
{
	uco_loop *loop = test_loop();
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	int h[2] = { uco_fd_register(loop, fds[0]), uco_fd_register(loop, fds[1]) };
	if (h[0] == -EOPNOTSUPP)
		cr_skip_test("no registered files here");
	cr_assert_geq(h[0], 0, "%d", h[0]);
	cr_assert(h[0] & UCO_FIXED_FD);
	cr_assert_neq(h[0], h[1]);
	cr_assert_eq(write(fds[1], "fixed", 5), 5);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, reads_through_handle, h), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(uco_fd_unregister(loop, h[0]), 0);
	cr_assert_eq(uco_fd_unregister(loop, h[0]), -EBADF, "once");
	cr_assert_eq(uco_fd_unregister(loop, 3), -EBADF, "not a handle");
	cr_assert_eq(uco_fd_unregister(loop, h[1]), 0);
	/* The slot is reused. */
	int again = uco_fd_register(loop, fds[0]);
	cr_assert_eq(again, h[0]);
	cr_assert_eq(uco_fd_unregister(loop, again), 0);
	cr_assert_eq(uco_fd_register(loop, -1), -EINVAL);
	uco_task_release(t);
	close(fds[0]);
	close(fds[1]);
	test_close(loop);
}

/* ---- a receive after a short one: what a "drained" hint may not change
 * (the epoll backend waits first after a short receive; on io_uring,
 * IORING_RECVSEND_POLL_FIRST was measured for the same and not kept,
 * docs/benchmarks.md) */

struct writes_later_case {
	int fd;
	const char *data;
};

static void *writes_after_a_while(void *arg)
{
	struct writes_later_case *w = arg;
	uco_sleep(5 * UCO_NS_PER_MS);
	size_t n = strlen(w->data);
	cr_assert_eq(write(w->fd, w->data, n), (ssize_t)n);
	return NULL;
}

/* A short receive, which leaves the "drained" hint on fd. */
static void receive_short(int fd, int peer)
{
	char buf[64];
	cr_assert_eq(write(peer, "x", 1), 1);
	cr_assert_eq(uco_recv(fd, buf, sizeof buf, 0), 1);
}

static void *receives_after_short_ones(void *arg)
{
	(void)arg;
	int sv[2];
	char buf[64];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

	/* The hint is stale (the bytes came meanwhile): they come at once. */
	receive_short(sv[0], sv[1]);
	cr_assert_eq(write(sv[1], "abcde", 5), 5);
	cr_assert_eq(uco_recv(sv[0], buf, sizeof buf, 0), 5);
	cr_assert_arr_eq(buf, "abcde", 5);

	/* The hint is right: the receive waits and gets what comes later. */
	receive_short(sv[0], sv[1]);
	struct writes_later_case w = { sv[1], "later" };
	cr_assert_eq(uco_spawn(NULL, NULL, writes_after_a_while, &w), 0);
	cr_assert_eq(uco_recv(sv[0], buf, sizeof buf, 0), 5);
	cr_assert_arr_eq(buf, "later", 5);

	/* MSG_DONTWAIT still tries: the bytes there, or -EAGAIN. */
	receive_short(sv[0], sv[1]);
	cr_assert_eq(write(sv[1], "dw", 2), 2);
	cr_assert_eq(uco_recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), 2);
	cr_assert_eq(uco_recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), -EAGAIN);

	/* Try once (deadline 0) gets bytes that are there; none: -ETIMEDOUT. */
	receive_short(sv[0], sv[1]);
	cr_assert_eq(write(sv[1], "once", 4), 4);
	cr_assert_eq(uco_recv_dl(sv[0], buf, sizeof buf, 0, 0), 4);
	cr_assert_eq(uco_recv_dl(sv[0], buf, sizeof buf, 0, 0), -ETIMEDOUT);

	/* A short peek leaves the bytes, and the receive after it gets them. */
	cr_assert_eq(write(sv[1], "peek", 4), 4);
	cr_assert_eq(uco_recv(sv[0], buf, sizeof buf, MSG_PEEK), 4);
	cr_assert_eq(uco_recv(sv[0], buf, sizeof buf, 0), 4);
	cr_assert_arr_eq(buf, "peek", 4);

	/* The number reused by another socket, the old hint still on it:
	 * bytes already there and bytes to come both arrive. */
	receive_short(sv[0], sv[1]);
	int old = sv[0];
	close(sv[0]);
	close(sv[1]);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(sv[0], old, "the lowest free number is reused");
	cr_assert_eq(write(sv[1], "new", 3), 3);
	cr_assert_eq(uco_recv(sv[0], buf, sizeof buf, 0), 3);
	cr_assert_arr_eq(buf, "new", 3);
	w.fd = sv[1];
	cr_assert_eq(uco_spawn(NULL, NULL, writes_after_a_while, &w), 0);
	cr_assert_eq(uco_recv(sv[0], buf, sizeof buf, 0), 5);

	/* End of file after a short receive: 0, not a wait. */
	receive_short(sv[0], sv[1]);
	cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);
	cr_assert_eq(uco_recv(sv[0], buf, sizeof buf, 0), 0);
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

Test(io, a_receive_after_a_short_one_gets_every_byte)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, receives_after_short_ones, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	void *v;
	cr_assert_eq(uco_task_result(t, &v), 0);
	uco_task_release(t);
	test_close(loop);
}
