/* SPDX-License-Identifier: MIT */
/* A user's tests of their own uco code with Criterion and <uco/criterion.h>
 * (README: "Testing your code with Criterion").  Built against the public
 * header and the shared library only, as a user's project would be:
 *     cc -o t t.c $(pkg-config --cflags --libs uco criterion) */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uco/criterion.h>

/* The code under test: echo one message back. */
static void *echo_once(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[64];
	ssize_t n = uco_recv(fd, buf, sizeof buf, 0);
	if (n < 0)
		return uco_fail((int)n);
	return uco_send(fd, buf, (size_t)n, 0) == n ? NULL : uco_fail(-EIO);
}

/* The body runs as a task on a fresh loop; a deadline fails it instead of
 * hanging, and a descriptor left open or a task left running fails it. */
UCO_TEST(echo, replies_with_what_it_got, .deadline_ms = 5000)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	uco_task *server;
	cr_assert_eq(uco_spawn(NULL, &server, echo_once, (void *)(intptr_t)sv[1]), 0);
	cr_assert_eq(uco_send(sv[0], "ping", 4, 0), 4);
	char buf[8];
	cr_assert_eq(uco_recv_dl(sv[0], buf, sizeof buf, 0, uco_now() + UCO_NS_PER_S), 4);
	cr_assert_eq(memcmp(buf, "ping", 4), 0);
	cr_assert_eq(uco_await(server, NULL), 0);
	uco_task_release(server);
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

UCO_TEST(echo, a_silent_peer_times_out)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	char buf[8];
	cr_assert_eq(uco_recv_dl(sv[0], buf, sizeof buf, 0, uco_now() + 20 * UCO_NS_PER_MS),
	             -ETIMEDOUT, "%s", uco_strerror(-ETIMEDOUT));
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

/* Per-request values (asyncio's contextvars) reach the tasks a handler
 * spawns. */
static uco_ctx_key *request_id;

static void *log_line(void *arg)
{
	void *id = NULL;
	cr_assert_eq(uco_ctx_get(request_id, &id), 0);
	cr_assert_str_eq((const char *)id, "req-7");
	return arg;
}

UCO_TEST(context, spawned_tasks_see_the_request_id)
{
	cr_assert_eq(uco_ctx_key_create(&request_id, NULL), 0);
	cr_assert_eq(uco_ctx_set(request_id, (void *)"req-7"), 0);
	uco_task *t;
	cr_assert_eq(uco_spawn(NULL, &t, log_line, NULL), 0);
	cr_assert_eq(uco_await(t, NULL), 0);
	uco_task_release(t);
	uco_ctx_key_delete(request_id);
	return NULL;
}
