/* SPDX-License-Identifier: MIT */
/*
 * subprocess: start /bin/true and wait for its exit, one after the other,
 * `count` times; us_per_spawn = wall time / count.
 *
 *   uco          a task: uco_process_spawn() (posix_spawn + pidfd_open),
 *                uco_process_wait() (IORING_OP_WAITID through the ring, or
 *                its pidfd poll fallback), uco_process_release();
 *   posix_spawn  posix_spawn() + waitpid(), blocking, in this process;
 *   asyncio      peers/subprocess_asyncio.py run by python3:
 *                create_subprocess_exec() + wait().
 * The same program (/bin/true by path, no PATH search, stdio inherited),
 * the same count.  Every exit status is checked (0), so that a figure is
 * never reported for a spawn that failed.
 *
 * uco and posix_spawn run in this process, their rounds interleaved (uco,
 * posix_spawn, uco, ...) after one untimed warm-up round each, so that a
 * drift of the machine's speed spreads over both; asyncio runs its rounds
 * in its own process.  One JSON line per timed round.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bench.h"
#include "uco.h"

#define PROGRAM "/bin/true"

extern char **environ;

struct sp_state {
	int count;
	int64_t elapsed;
	int err;
	const char *where;
};

static void *uco_spawner(void *arg)
{
	struct sp_state *st = arg;
	uco_process_opts o;
	memset(&o, 0, sizeof o);
	o.argv = (char *const[]){ (char *)PROGRAM, NULL };
	o.flags = UCO_PROCESS_NO_PATH_SEARCH;
	int64_t t0 = bench_now_ns();
	for (int i = 0; i < st->count; i++) {
		uco_process *p;
		int r = uco_process_spawn(NULL, &p, &o);
		if (r < 0) {
			st->err = r;
			st->where = "uco_process_spawn";
			return NULL;
		}
		r = uco_process_wait(p);
		uco_process_release(p);
		if (r != 0) {
			st->err = r < 0 ? r : -EPROTO;
			st->where = "uco_process_wait";
			return NULL;
		}
	}
	st->elapsed = bench_now_ns() - t0;
	return NULL;
}

/* One round on uco: 0 and us per spawn in *us, or -errno after bench_fail. */
static int uco_round(uco_loop *loop, int count, double *us)
{
	struct sp_state st = { .count = count };
	uco_task *t;
	int r = uco_spawn(loop, &t, uco_spawner, &st);
	if (r == 0) {
		r = uco_loop_run_until(loop, t, NULL);
		uco_task_release(t);
	}
	if (r < 0 || st.err) {
		bench_fail("subprocess", "uco", "%s: %s", st.err ? st.where : "the loop",
		           strerror(-(st.err ? st.err : r)));
		return st.err ? st.err : r;
	}
	*us = (double)st.elapsed / 1e3 / count;
	return 0;
}

static int posix_spawn_round(int count, double *us)
{
	char *const argv[] = { (char *)PROGRAM, NULL };
	int64_t t0 = bench_now_ns();
	for (int i = 0; i < count; i++) {
		pid_t pid;
		int status;
		int r = posix_spawn(&pid, PROGRAM, NULL, NULL, argv, environ);
		if (r) {
			bench_fail("subprocess", "posix_spawn", "posix_spawn: %s", strerror(r));
			return -r;
		}
		if (waitpid(pid, &status, 0) != pid || status != 0) {
			bench_fail("subprocess", "posix_spawn", "waitpid: status %#x", status);
			return -EPROTO;
		}
	}
	*us = (double)(bench_now_ns() - t0) / 1e3 / count;
	return 0;
}

int bench_subprocess_run(const struct bench_opts *opts)
{
	const int rounds = BENCH_PICK(opts, 2, 5, 10);
	const int count = BENCH_PICK(opts, 50, 500, 2000);
	uco_loop *loop = NULL;
	bool uco_ok = true, peer_ok = true;
	int ret = 0;

	int r = uco_loop_create(&loop, NULL);
	if (r < 0) {
		bench_fail("subprocess", "uco", "uco_loop_create: %s", uco_loop_strerror(r));
		uco_ok = false;
		ret = r;
	}
	for (int round = 0; round <= rounds; round++) { /* round 0: the warm-up */
		double us = 0;
		if (uco_ok) {
			bench_progress("subprocess", "uco", round ? "timed round" : "warm-up");
			if (uco_round(loop, count, &us) < 0)
				uco_ok = false, ret = -EPROTO;
			else if (round)
				bench_emit("subprocess", "uco", "us_per_spawn", us, "us");
		}
		if (peer_ok) {
			bench_progress("subprocess", "posix_spawn", round ? "timed round" : "warm-up");
			if (posix_spawn_round(count, &us) < 0)
				peer_ok = false, ret = -EPROTO;
			else if (round)
				bench_emit("subprocess", "posix_spawn", "us_per_spawn", us, "us");
		}
	}
	if (loop && uco_loop_close(loop) < 0)
		bench_note("subprocess/uco: uco_loop_close failed");

	char *python = bench_find_in_path("python3");
	char *script = bench_find_peer_file("subprocess_asyncio.py");
	if (!python) {
		bench_skip("subprocess", "asyncio", "python3 is not in PATH");
	} else if (!script) {
		bench_skip("subprocess", "asyncio", "peers/subprocess_asyncio.py is neither "
		           "next to uco-bench nor in the data directory");
	} else {
		char rs[16], cs[16];
		snprintf(rs, sizeof rs, "%d", rounds);
		snprintf(cs, sizeof cs, "%d", count);
		char *argv[] = { python, script, (char *)"--rounds", rs, (char *)"--count", cs,
			         (char *)"--program", (char *)PROGRAM, NULL };
		bench_progress("subprocess", "asyncio", "process");
		bench_run_child("subprocess", "asyncio", argv);
	}
	free(python);
	free(script);
	return ret;
}
