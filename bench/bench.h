/* SPDX-License-Identifier: MIT */
/*
 * uco-bench: what every benchmark file shares.
 *
 *   - timing on CLOCK_MONOTONIC (bench_now_ns) and the median;
 *   - bench_emit(): the one way a benchmark reports a figure (uco-bench.c
 *     prints it as a JSON line or keeps it for the human table);
 *   - bench_skip() / bench_fail(): a peer missing on this machine, or an
 *     implementation that could not run (stderr only, never a figure);
 *   - child processes (bench_proc.c): benchmarks whose peak RSS is a figure
 *     run each implementation in a fresh process, which reports its figures
 *     back as the same JSON lines on a pipe.
 *
 * The output contract is docs/BENCH.md.
 */
#ifndef UCO_BENCH_H
#define UCO_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* How long to measure: --quick (for tests), default, --full. */
enum bench_mode {
	BENCH_QUICK = 0,
	BENCH_DEFAULT = 1,
	BENCH_FULL = 2,
};

struct bench_opts {
	enum bench_mode mode;
};

/* Pick a count by mode: BENCH_PICK(opts, quick, default, full). */
#define BENCH_PICK(o, q, d, f) \
	((o)->mode == BENCH_QUICK ? (q) : (o)->mode == BENCH_FULL ? (f) : (d))

/* ------------------------------------------------------------ timing */

static inline int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of this process so far (every thread, user and system), ns:
 * on a shared machine, the figure that other processes do not inflate. */
static inline int64_t bench_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Median of v[0..n) (sorts v in place); 0 for n == 0. */
double bench_median(double *v, size_t n);

/* ------------------------------------------------------------ output
 * (implemented in uco-bench.c) */

/* Report one measurement: bench and impl as in BENCH.md, metric name,
 * value, unit ("ns", "ms", "MiB", ...).  Call it once per repetition. */
void bench_emit(const char *bench, const char *impl, const char *metric,
                double value, const char *unit);

/* A peer that is not available here (not found at build time, python3
 * missing at run time ...): said on stderr, no figure. */
void bench_skip(const char *bench, const char *impl, const char *why, ...)
	__attribute__((format(printf, 3, 4)));

/* An implementation that should have run and could not: said on stderr,
 * no figure, and uco-bench exits non-zero at the end. */
void bench_fail(const char *bench, const char *impl, const char *why, ...)
	__attribute__((format(printf, 3, 4)));

/* A remark on stderr (e.g. "woke early"), no figure. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For A/B runs by hand: does the environment variable `var` (a
 * comma-separated list) name `item`?  Unset or empty: every item. */
bool bench_env_lists(const char *var, const char *item);

/* The progress line on stderr (only when stderr is a terminal and the
 * output is the human table; a no-op otherwise). */
void bench_progress(const char *bench, const char *impl, const char *what);

/* ------------------------------------------------------------ processes
 * (implemented in bench_proc.c) */

/* Run argv[0] (a path, or a name looked up in PATH) as a child process
 * whose stdout is read as JSON lines of BENCH.md's format; every line whose
 * bench and impl match is passed to bench_emit(), anything else is said on
 * stderr.  Returns the child's exit status (0 ok), or -1 if it could not be
 * started or was killed by a signal; a failure is reported (bench_fail). */
int bench_run_child(const char *bench, const char *impl, char *const argv[]);

/* Run this very executable again as `uco-bench --internal-child BENCH IMPL
 * <mode flag>`, through bench_run_child(). */
int bench_run_self(const char *bench, const char *impl,
                   const struct bench_opts *opts);

/* Peak resident set of the calling process (VmHWM of /proc/self/status), in
 * MiB; negative if it cannot be read. */
double bench_peak_rss_mib(void);

/* Pin the calling thread (a child about to exec: the process) to one CPU:
 * 0 or -1 with errno.  Servers and their clients each get a core. */
int bench_pin_to(int cpu);

/* Whether both CPUs are ours to use (pinning makes sense only then). */
bool bench_two_cpus(int a, int b);

/* Full path of an executable found in PATH, or NULL.  Free the result. */
char *bench_find_in_path(const char *name);

/* Full path of a peer script named `name` in the build tree (<directory of
 * uco-bench>/peers/; uco-bench is never installed), or NULL.  Free the
 * result. */
char *bench_find_peer_file(const char *name);

/* Map a stack of `size` usable bytes with one PROT_NONE guard page below
 * it, as every coroutine library here does; returns the lowest usable
 * address, or NULL.  Unmap with bench_stack_free(). */
void *bench_stack_alloc(size_t size);
void bench_stack_free(void *base, size_t size);

/* ------------------------------------------------------------ uco's backends
 * (bench_backend.c) */

/* "uco" and "uco-epoll" run the same code on a loop whose
 * uco_loop_opts.backend is UCO_BACKEND_AUTO (the default) or
 * UCO_BACKEND_EPOLL (the readiness backend). */
struct uco_loop;
struct uco_loop_opts;
bool bench_is_uco_epoll(const char *impl);
unsigned bench_uco_backend(const char *impl);
/* The same as the tools' --backend argument: "auto" or "epoll". */
const char *bench_uco_backend_arg(const char *impl);

/* In the parent, before running a uco implementation: says on stderr
 * (once per bench and impl) which backend its loops run on, as a loop made
 * here with its backend option does; for "uco-epoll" on a loop that does
 * not run on epoll, says why it is skipped (bench_skip) and returns false. */
bool bench_uco_impl_available(const char *bench, const char *impl);

/* uco_loop_create() with *opts (NULL: defaults) and impl's backend: 0;
 * -EOPNOTSUPP after bench_skip when "uco-epoll" did not get the epoll
 * backend (nothing left open); uco_loop_create's error after bench_fail. */
int bench_uco_loop_create(struct uco_loop **out, const char *bench,
                          const char *impl, const struct uco_loop_opts *opts);

/* For loops made without options (uco_run_threads): set UCO_BACKEND in the
 * environment to impl's backend ("uco" leaves it as it is); returns what
 * to give bench_uco_env_restore() afterwards.  Only while no other thread
 * reads the environment. */
char *bench_uco_env_set(const char *impl);
void bench_uco_env_restore(const char *impl, char *saved);

/* ------------------------------------------------------------ the chart
 * (bench_svg.c) */

/* One bar: how many times better uco did than `peer` on one figure
 * (> 1: uco ahead), medians of the same run. */
struct bench_ratio {
	char bench[32], metric[48], peer[32];
	double advantage;
};

/* More is better for rates (a unit ending in "/s"), less for the rest. */
bool bench_higher_is_better(const char *unit);

/* The bar chart of these ratios, as SVG, to path, with a line under the
 * title saying which they are (subtitle): 0 or -errno.  Rows of the same
 * bench are grouped under its name, in the order given. */
int bench_svg_write(const char *path, const char *subtitle,
                    const struct bench_ratio *rows, size_t n);

/* ------------------------------------------------------------ benchmarks */

int bench_switch_run(const struct bench_opts *opts);
int bench_spawn_run(const struct bench_opts *opts);
int bench_sleep_run(const struct bench_opts *opts);
int bench_million_run(const struct bench_opts *opts);
int bench_executor_run(const struct bench_opts *opts);
int bench_echo_run(const struct bench_opts *opts);
int bench_fileread_run(const struct bench_opts *opts);
int bench_sendzc_run(const struct bench_opts *opts);
int bench_gather_run(const struct bench_opts *opts);
int bench_cancel_run(const struct bench_opts *opts);
int bench_chan_run(const struct bench_opts *opts);
int bench_mutex_run(const struct bench_opts *opts);
int bench_http_run(const struct bench_opts *opts);
int bench_stream_run(const struct bench_opts *opts);
int bench_subprocess_run(const struct bench_opts *opts);
int bench_https_run(const struct bench_opts *opts);

/* peers/echo_liburing.c: the plain-liburing echo server of `echo`, on the
 * listening socket lfd; runs until killed (returns only on an error). */
int bench_echo_liburing_serve(int lfd);

/* One round of the sleep work on uco: spawn n detached tasks on `loop`
 * that each uco_sleep(sleep_ns), run the loop until none is left; the time
 * from the first spawn to the last wake-up in *wall_ms.  0, or a negative
 * errno after bench_fail(bench, impl, ...).  (bench_sleep.c) */
int bench_uco_sleep_round(struct uco_loop *loop, uint64_t n, int64_t sleep_ns,
                          const char *bench, const char *impl, double *wall_ms);

/* What the fresh child processes run (uco-bench --internal-child ...). */
int bench_sleep_child(const char *impl, const struct bench_opts *opts);
int bench_million_child(const char *impl, const struct bench_opts *opts);
int bench_executor_child(const char *impl, const struct bench_opts *opts);
int bench_gather_child(const char *impl, const struct bench_opts *opts);
int bench_cancel_child(const char *impl, const struct bench_opts *opts);

/* The work of the sleep benchmark, the same for every implementation. */
#define BENCH_SLEEP_TASKS 100000
#define BENCH_SLEEP_MS 10

/* The work of gather (each task sleeps BENCH_GATHER_SLEEP_MS for ms_sleep)
 * and of cancel. */
#define BENCH_GATHER_TASKS 10000
#define BENCH_GATHER_SLEEP_MS 1
#define BENCH_CANCEL_TASKS 10000

#if defined(UCO_BENCH_HAVE_LIBUV)
/* peers/sleep_libuv.c: the libuv peer of `sleep`, in this process
 * (emits its wall_ms_cold, wall_ms and cpu_ms). */
int bench_sleep_libuv(int rounds);
#endif

#endif
