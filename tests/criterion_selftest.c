/* SPDX-License-Identifier: MIT */
/* Bodies that <uco/criterion.h> must fail (and two it must pass): run one
 * at a time, by filter, by test_criterion.c, which checks the exit status
 * and the message.  Not run by itself. */
#include <string.h>
#include <unistd.h>

#include <uco/criterion.h>

UCO_TEST(hang, sleeps_forever, .deadline_ms = 100)
{
	uco_sleep(3600 * UCO_NS_PER_S); /* returns -ECANCELED at the deadline */
	return NULL;
}

UCO_TEST(hang, ignores_cancel, .deadline_ms = 100)
{
	for (int i = 0; i < 100; i++)
		uco_sleep(100 * UCO_NS_PER_MS); /* each -ECANCELED is ignored */
	return NULL;
}

UCO_TEST(hang, waits_for_an_event_nobody_sets, .deadline_ms = 100)
{
	uco_event e;
	uco_event_init(&e);
	uco_event_wait(&e);
	return NULL;
}

UCO_TEST(leak, a_descriptor_left_open)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	close(p[0]);
	return NULL; /* p[1] stays open */
}

static void *forever(void *arg)
{
	(void)arg;
	uco_sleep(3600 * UCO_NS_PER_S);
	return NULL;
}

UCO_TEST(leak, a_task_left_running, .deadline_ms = 100)
{
	cr_assert_eq(uco_spawn(NULL, NULL, forever, NULL), 0);
	return NULL;
}

UCO_TEST(fail, the_body_fails)
{
	return uco_fail(-EPROTO);
}

UCO_TEST(fail, an_assertion_in_a_task)
{
	cr_assert_eq(1 + 1, 3, "arithmetic");
	return NULL;
}

static void *short_sleep(void *arg)
{
	(void)arg;
	uco_sleep(5 * UCO_NS_PER_MS);
	return NULL;
}

UCO_TEST(pass, a_detached_task_may_finish_after_the_body)
{
	cr_assert_eq(uco_spawn(NULL, NULL, short_sleep, NULL), 0);
	return NULL;
}

UCO_TEST(pass, an_empty_body)
{
	return NULL;
}

/* Under AddressSanitizer only: LeakSanitizer's finding fails the test. */
static void *volatile sink;

UCO_TEST(lsan, memory_leaked)
{
	sink = malloc(100);
	sink = NULL;
	return NULL;
}
