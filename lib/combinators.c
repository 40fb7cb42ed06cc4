/* SPDX-License-Identifier: MIT */
/*
 * gather, wait, wait_for, shield, as_completed and task groups.
 *
 * All of them watch a set of tasks (uco__watch: fired synchronously when a
 * task finishes) and park the calling coroutine until a condition over the
 * set holds.  What a cancellation of the caller does is each one's own:
 * gather passes it on to every task and waits for them all (asyncio's
 * gather future); wait and shield return at once and cancel nothing;
 * wait_for passes it on, as an await does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "park.h"

/* ------------------------------------------------------------ watching a set */

struct set_watch {
	uco_task *waiter;
	uco_task *const *tasks;
	size_t n, finished;
	int mode;                 /* UCO_WAIT_* */
	int first_error;          /* first failure, in completion order */
	bool all;                 /* gather after a cancel: wait for all */
	bool woken;
	struct uco__watch *watches;
};

struct set_member {
	struct uco__watch watch;
	struct set_watch *set;
};

static bool condition(const struct set_watch *s)
{
	if (s->finished == s->n)
		return true;
	if (s->all)
		return false;
	switch (s->mode) {
	case UCO_WAIT_FIRST_COMPLETED:
		return s->finished > 0;
	case UCO_WAIT_FIRST_EXCEPTION:
		return s->first_error != 0;
	default:
		return false;
	}
}

static void member_finished(struct uco__watch *w, uco_task *finished)
{
	struct set_member *m = UCO__CONTAINER_OF(w, struct set_member, watch);
	struct set_watch *s = m->set;
	s->finished++;
	int err = uco_task_result(finished, NULL);
	if (err && !s->first_error)
		s->first_error = err;
	if (!s->woken && condition(s)) {
		s->woken = true;
		uco__wake(s->waiter->loop, s->waiter, 0);
	}
}

/* Count what has finished already and watch the rest.  0, or -ENOMEM. */
static int set_begin(struct set_watch *s, uco_task *self, uco_task *const *tasks, size_t n,
                     int mode)
{
	memset(s, 0, sizeof *s);
	s->waiter = self;
	s->tasks = tasks;
	s->n = n;
	s->mode = mode;
	struct set_member *m = calloc(n ? n : 1, sizeof *m);
	if (!m)
		return -ENOMEM;
	s->watches = &m[0].watch;
	for (size_t i = 0; i < n; i++) {
		m[i].set = s;
		m[i].watch.fired = member_finished;
		if (tasks[i]->state != UCO_TASK_PENDING) {
			s->finished++;
			int err = uco_task_result(tasks[i], NULL);
			if (err && !s->first_error)
				s->first_error = err;
		} else {
			uco__watch_add(tasks[i], &m[i].watch);
		}
	}
	return 0;
}

static void set_end(struct set_watch *s)
{
	struct set_member *m = UCO__CONTAINER_OF(s->watches, struct set_member, watch);
	for (size_t i = 0; i < s->n; i++)
		uco__watch_remove(&m[i].watch);
	free(m);
}

static int check_tasks(uco_task *self, uco_task *const *tasks, size_t n)
{
	if (!self)
		return -EPERM;
	if (n && !tasks)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!tasks[i] || tasks[i]->loop != self->loop)
			return tasks[i] ? -EXDEV : -EINVAL;
		/* Waiting for itself could never end (as uco_await says). */
		if (tasks[i] == self)
			return -EDEADLK;
	}
	return 0;
}

static void describe_set(const uco_task *t, char *buf, size_t len)
{
	const struct set_watch *s = t->wait_data;
	snprintf(buf, len, "%zu of %zu tasks finished", s->finished, s->n);
}

static const struct uco__wait_kind gather_kind = { "gather", describe_set };
static const struct uco__wait_kind wait_kind = { "wait", describe_set };

/* ------------------------------------------------------------ gather */

static struct set_watch *gathering(uco_task *t)
{
	return t->wait_data;
}

/* Cancelling a gather cancels every task and waits for them all. */
static void cancel_gather(uco_task *self)
{
	struct set_watch *s = gathering(self);
	s->all = true;
	for (size_t i = 0; i < s->n; i++)
		uco_task_cancel(s->tasks[i]);
}

int uco_gather(uco_task *const *tasks, size_t n, void **values, int *errors, unsigned flags)
{
	uco_task *self = uco__self();
	int err = check_tasks(self, tasks, n);
	if (err)
		return err;
	if (flags & ~UCO_GATHER_COLLECT)
		return -EINVAL;
	struct set_watch s;
	err = set_begin(&s, self, tasks, n, (flags & UCO_GATHER_COLLECT)
	                ? UCO_WAIT_ALL_COMPLETED : UCO_WAIT_FIRST_EXCEPTION);
	if (err)
		return err;
	bool cancelled = false;
	if (uco__cancel_due(self)) {
		self->wait_data = &s;
		cancel_gather(self);
		cancelled = true;
	}
	if (!condition(&s)) {
		self->wait_data = &s;
		uco__park(self->loop, self, &gather_kind, cancel_gather);
		/* The hook ran if we were cancelled: that was delivered here. */
		if (s.all) {
			self->cancelling = false;
			cancelled = true;
		}
	}
	set_end(&s);
	int failures = 0;
	for (size_t i = 0; i < n; i++) {
		void *v = NULL;
		int r = uco_task_result(tasks[i], &v);
		if (values)
			values[i] = r == 0 ? v : NULL;
		if (errors)
			errors[i] = r == -EAGAIN ? 0 : r;
		failures += r != 0 && r != -EAGAIN;
	}
	if (cancelled)
		return -ECANCELED;
	if (flags & UCO_GATHER_COLLECT)
		return failures;
	return s.first_error;
}

struct gather_call {
	uco_task *const *tasks;
	size_t n;
	unsigned flags;
};

static void *run_gather(void *arg)
{
	struct gather_call call = *(struct gather_call *)arg;
	int r = uco_gather(call.tasks, call.n, NULL, NULL, call.flags);
	/* COLLECT, as asyncio's gather(return_exceptions=True) future: done
	 * whatever the tasks did, with how many failed as the value (each
	 * task's own result says which). */
	if (r > 0)
		return (void *)(uintptr_t)r;
	return r ? uco_fail(r) : NULL;
}

int uco_spawn_gather(uco_loop *loop, uco_task **out, uco_task *const *tasks, size_t n,
                     unsigned flags)
{
	if ((n && !tasks) || (flags & ~UCO_GATHER_COLLECT))
		return -EINVAL;
	struct gather_call *call = malloc(sizeof *call);
	if (!call)
		return -ENOMEM;
	*call = (struct gather_call){ tasks, n, flags };
	return uco__spawn_owning(loop, out, run_gather, call);
}

/* ------------------------------------------------------------ wait */

/* A cancel or the deadline: wake now, and no member may wake us again. */
static void interrupt_wait(uco_task *self)
{
	struct set_watch *s = self->wait_data;
	s->woken = true;
	uco__wake(self->loop, self, -ECANCELED);
}

/* Wait (deadline allowed) until the set's condition holds: 0, -ETIMEDOUT
 * or -ECANCELED. */
static int set_wait(struct set_watch *s, int64_t deadline)
{
	uco_task *self = s->waiter;
	if (condition(s))
		return 0;
	if (uco__cancel_due(self))
		return -ECANCELED;
	int r = uco__deadline_set(self, deadline);
	if (r)
		return r;
	/* member_finished wakes us once; an interrupt wakes us instead. */
	self->wait_data = s;
	return uco__park_until(self, &wait_kind, interrupt_wait);
}

int uco_wait(uco_task *const *tasks, size_t n, int mode, int64_t deadline,
             unsigned char *done)
{
	uco_task *self = uco__self();
	int err = check_tasks(self, tasks, n);
	if (err)
		return err;
	if (mode < UCO_WAIT_ALL_COMPLETED || mode > UCO_WAIT_FIRST_EXCEPTION)
		return -EINVAL;
	struct set_watch s;
	err = set_begin(&s, self, tasks, n, mode);
	if (err)
		return err;
	int r = set_wait(&s, deadline);
	/* The deadline and the last task may land in the same turn: what
	 * finished wins, as an operation's result wins over its timeout. */
	if (r == -ETIMEDOUT && condition(&s))
		r = 0;
	set_end(&s);
	if (r == -ECANCELED)
		return r;
	int count = 0;
	for (size_t i = 0; i < n; i++) {
		bool fin = tasks[i]->state != UCO_TASK_PENDING;
		if (done)
			done[i] = fin;
		count += fin;
	}
	/* Expiry is an error, as for every _dl call and uco_next_completed;
	 * done[] says where things stand all the same. */
	return r ? r : count;
}

int uco_next_completed(uco_task *const *tasks, size_t n, unsigned char *taken,
                       int64_t deadline)
{
	uco_task *self = uco__self();
	int err = check_tasks(self, tasks, n);
	if (err)
		return err;
	if (!taken)
		return -EINVAL;
	for (bool expired = false;;) {
		/* The earliest finished among those not yet taken. */
		size_t best = n, left = 0;
		for (size_t i = 0; i < n; i++) {
			if (taken[i])
				continue;
			left++;
			if (tasks[i]->state != UCO_TASK_PENDING &&
			    (best == n || tasks[i]->finish_seq < tasks[best]->finish_seq))
				best = i;
		}
		if (!left)
			return -ENOENT;
		if (best < n) {
			taken[best] = 1;
			return (int)best;
		}
		if (expired)
			return -ETIMEDOUT;
		/* Wait for the first of those not taken (all still pending). */
		uco_task **left_tasks = malloc(left * sizeof *left_tasks);
		if (!left_tasks)
			return -ENOMEM;
		for (size_t i = 0, k = 0; i < n; i++)
			if (!taken[i])
				left_tasks[k++] = tasks[i];
		struct set_watch s;
		err = set_begin(&s, self, left_tasks, left, UCO_WAIT_FIRST_COMPLETED);
		if (!err) {
			err = set_wait(&s, deadline);
			set_end(&s);
		}
		free(left_tasks);
		/* After expiry, one more look: a task that finished in the
		 * same turn as the deadline is handed back. */
		if (err && err != -ETIMEDOUT)
			return err;
		expired = err == -ETIMEDOUT;
	}
}

/* ------------------------------------------------------------ wait_for, shield */

int uco_wait_for(uco_task *task, int64_t deadline, void **value)
{
	/* The deadline interrupts through the await's own hook: the task is
	 * cancelled and waited for. */
	return uco__await(task, value, UCO__AWAIT, deadline);
}

int uco_shield(uco_task *task, void **value)
{
	return uco__await(task, value, UCO__SHIELD, UCO_FOREVER);
}

/* ------------------------------------------------------------ groups */

struct group_member {
	struct uco__watch watch;
	uco_group *group;
	uco_task *task;
};

struct uco_group {
	uco_loop *loop;
	struct group_member **members;
	size_t n, cap;
	int first_error;
};

/* A member failed: the group reports it and cancels the others. */
static void member_done(struct uco__watch *w, uco_task *finished)
{
	(void)finished;
	struct group_member *m = UCO__CONTAINER_OF(w, struct group_member, watch);
	uco_group *g = m->group;
	if (m->task->state != UCO_TASK_FAILED || g->first_error)
		return;
	g->first_error = m->task->error;
	for (size_t i = 0; i < g->n; i++)
		uco_task_cancel(g->members[i]->task);
}

int uco_group_create(uco_loop *loop, uco_group **out)
{
	if (!out)
		return -EINVAL;
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	uco_group *g = calloc(1, sizeof *g);
	if (!g)
		return -ENOMEM;
	g->loop = loop;
	*out = g;
	return 0;
}

int uco_group_spawn(uco_group *g, uco_task **out, uco_fn fn, void *arg)
{
	if (!g || !fn)
		return -EINVAL;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 8;
		struct group_member **m = realloc(g->members, cap * sizeof *m);
		if (!m)
			return -ENOMEM;
		g->members = m;
		g->cap = cap;
	}
	struct group_member *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	int err = uco_spawn(g->loop, &m->task, fn, arg);
	if (err) {
		free(m);
		return err;
	}
	m->group = g;
	m->watch.fired = member_done;
	uco__watch_add(m->task, &m->watch);
	g->members[g->n++] = m;
	if (g->first_error)
		uco_task_cancel(m->task); /* the group is already failing */
	if (out)
		*out = uco_task_retain(m->task);
	return 0;
}

int uco_group_wait(uco_group *g)
{
	if (!g)
		return -EINVAL;
	uco_task **tasks = malloc((g->n ? g->n : 1) * sizeof *tasks);
	if (!tasks)
		return -ENOMEM;
	for (size_t i = 0; i < g->n; i++)
		tasks[i] = g->members[i]->task;
	int r = uco_gather(tasks, g->n, NULL, NULL, UCO_GATHER_COLLECT);
	free(tasks);
	if (r == -ECANCELED || r < 0)
		return r;
	return g->first_error;
}

void uco_group_destroy(uco_group *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++) {
		uco__watch_remove(&g->members[i]->watch);
		uco_task_release(g->members[i]->task);
		free(g->members[i]);
	}
	free(g->members);
	free(g);
}

/* ------------------------------------------------------------ spawn_wait */

/* uco_wait() as a task, for callers outside any task (asyncio's
 * run_until_complete(wait(...))): the count becomes the task's value. */
struct wait_call {
	uco_task *const *tasks;
	size_t n;
	int mode;
	int64_t deadline;
	unsigned char *done;
};

static void *run_wait(void *arg)
{
	const struct wait_call *call = arg;
	int r = uco_wait(call->tasks, call->n, call->mode, call->deadline, call->done);
	if (r == -ETIMEDOUT) {
		/* Expiry ends the task with the count, as asyncio.wait returns
		 * (done, pending) at its timeout, however uco_wait reports it. */
		r = 0;
		for (size_t i = 0; i < call->n; i++) {
			bool fin = call->tasks[i]->state != UCO_TASK_PENDING;
			if (call->done)
				call->done[i] = fin;
			r += fin;
		}
	}
	return r < 0 ? uco_fail(r) : (void *)(uintptr_t)r;
}

int uco_spawn_wait(uco_loop *loop, uco_task **out, uco_task *const *tasks, size_t n,
                   int mode, int64_t deadline, unsigned char *done)
{
	if ((n && !tasks) || mode < UCO_WAIT_ALL_COMPLETED || mode > UCO_WAIT_FIRST_EXCEPTION)
		return -EINVAL;
	struct wait_call *call = malloc(sizeof *call);
	if (!call)
		return -ENOMEM;
	*call = (struct wait_call){ tasks, n, mode, deadline, done };
	return uco__spawn_owning(loop, out, run_wait, call);
}
