/* SPDX-License-Identifier: MIT */
/* Shared by the Criterion tests: a loop per test, made the way the
 * UCO_TEST_RING environment variable asks ("plain": no optional ring
 * flags; "sqpoll", "napi": the polling loop options), so every suite runs
 * against each ring configuration. */
#ifndef UCO_TEST_HELPERS_H
#define UCO_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uco.h>

/* ---- the two backends (issue 12)
 *
 * Every suite also runs as <name>-epoll with UCO_BACKEND=epoll in the
 * environment, and CI runs the whole suite under tests/tools/no-io-uring
 * (which sets UCO_TEST_NO_IO_URING), where AUTO must take epoll.  Until lib/
 * has the readiness backend, UCO_BACKEND=epoll runs io_uring and a refused
 * io_uring skips; tests/meson.build's `epoll_backend_built` (passed as
 * UCO_TEST_EPOLL_BUILT=1) turns both into failures. */

static inline bool test_epoll_built(void)
{
	const char *b = getenv("UCO_TEST_EPOLL_BUILT");
	return b && strcmp(b, "1") == 0;
}

/* UCO_BACKEND in the environment names `backend` (UCO_BACKEND_*). */
static inline bool test_backend_asked(unsigned backend)
{
	const char *b = getenv("UCO_BACKEND");
	if (!b)
		return false;
	return strcmp(b, backend == UCO_BACKEND_EPOLL      ? "epoll"
	                 : backend == UCO_BACKEND_IO_URING ? "io_uring"
	                                                   : "auto") == 0;
}

/* The readiness backend runs `loop`. */
static inline bool test_on_epoll(const uco_loop *loop)
{
	return (uco_loop_features(loop) & UCO_RING_EPOLL) != 0;
}

/* For a test of an io_uring-only behaviour (SQE counters, opcodes, the
 * ring's descriptor): skip it on the readiness backend, saying so. */
#define skip_on_epoll(loop, what)                                   \
	do {                                                        \
		if (test_on_epoll(loop))                            \
			cr_skip_test("io_uring only: %s", what);    \
	} while (0)

static inline uco_loop *test_loop_opts(uco_loop_opts *opts)
{
	uco_loop_opts defaults;
	if (!opts) {
		memset(&defaults, 0, sizeof defaults);
		opts = &defaults;
	}
	const char *ring = getenv("UCO_TEST_RING");
	if (ring && strcmp(ring, "plain") == 0)
		opts->flags |= UCO_LOOP_PLAIN_RING;
	/* The opt-in polling options; SQPOLL's thread idles 10 ms, not the
	 * default second, so that the suite does not keep a core busy. */
	unsigned polling = 0;
	if (ring && strcmp(ring, "sqpoll") == 0)
		polling = UCO_LOOP_SQPOLL;
	if (ring && strcmp(ring, "napi") == 0)
		polling = UCO_LOOP_NAPI;
	if (polling) {
		opts->flags |= polling;
		if (!opts->busy_poll_us)
			opts->busy_poll_us = polling == UCO_LOOP_SQPOLL ? 10000 : 50;
	}
	uco_loop *loop = NULL;
	int err = uco_loop_create(&loop, opts);
	if (polling && err == -EOPNOTSUPP)
		cr_skip_test("UCO_TEST_RING=%s refused by this kernel: %s", ring,
		             uco_loop_strerror(err));
	if (err == -ENOSYS || err == -EPERM || err == -EOPNOTSUPP) {
		/* With the readiness backend, only a loop asked for io_uring
		 * may fail where io_uring is refused: AUTO falls back. */
		cr_assert(!test_epoll_built() || opts->backend == UCO_BACKEND_IO_URING ||
		              test_backend_asked(UCO_BACKEND_IO_URING),
		          "io_uring refused and no fallback to epoll: %s", uco_loop_strerror(err));
		cr_skip_test("io_uring unavailable here: %s", uco_loop_strerror(err));
	}
	cr_assert_eq(err, 0, "uco_loop_create: %d (%s)", err, uco_loop_strerror(err));
	if (test_epoll_built() && (test_backend_asked(UCO_BACKEND_EPOLL) || getenv("UCO_TEST_NO_IO_URING")))
		cr_assert(test_on_epoll(loop), "UCO_BACKEND=%s%s, and the loop runs io_uring",
		          getenv("UCO_BACKEND") ? getenv("UCO_BACKEND") : "auto",
		          getenv("UCO_TEST_NO_IO_URING") ? " under no-io-uring" : "");
	return loop;
}

static inline uco_loop *test_loop(void)
{
	return test_loop_opts(NULL);
}

static inline void test_close(uco_loop *loop)
{
	int err = uco_loop_close(loop);
	cr_assert_eq(err, 0, "uco_loop_close: %d", err);
}

#define MS(n) ((int64_t)(n) * UCO_NS_PER_MS)

/* A task that sleeps |arg| ms, then returns arg, or (arg < 0) fails with
 * -EIO: the combinator tests' member. */
static inline void *sleeps_then(void *arg)
{
	intptr_t ms = (intptr_t)arg;
	int r = uco_sleep(MS(ms < 0 ? -ms : ms));
	if (r)
		return uco_fail(r);
	return ms < 0 ? uco_fail(-EIO) : (void *)ms; /* negative: fail after sleeping */
}

/* An ordered log of events, to assert the order things happened in. */
struct event_log {
	char text[4096];
};

static inline void log_event(struct event_log *log, const char *event)
{
	size_t used = strlen(log->text);
	snprintf(log->text + used, sizeof log->text - used, "%s%s", used ? "," : "", event);
}

/* Recursion that never ends (1 KiB a frame) until a coroutine's stack
 * overflows into its guard: the overflow tests' task body.  The volatile
 * flag keeps the compiler from proving it endless and folding it. */
static volatile int test_keep_recursing = 1;

static inline int test_recurse(int depth)
{
	volatile char pad[1024];
	pad[0] = (char)depth;
	if (!test_keep_recursing)
		return 0;
	return depth + test_recurse(depth + 1) + pad[0];
}

#endif
