/* SPDX-License-Identifier: MIT */
/*
 * fileread: reads of a page-cached file.
 *
 * Figures (BENCH.md), in MB/s (10^6 bytes per second of wall time):
 *   mb_per_s_128k  sequential 128 KiB reads, queue depth 32;
 *   mb_per_s_4k    random 4 KiB-aligned 4 KiB reads, 64 at a time;
 *   cpu_per_wall_128k, cpu_per_wall_4k (extra, not in BENCH.md's table)
 *                  CPU seconds of the whole process (every thread: libuv's
 *                  pool, io_uring's io-wq workers) per wall second of the
 *                  run: 1 means one core, 2 both cores of a 2-core machine.
 *
 *   uco    one loop (default options), 32 (128k) or 64 (4k) tasks doing
 *          uco_read(fd, buf, size, offset) in a loop;
 *   uco-epoll  the same on a loop of the readiness backend
 *          (UCO_BACKEND_EPOLL; skipped where the loop does not run on it);
 *   uco-fixed  the same as uco through a registered file (uco_fd_register);
 *   uco-fixedbuf  the same through registered buffers (uco_read_fixed);
 *   uco-sqpoll  the same as uco on a loop made with UCO_LOOP_SQPOLL (a
 *          kernel thread takes the SQEs; docs/polling.md), made for each
 *          run and closed after it, so that its SQ thread spins only
 *          during its own run; skipped where the kernel refuses SQPOLL.
 *          Its cpu_per_wall figures include the SQ thread: it is a thread
 *          of this process (iou-sqp-PID), counted by getrusage(RUSAGE_SELF);
 *   pread  one thread, a plain loop of pread(2);
 *   liburing  the floor uco's reads stand on: the same readers on one ring
 *          written by hand against liburing, with the flags uco's loop
 *          takes (SINGLE_ISSUER | DEFER_TASKRUN, else none) and its
 *          descriptor registered; each completion queues that reader's
 *          next read, one io_uring_submit_and_wait() a batch;
 *   libuv  a uv loop with 32 or 64 uv_fs_read requests in flight (the
 *          callback of each issues the next); libuv 1.44 runs file reads
 *          on its thread pool (UV_THREADPOOL_SIZE as in the environment,
 *          default 4 threads).
 * Every implementation does the same work: 32 (128k) or 64 (4k) readers
 * (tasks, requests, or for pread the same readers taken in turn), each
 * with its own buffer, so that all of them cycle through the same 4 MiB
 * (128k) or 256 KiB (4k) of buffers; for 128k each reader reads its own
 * slice of the file (size / 32) in order, wrapping around; for 4k each
 * reader draws its offsets with its own xorshift generator (this file).
 * (Until this was so, pread reused one cache-hot buffer over the whole
 * file in order, which flattered it: issue 13 measured uco's 128k ratio
 * to pread going from 0.79x to 0.92x with that alone.)
 *
 * A reader reads through fr_params.read (uco_read for the uco impls);
 * uco-fixedbuf (registered buffers, READ_FIXED) registers the readers'
 * buffers (reader i's at bufs + i * bs as buffer i, outside the timing)
 * and reads with uco_read_fixed.
 *
 * Every run lasts a fixed time: the readers share one clock (struct
 * fr_clock), read once every qd reads, as pread's loop reads it once per
 * round of its qd readers; once past the deadline every reader stops after
 * the read it is in.  (Until this was so, each uco and libuv reader read
 * the clock after each of its reads: 64 clock reads per 64 reads against
 * pread's one, about 1.5% of uco's CPU time at 4 KiB on the development
 * VM, where a clock_gettime costs ~45 ns.)  The figure is the bytes read
 * over the time from the start to the last reader's end.  Every
 * read is checked for its full length and its first word (the file's
 * content is a function of the offset).
 *
 * The file (256 MiB; 64 MiB with --quick) is made in $TMPDIR or /var/tmp
 * (not /tmp, which may be a tmpfs), unlinked at once (so it goes away
 * however uco-bench ends) and read once in full before any timing, so that
 * every read is served from the page cache.  The runs are interleaved
 * (uco, pread, libuv for 128k, then for 4k, then the next round).
 *
 * For A/B runs by hand: UCO_BENCH_FILEREAD_IMPLS=uco,pread runs only those
 * impls, UCO_BENCH_FILEREAD_SIZES=4k only that size (128k, 4k).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "bench.h"
#include "uco.h"

#if defined(UCO_BENCH_HAVE_LIBUV)
#include <uv.h>
#endif

#define FR_BIG (128 * 1024)
#define FR_SMALL 4096
#define FR_QD_BIG 32
#define FR_QD_SMALL 64

/* The word at byte offset `off` (a multiple of 8) of the file. */
static inline uint64_t fr_word(uint64_t off)
{
	return off * UINT64_C(0x9E3779B97F4A7C15) ^ UINT64_C(0x5555);
}

static inline uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

struct fr_reader;

/* When the readers stop (see the opening comment). */
struct fr_clock {
	uint64_t reads;
	int64_t deadline;
	bool over;
};

struct fr_params {
	const char *impl; /* for the messages */
	int fd;
	uint64_t file_size;
	size_t bs;        /* FR_BIG or FR_SMALL */
	unsigned qd;      /* readers */
	bool random;
	int64_t run_ns;
	/* One read of r->p->bs bytes at off into r->buf (uco impls). */
	ssize_t (*read)(const struct fr_reader *r, uint64_t off);
	const struct fr_reader *readers; /* uco-fixedbuf: reader i is buffer i */
};

struct fr_reader {
	const struct fr_params *p;
	uint64_t off, start, end; /* sequential: next offset, slice */
	uint64_t rng;
	uint64_t bytes;
	struct fr_clock *clock; /* shared by all the readers of a run */
	int err;
	unsigned char *buf;
};

static uint64_t fr_next(struct fr_reader *r)
{
	const struct fr_params *p = r->p;

	if (p->random)
		return (xorshift(&r->rng) % (p->file_size / p->bs)) * p->bs;
	uint64_t off = r->off;
	r->off += p->bs;
	if (r->off + p->bs > r->end)
		r->off = r->start;
	return off;
}

static int fr_check(const struct fr_reader *r, ssize_t n, uint64_t off)
{
	uint64_t w;

	if (n < 0)
		return (int)n;
	if ((size_t)n != r->p->bs)
		return -EIO;
	memcpy(&w, r->buf, 8);
	return w == fr_word(off) ? 0 : -EILSEQ;
}

/* One read done: is the run over?  One clock read per qd reads. */
static bool fr_over(struct fr_clock *c, unsigned qd)
{
	if (++c->reads % qd == 0 && bench_now_ns() >= c->deadline)
		c->over = true;
	return c->over;
}

static void fr_readers_init(struct fr_reader *rs, const struct fr_params *p,
                            unsigned char *bufs, struct fr_clock *clock, int64_t deadline)
{
	uint64_t slice = p->file_size / p->qd / p->bs * p->bs;

	*clock = (struct fr_clock){ .deadline = deadline };
	for (unsigned i = 0; i < p->qd; i++) {
		struct fr_reader *r = &rs[i];
		memset(r, 0, sizeof *r);
		r->p = p;
		r->start = r->off = (uint64_t)i * slice;
		r->end = r->start + slice;
		r->rng = UINT64_C(0x2545F4914F6CDD1D) * (i + 1);
		r->clock = clock;
		r->buf = bufs + (size_t)i * p->bs;
	}
}

/* ------------------------------------------------------------ uco */

static ssize_t fr_read_uco(const struct fr_reader *r, uint64_t off)
{
	return uco_read(r->p->fd, r->buf, r->p->bs, (int64_t)off);
}

/* uco-fixedbuf: reader i's buffer is registered buffer i. */
static ssize_t fr_read_fixedbuf(const struct fr_reader *r, uint64_t off)
{
	unsigned index = (unsigned)((size_t)(r - r->p->readers));
	return uco_read_fixed(r->p->fd, r->buf, r->p->bs, (int64_t)off, index);
}

static void *fr_uco_reader(void *arg)
{
	struct fr_reader *r = arg;

	do {
		uint64_t off = fr_next(r);
		ssize_t n = r->p->read(r, off);
		int e = fr_check(r, n, off);
		if (e < 0) {
			r->err = e;
			break;
		}
		r->bytes += (uint64_t)n;
	} while (!fr_over(r->clock, r->p->qd));
	return NULL;
}

static int fr_uco(uco_loop *loop, const struct fr_params *p,
                  struct fr_reader *rs, unsigned char *bufs, double *mbps)
{
	struct fr_clock clock;
	int64_t t0 = bench_now_ns();
	int ret;

	fr_readers_init(rs, p, bufs, &clock, t0 + p->run_ns);
	for (unsigned i = 0; i < p->qd; i++) {
		ret = uco_spawn(loop, NULL, fr_uco_reader, &rs[i]);
		if (ret < 0) {
			bench_fail("fileread", p->impl, "uco_spawn: %s", strerror(-ret));
			uco_loop_run(loop);
			return ret;
		}
	}
	ret = uco_loop_run(loop);
	int64_t t1 = bench_now_ns();
	if (ret != 0) {
		bench_fail("fileread", p->impl, "uco_loop_run returned %d", ret);
		return ret < 0 ? ret : -EINTR;
	}
	uint64_t bytes = 0;
	for (unsigned i = 0; i < p->qd; i++) {
		if (rs[i].err) {
			bench_fail("fileread", p->impl, "uco_read: %s",
			           strerror(-rs[i].err));
			return rs[i].err;
		}
		bytes += rs[i].bytes;
	}
	*mbps = (double)bytes / ((double)(t1 - t0) / 1e9) / 1e6;
	return 0;
}

/* ------------------------------------------------------------ pread */

static int fr_pread(const struct fr_params *p, struct fr_reader *rs,
                    unsigned char *bufs, double *mbps)
{
	struct fr_clock clock;
	int64_t t0 = bench_now_ns();
	uint64_t bytes = 0;
	bool done = false;

	/* The readers of the other impls, taken in turn: the same offsets
	 * into the same rotating buffers, and one clock read per round. */
	fr_readers_init(rs, p, bufs, &clock, t0 + p->run_ns);
	while (!done) {
		for (unsigned i = 0; i < p->qd; i++) {
			struct fr_reader *r = &rs[i];
			uint64_t off = fr_next(r);
			ssize_t n = pread(p->fd, r->buf, p->bs, (off_t)off);
			int e = fr_check(r, n < 0 ? -errno : n, off);
			if (e < 0) {
				bench_fail("fileread", "pread", "pread: %s", strerror(-e));
				return e;
			}
			bytes += (uint64_t)n;
		}
		done = bench_now_ns() >= t0 + p->run_ns;
	}
	int64_t t1 = bench_now_ns();
	*mbps = (double)bytes / ((double)(t1 - t0) / 1e9) / 1e6;
	return 0;
}

/* ------------------------------------------------------------ liburing */

/* Queue reader i's next read (user_data: i). */
static void fr_uring_queue(struct io_uring *ring, struct fr_reader *r, unsigned i, uint64_t *off)
{
	/* At most qd SQEs are ever pending on a ring of FR_URING_ENTRIES. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	*off = fr_next(r);
	io_uring_prep_read(sqe, r->p->fd, r->buf, (unsigned)r->p->bs, *off);
	io_uring_sqe_set_data64(sqe, i);
}

#define FR_URING_ENTRIES 1024

static int fr_liburing(const struct fr_params *p, struct fr_reader *rs,
                       unsigned char *bufs, double *mbps)
{
	struct io_uring ring;
	struct io_uring_params rp = {
		.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	};
	uint64_t offs[FR_QD_SMALL > FR_QD_BIG ? FR_QD_SMALL : FR_QD_BIG];
	struct fr_clock clock;
	int ret = io_uring_queue_init_params(FR_URING_ENTRIES, &ring, &rp);

	if (ret == -EINVAL) {
		memset(&rp, 0, sizeof rp);
		ret = io_uring_queue_init_params(FR_URING_ENTRIES, &ring, &rp);
	}
	if (ret < 0) {
		bench_skip("fileread", "liburing", "io_uring_queue_init: %s", strerror(-ret));
		return ret;
	}
	io_uring_register_ring_fd(&ring);
	int64_t t0 = bench_now_ns();
	unsigned live = p->qd;

	fr_readers_init(rs, p, bufs, &clock, t0 + p->run_ns);
	for (unsigned i = 0; i < p->qd; i++)
		fr_uring_queue(&ring, &rs[i], i, &offs[i]);
	while (live) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR) {
			bench_fail("fileread", "liburing", "io_uring_submit_and_wait: %s",
			           strerror(-ret));
			break;
		}
		io_uring_for_each_cqe(&ring, head, cqe) {
			unsigned i = (unsigned)cqe->user_data;
			struct fr_reader *r = &rs[i];
			int e = fr_check(r, cqe->res, offs[i]);

			n++;
			if (e < 0)
				r->err = e;
			else
				r->bytes += (uint64_t)cqe->res;
			if (e < 0 || fr_over(r->clock, p->qd))
				live--;
			else
				fr_uring_queue(&ring, r, i, &offs[i]);
		}
		io_uring_cq_advance(&ring, n);
	}
	int64_t t1 = bench_now_ns();
	io_uring_queue_exit(&ring);
	if (ret < 0 && ret != -EINTR)
		return ret;
	uint64_t bytes = 0;
	for (unsigned i = 0; i < p->qd; i++) {
		if (rs[i].err) {
			bench_fail("fileread", "liburing", "read: %s", strerror(-rs[i].err));
			return rs[i].err;
		}
		bytes += rs[i].bytes;
	}
	*mbps = (double)bytes / ((double)(t1 - t0) / 1e9) / 1e6;
	return 0;
}

/* ------------------------------------------------------------ libuv */

#if defined(UCO_BENCH_HAVE_LIBUV)
struct fr_uvreq {
	uv_fs_t req;
	struct fr_reader *r;
	uint64_t off;
};

static void fr_uv_cb(uv_fs_t *req);

static int fr_uv_submit(uv_loop_t *loop, struct fr_uvreq *q)
{
	q->off = fr_next(q->r);
	uv_buf_t b = uv_buf_init((char *)q->r->buf, (unsigned)q->r->p->bs);
	return uv_fs_read(loop, &q->req, q->r->p->fd, &b, 1, (int64_t)q->off,
	                  fr_uv_cb);
}

static void fr_uv_cb(uv_fs_t *req)
{
	struct fr_uvreq *q = (struct fr_uvreq *)req;
	struct fr_reader *r = q->r;
	ssize_t n = req->result;
	uv_loop_t *loop = req->loop;

	uv_fs_req_cleanup(req);
	int e = fr_check(r, n, q->off);
	if (e < 0) {
		r->err = e;
		return;
	}
	r->bytes += (uint64_t)n;
	if (!fr_over(r->clock, r->p->qd)) {
		e = fr_uv_submit(loop, q);
		if (e < 0)
			r->err = e;
	}
}

static int fr_libuv(const struct fr_params *p, struct fr_reader *rs,
                    unsigned char *bufs, double *mbps)
{
	uv_loop_t loop;
	struct fr_clock clock;
	struct fr_uvreq *qs = calloc(p->qd, sizeof *qs);
	int ret;

	if (!qs)
		return -ENOMEM;
	ret = uv_loop_init(&loop);
	if (ret < 0) {
		free(qs);
		bench_fail("fileread", "libuv", "uv_loop_init: %s", uv_strerror(ret));
		return -EIO;
	}
	int64_t t0 = bench_now_ns();
	fr_readers_init(rs, p, bufs, &clock, t0 + p->run_ns);
	for (unsigned i = 0; i < p->qd; i++) {
		qs[i].r = &rs[i];
		ret = fr_uv_submit(&loop, &qs[i]);
		if (ret < 0)
			rs[i].err = ret;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	int64_t t1 = bench_now_ns();
	uv_loop_close(&loop);
	free(qs);
	uint64_t bytes = 0;
	for (unsigned i = 0; i < p->qd; i++) {
		if (rs[i].err) {
			bench_fail("fileread", "libuv", "uv_fs_read: %s",
			           strerror(-rs[i].err));
			return -EIO;
		}
		bytes += rs[i].bytes;
	}
	*mbps = (double)bytes / ((double)(t1 - t0) / 1e9) / 1e6;
	return 0;
}
#endif

/* ------------------------------------------------------------ the file */

static int fr_make_file(uint64_t size, char *path, size_t path_size)
{
	const char *dir = getenv("TMPDIR");
	size_t chunk = 1 << 20;
	unsigned char *buf = malloc(chunk);
	int fd;

	if (!dir || !*dir)
		dir = "/var/tmp";
	snprintf(path, path_size, "%s/uco-bench-fileread-XXXXXX", dir);
	if (!buf)
		return -ENOMEM;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		free(buf);
		return e;
	}
	unlink(path);
	for (uint64_t off = 0; off < size; off += chunk) {
		for (size_t i = 0; i < chunk; i += 8) {
			uint64_t w = fr_word(off + i);
			memcpy(buf + i, &w, 8);
		}
		if (pwrite(fd, buf, chunk, (off_t)off) != (ssize_t)chunk) {
			int e = errno ? -errno : -EIO;
			close(fd);
			free(buf);
			return e;
		}
	}
	/* Read it once in full so that the timed reads hit the page cache. */
	for (uint64_t off = 0; off < size; off += chunk)
		if (pread(fd, buf, chunk, (off_t)off) != (ssize_t)chunk) {
			close(fd);
			free(buf);
			return -EIO;
		}
	free(buf);
	return fd;
}

/* ------------------------------------------------------------ the run */

static double fr_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void fr_emit(const char *impl, bool big, double mbps, double cpu0,
                    int64_t t0)
{
	double cpu = fr_cpu_s() - cpu0;
	double wall = (double)(bench_now_ns() - t0) / 1e9;

	bench_emit("fileread", impl, big ? "mb_per_s_128k" : "mb_per_s_4k",
	           mbps, "MB/s");
	bench_emit("fileread", impl, big ? "cpu_per_wall_128k" : "cpu_per_wall_4k",
	           cpu / wall, "cpu_s/s");
}

/* One timed run of impl on loop (NULL: a peer), reported; nothing for an
 * impl that UCO_BENCH_FILEREAD_IMPLS leaves out. */
static int fr_run_one(const char *impl, uco_loop *loop, const struct fr_params *p0,
                      struct fr_reader *rs, unsigned char *bufs, const char *what)
{
	struct fr_params p = *p0;
	bool big = p.bs == FR_BIG;
	double v = 0;
	int st;

	if (!bench_env_lists("UCO_BENCH_FILEREAD_IMPLS", impl))
		return 0;

	p.impl = impl;
	bench_progress("fileread", impl, what);
	double cpu0 = fr_cpu_s();
	int64_t t0 = bench_now_ns();
	if (loop)
		st = fr_uco(loop, &p, rs, bufs, &v);
	else if (strcmp(impl, "pread") == 0)
		st = fr_pread(&p, rs, bufs, &v);
	else if (strcmp(impl, "liburing") == 0)
		st = fr_liburing(&p, rs, bufs, &v);
#if defined(UCO_BENCH_HAVE_LIBUV)
	else if (strcmp(impl, "libuv") == 0)
		st = fr_libuv(&p, rs, bufs, &v);
#endif
	else
		st = -ENOSYS;
	if (st == 0)
		fr_emit(impl, big, v, cpu0, t0);
	return st;
}

/* The uco run through registered buffers: registered (outside the timing)
 * for this size, run, reported, unregistered. */
static void fr_fixedbuf_run(uco_loop *loop, const struct fr_params *p, struct fr_reader *rs,
                            unsigned char *bufs, const char *what)
{
	struct iovec iov[FR_QD_SMALL > FR_QD_BIG ? FR_QD_SMALL : FR_QD_BIG];
	struct fr_params pf = *p;

	if (!bench_env_lists("UCO_BENCH_FILEREAD_IMPLS", "uco-fixedbuf"))
		return;

	pf.read = fr_read_fixedbuf;
	pf.readers = rs;
	for (unsigned i = 0; i < p->qd; i++)
		iov[i] = (struct iovec){ bufs + (size_t)i * p->bs, p->bs };
	int err = uco_buffers_register(loop, iov, p->qd);
	if (err < 0) {
		bench_skip("fileread", "uco-fixedbuf", "uco_buffers_register: %s", strerror(-err));
		return;
	}
	fr_run_one("uco-fixedbuf", loop, &pf, rs, bufs, what);
	uco_buffers_unregister(loop);
}

/* The threads of this process now (the SQ thread is one), or -1. */
static int fr_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;

	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The uco run on a SQPOLL loop, made for this run and closed after it:
 * a loop left open would keep its SQ thread spinning (for its idle time,
 * a second by default) through the runs of the next impls.  The ring's
 * teardown, and with it the SQ thread's end, finishes in the kernel after
 * the close returns: wait for the thread to be gone (at most 2 s), or the
 * next impl's run shares the CPU with it.  Returns false where the kernel
 * refuses SQPOLL (said once; not asked again). */
static bool fr_sqpoll_run(const struct fr_params *p, struct fr_reader *rs,
                          unsigned char *bufs, const char *what)
{
	uco_loop_opts lo;
	uco_loop *loop;
	int threads = fr_threads();

	if (!bench_env_lists("UCO_BENCH_FILEREAD_IMPLS", "uco-sqpoll"))
		return true;
	memset(&lo, 0, sizeof lo);
	lo.flags = UCO_LOOP_SQPOLL;
	int err = uco_loop_create(&loop, &lo);
	if (err < 0) {
		bench_skip("fileread", "uco-sqpoll", "UCO_LOOP_SQPOLL refused: %s",
		           uco_loop_strerror(err));
		return false;
	}
	fr_run_one("uco-sqpoll", loop, p, rs, bufs, what);
	if (uco_loop_close(loop) < 0)
		bench_note("fileread/uco-sqpoll: uco_loop_close failed");
	for (int i = 0; threads > 0 && fr_threads() > threads; i++) {
		if (i == 2000) {
			bench_note("fileread/uco-sqpoll: the SQ thread outlived its loop by 2 s");
			break;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
	}
	return true;
}

int bench_fileread_run(const struct bench_opts *opts)
{
	const int rounds = BENCH_PICK(opts, 1, 3, 5);
	const int64_t run_ns = BENCH_PICK(opts, 200, 1000, 2000) * INT64_C(1000000);
	const uint64_t file_size = BENCH_PICK(opts, 64, 256, 256) * (UINT64_C(1) << 20);
	char path[4096];
	uco_loop *loop = NULL, *eloop = NULL;
	struct fr_reader *rs = calloc(FR_QD_SMALL, sizeof *rs);
	unsigned char *bufs = aligned_alloc(4096, (size_t)FR_QD_BIG * FR_BIG);
	int ret = 0;

#if !defined(UCO_BENCH_HAVE_LIBUV)
	bench_skip("fileread", "libuv", "libuv (libuv1-dev) was not found at "
	           "build time");
#endif
	if (!rs || !bufs) {
		free(rs);
		free(bufs);
		return -ENOMEM;
	}
	bench_progress("fileread", "", "making the file");
	int fd = fr_make_file(file_size, path, sizeof path);
	if (fd < 0) {
		bench_fail("fileread", "uco", "cannot make the %" PRIu64 " MiB file "
		           "%s: %s", file_size >> 20, path, strerror(-fd));
		free(rs);
		free(bufs);
		return fd;
	}
	bench_uco_impl_available("fileread", "uco");
	ret = bench_uco_loop_create(&loop, "fileread", "uco", NULL);
	if (ret < 0)
		loop = NULL;
	if (bench_uco_impl_available("fileread", "uco-epoll") &&
	    bench_uco_loop_create(&eloop, "fileread", "uco-epoll", NULL) < 0)
		eloop = NULL;

	bool sqpoll = loop != NULL;
	int fixed = loop ? uco_fd_register(loop, fd) : -1;
	if (loop && fixed < 0)
		bench_skip("fileread", "uco-fixed", "no registered files: %s", strerror(-fixed));
	for (int round = 0; round < rounds; round++) {
		for (int big = 1; big >= 0; big--) {
			struct fr_params p = {
				.fd = fd, .file_size = file_size,
				.bs = big ? FR_BIG : FR_SMALL,
				.qd = big ? FR_QD_BIG : FR_QD_SMALL,
				.random = !big, .run_ns = run_ns,
				.read = fr_read_uco,
			};
			char what[48];

			if (!bench_env_lists("UCO_BENCH_FILEREAD_SIZES", big ? "128k" : "4k"))
				continue;
			snprintf(what, sizeof what, "%s, round %d/%d",
			         big ? "128k" : "4k", round + 1, rounds);
			if (loop) {
				int st = fr_run_one("uco", loop, &p, rs, bufs, what);
				if (st < 0)
					ret = st;
			}
			if (eloop)
				fr_run_one("uco-epoll", eloop, &p, rs, bufs, what);
			if (loop && fixed >= 0) {
				/* The same reads through a registered file: no
				 * descriptor lookup per operation. */
				struct fr_params pf = p;
				pf.fd = fixed;
				fr_run_one("uco-fixed", loop, &pf, rs, bufs, what);
			}
			if (loop)
				fr_fixedbuf_run(loop, &p, rs, bufs, what);
			if (sqpoll)
				sqpoll = fr_sqpoll_run(&p, rs, bufs, what);
			fr_run_one("pread", NULL, &p, rs, bufs, what);
			fr_run_one("liburing", NULL, &p, rs, bufs, what);
#if defined(UCO_BENCH_HAVE_LIBUV)
			fr_run_one("libuv", NULL, &p, rs, bufs, what);
#endif
		}
	}
	if (loop && fixed >= 0)
		uco_fd_unregister(loop, fixed);
	if (loop && uco_loop_close(loop) < 0)
		bench_note("fileread/uco: uco_loop_close failed");
	if (eloop && uco_loop_close(eloop) < 0)
		bench_note("fileread/uco-epoll: uco_loop_close failed");
	close(fd);
	free(rs);
	free(bufs);
	return ret < 0 ? ret : 0;
}
