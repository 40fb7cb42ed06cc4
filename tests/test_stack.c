/* SPDX-License-Identifier: MIT */
/* Stacks: guard pages, pooling, trimming, sizes, exhaustion. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "child.h"
#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__)
/* The guard-page test expects the SIGSEGV itself; ASan would catch it and
 * exit(1) with its own report.  Other memory errors are still caught. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_segv=0";
}
#endif

static void *overflows(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)test_recurse(0);
}

/* The guard page itself, without uco's report (tested in test_debug.c):
 * UCO_OVERFLOW_REPORT=0 leaves SIGSEGV to its default action. */
Test(stack, overflow_hits_the_guard_page, .signal = SIGSEGV)
{
	setenv("UCO_OVERFLOW_REPORT", "0", 1);
	uco_loop *loop = test_loop();
	cr_assert_eq(uco_spawn(loop, NULL, overflows, NULL), 0);
	uco_loop_run(loop);
}

/* A static task function: not in the dynamic symbol table, so dladdr
 * alone would name it only "test_stack+0x11c4"; the report reads the
 * executable's .symtab and says its name. */
static void *a_static_overflower(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)test_recurse(0);
}

static void static_overflow_child(void *arg)
{
	(void)arg;
	uco_loop *loop = child_loop();
	uco_task *t;
	if (uco_spawn(loop, &t, a_static_overflower, NULL))
		_exit(4);
	fprintf(stderr, "task=%p\n", (void *)t);
	uco_loop_run(loop);
	_exit(5); /* not reached: the task overflows */
}

Test(stack, overflow_report_names_a_static_function)
{
	struct child c;
	run_child(static_overflow_child, NULL, &c);
	expect_signal(&c, SIGABRT);
	void *t = NULL;
	const char *p = strstr(c.err, "task=");
	cr_assert(p && sscanf(p, "task=%p", &t) == 1, "%s", c.err);
	char want[96];
	snprintf(want, sizeof want, "uco: stack overflow: task %p (a_static_overflower) of loop ", t);
	cr_assert(strstr(c.err, want), "'%s' in:\n%s", want, c.err);
	cr_assert(!strstr(c.err, "addr2line"), "a named function needs no hint:\n%s", c.err);
}

static int deep(int n)
{
	volatile char pad[1000];
	pad[0] = 1;
	return n ? deep(n - 1) + pad[0] : 0;
}

static void *uses_200k(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)deep(190);
}

Test(stack, per_task_size_allows_deep_recursion)
{
	uco_loop *loop = test_loop();
	uco_task *t;
	void *v;
	cr_assert_eq(uco_spawn_sized(loop, &t, uses_200k, NULL, 256 * 1024), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, &v), 0);
	cr_assert_eq((intptr_t)v, 190);
	uco_task_release(t);
	test_close(loop);
}

static void *sleeps_1ms(void *arg)
{
	(void)arg;
	uco_sleep(UCO_NS_PER_MS);
	return NULL;
}

Test(stack, the_pool_reuses_stacks)
{
	uco_loop *loop = test_loop();
	uco_loop_stats s1, s2;
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(uco_spawn(loop, NULL, sleeps_1ms, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_loop_stats_get(loop, &s1);
	cr_assert_geq(s1.stacks_mapped, 1000);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 1000; i++)
			cr_assert_eq(uco_spawn(loop, NULL, sleeps_1ms, NULL), 0);
		cr_assert_eq(uco_loop_run(loop), 0);
	}
	uco_loop_stats_get(loop, &s2);
	cr_assert_eq(s2.stacks_mapped, s1.stacks_mapped, "no new stack after the first round");
	test_close(loop);
}

/* Where each task of a burst ran: the page of a local variable. */
static uintptr_t burst_page[1000];

static void *notes_its_stack(void *arg)
{
	volatile char here = 0;
	burst_page[(intptr_t)arg] = (uintptr_t)&here & ~(uintptr_t)(getpagesize() - 1);
	return NULL;
}

/* A task takes its stack when it is about to run, not at spawn: a burst of
 * tasks that each end before the next starts cycles through a few warm
 * stacks instead of touching one per task. */
Test(stack, a_burst_of_short_tasks_runs_on_a_few_stacks)
{
	uco_loop *loop = test_loop();
	for (intptr_t i = 0; i < 1000; i++)
		cr_assert_eq(uco_spawn(loop, NULL, notes_its_stack, (void *)i), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	int distinct = 0;
	for (int i = 0; i < 1000; i++) {
		cr_assert_neq(burst_page[i], 0, "task %d ran", i);
		bool seen = false;
		for (int j = 0; j < i && !seen; j++)
			seen = burst_page[j] == burst_page[i];
		distinct += !seen;
	}
	cr_assert_leq(distinct, 16, "1000 short tasks ran on %d stacks", distinct);
	test_close(loop);
}

/* Touch 32 KiB of stack and remember where, to ask mincore later. */
static char *touched_page[2000];

static void *touches_stack(void *arg)
{
	volatile char buf[32 * 1024];
	for (size_t i = 0; i < sizeof buf; i += 512)
		buf[i] = 1;
	touched_page[(intptr_t)arg] = (char *)((uintptr_t)&buf[0] & ~(uintptr_t)(getpagesize() - 1));
	uco_sleep(UCO_NS_PER_MS);
	return NULL;
}

static bool resident(const char *page)
{
	unsigned char vec = 0;
	cr_assert_eq(mincore((void *)page, (size_t)getpagesize(), &vec), 0);
	return vec & 1;
}

Test(stack, trimming_gives_memory_back_but_keeps_warm_stacks)
{
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.stack_keep_warm = 100;
	uco_loop *loop = test_loop_opts(&opts);
	for (intptr_t i = 0; i < 2000; i++)
		cr_assert_eq(uco_spawn(loop, NULL, touches_stack, (void *)i), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	int before = 0;
	for (int i = 0; i < 2000; i++)
		before += resident(touched_page[i]);
	cr_assert_eq(before, 2000, "finished stacks stay warm in the pool");

	int trimmed = uco_loop_trim(loop);
	cr_assert_eq(trimmed, 2000 - 100 + (int)(0), "all but stack_keep_warm");
	int after = 0;
	for (int i = 0; i < 2000; i++)
		after += resident(touched_page[i]);
	cr_assert_eq(after, 100, "%d pages still resident", after);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	cr_assert_eq(s.stacks_trimmed, 1900);

	/* Trimmed stacks are still usable (and their guards still there). */
	for (intptr_t i = 0; i < 2000; i++)
		cr_assert_eq(uco_spawn(loop, NULL, touches_stack, (void *)i), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	test_close(loop);
}

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int lines = 0, c;
	while ((c = fgetc(f)) != EOF)
		lines += c == '\n';
	fclose(f);
	return lines;
}

static void *sleeps_20ms(void *arg)
{
	(void)arg;
	uco_sleep(20 * UCO_NS_PER_MS);
	return NULL;
}

Test(stack, guard_pages_do_not_split_mappings, .timeout = 60)
{
	uco_loop *loop = test_loop();
	if (!(uco_loop_features(loop) & UCO_RING_GUARD_MADVISE))
		cr_skip_test("no MADV_GUARD_INSTALL (Linux < 6.13): mprotect guards split mappings");
	int before = count_maps();
	/* More concurrent coroutines than vm.max_map_count / 2 allows with
	 * one mprotect'ed guard per stack. */
	enum { N = 70000 };
	for (int i = 0; i < N; i++)
		cr_assert_eq(uco_spawn(loop, NULL, sleeps_20ms, NULL), 0, "spawn %d", i);
	cr_assert_eq(uco_loop_run(loop), 0);
	int after = count_maps();
	cr_assert_lt(after - before, 200, "%d new mappings for %d stacks", after - before, N);
	test_close(loop);
}

Test(stack, spawn_without_memory_fails_cleanly_and_the_loop_goes_on, .timeout = 60)
{
	uco_loop *loop = test_loop();
	struct rlimit lim;
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	cr_assert_eq(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	/* Room for a few slabs of stacks, not for 100k. */
	lim.rlim_cur = lim.rlim_max = pages * (unsigned long)getpagesize() + 64ul * 1024 * 1024;
	cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);

	int spawned = 0, err = 0;
	for (; spawned < 100000; spawned++) {
		err = uco_spawn(loop, NULL, sleeps_1ms, NULL);
		if (err)
			break;
	}
	cr_assert_eq(err, -ENOMEM, "spawn %d: %d", spawned, err);
	cr_assert_gt(spawned, 0);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	cr_assert_eq(s.tasks_live_now, (uint64_t)spawned, "the failed spawn started nothing");
	cr_assert_eq(uco_loop_run(loop), 0, "the tasks that were spawned all finish");
	/* Their stacks came back to the pool: spawning works again. */
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, sleeps_1ms, NULL), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	uco_task_release(t);
	test_close(loop);
}

static void *returns_at_once(void *arg)
{
	return arg;
}

static int callbacks_run;

static void count_callback(uco_task *task, void *arg)
{
	(void)task;
	(void)arg;
	callbacks_run++;
}

static void *yields_a_few_times(void *arg)
{
	for (int i = 0; i < 3; i++)
		uco_yield();
	return arg;
}

/* A finished task waits in the run queue for its callbacks after its
 * stack is gone (unmapped, for a stack of its own size): the scheduler must
 * not look at that stack while other tasks run ahead of it. */
Test(stack, finished_tasks_of_their_own_stack_size_wait_for_callbacks_safely)
{
	uco_loop *loop = test_loop();
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 40; i++) {
			uco_task *t;
			size_t size = i % 2 ? 32 * 1024 : 0;
			cr_assert_eq(uco_spawn_sized(loop, &t, i % 3 ? returns_at_once : yields_a_few_times,
			                             NULL, size), 0);
			cr_assert_eq(uco_task_add_done_callback(t, count_callback, NULL), 0);
			uco_task_release(t);
		}
		cr_assert_eq(uco_loop_run(loop), 0);
	}
	cr_assert_eq(callbacks_run, 20 * 40);
	test_close(loop);
}

static void *sleeps_2500ms(void *arg)
{
	(void)arg;
	uco_sleep(2500 * UCO_NS_PER_MS);
	return NULL;
}

/* Without any call from the user: idle warm stacks beyond stack_keep_warm
 * go back within about two trim periods of a second while the loop waits. */
Test(stack, idle_stacks_are_trimmed_while_the_loop_waits, .timeout = 30)
{
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.stack_keep_warm = 10;
	uco_loop *loop = test_loop_opts(&opts);
	for (intptr_t i = 0; i < 1000; i++)
		cr_assert_eq(uco_spawn(loop, NULL, touches_stack, (void *)i), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	cr_assert_eq(s.stacks_trimmed, 0, "nothing trimmed while the burst ran");

	/* One task sleeps; the loop blocks and trims by itself meanwhile. */
	cr_assert_eq(uco_spawn(loop, NULL, sleeps_2500ms, NULL), 0);
	cr_assert_eq(uco_loop_run(loop), 0);
	uco_loop_stats_get(loop, &s);
	cr_assert_geq(s.stacks_trimmed, 1000 - 10 - 1, "%lu trimmed", (unsigned long)s.stacks_trimmed);
	int resident_pages = 0;
	for (int i = 0; i < 1000; i++)
		resident_pages += resident(touched_page[i]);
	cr_assert_leq(resident_pages, 11, "%d stacks still resident", resident_pages);
	test_close(loop);
}
