/* SPDX-License-Identifier: MIT */
/* Debugging aids: the stack-overflow report, the slow-task warning and the
 * task dump. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "helpers.h"
#include "internal.h" /* t->stack, for the frame that jumps the guard */
#include "report.h"   /* uco__symbolize */

#if defined(__SANITIZE_ADDRESS__)
/* Under ASan, uco's handler still reports overflows, and passes other
 * faults on to ASan's handler, which reports them and exits 1.  These
 * tests expect such faults to end in a plain SIGSEGV, as without ASan, so
 * ASan leaves SIGSEGV alone in this executable; its other checks stay on. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_segv=0";
}
#endif

/* The name uco should give a function: its own, from the symbol table,
 * even for one that is not exported (the test executable is not linked
 * with -rdynamic, so dladdr alone knows none of these). */
#define expected_name(fn, buf, len) snprintf(buf, len, "%s", #fn)

/* ------------------------------------------------------------ names */

__attribute__((noinline)) static int a_static_function(int x)
{
	return x * 3 + 1;
}

static const char not_code[] = "data, not a function";

Test(debug, symbolize_names_static_functions_and_points_addr2line_at_the_rest)
{
	int (*volatile fp)(int) = a_static_function;
	cr_assert_eq(fp(1), 4);
	int (*f)(int) = fp;
	void *addr;
	memcpy(&addr, &f, sizeof addr);
	struct uco__sym s;
	cr_assert(uco__symbolize(addr, &s), "the executable's .symtab has it");
	cr_assert_str_eq(s.name, "a_static_function");
	cr_assert_eq(s.offset, 0);
	/* Inside it: the same name, how far in. */
	cr_assert(uco__symbolize((char *)addr + 1, &s));
	cr_assert_str_eq(s.name, "a_static_function");
	cr_assert_eq(s.offset, 1);
	/* The file is this executable, and vaddr what its headers number. */
	char self[256];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	cr_assert_gt(n, 0);
	self[n] = '\0';
	cr_assert_str_eq(s.file, self);

	/* No function there: no name, but a command line that resolves it. */
	cr_assert_not(uco__symbolize(not_code, &s));
	cr_assert_str_eq(s.file, self);
	struct uco__msg m = { .len = 0 };
	uco_fn as_fn;
	const void *data = not_code;
	memcpy(&as_fn, &data, sizeof as_fn);
	uco__msg_addr2line_hint(&m, as_fn);
	char want[512];
	snprintf(want, sizeof want, "addr2line -f -e %s %#lx\n", self, (unsigned long)s.vaddr);
	m.text[m.len < sizeof m.text ? m.len : sizeof m.text - 1] = '\0';
	cr_assert(strstr(m.text, want), "'%s' in: %s", want, m.text);
	/* A named one needs none. */
	m.len = 0;
	memcpy(&as_fn, &addr, sizeof as_fn);
	uco__msg_addr2line_hint(&m, as_fn);
	cr_assert_eq(m.len, 0);
	/* Nothing mapped: not even a file. */
	cr_assert_not(uco__symbolize((void *)16, &s));
	cr_assert_str_eq(s.file, "");
}

/* ------------------------------------------------------------ overflow */

void *overflows(void *arg);
void *overflows(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)test_recurse(0);
}

struct overflow_args {
	size_t stack_size; /* 0: the loop's */
};

static void overflow_child(void *arg)
{
	const struct overflow_args *a = arg;
	uco_loop *loop = child_loop();
	uco_task *t;
	if (uco_spawn_sized(loop, &t, overflows, NULL, a->stack_size))
		_exit(4);
	fprintf(stderr, "task=%p loop=%p\n", (void *)t, (void *)loop);
	uco_loop_run(loop);
	_exit(5); /* not reached: the task overflows */
}

/* The task pointer and loop the child printed before running. */
static void child_ids(const struct child *c, char *task, char *loop, size_t len)
{
	const char *p = strstr(c->err, "task=");
	cr_assert(p, "the child printed its task: %s", c->err);
	void *t, *l;
	cr_assert_eq(sscanf(p, "task=%p loop=%p", &t, &l), 2);
	snprintf(task, len, "task %p", t);
	snprintf(loop, len, "loop %p", l);
}

static void expect_report(const struct child *c, const char *size, const char *loop_size)
{
	expect_signal(c, SIGABRT);
	char task[64], loop[64], fn[256], text[128];
	child_ids(c, task, loop, sizeof task);
	snprintf(fn, sizeof fn, "(overflows) of %s", loop);
	cr_assert(strstr(c->err, "uco: stack overflow: "), "%s", c->err);
	cr_assert(strstr(c->err, task), "names %s: %s", task, c->err);
	cr_assert(strstr(c->err, fn), "names the function %s: %s", fn, c->err);
	cr_assert(strstr(c->err, loop), "names %s: %s", loop, c->err);
	snprintf(text, sizeof text, "end of its %s stack", size);
	cr_assert(strstr(c->err, text), "says '%s': %s", text, c->err);
	cr_assert(strstr(c->err, "uco_spawn_sized()"), "%s", c->err);
	snprintf(text, sizeof text, "uco_loop_opts.stack_size (this loop's: %s)", loop_size);
	cr_assert(strstr(c->err, text), "says '%s': %s", text, c->err);
}

Test(debug, stack_overflow_names_the_task_then_aborts)
{
	struct overflow_args a = { 0 };
	struct child c;
	run_child(overflow_child, &a, &c);
	expect_report(&c, "64 KiB", "64 KiB");
}

Test(debug, stack_overflow_of_a_task_with_its_own_stack_size)
{
	struct overflow_args a = { 32 * 1024 };
	struct child c;
	run_child(overflow_child, &a, &c);
	expect_report(&c, "32 KiB", "64 KiB");
}

/* A frame larger than the guard page skips it: its first write lands in
 * whatever lies below, here the stack of the task spawned before (pooled
 * stacks sit side by side in one mapping), which the test makes
 * inaccessible so that the write faults.  The report must still name the
 * task, from its stack pointer. */
static int big_frame(void)
{
	volatile char buf[100 * 1024];
	buf[0] = 1;
	return buf[0];
}

void *jumps_the_guard(void *arg);
void *jumps_the_guard(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)big_frame();
}

static void *never_runs(void *arg)
{
	return arg;
}

static void jump_child(void *arg)
{
	(void)arg;
	uco_loop *loop = child_loop();
	uco_task *below, *t;
	if (uco_spawn(loop, &below, never_runs, NULL) ||
	    uco_spawn(loop, &t, jumps_the_guard, NULL))
		_exit(4);
	size_t page = (size_t)getpagesize();
	if (below->stack.base + below->stack.size + page != t->stack.base)
		_exit(6); /* not side by side: cannot make it fault */
	if (mprotect(below->stack.base, below->stack.size, PROT_NONE))
		_exit(7);
	uco_task_cancel(below); /* ends without running */
	fprintf(stderr, "task=%p loop=%p\n", (void *)t, (void *)loop);
	uco_loop_run(loop);
	_exit(5);
}

Test(debug, stack_overflow_by_a_frame_that_jumps_the_guard)
{
	struct child c;
	run_child(jump_child, NULL, &c);
	if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 6)
		cr_skip_test("the two stacks are not side by side");
	expect_signal(&c, SIGABRT);
	char task[64], loop[64];
	child_ids(&c, task, loop, sizeof task);
	cr_assert(strstr(c.err, "uco: stack overflow: "), "%s", c.err);
	cr_assert(strstr(c.err, task), "%s", c.err);
	cr_assert(strstr(c.err, "end of its 64 KiB stack"), "%s", c.err);
}

/* Faults that are not overflows stay what they were.  The write goes to
 * a PROT_NONE page rather than to NULL, which UBSan would stop first. */
static void *writes_to_a_bad_page(void *arg)
{
	(void)arg;
	volatile int *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED)
		*p = 1;
	return NULL;
}

static void null_in_task_child(void *arg)
{
	(void)arg;
	uco_loop *loop = child_loop();
	if (uco_spawn(loop, NULL, writes_to_a_bad_page, NULL))
		_exit(4);
	uco_loop_run(loop);
	_exit(5);
}

Test(debug, other_faults_in_a_task_are_a_plain_sigsegv)
{
	struct child c;
	run_child(null_in_task_child, NULL, &c);
	expect_signal(&c, SIGSEGV);
	cr_assert_null(strstr(c.err, "uco:"), "no report: %s", c.err);
}

static void killed_child(void *arg)
{
	(void)arg;
	child_loop();
	raise(SIGSEGV); /* sent, not a fault */
	_exit(5);
}

Test(debug, a_sigsegv_sent_by_kill_still_kills)
{
	struct child c;
	run_child(killed_child, NULL, &c);
	expect_signal(&c, SIGSEGV);
	cr_assert_null(strstr(c.err, "uco:"), "no report: %s", c.err);
}

/* A handler the program installed before its first loop still gets the
 * faults that are not overflows. */
static void programs_handler(int signo)
{
	(void)signo;
	static const char msg[] = "the program's handler\n";
	ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
	(void)w;
	_exit(42);
}

static void chained_child(void *arg)
{
	signal(SIGSEGV, programs_handler);
	uco_loop *loop = child_loop();
	if (uco_spawn(loop, NULL, arg ? overflows : writes_to_a_bad_page, NULL))
		_exit(4);
	uco_loop_run(loop);
	_exit(5);
}

Test(debug, the_previous_handler_gets_the_other_faults)
{
	struct child c;
	run_child(chained_child, NULL, &c);
	cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 42, "status %#x: %s",
	          c.status, c.err);
	cr_assert(strstr(c.err, "the program's handler"), "%s", c.err);

	/* An overflow is still uco's. */
	run_child(chained_child, (void *)1, &c);
	expect_signal(&c, SIGABRT);
	cr_assert(strstr(c.err, "uco: stack overflow: "), "%s", c.err);
}

static void opted_out_child(void *arg)
{
	(void)arg;
	setenv("UCO_OVERFLOW_REPORT", "0", 1);
	uco_loop *loop = child_loop();
	if (uco_spawn(loop, NULL, overflows, NULL))
		_exit(4);
	uco_loop_run(loop);
	_exit(5);
}

Test(debug, uco_overflow_report_0_opts_out)
{
	struct child c;
	run_child(opted_out_child, NULL, &c);
	expect_signal(&c, SIGSEGV);
	cr_assert_null(strstr(c.err, "uco:"), "no report: %s", c.err);
}

/* Threads of uco_run_threads each get the report (each has its own
 * alternate signal stack). */
static void *sleeps_a_while(void *arg)
{
	(void)arg;
	uco_sleep(2 * UCO_NS_PER_S);
	return NULL;
}

static int setup_threads(uco_loop *loop, unsigned index, void *arg)
{
	(void)arg;
	return uco_spawn(loop, NULL, index == 1 ? overflows : sleeps_a_while, NULL);
}

static void threads_child(void *arg)
{
	(void)arg;
	uco_loop *probe = child_loop(); /* skips where io_uring is missing */
	uco_loop_close(probe);
	uco_run_threads(2, 0, setup_threads, NULL);
	_exit(5);
}

Test(debug, stack_overflow_on_another_thread)
{
	struct child c;
	run_child(threads_child, NULL, &c);
	expect_signal(&c, SIGABRT);
	cr_assert(strstr(c.err, "uco: stack overflow: "), "%s", c.err);
	char fn[256];
	expected_name(overflows, fn, sizeof fn);
	cr_assert(strstr(c.err, fn), "%s", c.err);
}

/* ------------------------------------------------------------ stderr */

/* Capture this process's stderr in a memfd while a test runs. */
struct capture {
	int saved, fd;
	char text[8192];
};

static void capture_start(struct capture *cap)
{
	fflush(stderr);
	cap->fd = memfd_create("stderr", 0);
	cr_assert_geq(cap->fd, 0);
	cap->saved = dup(STDERR_FILENO);
	dup2(cap->fd, STDERR_FILENO);
}

static const char *capture_end(struct capture *cap)
{
	fflush(stderr);
	dup2(cap->saved, STDERR_FILENO);
	close(cap->saved);
	ssize_t n = pread(cap->fd, cap->text, sizeof cap->text - 1, 0);
	cap->text[n > 0 ? n : 0] = '\0';
	close(cap->fd);
	return cap->text;
}

/* ------------------------------------------------------------ slow tasks */

static void spin(int64_t ns)
{
	int64_t end = uco_now() + ns;
	while (uco_now() < end)
		;
}

void *hogs_the_loop(void *arg);
void *hogs_the_loop(void *arg)
{
	(void)arg;
	spin(MS(250));
	return NULL;
}

/* Runs as long in all, but yields in between: every 2 ms, so that only a
 * machine that takes the thread away for nearly the whole 100 ms threshold
 * could make it look slow (at 40 ms a loaded CI machine did).  Its longest
 * slice, resume to yield, is kept: where the machine did take the thread
 * away that long, the warning would be right, and the test says so
 * rather than failing. */
static int64_t polite_longest_slice;

void *yields_in_between(void *arg);
void *yields_in_between(void *arg)
{
	(void)arg;
	polite_longest_slice = 0;
	for (int i = 0; i < 125; i++) {
		int64_t resumed = uco_now();
		spin(MS(2));
		int64_t slice = uco_now() - resumed;
		if (slice > polite_longest_slice)
			polite_longest_slice = slice;
		uco_yield();
	}
	return NULL;
}

Test(debug, slow_task_warning)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_loop_set_slow_warning(loop, MS(100)), 0);
	uco_task *hog, *polite;
	cr_assert_eq(uco_spawn(loop, &hog, hogs_the_loop, NULL), 0);
	cr_assert_eq(uco_spawn(loop, &polite, yields_in_between, NULL), 0);
	struct capture cap;
	capture_start(&cap);
	int r = uco_loop_run(loop);
	const char *err = capture_end(&cap);
	cr_assert_eq(r, 0);

	char who[64], fn[256];
	snprintf(who, sizeof who, "uco: slow task %p (", (void *)hog);
	const char *line = strstr(err, who);
	cr_assert(line, "the hog is reported: '%s'", err);
	expected_name(hogs_the_loop, fn, sizeof fn);
	cr_assert(strstr(line, fn), "names %s: %s", fn, line);
	double ms = 0;
	const char *ran = strstr(line, " ran ");
	cr_assert(ran && sscanf(ran, " ran %lf ms", &ms) == 1, "%s", line);
	cr_assert(ms >= 250 && ms < 5000, "ran %.1f ms", ms);
	cr_assert(strstr(line, "(threshold 100.0 ms)"), "%s", line);
	char other[64];
	snprintf(other, sizeof other, "task %p", (void *)polite);
	/* The loop's own measure of a slice starts a little before the
	 * task's and ends a little after it: a margin of 20 ms. */
	if (polite_longest_slice < MS(80))
		cr_assert_null(strstr(err, other), "a task that yields is not slow: %s", err);
	else
		/* (cr_log_warn would make Criterion's exit status 1.) */
		fprintf(stderr, "debug/slow_task_warning: the machine held the yielding "
		        "task's thread for %.1f ms: not checked that it is not reported\n",
		        (double)polite_longest_slice / 1e6);
	cr_assert_null(strstr(line + 1, who), "the hog is reported once: %s", err);
	uco_task_release(hog);
	uco_task_release(polite);

	/* Off again: nothing more. */
	cr_assert_eq(uco_loop_set_slow_warning(loop, 0), 0);
	cr_assert_eq(uco_spawn(loop, NULL, hogs_the_loop, NULL), 0);
	capture_start(&cap);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_empty(capture_end(&cap));
	test_close(loop);
}

Test(debug, slow_task_warning_is_off_by_default)
{
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_spawn(loop, NULL, hogs_the_loop, NULL), 0);
	struct capture cap;
	capture_start(&cap);
	cr_assert_eq(uco_loop_run(loop), 0);
	cr_assert_str_empty(capture_end(&cap));
	test_close(loop);
}

static void *set_from_thread(void *arg)
{
	return (void *)(intptr_t)uco_loop_set_slow_warning(arg, MS(1));
}

Test(debug, slow_task_warning_arguments)
{
	cr_assert_eq(uco_loop_set_slow_warning(NULL, MS(1)), -EINVAL, "no loop");
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_loop_set_slow_warning(loop, -1), -EINVAL);
	pthread_t th;
	void *r;
	cr_assert_eq(pthread_create(&th, NULL, set_from_thread, loop), 0);
	pthread_join(th, &r);
	cr_assert_eq((intptr_t)r, -EPERM);
	test_close(loop);
}

/* ------------------------------------------------------------ dump */

struct scene {
	uco_loop *loop;
	int pipe_io[2];   /* a task reads the read end */
	int pipe_job[2];  /* an executor job reads the read end */
	uco_mutex mutex;
	uco_event event, event_dl;
	uco_chan *chan;
	uco_task *sleeper, *reader, *awaiter, *holder, *locker, *eventer, *deadliner,
		*receiver, *job, *gatherer, *gathered[2], *done, *failed, *fresh, *dumper;
	char dump[32768];
	int listed;
};

static struct scene sc;

void *sleeper(void *arg);
void *sleeper(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_sleep(10 * UCO_NS_PER_S);
}

void *reader(void *arg);
void *reader(void *arg)
{
	(void)arg;
	char c;
	return (void *)uco_read(sc.pipe_io[0], &c, 1, -1);
}

void *awaiter(void *arg);
void *awaiter(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_await(sc.sleeper, NULL);
}

void *holder(void *arg);
void *holder(void *arg)
{
	(void)arg;
	uco_mutex_lock(&sc.mutex);
	uco_event_wait(&sc.event);
	uco_mutex_unlock(&sc.mutex);
	return NULL;
}

void *locker(void *arg);
void *locker(void *arg)
{
	(void)arg;
	if (uco_mutex_lock(&sc.mutex) == 0)
		uco_mutex_unlock(&sc.mutex);
	return NULL;
}

void *eventer(void *arg);
void *eventer(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_event_wait(&sc.event);
}

void *deadliner(void *arg);
void *deadliner(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_event_wait_dl(&sc.event_dl, uco_now() + 5 * UCO_NS_PER_S);
}

void *receiver(void *arg);
void *receiver(void *arg)
{
	(void)arg;
	void *item;
	return (void *)(intptr_t)uco_chan_recv(sc.chan, &item);
}

void *blocking_job(void *arg);
void *blocking_job(void *arg)
{
	(void)arg;
	char c;
	ssize_t n = read(sc.pipe_job[0], &c, 1);
	return (void *)n;
}

void *gatherer(void *arg);
void *gatherer(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)uco_gather(sc.gathered, 2, NULL, NULL, 0);
}

void *returns_42(void *arg);
void *returns_42(void *arg)
{
	(void)arg;
	return (void *)42;
}

void *fails_enoent(void *arg);
void *fails_enoent(void *arg)
{
	(void)arg;
	return uco_fail(-ENOENT);
}

void *dumper(void *arg);
void *dumper(void *arg)
{
	(void)arg;
	/* Let every task reach its wait, and the job its worker. */
	uco_sleep(MS(100));
	cr_assert_eq(uco_spawn(NULL, &sc.fresh, returns_42, NULL), 0);
	int fd = memfd_create("dump", 0);
	sc.listed = uco_loop_dump(NULL, fd);
	ssize_t n = pread(fd, sc.dump, sizeof sc.dump - 1, 0);
	sc.dump[n > 0 ? n : 0] = '\0';
	close(fd);

	/* Let everything end. */
	cr_assert_eq(write(sc.pipe_io[1], "x", 1), 1);
	cr_assert_eq(write(sc.pipe_job[1], "x", 1), 1);
	uco_event_set(&sc.event);
	uco_event_set(&sc.event_dl);
	uco_chan_send(sc.chan, NULL);
	uco_task_cancel(sc.sleeper);
	uco_task_cancel(sc.gathered[0]);
	uco_task_cancel(sc.gathered[1]);
	return NULL;
}

/* The dump's line for task t. */
static const char *line_of(const uco_task *t, char *buf, size_t len)
{
	char key[64];
	snprintf(key, sizeof key, "  task %p ", (const void *)t);
	const char *p = strstr(sc.dump, key);
	cr_assert(p, "the dump lists %s:\n%s", key, sc.dump);
	const char *end = strchr(p, '\n');
	size_t n = end ? (size_t)(end - p) : strlen(p);
	if (n >= len)
		n = len - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

/* t's line says `state`, names fn, and contains each of the others. */
#define expect_line(t, state, fn, a, b) expect_line_named(t, state, #fn, a, b)
static void expect_line_named(const uco_task *t, const char *state, const char *fn,
                              const char *a, const char *b)
{
	char line[1024], want[256];
	line_of(t, line, sizeof line);
	snprintf(want, sizeof want, " %-8s ", state);
	cr_assert(strstr(line, want), "'%s' in: %s", state, line);
	snprintf(want, sizeof want, "  %s  ", fn);
	cr_assert(strstr(line, want), "names %s: %s", fn, line);
	if (a)
		cr_assert(strstr(line, a), "'%s' in: %s", a, line);
	if (b)
		cr_assert(strstr(line, b), "'%s' in: %s", b, line);
}

static void spawn_(uco_task **t, uco_fn fn)
{
	cr_assert_eq(uco_spawn(sc.loop, t, fn, NULL), 0);
}

Test(debug, dump_says_what_each_task_waits_for)
{
	sc.loop = test_loop();
	cr_assert_eq(pipe(sc.pipe_io), 0);
	cr_assert_eq(pipe(sc.pipe_job), 0);
	uco_mutex_init(&sc.mutex);
	uco_event_init(&sc.event);
	uco_event_init(&sc.event_dl);
	cr_assert_eq(uco_chan_create(&sc.chan, 1), 0);

	spawn_(&sc.done, returns_42);
	spawn_(&sc.failed, fails_enoent);
	spawn_(&sc.sleeper, sleeper);
	spawn_(&sc.reader, reader);
	spawn_(&sc.awaiter, awaiter);
	spawn_(&sc.holder, holder);
	spawn_(&sc.locker, locker);
	spawn_(&sc.eventer, eventer);
	spawn_(&sc.deadliner, deadliner);
	spawn_(&sc.receiver, receiver);
	cr_assert_eq(uco_spawn_in_executor(sc.loop, &sc.job, NULL, blocking_job, NULL), 0);
	spawn_(&sc.gathered[0], sleeper);
	spawn_(&sc.gathered[1], sleeper);
	spawn_(&sc.gatherer, gatherer);
	spawn_(&sc.dumper, dumper);
	void *v;
	cr_assert_eq(uco_loop_run_until(sc.loop, sc.dumper, &v), 0);

	char want[256], line[1024];
	cr_assert_eq(sc.listed, 16, "%d tasks listed:\n%s", sc.listed, sc.dump);
	snprintf(want, sizeof want, "uco loop %p: 16 tasks, 14 unfinished, 1 ready", (void *)sc.loop);
	cr_assert(strstr(sc.dump, want), "header '%s':\n%s", want, sc.dump);

	expect_line(sc.dumper, "running", dumper, "stack ", NULL);
	expect_line(sc.fresh, "runnable", returns_42, "not started", NULL);
	expect_line(sc.done, "done", returns_42, "value 0x2a", NULL);
	expect_line(sc.failed, "done", fails_enoent, "failed: -2 (No such file or directory)", NULL);
	expect_line(sc.sleeper, "waiting", sleeper, "sleep: at least 9.", " s left");
	expect_line(sc.sleeper, "waiting", sleeper, " of 64 KiB", NULL);
	snprintf(want, sizeof want, "io: read fd %d", sc.pipe_io[0]);
	expect_line(sc.reader, "waiting", reader, want, NULL);
	snprintf(want, sizeof want, "await: task %p (", (void *)sc.sleeper);
	expect_line(sc.awaiter, "waiting", awaiter, want, NULL);
	snprintf(want, sizeof want, "mutex: %p, held by task %p", (void *)&sc.mutex,
	         (void *)sc.holder);
	expect_line(sc.locker, "waiting", locker, want, NULL);
	snprintf(want, sizeof want, "event: %p", (void *)&sc.event);
	expect_line(sc.holder, "waiting", holder, want, NULL);
	expect_line(sc.eventer, "waiting", eventer, want, NULL);
	snprintf(want, sizeof want, "event: %p, deadline in at least 4.", (void *)&sc.event_dl);
	expect_line(sc.deadliner, "waiting", deadliner, want, NULL);
	snprintf(want, sizeof want, "channel receive: %p, 0 of 1 buffered", (void *)sc.chan);
	expect_line(sc.receiver, "waiting", receiver, want, NULL);
	expected_name(blocking_job, want, sizeof want);
	char job[512];
	snprintf(job, sizeof job, "executor job: %s on executor ", want);
	line_of(sc.job, line, sizeof line);
	cr_assert(strstr(line, " waiting  "), "%s", line);
	cr_assert(strstr(line, job), "'%s' in: %s", job, line);
	cr_assert(strstr(line, ", running"), "%s", line);
	expect_line(sc.gatherer, "waiting", gatherer, "gather: 0 of 2 tasks finished", NULL);

	cr_assert_eq(uco_loop_run(sc.loop), 0);
	uco_task *all[] = { sc.sleeper, sc.reader, sc.awaiter, sc.holder, sc.locker, sc.eventer,
	                    sc.deadliner, sc.receiver, sc.job, sc.gatherer, sc.gathered[0],
	                    sc.gathered[1], sc.done, sc.failed, sc.fresh, sc.dumper };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		uco_task_release(all[i]);
	uco_chan_destroy(sc.chan);
	test_close(sc.loop);
}

static void *dump_from_thread(void *arg)
{
	return (void *)(intptr_t)uco_loop_dump(arg, STDERR_FILENO);
}

Test(debug, dump_outside_a_task_and_its_errors)
{
	cr_assert_eq(uco_loop_dump(NULL, STDERR_FILENO), -EINVAL, "no loop on this thread");
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_loop_dump(loop, -1), -EBADF);
	pthread_t th;
	void *r;
	cr_assert_eq(pthread_create(&th, NULL, dump_from_thread, loop), 0);
	pthread_join(th, &r);
	cr_assert_eq((intptr_t)r, -EPERM);

	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, sleeper, NULL), 0);
	struct capture cap;
	capture_start(&cap);
	int n = uco_loop_dump(loop, STDERR_FILENO);
	const char *out = capture_end(&cap);
	cr_assert_eq(n, 1);
	char want[128];
	snprintf(want, sizeof want, "  task %p runnable ", (void *)t);
	cr_assert(strstr(out, want), "%s", out);
	cr_assert(strstr(out, "not started"), "%s", out);

	/* A dump to a closed pipe reports the write's error. */
	int p[2];
	cr_assert_eq(pipe(p), 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(uco_loop_dump(loop, p[1]), -EPIPE);
	close(p[1]);

	cr_assert_eq(uco_task_cancel(t), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_task_release(t);
	test_close(loop);
}
