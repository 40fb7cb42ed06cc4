/* SPDX-License-Identifier: MIT */
/*
 * Registered (fixed) buffers: uco_buffers_register() lends a set of buffers
 * to the loop's ring once (IORING_REGISTER_BUFFERS: the kernel pins their
 * pages and maps them for good), and uco_read_fixed() / uco_write_fixed()
 * then move data into and out of them (IORING_OP_READ_FIXED/WRITE_FIXED)
 * without the per-operation page lookup and pinning a plain read pays.
 *
 * Every fixed operation is checked here against the loop's record of the
 * registration before its SQE is made: the kernel would say -EFAULT for
 * both a bad index and a range outside the buffer, and a backend that
 * emulates the ring has no table of its own to check against.  The record
 * also counts the fixed operations in flight, so that a registration is
 * never removed under one: once unregistered, the caller may free or reuse
 * the memory, which the kernel must then no longer be writing into.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "backend.h"

/* The kernel's limit (IORING_MAX_REG_BUFFERS). */
#define MAX_BUFFERS (1u << 14)

static void destroy_record(struct uco__resource *r)
{
	free(UCO__CONTAINER_OF(r, struct uco__fixed_bufs, resource));
}

/* The epoll backend runs a fixed read or write at the SQE's address, as a
 * plain one: it needs nothing beyond loop->fixed_bufs. */
int uco__register_buffers(uco_loop *loop, const struct iovec *iov, unsigned n)
{
	if (loop->backend != &uco__backend_uring)
		return 0;
	return io_uring_register_buffers(&loop->ring, iov, n);
}

int uco__unregister_buffers(uco_loop *loop)
{
	if (loop->backend != &uco__backend_uring)
		return 0;
	return io_uring_unregister_buffers(&loop->ring);
}

int uco_buffers_register(uco_loop *loop, const struct iovec *iov, unsigned n)
{
	if (!iov || n == 0 || n > MAX_BUFFERS)
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	if (loop->fixed_bufs)
		return -EBUSY;
	struct uco__fixed_bufs *rec = malloc(sizeof *rec + n * sizeof rec->iov[0]);
	if (!rec)
		return -ENOMEM;
	rec->n = n;
	rec->inflight = 0;
	memcpy(rec->iov, iov, n * sizeof iov[0]);
	err = uco__register_buffers(loop, rec->iov, n);
	if (err) {
		free(rec);
		return err;
	}
	rec->resource.destroy = destroy_record;
	uco__resource_add(loop, &rec->resource);
	loop->fixed_bufs = rec;
	return 0;
}

int uco_buffers_unregister(uco_loop *loop)
{
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	struct uco__fixed_bufs *rec = loop->fixed_bufs;
	if (!rec)
		return -ENXIO;
	if (rec->inflight)
		return -EBUSY;
	err = uco__unregister_buffers(loop);
	if (err)
		return err;
	loop->fixed_bufs = NULL;
	uco__resource_remove(loop, &rec->resource);
	free(rec);
	return 0;
}

/* Is [buf, buf + len) inside registered buffer `index`?  0, or the errno
 * uco_read_fixed(3) documents. */
static int check_range(const uco_loop *loop, const void *buf, size_t len, unsigned index)
{
	const struct uco__fixed_bufs *rec = loop->fixed_bufs;
	if (!rec)
		return -ENXIO;
	if (index >= rec->n)
		return -EINVAL;
	uintptr_t start = (uintptr_t)rec->iov[index].iov_base;
	uintptr_t p = (uintptr_t)buf;
	if (p < start || p - start > rec->iov[index].iov_len ||
	    len > rec->iov[index].iov_len - (p - start))
		return -EFAULT;
	return 0;
}

/* A fixed read or write: checked, then one operation like uco_read's. */
static ssize_t fixed_op(unsigned opcode, int fd, void *buf, size_t len, int64_t offset,
                        unsigned index, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!self)
		return -EPERM;
	uco_loop *loop = self->loop;
	if (len > 0x7ffff000)
		len = 0x7ffff000; /* as read(2) moves at most */
	int err = check_range(loop, buf, len, index);
	if (err)
		return err;
	struct uco__op op;
	struct io_uring_sqe *sqe = uco__op_start(&op, opcode, deadline, &err);
	if (!sqe)
		return err;
	io_uring_prep_rw((int)opcode, sqe, fd, buf, (unsigned)len, (uint64_t)offset);
	sqe->buf_index = (uint16_t)index;
	/* The record cannot go while this is in flight: unregister says
	 * -EBUSY, and loop close waits for every task. */
	struct uco__fixed_bufs *rec = loop->fixed_bufs;
	rec->inflight++;
	ssize_t r = uco__op_wait(&op, sqe, deadline);
	rec->inflight--;
	return r;
}

ssize_t uco_read_fixed_dl(int fd, void *buf, size_t len, int64_t offset, unsigned buf_index,
                          int64_t deadline)
{
	return fixed_op(IORING_OP_READ_FIXED, fd, buf, len, offset, buf_index, deadline);
}

ssize_t uco_write_fixed_dl(int fd, const void *buf, size_t len, int64_t offset,
                           unsigned buf_index, int64_t deadline)
{
	return fixed_op(IORING_OP_WRITE_FIXED, fd, (void *)(uintptr_t)buf, len, offset, buf_index,
	                deadline);
}

ssize_t uco_read_fixed(int fd, void *buf, size_t len, int64_t offset, unsigned buf_index)
{
	return uco_read_fixed_dl(fd, buf, len, offset, buf_index, UCO_FOREVER);
}

ssize_t uco_write_fixed(int fd, const void *buf, size_t len, int64_t offset,
                        unsigned buf_index)
{
	return uco_write_fixed_dl(fd, buf, len, offset, buf_index, UCO_FOREVER);
}
