/* SPDX-License-Identifier: MIT */
/*
 * Tasks: asyncio's Task and Future in one object.  Spawning (with the
 * loop's cache of task objects), finishing, results, reference counts,
 * done-callbacks, watches (what the combinators build on), await and
 * shield, cancellation (one task, or all of a loop's), and the listing of
 * a loop's tasks.
 *
 * Ownership: a task is reference counted.  uco_spawn() gives one reference
 * to the caller (none when detached) and the loop holds one from spawn until
 * the coroutine has ended and its done-callbacks have run.  The stack is
 * given back as soon as the coroutine ends; only the small task object lives
 * on while someone holds a reference, to read the state and the value.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"
#include "internal.h"

static void all_tasks_link(uco_loop *loop, uco_task *t)
{
	loop->ntasks++;
	t->all_prev = NULL;
	t->all_next = loop->all_tasks;
	if (loop->all_tasks)
		loop->all_tasks->all_prev = t;
	loop->all_tasks = t;
}

static void all_tasks_unlink(uco_loop *loop, uco_task *t)
{
	loop->ntasks--;
	if (t->all_prev)
		t->all_prev->all_next = t->all_next;
	else
		loop->all_tasks = t->all_next;
	if (t->all_next)
		t->all_next->all_prev = t->all_prev;
}

/*
 * Task objects are cached per loop and reused LIFO: a burst of 100k tasks
 * would otherwise hand ~25 MB back to malloc, which gives it back to the
 * kernel, and the next burst pays a page fault per 16 tasks again.  The
 * cache is trimmed together with the stack pool, to stack_keep_warm.
 *
 * A cached object has only its first two lines zeroed: the other two are
 * zero where it matters already (the layout comment in internal.h), so a
 * task that never parks never brings them into the cache.
 */
/* Rounded up to the 16-byte stores: with -Dvalgrind the stack's extra
 * field pushes line 1 a little into line 2, whose fields may be zeroed
 * again. */
#define TASK_HOT_BYTES ((offsetof(uco_task, wait_cancel) + 15) & ~(size_t)15)

static inline void task_zero_hot(uco_task *t)
{
	/* 16-byte stores: for two lines, what memset compiles to (rep stosq)
	 * spends more starting up than storing. */
	typedef uint64_t v2 __attribute__((vector_size(16), may_alias));
	v2 *p = (v2 *)(void *)t;
	_Static_assert(TASK_HOT_BYTES % 16 == 0, "task_zero_hot covers the lines");
#pragma GCC unroll 8
	for (size_t i = 0; i < TASK_HOT_BYTES / 16; i++)
		p[i] = (v2){ 0, 0 };
}

static __attribute__((noinline)) uco_task *task_alloc_new(void)
{
	uco_task *t = aligned_alloc(_Alignof(uco_task), sizeof *t);
	if (t)
		memset(t, 0, sizeof *t);
	return t;
}

/* Inline in spawn (a call of its own measured 5% of spawn+run+join). */
static inline __attribute__((always_inline)) uco_task *task_alloc(uco_loop *loop)
{
	uco_task *t = loop->task_cache;
	if (!t)
		return task_alloc_new();
	loop->task_cache = t->next_free;
	loop->ncached--;
	task_zero_hot(t);
	return t;
}

#ifdef UCO__ASAN
/* The ASan build (CI runs every suite under it) checks what reuse relies
 * on: the lines task_zero_hot leaves alone are back to zero. */
static void check_cold_zero(const uco_task *t)
{
	if (t->wait_cancel || t->wait.queue || t->timer_bucket || t->timer_link.prev ||
	    t->timer_link.next || t->awaiting || t->watches.head || t->watches.tail) {
		fprintf(stderr, "uco: task %p cached with a wait, deadline, await or "
		        "watch still set\n", (const void *)t);
		abort();
	}
}
#else
static inline void check_cold_zero(const uco_task *t)
{
	(void)t;
}
#endif

static void task_free(uco_loop *loop, uco_task *t)
{
	if (!loop) {
		free(t);
		return;
	}
	check_cold_zero(t);
	t->next_free = loop->task_cache;
	loop->task_cache = t;
	loop->ncached++;
}

size_t uco__task_cache_trim(uco_loop *loop, size_t keep)
{
	size_t n = 0;
	while (loop->ncached > keep) {
		uco_task *t = loop->task_cache;
		loop->task_cache = t->next_free;
		loop->ncached--;
		free(t);
		n++;
	}
	return n;
}

/* Inline in both entry points, so that uco_spawn's constant stack_size
 * folds its tests away (~10 instructions of every spawn). */
static inline __attribute__((always_inline)) int
spawn(uco_loop *loop, uco_task **out, uco_fn fn, void *arg, size_t stack_size)
{
	if (!fn)
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	if (stack_size) {
		size_t page = uco__page_size();
		if (stack_size < UCO_STACK_SIZE_MIN || stack_size > ((size_t)1 << 40))
			return -EINVAL;
		stack_size = (stack_size + page - 1) & ~(page - 1);
	}

	/* Room in the run queue for every task, so waking one never fails. */
	if (loop->ntasks + 1 > loop->ready.cap) {
		err = uco__ready_reserve(loop, loop->ntasks + 1);
		if (err)
			return err;
	}
	uco_task *t = task_alloc(loop);
	if (!t)
		return -ENOMEM;

	if (!stack_size || stack_size == loop->pool.stack_size) {
		/* Taken when it first runs (uco__stack_pool_reserve says why). */
		err = uco__stack_pool_reserve(&loop->pool);
		t->pooled_stack = true;
	} else {
		err = uco__stack_map(stack_size, loop->pool.guard_madvise, &t->stack);
	}
	if (err) {
		task_free(loop, t);
		return err;
	}

	t->loop = loop;
	t->fn = fn;
	t->arg = arg;
	t->state = UCO_TASK_PENDING;
	t->refs = out ? 2 : 1;
	/* asyncio copies the context at spawn; the test is inline, so that
	 * a spawn from a task without one pays no call. */
	uco_task *parent = uco__self();
	if (parent && parent->ctx)
		uco__ctx_inherit(t);
	all_tasks_link(loop, t);
	loop->live++;
	loop->stats.tasks_spawned++;
	/* First run on a later turn, never inside spawn: the caller may be a
	 * coroutine that goes on before the new task (asyncio's rule). */
	t->run_state = UCO__NEW;
	uco__ready_push(loop, t);
	if (out)
		*out = t;
	return 0;
}

int uco_spawn_sized(uco_loop *loop, uco_task **out, uco_fn fn, void *arg,
                    size_t stack_size)
{
	return spawn(loop, out, fn, arg, stack_size);
}

int uco_spawn(uco_loop *loop, uco_task **out, uco_fn fn, void *arg)
{
	return spawn(loop, out, fn, arg, 0);
}

void *uco_fail(int err)
{
	uco_task *self = uco__self();
	if (self)
		self->fail_pending = err < 0 ? err : -EINVAL;
	return NULL;
}

int uco_task_state_get(const uco_task *task)
{
	return task ? task->state : -EINVAL;
}

int uco_task_result(const uco_task *task, void **value)
{
	if (!task)
		return -EINVAL;
	switch (task->state) {
	case UCO_TASK_DONE:
		if (value)
			*value = task->value;
		return 0;
	case UCO_TASK_FAILED:
	case UCO_TASK_CANCELLED:
		return task->error;
	default:
		return -EAGAIN;
	}
}

uco_task *uco_task_retain(uco_task *task)
{
	if (task)
		task->refs++;
	return task;
}

void uco__task_unref(uco_task *t)
{
	if (--t->refs)
		return;
	if (t->loop)
		all_tasks_unlink(t->loop, t);
	task_free(t->loop, t);
}

void uco_task_release(uco_task *task)
{
	if (task)
		uco__task_unref(task);
}

uco_task *uco_task_current(void)
{
	return uco__self();
}

/* Queue a finished task's done-callbacks behind what is already ready
 * (asyncio's call_soon), holding a reference for the queue. */
static void queue_callbacks(uco_loop *loop, uco_task *t)
{
	if (t->in_cb_queue)
		return;
	t->in_cb_queue = true;
	t->refs++;
	uco__ready_push(loop, t);
}

/* Called by the scheduler once the coroutine has switched away for the
 * last time: nothing runs on its stack any more. */
void uco__task_finish(uco_loop *loop, uco_task *t)
{
	/* asyncio's rule: cancelled if the coroutine let the cancellation
	 * through, or if it was never delivered. */
	if (t->fail_pending == -ECANCELED || t->cancelling) {
		t->state = UCO_TASK_CANCELLED;
		t->error = -ECANCELED;
		t->value = NULL;
	} else if (t->fail_pending) {
		t->state = UCO_TASK_FAILED;
		t->error = t->fail_pending;
		t->value = NULL;
	} else {
		t->state = UCO_TASK_DONE;
	}
	if (t->pooled_stack && t->stack.base)
		uco__stack_pool_put(&loop->pool, &t->stack);
	else if (t->pooled_stack)
		uco__stack_pool_unreserve(&loop->pool); /* never ran */
	else
		uco__stack_unmap(&t->stack);
	t->stack = (struct uco__stack){ .base = NULL };
	uco__coro_release(t);
	if (t->ctx) {
		uco__ctx_release(t); /* destructors run before anyone learns of the end */
		uco__sched_fpctl_note(loop);
	}
	loop->live--;

	t->finish_seq = ++loop->finished_count;
	struct uco__link *l;
	while (t->watched && (l = t->watches.head)) {
		struct uco__watch *watch = UCO__LIST_ENTRY(l, struct uco__watch, link);
		uco__watch_remove(watch); /* unlinked: fired may drop the watch */
		watch->fired(watch, t);
	}
	uco_task *w;
	while ((w = uco__waitq_pop(&t->awaiters)))
		uco__wake(loop, w, 0);
	if (t->cb_head)
		queue_callbacks(loop, t);
	uco__task_unref(t); /* the loop's reference */
}

/* Run the callbacks registered so far, in order.  Callbacks added while
 * these run queue the task again, for a later turn. */
void uco__run_callbacks(uco_task *t)
{
	struct uco__done_cb *cb = t->cb_head;
	uco_loop *loop = t->loop;
	t->cb_head = NULL;
	t->in_cb_queue = false;
	while (cb) {
		struct uco__done_cb *next = cb->next;
		cb->fn(t, cb->user);
		free(cb);
		cb = next;
	}
	uco__sched_fpctl_note(loop);
	uco__task_unref(t); /* the queue's reference */
}

int uco_task_add_done_callback(uco_task *task, uco_done_cb cb, void *user)
{
	if (!task || !cb)
		return -EINVAL;
	if (!task->loop)
		return -ESHUTDOWN;
	struct uco__done_cb *node = malloc(sizeof *node);
	if (!node)
		return -ENOMEM;
	*node = (struct uco__done_cb){ NULL, cb, user };
	if (task->cb_head)
		*task->cb_tail = node;
	else
		task->cb_head = node;
	task->cb_tail = &node->next;
	if (task->state != UCO_TASK_PENDING)
		queue_callbacks(task->loop, task);
	return 0;
}

/* Would `self` waiting for `target` close a cycle of awaits? */
static bool awaits_self(const uco_task *self, const uco_task *target)
{
	for (const uco_task *t = target; t; t = t->awaiting)
		if (t == self)
			return true;
	return false;
}

void uco__watch_add(uco_task *t, struct uco__watch *w)
{
	w->task = t;
	t->watched = true;
	uco__list_push_front(&t->watches, &w->link);
}

void uco__watch_remove(struct uco__watch *w)
{
	if (!w->task)
		return;
	uco__list_remove(&w->task->watches, &w->link);
	w->task = NULL;
}

/* Cancelling a task that awaits another cancels the awaited one (asyncio
 * cancels the future it waits on) and goes on waiting: the awaiter learns
 * the outcome from the awaited task, -ECANCELED if it let the cancellation
 * through. */
static void cancel_await(uco_task *self)
{
	self->cancelling = false; /* passed on, not delivered twice */
	uco_task_cancel(self->awaiting);
}

/* A shield's awaiter leaves at once; the task goes on. */
static void leave_shield(uco_task *self)
{
	uco__waitq_remove(self);
	uco__wake(self->loop, self, -ECANCELED);
}

static void describe_await(const uco_task *t, char *buf, size_t len)
{
	char fn[160];
	uco__describe_fn(t->awaiting->fn, fn, sizeof fn);
	snprintf(buf, len, "task %p (%s)", (void *)t->awaiting, fn);
}

static const struct uco__wait_kind await_kind = { "await", describe_await };
static const struct uco__wait_kind shield_kind = { "shield", describe_await };

/* Await a task that has already finished, the usual case when joining a
 * batch: no cycle is possible (a finished task awaits nothing and is not
 * the running one), so uco__await's answers without walking the chain. */
static inline int join_finished(const uco_task *self, const uco_task *task, void **value)
{
	if (task->loop != self->loop)
		return -EXDEV;
	return uco_task_result(task, value);
}

int uco__await(uco_task *task, void **value, enum uco__await_mode mode, int64_t deadline)
{
	uco_task *self = uco__self();
	if (!task)
		return -EINVAL;
	if (!self)
		return -EPERM;
	if (task->state != UCO_TASK_PENDING)
		return join_finished(self, task, value);
	if (awaits_self(self, task))
		return -EDEADLK;
	if (task->loop != self->loop)
		return -EXDEV;
	if (task->state == UCO_TASK_PENDING) {
		if (uco__cancel_due(self))
			return -ECANCELED;
		int r = uco__deadline_set(self, deadline);
		bool expired = r == -ETIMEDOUT;
		if (expired) {
			/* Already past: cancel it and wait for it to end. */
			uco_task_cancel(task);
		} else if (r) {
			return r;
		}
		/* Hold the task: a callback may release its last handle
		 * before this coroutine runs again. */
		task->refs++;
		self->awaiting = task;
		uco__waitq_push(&task->awaiters, self);
		bool shield = mode == UCO__SHIELD;
		r = uco__park_until(self, shield ? &shield_kind : &await_kind,
		                    shield ? leave_shield : cancel_await);
		self->awaiting = NULL;
		expired = expired || r == -ETIMEDOUT;
		if (r == -ECANCELED && shield) {
			uco__task_unref(task);
			return r; /* shield: the task goes on */
		}
		int res = uco_task_result(task, value);
		uco__task_unref(task);
		/* A deadline that cancelled the task: -ETIMEDOUT, unless the
		 * task finished with a value regardless. */
		if (expired && res != 0)
			return -ETIMEDOUT;
		return res;
	}
	return uco_task_result(task, value);
}

int uco_await(uco_task *task, void **value)
{
	/* A finished task is joined here, without uco__await's frame. */
	if (task && task->state != UCO_TASK_PENDING) {
		uco_task *self = uco__self();
		return self ? join_finished(self, task, value) : -EPERM;
	}
	return uco__await(task, value, UCO__AWAIT, UCO_FOREVER);
}

int uco_task_cancel(uco_task *task)
{
	if (!task)
		return -EINVAL;
	if (task->state != UCO_TASK_PENDING || !task->loop)
		return -EALREADY;
	if (task->loop->owner != uco__thread_token())
		return -EPERM;
	if (task->cancelling)
		return 0; /* one cancellation, however often requested */
	task->cancelling = true;
	uco__interrupt(task);
	return 0;
}

size_t uco_loop_tasks(uco_loop *loop, uco_task **out, size_t cap)
{
	if (!loop)
		return 0;
	size_t n = 0;
	for (uco_task *t = loop->all_tasks; t; t = t->all_next) {
		if (t->state != UCO_TASK_PENDING)
			continue;
		if (out && n < cap)
			out[n] = uco_task_retain(t);
		n++;
	}
	return n;
}

int uco_loop_cancel_all(uco_loop *loop)
{
	if (!loop)
		return -EINVAL;
	if (loop->owner != uco__thread_token())
		return -EPERM;
	int n = 0;
	/* Cancelling may finish tasks (those that never ran) only later, in
	 * the loop: the list is safe to walk. */
	for (uco_task *t = loop->all_tasks; t; t = t->all_next)
		if (t->state == UCO_TASK_PENDING && uco_task_cancel(t) == 0)
			n++;
	return n;
}

static void free_owned(uco_task *task, void *mem)
{
	(void)task;
	free(mem);
}

/* The memory is freed by a done-callback, which runs however the task
 * ends, even cancelled before it first ran (when fn never sees mem). */
int uco__spawn_owning(uco_loop *loop, uco_task **out, uco_fn fn, void *mem)
{
	uco_task *t;
	int err = uco_spawn(loop, &t, fn, mem);
	if (err) {
		free(mem);
		return err;
	}
	err = uco_task_add_done_callback(t, free_owned, mem);
	if (err) {
		/* It has not run: cancelled now, it never will. */
		uco_task_cancel(t);
		uco_task_release(t);
		free(mem);
		return err;
	}
	if (out)
		*out = t;
	else
		uco_task_release(t);
	return 0;
}
