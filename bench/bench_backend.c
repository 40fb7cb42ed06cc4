/* SPDX-License-Identifier: MIT */
/*
 * uco-bench: uco's implementations per backend.
 *
 * "uco" and "uco-epoll" run the very same benchmark code; only the loop's
 * uco_loop_opts.backend differs: UCO_BACKEND_AUTO (the default, io_uring
 * where the kernel allows it) for "uco", UCO_BACKEND_EPOLL (the readiness
 * backend) for "uco-epoll".  A figure is only worth its name if the loop
 * really ran on that backend, so every benchmark asks uco_loop_backend():
 * it says on stderr which backend each uco implementation ran on, and
 * skips "uco-epoll" where the loop does not run on epoll (a library built
 * before the readiness backend, or UCO_BACKEND=io_uring in the environment,
 * which overrides the option).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "uco.h"

bool bench_is_uco_epoll(const char *impl)
{
	return strcmp(impl, "uco-epoll") == 0;
}

unsigned bench_uco_backend(const char *impl)
{
	return bench_is_uco_epoll(impl) ? UCO_BACKEND_EPOLL : UCO_BACKEND_AUTO;
}

const char *bench_uco_backend_arg(const char *impl)
{
	return bench_is_uco_epoll(impl) ? "epoll" : "auto";
}

/* What a loop of `backend` runs on in this process: probed once each. */
struct probe {
	bool done;
	int err;               /* uco_loop_create's, or 0 */
	char name[16];         /* uco_loop_backend() */
	char why[160];         /* why AUTO fell back, or "" */
};

static struct probe probes[3]; /* indexed by UCO_BACKEND_* */

static const struct probe *probe_backend(unsigned backend)
{
	struct probe *p = &probes[backend < 3 ? backend : 0];

	if (p->done)
		return p;
	p->done = true;
	uco_loop_opts lo;
	uco_loop *loop;
	memset(&lo, 0, sizeof lo);
	lo.backend = backend;
	p->err = uco_loop_create(&loop, &lo);
	if (p->err < 0)
		return p;
	const char *why = NULL;
	const char *name = uco_loop_backend(loop, &why);
	snprintf(p->name, sizeof p->name, "%s", name ? name : "?");
	snprintf(p->why, sizeof p->why, "%s", why ? why : "");
	uco_loop_close(loop);
	return p;
}

/* Said once per (bench, impl) and process. */
static bool said_before(const char *bench, const char *impl)
{
	static char said[32][48];
	static unsigned n_said;
	char key[48];

	snprintf(key, sizeof key, "%s/%s", bench, impl);
	for (unsigned i = 0; i < n_said; i++)
		if (strcmp(said[i], key) == 0)
			return true;
	if (n_said < sizeof said / sizeof said[0])
		snprintf(said[n_said++], sizeof said[0], "%s", key);
	return false;
}

bool bench_uco_impl_available(const char *bench, const char *impl)
{
	const struct probe *p = probe_backend(bench_uco_backend(impl));
	bool again = said_before(bench, impl);

	if (p->err < 0) {
		/* The implementation's own uco_loop_create will fail and
		 * say so; "uco-epoll" is skipped rather than failed. */
		if (bench_is_uco_epoll(impl)) {
			if (!again)
				bench_skip(bench, impl, "no loop on the epoll backend: %s",
				           uco_loop_strerror(p->err));
			return false;
		}
		return true;
	}
	if (bench_is_uco_epoll(impl) && strcmp(p->name, "epoll") != 0) {
		const char *env = getenv("UCO_BACKEND");
		if (!again && env)
			bench_skip(bench, impl, "a loop asked for UCO_BACKEND_EPOLL runs "
			           "on %s (UCO_BACKEND=%s in the environment overrides "
			           "the option)", p->name, env);
		else if (!again)
			bench_skip(bench, impl, "a loop asked for UCO_BACKEND_EPOLL runs "
			           "on %s (this libuco has no readiness backend)", p->name);
		return false;
	}
	if (!again)
		bench_note("%s/%s: the loop runs on %s%s%s", bench, impl, p->name,
		           p->why[0] ? ": " : "", p->why);
	return true;
}

int bench_uco_loop_create(uco_loop **out, const char *bench, const char *impl,
                          const uco_loop_opts *opts)
{
	uco_loop_opts lo;

	if (opts)
		lo = *opts;
	else
		memset(&lo, 0, sizeof lo);
	lo.backend = bench_uco_backend(impl);
	int ret = uco_loop_create(out, &lo);
	if (ret < 0) {
		bench_fail(bench, impl, "uco_loop_create: %s", uco_loop_strerror(ret));
		return ret;
	}
	const char *name = uco_loop_backend(*out, NULL);
	if (bench_is_uco_epoll(impl) && (!name || strcmp(name, "epoll") != 0)) {
		bench_skip(bench, impl, "a loop asked for UCO_BACKEND_EPOLL runs on %s",
		           name ? name : "?");
		uco_loop_close(*out);
		*out = NULL;
		return -EOPNOTSUPP;
	}
	return 0;
}

char *bench_uco_env_set(const char *impl)
{
	const char *old = getenv("UCO_BACKEND");
	char *saved = old ? strdup(old) : NULL;

	/* "uco" keeps whatever the environment says, as its option does. */
	if (bench_is_uco_epoll(impl))
		setenv("UCO_BACKEND", "epoll", 1);
	return saved;
}

void bench_uco_env_restore(const char *impl, char *saved)
{
	if (bench_is_uco_epoll(impl)) {
		if (saved)
			setenv("UCO_BACKEND", saved, 1);
		else
			unsetenv("UCO_BACKEND");
	}
	free(saved);
}
