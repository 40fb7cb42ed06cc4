/* SPDX-License-Identifier: MIT */
/*
 * Many loops on many threads: spawning onto another loop from any thread
 * (uco_loop_spawn_threadsafe), one loop per thread (uco_run_threads:
 * thread per core, as Seastar, glommio and monoio; a thread that fails
 * stops the others), and listening sockets shared across loops with
 * SO_REUSEPORT.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

struct remote_spawn {
	uco_loop *loop;
	uco_fn fn;
	void *arg;
};

static void spawn_here(void *p)
{
	struct remote_spawn rs = *(struct remote_spawn *)p;
	free(p);
	uco_spawn(rs.loop, NULL, rs.fn, rs.arg); /* on the loop's thread now */
}

int uco_loop_spawn_threadsafe(uco_loop *loop, uco_fn fn, void *arg)
{
	if (!loop || !fn)
		return -EINVAL;
	struct remote_spawn *rs = malloc(sizeof *rs);
	if (!rs)
		return -ENOMEM;
	*rs = (struct remote_spawn){ loop, fn, arg };
	int err = uco__loop_call_owned(loop, spawn_here, rs);
	if (err)
		free(rs);
	return err;
}

/*
 * uco_run_threads' loops share one group.  When a thread fails (its loop,
 * its setup or its run), the others are stopped, each through its own
 * inbox, so that the call returns the failure instead of waiting for loops
 * that may run for ever.  A loop is listed in the group only while it is
 * open, and posted to only under the group's lock: it cannot close under
 * the post.
 */
struct loop_group {
	pthread_mutex_t lock;
	bool failed;
	uco_loop **loops;         /* [index], NULL when not open */
};

struct loop_thread {
	pthread_t thread;
	unsigned index;
	int pin;
	int (*setup)(uco_loop *, unsigned, void *);
	void *arg;
	struct loop_group *group;
	unsigned n;
	int err;
};

static void stop_here(void *loop)
{
	uco_loop_stop(loop);
}

/* Stop every other loop of the group, now and any that opens later. */
static void group_fail(struct loop_thread *lt)
{
	struct loop_group *g = lt->group;
	pthread_mutex_lock(&g->lock);
	if (!g->failed) {
		g->failed = true;
		for (unsigned i = 0; i < lt->n; i++)
			if (g->loops[i] && i != lt->index)
				uco_loop_call(g->loops[i], stop_here, g->loops[i]);
	}
	pthread_mutex_unlock(&g->lock);
}

/* List (loop) or unlist (NULL) this thread's loop; listing a loop after a
 * failure stops it before it runs. */
static void group_list(struct loop_thread *lt, uco_loop *loop)
{
	struct loop_group *g = lt->group;
	pthread_mutex_lock(&g->lock);
	g->loops[lt->index] = loop;
	if (loop && g->failed)
		uco_loop_stop(loop);
	pthread_mutex_unlock(&g->lock);
}

static void *loop_thread_main(void *p)
{
	struct loop_thread *lt = p;
	if (lt->pin) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(lt->index % (unsigned)(cpus > 0 ? cpus : 1), &set);
		pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
	}
	uco_loop *loop;
	lt->err = uco_loop_create(&loop, NULL);
	if (lt->err) {
		group_fail(lt);
		return NULL;
	}
	group_list(lt, loop);
	lt->err = lt->setup(loop, lt->index, lt->arg);
	if (!lt->err) {
		int r = uco_loop_run(loop);
		lt->err = r < 0 ? r : 0;
	}
	if (lt->err)
		group_fail(lt);
	group_list(lt, NULL); /* from here nobody posts to it */
	/* A failed setup or run (the ring refused a submit, say), or a stop
	 * by the group, leaves tasks, and a loop with tasks cannot close:
	 * cancel them and let them end, so that the loop and all it holds
	 * are freed.  A ring that keeps failing leaves the loop behind, since
	 * the kernel may still hold its tasks' memory. */
	int c = uco_loop_close(loop);
	for (int tries = 0; c == -EBUSY && tries < 100; tries++) {
		uco_loop_cancel_all(loop);
		uco_loop_run(loop);
		c = uco_loop_close(loop);
	}
	if (!lt->err)
		lt->err = c;
	return NULL;
}

int uco_run_threads(unsigned n, int pin, int (*setup)(uco_loop *, unsigned, void *), void *arg)
{
	if (!n || !setup)
		return -EINVAL;
	struct loop_thread *lt = calloc(n, sizeof *lt);
	struct loop_group group = { .loops = calloc(n, sizeof *group.loops) };
	if (!lt || !group.loops) {
		free(lt);
		free(group.loops);
		return -ENOMEM;
	}
	pthread_mutex_init(&group.lock, NULL);
	unsigned started = 0;
	int err = 0;
	for (; started < n; started++) {
		lt[started] = (struct loop_thread){ .index = started, .pin = pin,
		                                    .setup = setup, .arg = arg,
		                                    .group = &group, .n = n };
		err = -pthread_create(&lt[started].thread, NULL, loop_thread_main, &lt[started]);
		if (err) {
			/* The threads started must not wait for the missing ones. */
			lt[started].index = n; /* stops them all */
			group_fail(&lt[started]);
			break;
		}
	}
	/* A loop stopped by the group reports 0: what is returned is the
	 * failure that stopped them (the lowest index if several failed). */
	for (unsigned i = 0; i < started; i++) {
		pthread_join(lt[i].thread, NULL);
		if (!err)
			err = lt[i].err;
	}
	pthread_mutex_destroy(&group.lock);
	free(group.loops);
	free(lt);
	return err;
}

int uco_listen_reuseport(const struct sockaddr *addr, socklen_t addrlen, int backlog)
{
	if (!addr)
		return -EINVAL;
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(fd, addr, addrlen) || listen(fd, backlog)) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}
