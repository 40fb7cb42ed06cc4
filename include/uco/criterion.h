/* SPDX-License-Identifier: MIT */
/*
 * <uco/criterion.h>: test code that runs on uco with Criterion.
 *
 *     #include <uco/criterion.h>
 *
 *     UCO_TEST(echo, replies_in_order, .deadline_ms = 2000)
 *     {
 *         ... a task's body: block in uco calls, cr_assert as usual ...
 *         return NULL;               // or return uco_fail(-EPROTO);
 *     }
 *
 * Each UCO_TEST is a Criterion Test() (its own process) whose body runs as
 * a task on a fresh loop.  The test fails, naming itself:
 *   - if the deadline (default UCO_TEST_DEADLINE_MS_DEFAULT) passes first:
 *     the loop's tasks are dumped to stderr, the body is cancelled, and the
 *     test fails rather than hangs (a body that ignores the cancel for
 *     UCO_TEST_GRACE_MS more is abandoned);
 *   - if the body ends failed (uco_fail) or cancelled;
 *   - if tasks the body left behind have not finished by the deadline (the
 *     loop runs on until none is left, so detached tasks may finish);
 *   - if uco_loop_close() does not return 0, or if a descriptor opened
 *     during the test is still open after it (listed with its target);
 *   - under AddressSanitizer, if LeakSanitizer finds memory leaked (it
 *     would otherwise report only at the worker's exit, which Criterion
 *     does not count).
 * Options (designated initializers, in this order in C++): .deadline_ms,
 * .loop_opts (NULL: defaults), .arg (the body's argument, `arg`).  With
 * UCO_TEST_RING=plain in the environment the loop is made with
 * UCO_LOOP_PLAIN_RING.  Where io_uring is unavailable (ENOSYS, EPERM) the
 * test is skipped.  For Criterion's own options (.init, .timeout ...),
 * write the Test() yourself and call uco_test_run() in it.
 *
 * Header-only, C and C++.  See uco_test_run(3).
 */
#ifndef UCO_CRITERION_H
#define UCO_CRITERION_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uco.h>

/* Criterion passes a test whose worker LeakSanitizer reports only at its
 * exit: under ASan, UCO_TEST asks LeakSanitizer itself at the end. */
#if defined(__SANITIZE_ADDRESS__)
#define UCO_TEST_LSAN_ 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UCO_TEST_LSAN_ 1
#endif
#endif
#ifdef UCO_TEST_LSAN_
#include <sanitizer/lsan_interface.h>
#endif

#define UCO_TEST_DEADLINE_MS_DEFAULT 10000
#define UCO_TEST_GRACE_MS 2000

struct uco_test_opts {
	int deadline_ms;                 /* 0: UCO_TEST_DEADLINE_MS_DEFAULT */
	const uco_loop_opts *loop_opts;  /* NULL: the defaults */
	void *arg;                       /* the body's argument */
	int sentinel_;                   /* for the macro; leave it */
};

/* Descriptors open now, as a bitmap of the first UCO_TEST_FDS_. */
#define UCO_TEST_FDS_ 4096
struct uco_test_fds_ {
	unsigned char open[UCO_TEST_FDS_ / 8];
};

static inline void uco_test_fds_scan_(struct uco_test_fds_ *fds)
{
	memset(fds, 0, sizeof *fds);
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int self = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd == self || fd < 0 || fd >= UCO_TEST_FDS_)
			continue;
		fds->open[fd / 8] = (unsigned char)(fds->open[fd / 8] | (1u << (fd % 8)));
	}
	closedir(d);
}

/* Descriptors open now and not before: their count, each listed on stderr. */
static inline int uco_test_fds_leaked_(const struct uco_test_fds_ *before, const char *suite,
                                       const char *name)
{
	struct uco_test_fds_ now;
	uco_test_fds_scan_(&now);
	int leaked = 0;
	for (int fd = 0; fd < UCO_TEST_FDS_; fd++) {
		unsigned bit = 1u << (fd % 8);
		if (!(now.open[fd / 8] & bit) || (before->open[fd / 8] & bit))
			continue;
		char path[64], target[PATH_MAX];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, target, sizeof target - 1);
		target[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "uco test %s/%s: descriptor %d (%s) left open\n", suite, name, fd,
		        target);
		leaked++;
	}
	return leaked;
}

/* Wait (running the loop) until the given tasks have finished or the
 * deadline passes: whether they all finished. */
static inline int uco_test_wait_(uco_loop *loop, uco_task *const *tasks, size_t n,
                                 int64_t deadline)
{
	uco_task *w = NULL;
	int err = uco_spawn_wait(loop, &w, tasks, n, UCO_WAIT_ALL_COMPLETED, deadline, NULL);
	cr_assert_eq(err, 0, "uco test: uco_spawn_wait: %s", uco_strerror(err));
	err = uco_loop_run_until(loop, w, NULL);
	uco_task_release(w);
	cr_assert(err == 0 || err == -ETIMEDOUT, "uco test: running the loop: %s",
	          uco_strerror(err));
	for (size_t i = 0; i < n; i++)
		if (uco_task_state_get(tasks[i]) == UCO_TASK_PENDING)
			return 0;
	return 1;
}

/* Every task the loop still has, retained (release each); their number. */
static inline size_t uco_test_tasks_(uco_loop *loop, uco_task ***out)
{
	size_t n = uco_loop_tasks(loop, NULL, 0);
	*out = (uco_task **)calloc(n ? n : 1, sizeof **out);
	cr_assert(*out != NULL, "uco test: out of memory");
	n = uco_loop_tasks(loop, *out, n);
	return n;
}

static inline void uco_test_release_(uco_task **tasks, size_t n)
{
	for (size_t i = 0; i < n; i++)
		uco_task_release(tasks[i]);
	free(tasks);
}

/* Run body(o->arg) as a task on a fresh loop, with the checks described at
 * the top of this header.  Call it from a Criterion Test(). */
static inline void uco_test_run(const char *suite, const char *name, uco_fn body,
                                const struct uco_test_opts *o)
{
	struct uco_test_fds_ fds;
	uco_test_fds_scan_(&fds);

	uco_loop_opts lo;
	memset(&lo, 0, sizeof lo);
	if (o->loop_opts)
		lo = *o->loop_opts;
	const char *ring = getenv("UCO_TEST_RING");
	if (ring && strcmp(ring, "plain") == 0)
		lo.flags |= UCO_LOOP_PLAIN_RING;
	uco_loop *loop = NULL;
	int err = uco_loop_create(&loop, &lo);
	if (err == -ENOSYS || err == -EPERM)
		cr_skip_test("uco test %s/%s: io_uring unavailable here: %s", suite, name,
		             uco_loop_strerror(err));
	cr_assert_eq(err, 0, "uco test %s/%s: uco_loop_create: %s", suite, name,
	             uco_loop_strerror(err));

	int ms = o->deadline_ms > 0 ? o->deadline_ms : UCO_TEST_DEADLINE_MS_DEFAULT;
	int64_t deadline = uco_now() + (int64_t)ms * UCO_NS_PER_MS;
	uco_task *task = NULL;
	err = uco_spawn(loop, &task, body, o->arg);
	cr_assert_eq(err, 0, "uco test %s/%s: uco_spawn: %s", suite, name, uco_strerror(err));

	if (!uco_test_wait_(loop, &task, 1, deadline)) {
		fprintf(stderr, "uco test %s/%s: deadline of %d ms passed; the loop's tasks:\n",
		        suite, name, ms);
		uco_loop_dump(loop, STDERR_FILENO);
		uco_task_cancel(task);
		if (!uco_test_wait_(loop, &task, 1,
		                    uco_now() + (int64_t)UCO_TEST_GRACE_MS * UCO_NS_PER_MS))
			cr_assert_fail("uco test %s/%s: deadline of %d ms passed, and the body "
			               "was still running %d ms after it was cancelled",
			               suite, name, ms, UCO_TEST_GRACE_MS);
		cr_expect_fail("uco test %s/%s: deadline of %d ms passed; the body was "
		               "cancelled", suite, name, ms);
		uco_loop_cancel_all(loop); /* and clean up below, to say what else is wrong */
		deadline = uco_now() + (int64_t)UCO_TEST_GRACE_MS * UCO_NS_PER_MS;
	} else {
		err = uco_task_result(task, NULL);
		cr_expect_eq(err, 0, "uco test %s/%s: the body ended with %d: %s", suite, name,
		             err, uco_strerror(err));
	}
	uco_task_release(task);

	/* The loop runs on until every task has finished (detached tasks the
	 * body left may end by themselves), within the same deadline. */
	uco_task **left;
	size_t n;
	while ((n = uco_test_tasks_(loop, &left)) > 0) {
		int all = uco_test_wait_(loop, left, n, deadline), ended = 1;
		if (!all) {
			fprintf(stderr, "uco test %s/%s: tasks left unfinished at the deadline:\n",
			        suite, name);
			uco_loop_dump(loop, STDERR_FILENO);
			uco_loop_cancel_all(loop);
			deadline = uco_now() + (int64_t)UCO_TEST_GRACE_MS * UCO_NS_PER_MS;
			ended = uco_test_wait_(loop, left, n, deadline);
		}
		uco_test_release_(left, n);
		cr_assert(ended, "uco test %s/%s: %zu tasks were left running at the "
		          "deadline, and did not end once cancelled", suite, name, n);
		if (!all)
			cr_expect_fail("uco test %s/%s: %zu tasks were left running at the "
			               "deadline (cancelled)", suite, name, n);
	}
	free(left);
	err = uco_loop_run(loop); /* done-callbacks still due */
	cr_assert(err >= 0, "uco test %s/%s: uco_loop_run: %s", suite, name, uco_strerror(err));
	err = uco_loop_close(loop);
	cr_assert_eq(err, 0, "uco test %s/%s: uco_loop_close: %s", suite, name,
	             uco_strerror(err));
	int leaked = uco_test_fds_leaked_(&fds, suite, name);
	cr_expect_eq(leaked, 0, "uco test %s/%s: %d descriptors left open (listed above)",
	             suite, name, leaked);
#ifdef UCO_TEST_LSAN_
	cr_expect_eq(__lsan_do_recoverable_leak_check(), 0,
	             "uco test %s/%s: LeakSanitizer found leaks (listed above)", suite, name);
#endif
}

/* UCO_TEST(suite, name, options...) { body; return NULL; }: a Criterion
 * test whose body (a uco_fn: its parameter is `arg`) runs as a task. */
#define UCO_TEST(...) UCO_TEST_BASE_(__VA_ARGS__, .sentinel_ = 0)
#define UCO_TEST_BASE_(Suite, Name, ...)                                             \
	static void *uco_test_body_##Suite##_##Name(void *arg);                     \
	Test(Suite, Name)                                                           \
	{                                                                           \
		struct uco_test_opts uco_test_o_ =                                  \
			CRITERION_MAKE_STRUCT(struct uco_test_opts, __VA_ARGS__);   \
		uco_test_run(#Suite, #Name, uco_test_body_##Suite##_##Name, &uco_test_o_); \
	}                                                                           \
	static void *uco_test_body_##Suite##_##Name(void *arg __attribute__((unused)))

#endif
