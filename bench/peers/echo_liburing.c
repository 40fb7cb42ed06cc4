/* SPDX-License-Identifier: MIT */
/*
 * The plain-liburing peer of `echo`: a single-threaded echo server written
 * directly against liburing 2.3, as well as we can write one, so that the
 * comparison with uco (which is built on the same ring) is honest.
 *
 *   - one ring of ECHO_URING_ENTRIES SQEs, set up with SINGLE_ISSUER |
 *     DEFER_TASKRUN when the kernel has them, else COOP_TASKRUN, else no
 *     flag at all; its descriptor registered (io_uring_register_ring_fd,
 *     5.18+, as uco's loop does: an fd lookup less per io_uring_enter);
 *   - one accept SQE always armed on the listening socket; each accepted
 *     connection gets TCP_NODELAY (as every server of the benchmark) and a
 *     recv SQE into its own buffer;
 *   - a recv completion of n > 0 bytes queues a send of those n bytes, a
 *     send completion queues the rest (short send) or the next recv; EOF
 *     or an error closes the connection;
 *   - every turn: io_uring_submit_and_wait(ring, 1) submits all the SQEs
 *     queued by the previous turn in one io_uring_enter and waits for at
 *     least one completion, then all ready CQEs are handled and retired
 *     with one io_uring_cq_advance().
 * user_data is the connection pointer with the operation in its low bits.
 *
 * Measured and left out: IORING_RECVSEND_POLL_FIRST on the recv queued
 * after a send (the client's next message is usually not there yet): the
 * server's CPU per round trip went up, 1.05x at 64 connections and 1.11x
 * at 1 (docs/benchmarks.md), as it did for uco.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "../bench.h"

#define ECHO_URING_ENTRIES 4096
#define ECHO_URING_BUF 4096

enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2, OP_MASK = 3 };

struct uconn {
	int fd;
	unsigned len, off; /* bytes to send back, bytes already sent */
	unsigned char buf[ECHO_URING_BUF];
};

static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	while (!sqe) {
		/* SQ full (never with 4096 entries and one SQE per
		 * connection, but do not lose work if it happens). */
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

static void queue_accept(struct io_uring *ring, int lfd)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}

static void queue_recv(struct io_uring *ring, struct uconn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_recv(sqe, c->fd, c->buf, sizeof c->buf, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
}

static void queue_send(struct io_uring *ring, struct uconn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
}

static void conn_close(struct uconn *c)
{
	close(c->fd);
	free(c);
}

static int ring_init(struct io_uring *ring)
{
	static const unsigned flag_sets[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof p);
		p.flags = flag_sets[i];
		p.cq_entries = 2 * ECHO_URING_ENTRIES;
		p.flags |= IORING_SETUP_CQSIZE;
		ret = io_uring_queue_init_params(ECHO_URING_ENTRIES, ring, &p);
		if (ret == 0) {
			io_uring_register_ring_fd(ring); /* optional */
			return 0;
		}
		if (ret != -EINVAL)
			return ret;
	}
	return ret;
}

int bench_echo_liburing_serve(int lfd)
{
	struct io_uring ring;
	int ret = ring_init(&ring);

	if (ret < 0) {
		fprintf(stderr, "uco-bench: echo/liburing: io_uring_queue_init: "
		        "%s\n", strerror(-ret));
		return ret;
	}
	queue_accept(&ring, lfd);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY) {
			fprintf(stderr, "uco-bench: echo/liburing: "
			        "io_uring_submit_and_wait: %s\n", strerror(-ret));
			break;
		}
		io_uring_for_each_cqe(&ring, head, cqe) {
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			struct uconn *c = (struct uconn *)(uintptr_t)(ud & ~(uint64_t)OP_MASK);
			int res = cqe->res;

			seen++;
			switch (ud & OP_MASK) {
			case OP_ACCEPT:
				if (res >= 0) {
					int one = 1;
					struct uconn *nc = malloc(sizeof *nc);
					if (!nc) {
						close(res);
					} else {
						setsockopt(res, IPPROTO_TCP, TCP_NODELAY,
						           &one, sizeof one);
						nc->fd = res;
						nc->len = nc->off = 0;
						queue_recv(&ring, nc);
					}
				}
				queue_accept(&ring, lfd);
				break;
			case OP_RECV:
				if (res <= 0) {
					conn_close(c);
					break;
				}
				c->len = (unsigned)res;
				c->off = 0;
				queue_send(&ring, c);
				break;
			case OP_SEND:
				if (res < 0) {
					conn_close(c);
					break;
				}
				c->off += (unsigned)res;
				if (c->off < c->len)
					queue_send(&ring, c);
				else
					queue_recv(&ring, c);
				break;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	io_uring_queue_exit(&ring);
	return -EIO;
}
