/* SPDX-License-Identifier: MIT */
/*
 * The live stall report (lib/stall.c), without Criterion so that it runs
 * under ThreadSanitizer too (the watchdog is a thread; CI runs the
 * `threads` suite under TSan): a task spinning for 300 ms with a 50 ms
 * threshold is reported while it spins, once, with its function and a
 * backtrace frame of the spinning code; a yielding workload and a loop
 * idle in the kernel print nothing; a user's handler of a real-time signal
 * stays theirs; the API's errors.  Stderr is captured in a temporary file.
 * Prints "N passed, M failed"; exit 77 without io_uring.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uco.h>

static int checks, failures;

static void expect(int ok, const char *what, const char *output)
{
	checks++;
	if (ok)
		return;
	failures++;
	printf("FAIL: %s\n", what);
	if (output)
		printf("---- stderr ----\n%s\n----\n", output);
}

static uco_loop *new_loop(void)
{
	uco_loop *loop;
	int err = uco_loop_create(&loop, NULL);
	if (err == -ENOSYS || err == -EPERM) {
		printf("io_uring unavailable: %s\n", uco_loop_strerror(err));
		exit(77);
	}
	if (err) {
		printf("uco_loop_create: %d\n", err);
		exit(1);
	}
	return loop;
}

/* ------------------------------------------------------------ stderr */

static FILE *capture_file;
static int saved_stderr = -1;
static char captured[32768];

static void capture_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	saved_stderr = dup(STDERR_FILENO);
	if (!capture_file || saved_stderr < 0 || dup2(fileno(capture_file), STDERR_FILENO) < 0) {
		printf("cannot capture stderr\n");
		exit(1);
	}
}

static const char *capture_end(void)
{
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	rewind(capture_file);
	size_t n = fread(captured, 1, sizeof captured - 1, capture_file);
	captured[n] = '\0';
	fclose(capture_file);
	fputs(captured, stderr); /* still visible in the test log */
	return captured;
}

static int count(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, what)); p++)
		n++;
	return n;
}

/* ------------------------------------------------------------ spinning */

static volatile uint64_t spins;

/* Has anything been written to the captured stderr (the report)? */
static int reported(void)
{
	return saved_stderr >= 0 && lseek(STDERR_FILENO, 0, SEEK_CUR) > 0;
}

/* Static and not inlined: the report must name it from .symtab.  It spins
 * for `ns`; with `until_reported`, on until the report is out (at most
 * 10 s), so that a loaded machine that starves the watchdog cannot let
 * the stall end unreported. */
__attribute__((noinline)) static void spin_for(int64_t ns, int until_reported)
{
	int64_t start = uco_now(), now;
	while ((now = uco_now()) < start + ns ||
	       (until_reported && now < start + 10 * UCO_NS_PER_S && !reported()))
		spins++;
}

static int64_t enable_inside; /* threshold to turn on from inside the task */

static void *spinning_task(void *arg)
{
	(void)arg;
	if (enable_inside)
		expect(uco_loop_set_stall_report(NULL, enable_inside) == 0,
		       "turned on from inside a task", NULL);
	uco_yield();
	spin_for(300 * UCO_NS_PER_MS, arg != NULL);
	spins += 0; /* not a tail call: spin_for's caller stays in the frames */
	return NULL;
}

static void spinning_is_reported(int from_inside)
{
	uco_loop *loop = new_loop();
	uco_task *t;
	enable_inside = from_inside ? 50 * UCO_NS_PER_MS : 0;
	if (!from_inside)
		expect(uco_loop_set_stall_report(loop, 50 * UCO_NS_PER_MS) == 0, "turned on", NULL);
	expect(uco_spawn(loop, &t, spinning_task, "until reported") == 0, "spawn", NULL);
	capture_begin();
	int r = uco_loop_run(loop);
	const char *err = capture_end();
	expect(r == 0, "the loop ran", NULL);

	char want[160];
	snprintf(want, sizeof want, "uco: stall: task %p (spinning_task) of loop %p has run for ",
	         (void *)t, (void *)loop);
	expect(strstr(err, want) != NULL, "the report names the task, its function and loop", err);
	expect(strstr(err, "without yielding (threshold 50.0 ms)") != NULL, "the threshold", err);
	expect(count(err, "uco: stall:") == 1, "once per stall", err);
	/* The frames of where it is stuck: the spinning function, under the
	 * task's own. */
	const char *frames = strstr(err, "it is at:\n");
	const char *spin = frames ? strstr(frames, " spin_for+0x") : NULL;
	expect(spin != NULL, "a backtrace frame of the spinning function", err);
	expect(spin && strstr(spin, " spinning_task+0x"), "its caller's frame after it", err);
	expect(strstr(err, "uco: blocking work belongs in uco_run_in_executor()") != NULL,
	       "the advice", err);
	uco_task_release(t);
	expect(uco_loop_close(loop) == 0, "close with the report on", NULL);
}

/* ------------------------------------------------------------ quiet */

static void *yields_often(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200; i++) {
		spin_for(100 * 1000, 0); /* 0.1 ms of work per turn */
		uco_yield();
	}
	return NULL;
}

static void *sleeps(void *arg)
{
	(void)arg;
	/* The loop waits in the kernel, no task runs: not a stall. */
	uco_sleep(800 * UCO_NS_PER_MS);
	return NULL;
}

static void yielding_is_quiet(void)
{
	uco_loop *loop = new_loop();
	/* Far above any run of these tasks (a tenth of a millisecond), so
	 * that a loaded machine cannot make one look stuck. */
	expect(uco_loop_set_stall_report(loop, 500 * UCO_NS_PER_MS) == 0, "turned on", NULL);
	for (int i = 0; i < 3; i++)
		expect(uco_spawn(loop, NULL, yields_often, NULL) == 0, "spawn", NULL);
	expect(uco_spawn(loop, NULL, sleeps, NULL) == 0, "spawn", NULL);
	capture_begin();
	int r = uco_loop_run(loop);
	const char *err = capture_end();
	expect(r == 0, "the loop ran", NULL);
	expect(!strstr(err, "uco: stall"), "a yielding workload and an idle loop print nothing", err);
	/* Off again: a spin is not reported. */
	expect(uco_loop_set_stall_report(loop, 0) == 0, "turned off", NULL);
	expect(uco_spawn(loop, NULL, spinning_task, NULL) == 0, "spawn", NULL);
	enable_inside = 0;
	capture_begin();
	uco_loop_run(loop);
	err = capture_end();
	expect(!strstr(err, "uco: stall"), "off means off", err);
	expect(uco_loop_close(loop) == 0, "close", NULL);
}

/* ------------------------------------------------------------ the API */

static void user_handler(int signo)
{
	(void)signo;
}

static void *other_thread(void *arg)
{
	return (void *)(intptr_t)uco_loop_set_stall_report(arg, UCO_NS_PER_S);
}

static void api(void)
{
	/* Before any report is on: the highest real-time signal is the
	 * program's; uco must pick another and leave this one alone. */
	struct sigaction sa, now;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = user_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMAX, &sa, NULL);

	uco_loop *loop = new_loop();
	expect(uco_loop_set_stall_report(loop, -1) == -EINVAL, "negative threshold", NULL);
	expect(uco_loop_set_stall_report(NULL, UCO_NS_PER_S) == -EINVAL, "no loop here", NULL);
	pthread_t th;
	void *res;
	pthread_create(&th, NULL, other_thread, loop);
	pthread_join(th, &res);
	expect((intptr_t)res == -EPERM, "another thread's loop", NULL);
	expect(uco_loop_set_stall_report(loop, UCO_NS_PER_S) == 0, "on", NULL);
	expect(uco_loop_set_stall_report(loop, 2 * UCO_NS_PER_S) == 0, "a new threshold", NULL);
	expect(uco_loop_set_stall_report(loop, 0) == 0, "off", NULL);
	expect(uco_loop_set_stall_report(loop, 0) == 0, "off twice", NULL);
	expect(uco_loop_set_stall_report(loop, UCO_NS_PER_S) == 0, "on again", NULL);
	sigaction(SIGRTMAX, NULL, &now);
	expect(now.sa_handler == user_handler, "the user's handler is untouched", NULL);
	expect(uco_loop_close(loop) == 0, "close stops the watchdog", NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGRTMAX, &sa, NULL);
}

int main(void)
{
	api();
	spinning_is_reported(0);
	spinning_is_reported(1);
	yielding_is_quiet();
	printf("%d passed, %d failed\n", checks - failures, failures);
	return failures ? 1 : 0;
}
