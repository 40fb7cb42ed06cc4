/* SPDX-License-Identifier: MIT */
/* Task-local context (contextvars): inheritance at spawn, isolation after
 * it, destructors however a task ends, keys deleted while values live,
 * executor jobs, dumps.  Values are malloc'ed and freed by the destructor,
 * so that a double destruction or a leak shows under ASan. */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uco/criterion.h>

#include "helpers.h"

/* ---- values that count their destruction */

static int destroyed;
static char destroyed_log[512];

static char *val(const char *s)
{
	char *v = strdup(s);
	cr_assert(v);
	return v;
}

static void destroy(void *v)
{
	destroyed++;
	size_t used = strlen(destroyed_log);
	snprintf(destroyed_log + used, sizeof destroyed_log - used, "%s%s", used ? "," : "",
	         (char *)v);
	free(v);
}

static uco_ctx_key *new_key(void)
{
	uco_ctx_key *k = NULL;
	cr_assert_eq(uco_ctx_key_create(&k, destroy), 0);
	return k;
}

static const char *get_str(uco_ctx_key *k)
{
	void *v = NULL;
	int r = uco_ctx_get(k, &v);
	return r == 0 ? v : r == -ENOENT ? "(unset)" : "(error)";
}

/* ---- inheritance and isolation */

static uco_ctx_key *key;

static void *child_reads_then_sets(void *arg)
{
	char *seen = arg;
	strcpy(seen, get_str(key));
	uco_yield(); /* the parent sets its own value meanwhile */
	strcat(seen, "|");
	strcat(seen, get_str(key));
	cr_assert_eq(uco_ctx_set(key, val("child")), 0);
	strcat(seen, "|");
	strcat(seen, get_str(key));
	return NULL;
}

UCO_TEST(context, a_child_sees_the_values_at_spawn_and_later_sets_stay_apart)
{
	key = new_key();
	cr_assert_str_eq(get_str(key), "(unset)");
	cr_assert_eq(uco_ctx_set(key, val("parent")), 0);
	char seen1[64] = "", seen2[64] = "";
	uco_task *c1, *c2;
	cr_assert_eq(uco_spawn(NULL, &c1, child_reads_then_sets, seen1), 0);
	/* Set after the spawn, before the child ran: the child keeps what it
	 * was given (asyncio copies the context at create_task). */
	cr_assert_eq(uco_ctx_set(key, val("parent2")), 0);
	cr_assert_eq(destroyed, 0, "the first value is still the child's");
	cr_assert_eq(uco_spawn(NULL, &c2, child_reads_then_sets, seen2), 0);
	cr_assert_eq(uco_await(c1, NULL), 0);
	cr_assert_eq(uco_await(c2, NULL), 0);
	cr_assert_str_eq(seen1, "parent|parent|child");
	cr_assert_str_eq(seen2, "parent2|parent2|child");
	cr_assert_str_eq(get_str(key), "parent2", "the children's sets did not reach the parent");
	/* c1's set replaced "parent", which only c1 still held; each child's
	 * end destroyed its own "child". */
	cr_assert_str_eq(destroyed_log, "parent,child,child");
	uco_task_release(c1);
	uco_task_release(c2);
	uco_ctx_key_delete(key);
	return NULL;
}

static void *grandchild(void *arg)
{
	strcpy(arg, get_str(key));
	return NULL;
}

static void *middle(void *arg)
{
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, grandchild, arg), 0);
	cr_assert_eq(uco_await(t, NULL), 0);
	uco_task_release(t);
	return NULL;
}

UCO_TEST(context, values_reach_grandchildren)
{
	key = new_key();
	cr_assert_eq(uco_ctx_set(key, val("root")), 0);
	char seen[64] = "";
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, middle, seen), 0);
	cr_assert_eq(uco_await(t, NULL), 0);
	uco_task_release(t);
	cr_assert_str_eq(seen, "root");
	uco_ctx_key_delete(key);
	return NULL;
}

static void *reads_into(void *arg)
{
	strcpy(arg, get_str(key));
	return NULL;
}

Test(context, outside_a_task_set_and_get_are_refused_and_spawns_start_empty)
{
	key = new_key();
	void *v;
	cr_assert_eq(uco_ctx_set(key, "x"), -EPERM);
	cr_assert_eq(uco_ctx_get(key, &v), -EPERM);
	cr_assert_eq(uco_ctx_set(NULL, "x"), -EINVAL);
	cr_assert_eq(uco_ctx_get(NULL, &v), -EINVAL);
	cr_assert_eq(uco_ctx_key_create(NULL, NULL), -EINVAL);
	cr_assert_eq(uco_ctx_key_delete(NULL), -EINVAL);
	uco_loop *loop = test_loop();
	char seen[64] = "";
	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, reads_into, seen), 0);
	cr_assert_eq(uco_loop_run_until(loop, t, NULL), 0);
	cr_assert_str_eq(seen, "(unset)");
	uco_task_release(t);
	test_close(loop);
	uco_ctx_key_delete(key);
}

/* ---- destructors */

static void *sets_then(void *arg)
{
	intptr_t how = (intptr_t)arg;
	cr_assert_eq(uco_ctx_set(key, val(how == 0 ? "done" : how == 1 ? "failed" : "cancelled")),
	             0);
	if (how == 1)
		return uco_fail(-EIO);
	if (how == 2) {
		int r = uco_sleep(UCO_NS_PER_S * 3600);
		return uco_fail(r);
	}
	return NULL;
}

static void *holds_inherited(void *arg)
{
	(void)arg;
	uco_sleep(UCO_NS_PER_S * 3600); /* until cancelled */
	return NULL;
}

UCO_TEST(context, destructors_run_once_when_the_task_ends_however_it_ends)
{
	key = new_key();
	uco_task *t[3];
	for (intptr_t i = 0; i < 3; i++)
		cr_assert_eq(uco_spawn(NULL, &t[i], sets_then, (void *)i), 0);
	cr_assert_eq(uco_yield(), 0); /* they run: set, then end or sleep */
	cr_assert_eq(uco_yield(), 0);
	cr_assert_str_eq(destroyed_log, "done,failed", "at the end of each, before anyone waits");
	cr_assert_eq(uco_task_cancel(t[2]), 0);
	cr_assert_eq(uco_await(t[2], NULL), -ECANCELED);
	cr_assert_str_eq(destroyed_log, "done,failed,cancelled");
	cr_assert_eq(uco_task_state_get(t[1]), UCO_TASK_FAILED);

	/* A task that never ran lets go of what it inherited. */
	destroyed_log[0] = '\0';
	cr_assert_eq(uco_ctx_set(key, val("inherited")), 0);
	uco_task *never;
	cr_assert_eq(uco_spawn(NULL, &never, holds_inherited, NULL), 0);
	cr_assert_eq(uco_ctx_set(key, val("replaced")), 0);
	cr_assert_str_eq(destroyed_log, "", "the never-run task still holds the first");
	cr_assert_eq(uco_task_cancel(never), 0);
	cr_assert_eq(uco_await(never, NULL), -ECANCELED);
	cr_assert_str_eq(destroyed_log, "inherited");
	for (int i = 0; i < 3; i++)
		uco_task_release(t[i]);
	uco_task_release(never);
	uco_ctx_key_delete(key);
	return NULL;
}

static void *outlives_parent(void *arg)
{
	uco_event *go = arg;
	uco_event_wait(go);
	cr_assert_str_eq(get_str(key), "shared");
	return NULL;
}

static void *parent_ends_first(void *arg)
{
	cr_assert_eq(uco_ctx_set(key, val("shared")), 0);
	cr_assert_eq(uco_spawn(NULL, NULL, outlives_parent, arg), 0);
	return NULL;
}

UCO_TEST(context, a_shared_value_is_destroyed_after_its_last_holder_ends)
{
	key = new_key();
	uco_event go;
	uco_event_init(&go);
	uco_task *p;
	cr_assert_eq(uco_spawn(NULL, &p, parent_ends_first, &go), 0);
	cr_assert_eq(uco_await(p, NULL), 0);
	cr_assert_eq(destroyed, 0, "the detached child still holds it");
	uco_event_set(&go);
	for (int i = 0; i < 5 && !destroyed; i++)
		uco_yield();
	cr_assert_str_eq(destroyed_log, "shared");
	uco_task_release(p);
	uco_ctx_key_delete(key);
	return NULL;
}

static int replaced_null_dtor_calls;

static void count_only(void *v)
{
	(void)v;
	replaced_null_dtor_calls++;
}

UCO_TEST(context, replacing_destroys_the_old_value_and_the_same_value_twice_is_one)
{
	key = new_key();
	char *a = val("a");
	cr_assert_eq(uco_ctx_set(key, a), 0);
	cr_assert_eq(uco_ctx_set(key, a), 0, "the same pointer again: still one owner");
	cr_assert_eq(destroyed, 0);
	cr_assert_eq(uco_ctx_set(key, val("b")), 0);
	cr_assert_str_eq(destroyed_log, "a", "replaced in a sole owner: destroyed at once");
	cr_assert_eq(uco_ctx_set(key, NULL), 0);
	cr_assert_str_eq(destroyed_log, "a,b");
	void *v = (void *)1;
	cr_assert_eq(uco_ctx_get(key, &v), 0, "NULL is a value");
	cr_assert_null(v);

	/* NULL values are never passed to the destructor. */
	uco_ctx_key *k2;
	cr_assert_eq(uco_ctx_key_create(&k2, count_only), 0);
	cr_assert_eq(uco_ctx_set(k2, NULL), 0);
	cr_assert_eq(uco_ctx_set(k2, &replaced_null_dtor_calls), 0);
	cr_assert_eq(uco_ctx_set(k2, NULL), 0);
	cr_assert_eq(replaced_null_dtor_calls, 1);
	uco_ctx_key_delete(k2);
	uco_ctx_key_delete(key);
	return NULL;
}

/* ---- many keys: the vector grows, and copies on write */

#define NKEYS 20
static uco_ctx_key *keys[NKEYS];

static void *checks_many(void *arg)
{
	(void)arg;
	for (int i = 0; i < NKEYS; i++) {
		void *v;
		cr_assert_eq(uco_ctx_get(keys[i], &v), 0);
		cr_assert_eq(atoi(v), i);
		if (i % 2)
			cr_assert_eq(uco_ctx_set(keys[i], val("odd")), 0);
	}
	return NULL;
}

UCO_TEST(context, many_keys_grow_the_context_and_copy_on_write)
{
	for (int i = 0; i < NKEYS; i++) {
		keys[i] = new_key();
		char s[16];
		snprintf(s, sizeof s, "%d", i);
		cr_assert_eq(uco_ctx_set(keys[i], val(s)), 0);
	}
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, checks_many, NULL), 0);
	cr_assert_eq(uco_await(t, NULL), 0);
	uco_task_release(t);
	cr_assert_eq(destroyed, NKEYS / 2, "the child's own values only");
	for (int i = 0; i < NKEYS; i++) {
		void *v;
		cr_assert_eq(uco_ctx_get(keys[i], &v), 0);
		cr_assert_eq(atoi(v), i, "the parent's values are untouched");
		uco_ctx_key_delete(keys[i]);
	}
	return NULL;
}

/* ---- keys deleted while values live */

static void *after_delete(void *arg)
{
	(void)arg;
	void *v;
	cr_assert_eq(uco_ctx_get(key, &v), 0, "inherited");
	uco_sleep(MS(1)); /* the key is deleted meanwhile */
	return NULL;
}

static void *deletes_its_key(void *arg)
{
	(void)arg;
	uco_ctx_key *k = new_key();
	key = k;
	cr_assert_eq(uco_ctx_set(k, val("kept")), 0);
	uco_task *child;
	cr_assert_eq(uco_spawn(NULL, &child, after_delete, NULL), 0);
	uco_yield(); /* the child reads before the delete */
	cr_assert_eq(uco_ctx_key_delete(k), 0);
	cr_assert_eq(destroyed, 0, "deleting the key destroys no value");
	cr_assert_eq(uco_await(child, NULL), 0);
	uco_task_release(child);
	cr_assert_eq(destroyed, 0, "this task still holds it");
	return NULL;
}

UCO_TEST(context, a_key_deleted_while_values_live_still_destroys_them_once)
{
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, deletes_its_key, NULL), 0);
	cr_assert_eq(uco_await(t, NULL), 0);
	uco_task_release(t);
	cr_assert_str_eq(destroyed_log, "kept", "destroyed at its last holder's end");
	return NULL;
}

/* ---- executor jobs see no context */

static void *job_reads(void *arg)
{
	void *v;
	*(int *)arg = uco_ctx_get(key, &v);
	return NULL;
}

UCO_TEST(context, executor_jobs_see_no_context_but_spawn_in_executor_tasks_inherit)
{
	key = new_key();
	cr_assert_eq(uco_ctx_set(key, val("loop side")), 0);
	int seen = 1;
	cr_assert_eq(uco_run_in_executor(NULL, job_reads, &seen, NULL), 0);
	cr_assert_eq(seen, -EPERM, "a worker thread runs no task: %d", seen);
	uco_task *t;
	seen = 1;
	cr_assert_eq(uco_spawn_in_executor(NULL, &t, NULL, job_reads, &seen), 0);
	cr_assert_eq(uco_await(t, NULL), 0);
	cr_assert_eq(seen, -EPERM);
	uco_task_release(t);
	cr_assert_str_eq(get_str(key), "loop side");
	uco_ctx_key_delete(key);
	return NULL;
}

/* ---- dumps */

static int fmt_upper(const void *v, char *buf, size_t len)
{
	int n = snprintf(buf, len, "<%s>", (const char *)v);
	for (char *p = buf; *p; p++)
		*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
	return n;
}

static void *dumped(void *arg)
{
	cr_assert_eq(uco_ctx_set(keys[1], val("hidden")), 0);
	uco_event_wait(arg);
	return NULL;
}

UCO_TEST(context, a_dump_shows_the_values_of_described_keys)
{
	keys[0] = new_key();
	keys[1] = new_key();
	cr_assert_eq(uco_ctx_key_create(&keys[2], NULL), 0); /* values not malloc'ed */
	cr_assert_eq(uco_ctx_key_describe(keys[0], "request", fmt_upper), 0);
	cr_assert_eq(uco_ctx_key_describe(keys[2], "peer", NULL), 0);
	cr_assert_eq(uco_ctx_set(keys[0], val("r42")), 0);
	cr_assert_eq(uco_ctx_set(keys[2], (void *)0x1234), 0);
	uco_event go;
	uco_event_init(&go);
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, dumped, &go), 0);
	uco_yield();
	int fd = memfd_create("dump", 0);
	cr_assert_geq(fd, 0);
	cr_assert_geq(uco_loop_dump(NULL, fd), 2); /* and the test's own wait task */
	char text[4096] = "";
	cr_assert_geq(pread(fd, text, sizeof text - 1, 0), 0);
	close(fd);
	/* Both tasks hold request and peer; "hidden" (not described) shows not. */
	char *line1 = strstr(text, "ctx: request=<R42>, peer=0x1234");
	cr_assert(line1, "%s", text);
	cr_assert(strstr(line1 + 1, "ctx: request=<R42>, peer=0x1234"), "%s", text);
	cr_assert_null(strstr(text, "hidden"), "%s", text);
	uco_event_set(&go);
	cr_assert_eq(uco_await(t, NULL), 0);
	uco_task_release(t);
	for (int i = 0; i < 3; i++)
		uco_ctx_key_delete(keys[i]);
	return NULL;
}
