/* SPDX-License-Identifier: MIT */
/*
 * sendzc: bulk TCP send on 127.0.0.1, plain send against zero-copy send.
 *
 * Figures (not yet in BENCH.md's table):
 *   mb_per_s_64k, mb_per_s_1m
 *              bytes the sender got through per second (MB = 10^6 bytes),
 *              sending one 64 KiB or 1 MiB buffer over and over;
 *   cpu_s      the sender's CPU time (user + system of the uco-bench
 *              process, getrusage(RUSAGE_SELF)) to send 10^9 bytes with
 *              1 MiB buffers, i.e. CPU seconds per GB;
 *   cpu_s_64k  (extra) the same with 64 KiB buffers.
 *
 *   uco     a task on a fresh loop (default options) sending the buffer with
 *           uco_send(), again for a short send, until the time is up;
 *   uco-zc  the same with uco_send_zc() (IORING_OP_SEND_ZC, 6.0+), which
 *           returns once the kernel's notification says the pages are free.
 *           -EOPNOTSUPP or -EINVAL from the first call: said on stderr and
 *           skipped, no figure.
 *
 * The reader is a child process pinned to CPU 1: it connects, then a
 * blocking recv() of up to 1 MiB in a loop, discarding, until EOF.  The
 * sender is this process, pinned to CPU 0 for the time of the run (its
 * mask is restored afterwards); with fewer than 2 CPUs allowed nothing is
 * pinned (said on stderr).  Default socket buffer sizes, no TCP_NODELAY
 * (bulk data).
 *
 * What to expect on loopback: the receiving side of a loopback connection
 * copies zero-copy pages (skb_orphan_frags_rx) before queueing them on the
 * reader's socket, and that happens in the sender's softirq context, so
 * the copy zero-copy saves on the way out is paid on the way in, plus the
 * pinning and the notification.  Loopback shows the cost of the zero-copy
 * path, not its gain on a NIC.
 *
 * Interleaved: for each round, for 64 KiB then 1 MiB, uco then uco-zc.
 * One line per figure per round (readers take the median).
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "uco.h"

#define SZC_SENDER_CPU 0
#define SZC_READER_CPU 1
#define SZC_READ_BUF (1u << 20)

static double rusage_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The reader child: never returns. */
static void reader_child(uint16_t port, bool pin)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (pin && bench_pin_to(SZC_READER_CPU) < 0)
		fprintf(stderr, "uco-bench: sendzc: sched_setaffinity(reader): %s\n",
		        strerror(errno));
	char *buf = malloc(SZC_READ_BUF);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (!buf || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		fprintf(stderr, "uco-bench: sendzc: reader: connect: %s\n",
		        strerror(errno));
		_exit(1);
	}
	for (;;) {
		ssize_t r = recv(fd, buf, SZC_READ_BUF, 0);
		if (r == 0)
			_exit(0);
		if (r < 0 && errno != EINTR)
			_exit(1);
	}
}

struct szc_job {
	int fd;
	bool zc;
	const char *buf;
	size_t len;
	int64_t warm_ns, run_ns;
	/* out */
	int err;
	uint64_t bytes;  /* inside the timed window */
	double secs, cpu_s;
};

static void *szc_sender(void *arg)
{
	struct szc_job *j = arg;
	int64_t t_meas = bench_now_ns() + j->warm_ns, t_end = t_meas + j->run_ns;
	int64_t t0 = 0;
	double cpu0 = 0;
	bool measuring = false;
	uint64_t bytes = 0;

	for (;;) {
		size_t off = 0;
		while (off < j->len) {
			ssize_t w = j->zc ? uco_send_zc(j->fd, j->buf + off, j->len - off, 0)
			                  : uco_send(j->fd, j->buf + off, j->len - off, 0);
			if (w <= 0) {
				j->err = w < 0 ? (int)w : -EPROTO;
				return NULL;
			}
			off += (size_t)w;
		}
		int64_t now = bench_now_ns();
		if (!measuring) {
			if (now >= t_meas) {
				measuring = true;
				t0 = now;
				cpu0 = rusage_cpu_s();
			}
			continue;
		}
		bytes += j->len;
		if (now >= t_end) {
			j->cpu_s = rusage_cpu_s() - cpu0;
			j->secs = (double)(now - t0) / 1e9;
			j->bytes = bytes;
			return NULL;
		}
	}
}

/* One measurement.  0, 1 for "zero-copy send not supported" (said, no
 * figure), or a negative errno after bench_fail(). */
static int szc_one(const char *impl, bool zc, const char *buf, size_t len,
                   const char *sfx, int64_t warm_ns, int64_t run_ns, bool pin)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	int ret;

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		ret = -errno;
		bench_fail("sendzc", impl, "listening socket: %s", strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return ret;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(lfd);
		bench_fail("sendzc", impl, "fork: %s", strerror(-ret));
		return ret;
	}
	if (pid == 0) {
		close(lfd);
		reader_child(ntohs(a.sin_port), pin);
	}
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ret = fd < 0 ? -errno : 0;
	close(lfd);
	if (fd < 0) {
		bench_fail("sendzc", impl, "accept: %s", strerror(-ret));
		goto reap;
	}

	cpu_set_t saved;
	bool restore = pin && sched_getaffinity(0, sizeof saved, &saved) == 0;
	if (pin && bench_pin_to(SZC_SENDER_CPU) < 0)
		bench_note("sendzc: sched_setaffinity(sender): %s", strerror(errno));

	struct szc_job j = {.fd = fd, .zc = zc, .buf = buf, .len = len,
	                    .warm_ns = warm_ns, .run_ns = run_ns};
	uco_loop *loop;
	ret = uco_loop_create(&loop, NULL);
	if (ret < 0) {
		bench_fail("sendzc", impl, "uco_loop_create: %s",
		           uco_loop_strerror(ret));
	} else {
		ret = uco_spawn(loop, NULL, szc_sender, &j);
		if (ret == 0)
			ret = uco_loop_run(loop);
		if (ret < 0)
			bench_fail("sendzc", impl, "uco_spawn/uco_loop_run: %s",
			           strerror(-ret));
		uco_loop_close(loop);
	}
	if (restore)
		sched_setaffinity(0, sizeof saved, &saved);
	close(fd); /* the reader sees EOF and exits */
	if (ret < 0)
		goto reap;
	if (j.err) {
		if (zc && (j.err == -EOPNOTSUPP || j.err == -EINVAL)) {
			bench_skip("sendzc", impl, "uco_send_zc: %s (IORING_OP_SEND_ZC "
			           "needs Linux 6.0+)", strerror(-j.err));
			ret = 1;
		} else {
			bench_fail("sendzc", impl, "%s: %s",
			           zc ? "uco_send_zc" : "uco_send", strerror(-j.err));
			ret = j.err;
		}
		goto reap;
	}
	if (j.bytes == 0 || j.secs <= 0) {
		bench_fail("sendzc", impl, "nothing sent in the timed window");
		ret = -EPROTO;
		goto reap;
	}
	char m[32];
	snprintf(m, sizeof m, "mb_per_s%s", sfx);
	bench_emit("sendzc", impl, m, (double)j.bytes / j.secs / 1e6, "MB/s");
	snprintf(m, sizeof m, "cpu_s%s", strcmp(sfx, "_1m") == 0 ? "" : sfx);
	bench_emit("sendzc", impl, m, j.cpu_s * 1e9 / (double)j.bytes, "s");
reap:;
	int status;
	if (ret != 0)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return ret;
}

int bench_sendzc_run(const struct bench_opts *opts)
{
	const int rounds = BENCH_PICK(opts, 1, 3, 5);
	const int64_t warm_ns = BENCH_PICK(opts, 50, 100, 200) * INT64_C(1000000);
	const int64_t run_ns = BENCH_PICK(opts, 400, 700, 1500) * INT64_C(1000000);
	static const struct {
		size_t len;
		const char *sfx, *name;
	} sizes[] = {{64u << 10, "_64k", "64 KiB"}, {1u << 20, "_1m", "1 MiB"}};
	bool pin = bench_two_cpus(SZC_SENDER_CPU, SZC_READER_CPU);
	bool zc_ok = true;
	int ret = 0;

	if (!pin)
		bench_note("sendzc: CPUs %d and %d are not both allowed; the sender "
		           "and the reader are not pinned", SZC_SENDER_CPU,
		           SZC_READER_CPU);
	/* One buffer for both sizes, touched so that no page fault is timed. */
	char *buf = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return -ENOMEM;
	for (size_t i = 0; i < (1u << 20); i++)
		buf[i] = (char)(i * 131 + 7);

	for (int r = 0; r < rounds; r++) {
		for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
			for (int z = 0; z < 2; z++) {
				const char *impl = z ? "uco-zc" : "uco";
				char what[48];
				if (z && !zc_ok)
					continue;
				snprintf(what, sizeof what, "%s, round %d/%d",
				         sizes[k].name, r + 1, rounds);
				bench_progress("sendzc", impl, what);
				int st = szc_one(impl, z, buf, sizes[k].len, sizes[k].sfx,
				                 warm_ns, run_ns, pin);
				if (st == 1)
					zc_ok = false;
				else if (st < 0)
					ret = st;
			}
		}
	}
	munmap(buf, 1u << 20);
	return ret;
}
