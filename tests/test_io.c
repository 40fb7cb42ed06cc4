/* SPDX-License-Identifier: MIT */
/* IO through the ring: pipes, TCP on loopback, files; deadlines,
 * cancellation with stack buffers, bad descriptors, batching. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

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
	uco_loop *loop = test_loop();
	char path[] = "/tmp/uco-test-XXXXXX";
	int tmp = mkstemp(path);
	cr_assert_geq(tmp, 0);
	close(tmp);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, file_round_trip, path), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	unlink(path);
	uco_task_release(t);
	test_close(loop);
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
