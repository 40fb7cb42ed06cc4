/* SPDX-License-Identifier: MIT */
/* <uco/criterion.h> fails what it must: runs tests/criterion_selftest.c's
 * tests one by one in a child process (their runner's exit status and
 * output) and checks that a hanging body, a leaked descriptor or task, a
 * failed body and an assertion in a task each fail, naming the test, and
 * that the passing ones pass. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

extern char **environ;

/* Run the self-test binary on one filter: its exit status; its output
 * (stdout and stderr) in out. */
static int run_filtered(const char *filter, char *out, size_t cap)
{
	const char *bin = getenv("UCO_CRITERION_SELFTEST");
	cr_assert(bin, "UCO_CRITERION_SELFTEST: the criterion_selftest binary");
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	char arg[256];
	snprintf(arg, sizeof arg, "--filter=%s", filter);
	char *argv[] = { (char *)bin, arg, (char *)"--jobs=1", NULL };
	/* Without BoxFort's variables: with them the child would take itself
	 * for one of this runner's test workers. */
	char *env[256];
	size_t k = 0;
	for (char **e = environ; *e && k < 255; e++)
		if (strncmp(*e, "BXFI_", 5) != 0)
			env[k++] = *e;
	env[k] = NULL;
	pid_t pid;
	int err = posix_spawn(&pid, bin, &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(err, 0, "posix_spawn %s: %s", bin, strerror(err));
	close(p[1]);
	size_t used = 0;
	ssize_t n;
	while ((n = read(p[0], out + used, cap - 1 - used)) > 0)
		used += (size_t)n;
	out[used] = '\0';
	close(p[0]);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "%s: killed by a signal\n%s", filter, out);
	return WEXITSTATUS(status);
}

static char out[1 << 16];

static void expect_failure(const char *filter, const char *message)
{
	int status = run_filtered(filter, out, sizeof out);
	if (strstr(out, "io_uring unavailable"))
		cr_skip_test("io_uring unavailable here");
	cr_assert_neq(status, 0, "%s passed; it must fail:\n%s", filter, out);
	cr_assert(strstr(out, message), "%s: no \"%s\" in:\n%s", filter, message, out);
	cr_assert(strstr(out, "Synthesis: Tested: 1 | Passing: 0 | Failing: 1"), "%s", out);
}

Test(criterion_helper, a_hanging_body_fails_at_its_deadline_instead_of_hanging)
{
	int64_t t0 = uco_now();
	expect_failure("hang/sleeps_forever",
	               "uco test hang/sleeps_forever: deadline of 100 ms passed; the body was "
	               "cancelled");
	cr_assert(strstr(out, "hang/sleeps_forever: deadline of 100 ms passed; the loop's tasks:"),
	          "the tasks are dumped:\n%s", out);
	cr_assert(strstr(out, "sleep"), "the dump says what it waits for:\n%s", out);
	cr_assert_lt(uco_now() - t0, 60 * UCO_NS_PER_S);
	expect_failure("hang/waits_for_an_event_nobody_sets",
	               "waits_for_an_event_nobody_sets: deadline of 100 ms passed");
}

Test(criterion_helper, a_body_that_ignores_the_cancel_is_abandoned_and_fails)
{
	expect_failure("hang/ignores_cancel",
	               "uco test hang/ignores_cancel: deadline of 100 ms passed, and the body "
	               "was still running 2000 ms after it was cancelled");
}

Test(criterion_helper, a_descriptor_or_a_task_left_behind_fails)
{
	expect_failure("leak/a_descriptor_left_open",
	               "uco test leak/a_descriptor_left_open: 1 descriptors left open");
	cr_assert(strstr(out, "(pipe:["), "the descriptor is named:\n%s", out);
	expect_failure("leak/a_task_left_running",
	               "uco test leak/a_task_left_running: 1 tasks were left running at the "
	               "deadline (cancelled)");
	cr_assert(strstr(out, "waiting"), "the task is dumped:\n%s", out);
}

Test(criterion_helper, a_failed_body_or_a_failed_assertion_in_it_fails)
{
	expect_failure("fail/the_body_fails", "uco test fail/the_body_fails: the body ended with");
	cr_assert(strstr(out, "rotocol error"), "the error is named:\n%s", out);
	expect_failure("fail/an_assertion_in_a_task", "arithmetic");
}

Test(criterion_helper, passing_bodies_pass)
{
	int status = run_filtered("pass/*", out, sizeof out);
	cr_assert_eq(status, 0, "%s", out);
	cr_assert(strstr(out, "Tested: 2 | Passing: 2 | Failing: 0"), "%s", out);
}

Test(criterion_helper, under_asan_a_leak_fails)
{
#if defined(__SANITIZE_ADDRESS__)
	expect_failure("lsan/memory_leaked", "uco test lsan/memory_leaked: LeakSanitizer found leaks");
#else
	cr_skip_test("not built with AddressSanitizer");
#endif
}
