/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: random programs of spawn, sleep, yield, await, gather, wait,
 * wait_for, cancel, channel and executor calls, on a fresh loop per input.
 *
 * Each input byte is one step of some task's script (step = byte % 14,
 * argument = byte / 14).  Tasks wait only for later tasks (no cycles).  After the scripts have had 30 ms, every task
 * still pending is cancelled and the loop is run dry.  Then the
 * invariants are checked:
 *   - every task ended in exactly one final state;
 *   - every done-callback ran exactly once;
 *   - every item sent on the channel was received exactly once or is
 *     still in it;
 *   - an executor job gave its own value back or -ECANCELED;
 *   - the loop closes cleanly, and (under LeakSanitizer) nothing leaks.
 * A violation aborts, which libFuzzer reports with the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uco.h>

#define MAX_TASKS 8
#define US INT64_C(1000)
#define STEPS 14

struct world;

struct script {
	struct world *w;
	unsigned index;
	const uint8_t *steps;
	size_t n;
};

struct world {
	uco_task *tasks[MAX_TASKS];
	struct script scripts[MAX_TASKS];
	unsigned callbacks[MAX_TASKS];
	unsigned ntasks;
	uco_chan *chan;
	uint64_t next_item, received;
	uint8_t sent_mark[4096];     /* items are 1..4096 */
	uint8_t received_mark[4096]; /* each received once, and only if sent */
};

static uco_executor *executor;

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "fuzz_api: %s:%d: %s\n", __FILE__, __LINE__, \
			        #cond);                                          \
			abort();                                                 \
		}                                                                \
	} while (0)

static void *job(void *arg)
{
	return arg;
}

static void *sleeper(void *arg)
{
	uco_sleep((int64_t)(uintptr_t)arg * 10 * US);
	return arg;
}

static void take(struct world *w, void *item)
{
	uintptr_t v = (uintptr_t)item;
	CHECK(v >= 1 && v <= sizeof w->received_mark);
	CHECK(!w->received_mark[v - 1]);
	/* A receiver may get the item before its sender has resumed. */
	w->received_mark[v - 1] = 1;
	w->received++;
}

static void *run_script(void *arg)
{
	struct script *s = arg;
	struct world *w = s->w;
	for (size_t i = 0; i < s->n; i++) {
		unsigned step = s->steps[i] % STEPS, a = s->steps[i] / STEPS;
		/* Waits go only to later tasks: a cycle of waits (T0 gathers T1
		 * while T1 awaits T0) is a real deadlock, as it is in asyncio,
		 * which uco_loop_run reports as -EDEADLK; the fuzzer looks for
		 * bugs, not for programs that cannot end.  Cancels go anywhere. */
		unsigned later = w->ntasks - s->index - 1;
		uco_task *other = later ? w->tasks[s->index + 1 + a % later] : NULL;
		uco_task *pair[2] = { other, later ? w->tasks[s->index + 1 + (a + 1) % later] : NULL };
		uco_task *anyone = w->tasks[a % w->ntasks];
		if (!other && (step == 2 || step == 3 || step == 8 || step == 10 || step == 11))
			step = 0;
		int r = 0;
		void *v;
		switch (step) {
		case 0:
			r = uco_yield();
			break;
		case 1:
			r = uco_sleep((a + 1) * 10 * US);
			break;
		case 2:
			r = uco_await(other, NULL);
			break;
		case 3:
			r = uco_gather(pair, 2, NULL, NULL, a & 1 ? UCO_GATHER_COLLECT : 0);
			break;
		case 4:
			if (w->next_item < sizeof w->received_mark) {
				/* Each send gets its own item: a failed send's item
				 * must never be received. */
				uintptr_t item = ++w->next_item;
				r = uco_chan_send_dl(w->chan, (void *)item, uco_now() + a * 20 * US);
				if (r == 0)
					w->sent_mark[item - 1] = 1;
			}
			break;
		case 5:
			r = uco_chan_recv_dl(w->chan, &v, uco_now() + a * 20 * US);
			if (r == 0)
				take(w, v);
			break;
		case 6:
			r = uco_run_in_executor(executor, job, (void *)(uintptr_t)(a + 1), &v);
			CHECK(r == -ECANCELED || (r == 0 && v == (void *)(uintptr_t)(a + 1)));
			break;
		case 7:
			r = uco_task_cancel(anyone);
			CHECK(r == 0 || r == -EALREADY);
			r = 0;
			break;
		case 8:
			r = uco_wait_for(other, uco_now() + a * 10 * US, NULL);
			break;
		case 10: {
			unsigned char done[2] = { 0 };
			r = uco_wait(pair, 2, UCO_WAIT_FIRST_COMPLETED, uco_now() + a * 10 * US,
			             done);
			CHECK(r < 0 || r == done[0] + done[1] || pair[0] == pair[1]);
			break;
		}
		case 11:
			r = uco_shield(other, NULL);
			break;
		case 12:
			/* A detached child: the loop frees it when it ends. */
			r = uco_spawn(NULL, NULL, sleeper, (void *)(uintptr_t)a);
			CHECK(r == 0);
			break;
		case 13:
			if (a == 0) {
				r = uco_chan_close(w->chan);
				CHECK(r == 0 || r == -EALREADY);
				r = 0;
			}
			break;
		case 9:
			if (a & 1)
				return uco_fail(-(int)(a % 5 + 1));
			return (void *)(uintptr_t)a;
		}
		if (r == -ECANCELED)
			return uco_fail(-ECANCELED);
	}
	return NULL;
}

static void counted(uco_task *task, void *user)
{
	(void)task;
	unsigned *n = user;
	(*n)++;
}

/* Scripts get 30 ms to end by themselves; then whatever is left is
 * cancelled (this task included, which is fine: it has nothing left). */
static void *stop_after(void *arg)
{
	struct world *w = arg;
	int done = uco_wait(w->tasks, w->ntasks, UCO_WAIT_ALL_COMPLETED,
	                    uco_now() + 30 * 1000 * US, NULL);
	CHECK(done == (int)w->ntasks || done == -ETIMEDOUT);
	if (done == -ETIMEDOUT)
		uco_loop_cancel_all(uco_loop_current());
	return NULL;
}

/* Whatever the scripts left in the channel is drained here. */
static void *drain(void *arg)
{
	struct world *w = arg;
	void *v;
	while (uco_chan_recv_dl(w->chan, &v, 0) == 0)
		take(w, v);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (!executor) {
		uco_executor_opts eo = { .threads = 2 };
		CHECK(uco_executor_create(&executor, &eo) == 0);
	}
	uco_loop *loop;
	int err = uco_loop_create(&loop, NULL);
	if (err) {
		fprintf(stderr, "fuzz_api: %s\n", uco_loop_strerror(err));
		abort();
	}
	static struct world w;
	memset(&w, 0, sizeof w);
	w.ntasks = 1 + data[0] % MAX_TASKS;
	CHECK(uco_chan_create(&w.chan, data[1] % 4) == 0);
	data += 2;
	size -= 2;

	/* Script k gets every ntasks-th byte, so that a short input still
	 * gives every task some steps. */
	static uint8_t steps[MAX_TASKS][4096];
	size_t counts[MAX_TASKS] = { 0 };
	for (size_t i = 0; i < size && i < MAX_TASKS * sizeof steps[0]; i++) {
		unsigned k = i % w.ntasks;
		steps[k][counts[k]++] = data[i];
	}
	for (unsigned k = 0; k < w.ntasks; k++) {
		w.scripts[k] = (struct script){ &w, k, steps[k], counts[k] };
		CHECK(uco_spawn(loop, &w.tasks[k], run_script, &w.scripts[k]) == 0);
		CHECK(uco_task_add_done_callback(w.tasks[k], counted, &w.callbacks[k]) == 0);
	}
	CHECK(uco_spawn(loop, NULL, stop_after, &w) == 0);
	err = uco_loop_run(loop);
	if (err)
		fprintf(stderr, "fuzz_api: uco_loop_run: %d\n", err);
	CHECK(err == 0);

	for (unsigned k = 0; k < w.ntasks; k++) {
		int st = uco_task_state_get(w.tasks[k]);
		CHECK(st == UCO_TASK_DONE || st == UCO_TASK_FAILED || st == UCO_TASK_CANCELLED);
		CHECK(w.callbacks[k] == 1);
		void *v;
		int r = uco_task_result(w.tasks[k], &v);
		CHECK((st == UCO_TASK_DONE) == (r == 0));
		CHECK((st == UCO_TASK_CANCELLED) == (r == -ECANCELED) || st == UCO_TASK_FAILED);
	}
	CHECK(uco_spawn(loop, NULL, drain, &w) == 0);
	CHECK(uco_loop_run(loop) == 0);
	CHECK(memcmp(w.sent_mark, w.received_mark, sizeof w.sent_mark) == 0);
	for (unsigned k = 0; k < w.ntasks; k++)
		uco_task_release(w.tasks[k]);
	CHECK(uco_chan_destroy(w.chan) == 0);
	CHECK(uco_loop_close(loop) == 0);
	return 0;
}
