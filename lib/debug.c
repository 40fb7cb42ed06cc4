/* SPDX-License-Identifier: MIT */
/*
 * Debugging aids for a running program: the task dump (asyncio's
 * all_tasks(), with what each task waits for) and debug mode's
 * slow-coroutine warning (asyncio's slow_callback_duration).  Nothing here
 * runs unless asked for; the waits describe themselves (struct
 * uco__wait_kind, in the file that owns each wait).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "report.h"

int uco__describe_fn(uco_fn fn, char *buf, size_t len)
{
	/* Named from the ELF symbol table (report.c): a static function, or
	 * one of a program not linked with -rdynamic, has its name too. */
	struct uco__msg m = { .len = 0 };
	uco__msg_fn(&m, fn);
	return snprintf(buf, len, "%.*s", (int)m.len, m.text);
}

int uco__format_ns(int64_t ns, char *buf, size_t len)
{
	if (ns < 1000)
		return snprintf(buf, len, "%" PRId64 " ns", ns);
	if (ns < UCO_NS_PER_MS)
		return snprintf(buf, len, "%.1f us", (double)ns / 1e3);
	if (ns < UCO_NS_PER_S)
		return snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
	return snprintf(buf, len, "%.1f s", (double)ns / 1e9);
}

/* ------------------------------------------------------------ for gdb */

/*
 * Where the fields tools/uco-gdb.py reads lie, so that its commands work
 * on a library built without debug info (a release build, or a distro's
 * stripped-of-DWARF package): one entry per field, "struct.field", its
 * offset and size, ending with a NULL name.  gdb finds it by name in the
 * symbol table (hidden, so in .symtab: `strip --strip-debug` keeps it,
 * only `strip --strip-all` removes it).  Add an entry when the script
 * reads a new field; never reuse a name for another meaning.
 */
struct uco__gdb_field {
	const char *name;
	uint32_t offset, size;
};

#define FIELD(type, field)                                                        \
	{ #type "." #field, (uint32_t)offsetof(struct type, field),               \
	  (uint32_t)sizeof(((struct type *)0)->field) }

extern const struct uco__gdb_field uco__gdb_layout[];
__attribute__((used)) const struct uco__gdb_field uco__gdb_layout[] = {
	FIELD(uco_loop, current),     FIELD(uco_loop, all_tasks),
	FIELD(uco_loop, live),        FIELD(uco_task, sp),
	FIELD(uco_task, run_state),   FIELD(uco_task, state),
	FIELD(uco_task, why),         FIELD(uco_task, wait_data),
	FIELD(uco_task, fn),          FIELD(uco_task, awaiting),
	FIELD(uco_task, timer_bucket), FIELD(uco_task, all_next),
	FIELD(uco__wait_kind, name),
	{ NULL, 0, 0 },
};

/* For the debugger, in a live process without debug info: the details
 * of parked t's wait (what uco_loop_dump() prints after its name), in a
 * static buffer.  Not thread-safe: only gdb calls it, with the program
 * stopped. */
extern const char *uco__gdb_wait_details(const uco_task *t);
__attribute__((used)) const char *uco__gdb_wait_details(const uco_task *t)
{
	static char buf[512];
	buf[0] = '\0';
	if (t && t->run_state == UCO__PARKED && t->why && t->why->describe)
		t->why->describe(t, buf, sizeof buf);
	return buf;
}

/* ------------------------------------------------------------ slow tasks */

int uco_loop_set_slow_warning(uco_loop *loop, int64_t threshold_ns)
{
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	if (threshold_ns < 0)
		return -EINVAL;
	loop->slow_ns = threshold_ns;
	return 0;
}

void uco__slow_report(const uco_loop *loop, const uco_task *t, int64_t ran_ns,
                      int64_t limit_ns)
{
	char fn[160], ran[32], limit[32], line[512];
	uco__describe_fn(t->fn, fn, sizeof fn);
	uco__format_ns(ran_ns, ran, sizeof ran);
	uco__format_ns(limit_ns, limit, sizeof limit);
	int n = snprintf(line, sizeof line,
	                 "uco: slow task %p (%s) of loop %p ran %s without yielding "
	                 "(threshold %s): blocking work belongs in uco_run_in_executor()\n",
	                 (void *)t, fn, (void *)loop, ran, limit);
	if (n > (int)sizeof line - 1)
		n = (int)sizeof line - 1;
	/* One write per line, so that lines of loops on other threads do
	 * not interleave; a warning that cannot be written is dropped. */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

/* ------------------------------------------------------------ dump */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static const char *state_name(const uco_task *t)
{
	switch (t->run_state) {
	case UCO__NEW:
	case UCO__READY:
		return "runnable";
	case UCO__RUNNING:
		return "running";
	case UCO__PARKED:
		return "waiting";
	default:
		return "done";
	}
}

/* How much of t's stack is in use: what lies above its saved stack
 * pointer, or above this frame for the task calling the dump.  -1: no
 * stack, or never ran. */
static long stack_used(const uco_task *t)
{
	if (t->run_state == UCO__FINISHED || !t->stack.base)
		return -1;
	const char *top = uco__stack_top(&t->stack);
	if (t->run_state == UCO__RUNNING)
		return t == uco__self() ? (long)(top - (char *)__builtin_frame_address(0)) : -1;
	return t->sp ? (long)(top - (char *)t->sp) : -1;
}

/* What t is doing or how it ended, after its state. */
static void describe_task(const uco_task *t, char *buf, size_t len)
{
	int n = 0;
	buf[0] = '\0';
	switch (t->run_state) {
	case UCO__NEW:
		n = snprintf(buf, len, "not started");
		break;
	case UCO__PARKED:
		n = snprintf(buf, len, "%s", t->why ? t->why->name : "?");
		if (t->why && t->why->describe && (size_t)n + 2 < len) {
			n += snprintf(buf + n, len - (size_t)n, ": ");
			t->why->describe(t, buf + n, len - (size_t)n);
			n += (int)strlen(buf + n);
		}
		if (t->timer_bucket && (size_t)n < len) {
			char left[32];
			uco__format_ns(uco__timer_left(t->timer_bucket, uco_now()), left, sizeof left);
			n += snprintf(buf + n, len - (size_t)n, ", deadline in at least %s", left);
		}
		break;
	case UCO__FINISHED:
		if (t->state == UCO_TASK_DONE)
			n = snprintf(buf, len, "value %p", t->value);
		else if (t->state == UCO_TASK_FAILED)
			n = snprintf(buf, len, "failed: %d (%s)", t->error, strerror(-t->error));
		else
			n = snprintf(buf, len, "cancelled");
		if (t->in_cb_queue && (size_t)n < len)
			n += snprintf(buf + n, len - (size_t)n, ", done-callbacks due");
		break;
	default:
		break;
	}
	if (t->cancelling && t->state == UCO_TASK_PENDING && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "%scancel requested", n ? ", " : "");
}

/* The last few functions named: naming one reads a symbol table, and a
 * loop's tasks mostly run a few functions. */
struct fn_names {
	struct {
		uco_fn fn;
		char name[160];
	} slot[8];
	unsigned next;
};

static const char *fn_name(struct fn_names *c, uco_fn fn)
{
	size_t n = sizeof c->slot / sizeof c->slot[0];
	for (size_t i = 0; i < n && i < c->next; i++)
		if (c->slot[i].fn == fn)
			return c->slot[i].name;
	char *name = c->slot[c->next % n].name;
	c->slot[c->next++ % n].fn = fn;
	uco__describe_fn(fn, name, sizeof c->slot[0].name);
	return name;
}

int uco_loop_dump(uco_loop *loop, int fd)
{
	int err = uco__spawn_loop(&loop);
	if (err)
		return err;
	if (fd < 0)
		return -EBADF;
	char line[1024];
	int n = snprintf(line, sizeof line,
	                 "uco loop %p: %zu tasks, %" PRIu64 " unfinished, %zu ready, "
	                 "%" PRIu64 " operations in flight, on %s%s%s\n",
	                 (void *)loop, loop->ntasks, loop->live, loop->ready.len, loop->inflight,
	                 uco_loop_backend(loop, NULL), loop->backend_why ? " because " : "",
	                 loop->backend_why ? loop->backend_why : "");
	err = write_all(fd, line, (size_t)n);
	/* Oldest first: the list is pushed at its head. */
	const uco_task *oldest = loop->all_tasks;
	while (oldest && oldest->all_next)
		oldest = oldest->all_next;
	int count = 0;
	struct fn_names names = { .next = 0 };
	for (const uco_task *t = oldest; t && !err; t = t->all_prev, count++) {
		char what[512], stack[64] = "";
		const char *fn = fn_name(&names, t->fn);
		describe_task(t, what, sizeof what);
		if (t->ctx) /* the values of keys described for dumps */
			uco__ctx_describe(t->ctx, what, sizeof what);
		long used = stack_used(t);
		if (used >= 0)
			snprintf(stack, sizeof stack, "  stack %.1f of %zu KiB", (double)used / 1024,
			         t->stack.size / 1024);
		else if (t->stack.base)
			snprintf(stack, sizeof stack, "  stack %zu KiB", t->stack.size / 1024);
		n = snprintf(line, sizeof line, "  task %p %-8s  %s%s%s%s\n", (const void *)t,
		             state_name(t), fn, stack, what[0] ? "  " : "", what);
		if (n > (int)sizeof line - 1) {
			n = (int)sizeof line - 1;
			line[n - 1] = '\n';
		}
		err = write_all(fd, line, (size_t)n);
	}
	return err ? err : count;
}
