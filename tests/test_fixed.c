/* SPDX-License-Identifier: MIT */
/* Registered buffers: fixed reads and writes against real files and pipes,
 * the -errno rules for buffers outside the registration, re-registration,
 * and cancels and deadlines of fixed reads (lib/fixed_buffers.c). */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "helpers.h"

#define BUF 8192

/* Two page-aligned buffers of BUF bytes, registered as 0 and 1, plus one
 * that is not registered. */
struct bufs {
	unsigned char *reg[2];
	unsigned char *other;
};

static void bufs_alloc(struct bufs *b)
{
	for (int i = 0; i < 2; i++) {
		b->reg[i] = aligned_alloc(4096, BUF);
		cr_assert_not_null(b->reg[i]);
		memset(b->reg[i], 0, BUF);
	}
	b->other = aligned_alloc(4096, BUF);
	cr_assert_not_null(b->other);
}

static void bufs_free(struct bufs *b)
{
	free(b->reg[0]);
	free(b->reg[1]);
	free(b->other);
}

static int bufs_register(uco_loop *loop, struct bufs *b)
{
	struct iovec iov[2] = { { b->reg[0], BUF }, { b->reg[1], BUF } };
	return uco_buffers_register(loop, iov, 2);
}

/* A loop with b registered (skipping where the kernel cannot). */
static uco_loop *loop_with(struct bufs *b)
{
	uco_loop *loop = test_loop();
	bufs_alloc(b);
	int r = bufs_register(loop, b);
	if (r == -ENOMEM)
		cr_skip_test("RLIMIT_MEMLOCK too small to register 16 KiB of buffers");
	cr_assert_eq(r, 0, "uco_buffers_register: %d", r);
	return loop;
}

static int temp_file(void)
{
	char path[] = "/var/tmp/uco-test-fixed-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		strcpy(path, "/tmp/uco-test-fixed-XXXXXX");
		fd = mkostemp(path, O_CLOEXEC);
	}
	cr_assert_geq(fd, 0);
	unlink(path);
	return fd;
}

/* Run fn(arg) as a task to its end, which must be a normal return. */
static void run_task(uco_loop *loop, uco_fn fn, void *arg)
{
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, fn, arg), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(uco_task_state_get(t), UCO_TASK_DONE);
	uco_task_release(t);
}

struct round_trip {
	struct bufs *b;
	int fd;
};

/* fn(round_trip) on a fresh loop with buffers registered, against a new
 * temporary file. */
static void run_on_file(uco_fn fn)
{
	struct bufs b;
	uco_loop *loop = loop_with(&b);
	struct round_trip c = { &b, temp_file() };
	run_task(loop, fn, &c);
	close(c.fd);
	test_close(loop);
	bufs_free(&b);
}

static void *round_trips(void *arg)
{
	struct round_trip *c = arg;
	struct bufs *b = c->b;
	for (int i = 0; i < BUF; i++)
		b->reg[0][i] = (unsigned char)(i * 7 + 1);
	/* The whole of buffer 0 at offset 4096, then a part from its middle. */
	cr_assert_eq(uco_write_fixed(c->fd, b->reg[0], BUF, 4096, 0), BUF);
	cr_assert_eq(uco_write_fixed_dl(c->fd, b->reg[0] + 100, 50, 0, 0, uco_now() + MS(5000)), 50);
	/* Back into buffer 1, at an offset inside it, and the last byte. */
	cr_assert_eq(uco_read_fixed(c->fd, b->reg[1] + 16, 4096, 4096, 1), 4096);
	cr_assert_arr_eq(b->reg[1] + 16, b->reg[0], 4096);
	cr_assert_eq(uco_read_fixed_dl(c->fd, b->reg[1] + BUF - 1, 1, 4096 + BUF - 1, 1,
	                               UCO_FOREVER),
	             1);
	cr_assert_eq(b->reg[1][BUF - 1], b->reg[0][BUF - 1]);
	cr_assert_eq(uco_read_fixed(c->fd, b->reg[1], 50, 0, 1), 50);
	cr_assert_arr_eq(b->reg[1], b->reg[0] + 100, 50);
	/* End of file, and a registered file (fixed file and fixed buffer). */
	cr_assert_eq(uco_read_fixed(c->fd, b->reg[1], BUF, 4096 + BUF, 1), 0, "end of file");
	int h = uco_fd_register(NULL, c->fd);
	if (h >= 0) {
		memset(b->reg[1], 0, BUF);
		cr_assert_eq(uco_read_fixed(h, b->reg[1], BUF, 4096, 1), BUF);
		cr_assert_arr_eq(b->reg[1], b->reg[0], BUF);
		cr_assert_eq(uco_fd_unregister(NULL, h), 0);
	}
	/* Agrees with plain IO. */
	unsigned char plain[64];
	cr_assert_eq(uco_read(c->fd, plain, sizeof plain, 4096 + 64), 64);
	cr_assert_arr_eq(plain, b->reg[0] + 64, 64);
	return NULL;
}

Test(fixed, write_then_read_back_through_registered_buffers)
{
	run_on_file(round_trips);
}

static void *outside(void *arg)
{
	struct round_trip *c = arg;
	struct bufs *b = c->b;
	int fd = c->fd;
	/* Starts before, runs past, or lies in another buffer. */
	cr_assert_eq(uco_read_fixed(fd, b->reg[0] - 1, 16, 0, 0), -EFAULT);
	cr_assert_eq(uco_read_fixed(fd, b->reg[0] + BUF - 8, 16, 0, 0), -EFAULT);
	cr_assert_eq(uco_read_fixed(fd, b->reg[0] + BUF, 1, 0, 0), -EFAULT);
	cr_assert_eq(uco_read_fixed(fd, b->reg[1], 16, 0, 0), -EFAULT, "buffer 1 as index 0");
	cr_assert_eq(uco_write_fixed(fd, b->other, 16, 0, 1), -EFAULT, "unregistered memory");
	cr_assert_eq(uco_read_fixed(fd, (void *)(uintptr_t)-8, 16, 0, 0), -EFAULT, "wraps");
	/* Indices beyond the registration. */
	cr_assert_eq(uco_read_fixed(fd, b->reg[0], 16, 0, 2), -EINVAL);
	cr_assert_eq(uco_write_fixed_dl(fd, b->reg[0], 16, 0, 65535, 0), -EINVAL);
	/* Nothing was moved by any of them. */
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 0);
	/* A length of 0 at the very end is inside; the loop still works. */
	cr_assert_eq(uco_read_fixed(fd, b->reg[0] + BUF, 0, 0, 0), 0);
	cr_assert_eq(uco_write_fixed(fd, b->reg[0], BUF, 0, 0), BUF);
	/* A bad descriptor is the kernel's answer, after the checks. */
	cr_assert_eq(uco_read_fixed(-1, b->reg[0], 16, 0, 0), -EBADF);
	return NULL;
}

Test(fixed, buffers_outside_the_registration_are_refused)
{
	run_on_file(outside);
}

static void *without_registration(void *arg)
{
	struct bufs *b = arg;
	int fd = temp_file();
	cr_assert_eq(uco_read_fixed(fd, b->reg[0], 16, 0, 0), -ENXIO);
	cr_assert_eq(uco_write_fixed_dl(fd, b->reg[0], 16, 0, 0, UCO_FOREVER), -ENXIO);
	close(fd);
	return NULL;
}

Test(fixed, registration_rules)
{
	uco_loop *loop = test_loop();
	struct bufs b;
	bufs_alloc(&b);
	struct iovec iov = { b.reg[0], BUF };
	/* Outside a coroutine and with no loop running: the loop must be named. */
	cr_assert_eq(uco_buffers_register(NULL, &iov, 1), -EINVAL);
	cr_assert_eq(uco_buffers_register(loop, NULL, 1), -EINVAL);
	cr_assert_eq(uco_buffers_register(loop, &iov, 0), -EINVAL);
	cr_assert_eq(uco_buffers_unregister(loop), -ENXIO, "nothing registered");
	cr_assert_eq(uco_read_fixed(0, b.reg[0], 1, 0, 0), -EPERM, "outside a coroutine");

	run_task(loop, without_registration, &b);

	int r = uco_buffers_register(loop, &iov, 1);
	if (r == -ENOMEM)
		cr_skip_test("RLIMIT_MEMLOCK too small");
	cr_assert_eq(r, 0);
	cr_assert_eq(bufs_register(loop, &b), -EBUSY, "one registration at a time");
	/* Re-registration: another set, and the old one's rules are gone. */
	cr_assert_eq(uco_buffers_unregister(loop), 0);
	cr_assert_eq(uco_buffers_unregister(loop), -ENXIO);
	cr_assert_eq(bufs_register(loop, &b), 0);
	struct round_trip c = { &b, temp_file() };
	run_task(loop, round_trips, &c);
	close(c.fd);
	/* Left registered: the loop's close lets go of it. */
	test_close(loop);
	bufs_free(&b);
}

/* ---- cancels and deadlines */

struct blocked {
	struct bufs *b;
	int fds[2];
	ssize_t timed, cancelled;
	int unregister_meanwhile;
	uco_task *reader;
};

static void *reads_from_empty_pipe(void *arg)
{
	struct blocked *c = arg;
	memset(c->b->reg[0], 'x', BUF);
	c->timed = uco_read_fixed_dl(c->fds[0], c->b->reg[0], 64, -1, 0, uco_now() + MS(20));
	c->cancelled = uco_read_fixed(c->fds[0], c->b->reg[0], 64, -1, 0);
	return NULL;
}

static void *cancels_later(void *arg)
{
	struct blocked *c = arg;
	uco_sleep(MS(40));
	/* The reader is parked in a fixed read: its registration stays. */
	c->unregister_meanwhile = uco_buffers_unregister(NULL);
	cr_assert_eq(uco_task_cancel(c->reader), 0);
	return NULL;
}

Test(fixed, cancelled_and_timed_out_fixed_reads_leave_the_buffer_alone)
{
	struct bufs b;
	uco_loop *loop = loop_with(&b);
	struct blocked c = { .b = &b };
	cr_assert_eq(pipe(c.fds), 0);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, reads_from_empty_pipe, &c), 0);
	c.reader = t;
	cr_assert_eq(uco_spawn(loop, NULL, cancels_later, &c), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_eq(c.timed, -ETIMEDOUT, "%zd", c.timed);
	cr_assert_eq(c.cancelled, -ECANCELED, "%zd", c.cancelled);
	cr_assert_eq(c.unregister_meanwhile, -EBUSY);
	/* Nothing was consumed or written into the buffer: data written now
	 * is all there for a plain read. */
	cr_assert_eq(write(c.fds[1], "later", 5), 5);
	char got[8];
	cr_assert_eq(read(c.fds[0], got, sizeof got), 5);
	for (int i = 0; i < 64; i++)
		cr_assert_eq(b.reg[0][i], 'x');
	cr_assert_eq(uco_buffers_unregister(loop), 0, "free again once the read ended");
	uco_task_release(t);
	close(c.fds[0]);
	close(c.fds[1]);
	test_close(loop);
	bufs_free(&b);
}

static void *reads_pipe_with_data(void *arg)
{
	struct blocked *c = arg;
	c->timed = uco_read_fixed_dl(c->fds[0], c->b->reg[1] + 8, 64, -1, 1, 0);
	return NULL;
}

Test(fixed, try_once_gets_data_already_there)
{
	struct bufs b;
	uco_loop *loop = loop_with(&b);
	struct blocked c = { .b = &b };
	cr_assert_eq(pipe(c.fds), 0);
	cr_assert_eq(write(c.fds[1], "ready", 5), 5);
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, reads_pipe_with_data, &c), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_eq(c.timed, 5, "the data wins over an expired deadline: %zd", c.timed);
	cr_assert_arr_eq(b.reg[1] + 8, "ready", 5);
	uco_task_release(t);
	close(c.fds[0]);
	close(c.fds[1]);
	test_close(loop);
	bufs_free(&b);
}
