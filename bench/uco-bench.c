/* SPDX-License-Identifier: MIT */
/*
 * uco-bench: the driver.  Command line, the list of benchmarks, and the two
 * outputs of BENCH.md: JSON lines on stdout (--json), or a human table per
 * benchmark showing medians and peer/uco ratios.
 *
 *   uco-bench [--json] [--quick|--full] [--svg FILE [--chart-metrics LIST]] [NAME...]
 *   uco-bench --list
 *
 * Every figure goes through bench_emit(); peers missing on the machine go
 * through bench_skip() (stderr only); anything else the user should know
 * goes to stderr, so that stdout under --json holds JSON lines and nothing
 * else.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* ------------------------------------------------------------ registry */

struct bench_def {
	const char *name;
	const char *const *impls; /* uco first, then the peers */
	int (*run)(const struct bench_opts *opts);
	/* Entry point of `--internal-child NAME IMPL`, or NULL. */
	int (*child)(const char *impl, const struct bench_opts *opts);
	bool full_only; /* only with --full, or when named */
	const char *what;
	/* The metrics of the default chart (--chart-metrics headline),
	 * space-separated: what a reader of that benchmark looks at first. */
	const char *headline;
};

static const char *const switch_impls[] = {"uco", "boost-fcontext", "ucontext", NULL};
static const char *const spawn_impls[] = {"uco", NULL};
static const char *const sleep_impls[] = {"uco", "uco-epoll", "libuv", "asyncio", NULL};
static const char *const million_impls[] = {"uco", NULL};
static const char *const executor_impls[] = {"uco", "uco-epoll", "libuv", "asyncio", NULL};
static const char *const echo_impls[] = {"uco", "uco-epoll", "uco-multishot", "uco-stream",
                                         "epoll", "liburing", "libuv", NULL};
static const char *const fileread_impls[] = {"uco", "uco-epoll", "uco-fixed", "uco-fixedbuf",
                                             "uco-sqpoll", "pread", "liburing", "libuv",
                                             NULL};
static const char *const sendzc_impls[] = {"uco", "uco-zc", NULL};
static const char *const gather_impls[] = {"uco", "asyncio", NULL};
static const char *const cancel_impls[] = {"uco", "uco-epoll", NULL};
static const char *const chan_impls[] = {"uco", "uco-epoll", "pthread", NULL};
static const char *const mutex_impls[] = {"uco", "pthread", NULL};
static const char *const http_impls[] = {"uco", "uco-epoll", "nginx", NULL};
static const char *const https_impls[] = {"uco", "nginx", NULL};
static const char *const stream_impls[] = {"uco", "uco-bufring", "recv-parse",
                                           "recv-stream-parse", "asyncio", NULL};
static const char *const subprocess_impls[] = {"uco", "posix_spawn", "asyncio", NULL};

static const struct bench_def benches[] = {
	{"switch", switch_impls, bench_switch_run, NULL, false,
	 "one-way context switch between two coroutines", "ns_per_switch"},
	{"spawn", spawn_impls, bench_spawn_run, NULL, false,
	 "spawn + run + join of an empty task, pooled stacks", "ns_per_task"},
	{"sleep", sleep_impls, bench_sleep_run, bench_sleep_child, false,
	 "100,000 concurrent 10 ms sleeps", "wall_ms peak_rss_mib"},
	{"million", million_impls, bench_million_run, bench_million_child, true,
	 "1,000,000 concurrent coroutines sleeping 1 s, default stack size",
	 "wall_ms peak_rss_mib"},
	{"gather", gather_impls, bench_gather_run, bench_gather_child, false,
	 "spawn 10,000 tasks and gather them: each sleeping 1 ms, returning at once",
	 "ms_sleep ms_return"},
	{"cancel", cancel_impls, bench_cancel_run, bench_cancel_child, false,
	 "cancel + reap of 10,000 tasks blocked in socket reads", "us_per_cancel"},
	{"chan", chan_impls, bench_chan_run, NULL, false,
	 "1,000,000 pointers through a bounded channel of capacity 256",
	 "items_per_s_xloop"},
	{"mutex", mutex_impls, bench_mutex_run, NULL, false,
	 "lock/unlock pairs; contended: 4 tasks or 4 threads, each lock, yield, unlock",
	 "ns_contended"},
	{"executor", executor_impls, bench_executor_run, bench_executor_child,
	 false, "trivial job on 4 worker threads: round trip, 1,000 in flight",
	 "rt_us ops_per_s"},
	{"echo", echo_impls, bench_echo_run, NULL, false,
	 "64-byte TCP ping-pong on 127.0.0.1, 64 and 1 connection(s)",
	 "rt_per_s p99_us"},
	{"fileread", fileread_impls, bench_fileread_run, NULL, false,
	 "page-cached file: QD32 sequential 128 KiB, 64 random 4 KiB reads",
	 "mb_per_s_128k mb_per_s_4k"},
	{"sendzc", sendzc_impls, bench_sendzc_run, NULL, false,
	 "bulk TCP send on 127.0.0.1, uco_send vs uco_send_zc, 64 KiB and 1 MiB",
	 "mb_per_s_1m"},
	{"http", http_impls, bench_http_run, NULL, false,
	 "GET /plaintext, uco-http (1 thread) vs nginx (1 worker), wrk -t1 -c64",
	 "rps p99_us"},
	{"stream", stream_impls, bench_stream_run, NULL, false,
	 "readline of 64-byte lines over a socket pair: lines/s", "lines_per_s"},
	{"subprocess", subprocess_impls, bench_subprocess_run, NULL, false,
	 "spawn /bin/true and wait for its exit, one after the other", "us_per_spawn"},
	{"https", https_impls, bench_https_run, NULL, false,
	 "the same over TLS 1.3 (AES-128-GCM, P-256); then a handshake per request, wrk -c16",
	 "rps hs_per_s"},
};
#define N_BENCHES (sizeof benches / sizeof benches[0])

static const struct bench_def *bench_lookup(const char *name)
{
	for (size_t i = 0; i < N_BENCHES; i++)
		if (strcmp(benches[i].name, name) == 0)
			return &benches[i];
	return NULL;
}

/* ------------------------------------------------------------ state */

static bool json_out;
static bool progress_on;   /* stderr is a terminal, human output */
static bool progress_shown;
static unsigned n_failures;

struct result {
	char bench[32];
	char impl[32];
	char metric[48];
	char unit[16];
	double *v;
	size_t n, cap;
};

static struct result *results;
static size_t n_results, cap_results;

static void progress_clear(void)
{
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		progress_shown = false;
	}
}

void bench_progress(const char *bench, const char *impl, const char *what)
{
	if (!progress_on)
		return;
	fprintf(stderr, "\r\033[Kuco-bench: %s", bench);
	if (impl && *impl)
		fprintf(stderr, ": %s", impl);
	if (what && *what)
		fprintf(stderr, " (%s)", what);
	progress_shown = true;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void vsay(const char *prefix, const char *bench, const char *impl,
                 const char *fmt, va_list ap)
{
	progress_clear();
	fputs("uco-bench: ", stderr);
	if (bench)
		fprintf(stderr, "%s/%s: ", bench, impl);
	if (prefix)
		fputs(prefix, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void bench_skip(const char *bench, const char *impl, const char *why, ...)
{
	va_list ap;

	va_start(ap, why);
	vsay("skipped: ", bench, impl, why, ap);
	va_end(ap);
}

void bench_fail(const char *bench, const char *impl, const char *why, ...)
{
	va_list ap;

	va_start(ap, why);
	vsay("FAILED: ", bench, impl, why, ap);
	va_end(ap);
	n_failures++;
}

void bench_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(NULL, NULL, NULL, fmt, ap);
	va_end(ap);
}

bool bench_env_lists(const char *var, const char *item)
{
	const char *v = getenv(var);
	size_t n = strlen(item);

	if (!v || !*v)
		return true;
	for (const char *p = v; (p = strstr(p, item)); p += n)
		if ((p == v || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

/* A JSON string of our own names: they hold no character that needs more
 * than the two escapes below, but never write invalid JSON anyway. */
static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void copy_name(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}

void bench_emit(const char *bench, const char *impl, const char *metric,
                double value, const char *unit)
{
	if (!(value == value) || value > 1e300 || value < -1e300) {
		bench_fail(bench, impl, "%s is not a number; not reported", metric);
		return;
	}
	if (json_out) {
		fputs("{\"bench\": ", stdout);
		json_string(stdout, bench);
		fputs(", \"impl\": ", stdout);
		json_string(stdout, impl);
		fputs(", \"metric\": ", stdout);
		json_string(stdout, metric);
		printf(", \"value\": %.6g, \"unit\": ", value);
		json_string(stdout, unit);
		fputs("}\n", stdout);
		fflush(stdout);
		/* Kept as well, for --svg. */
	}

	struct result *r = NULL;
	for (size_t i = 0; i < n_results; i++) {
		if (strcmp(results[i].bench, bench) == 0 &&
		    strcmp(results[i].impl, impl) == 0 &&
		    strcmp(results[i].metric, metric) == 0) {
			r = &results[i];
			break;
		}
	}
	if (!r) {
		if (n_results == cap_results) {
			size_t cap = cap_results ? 2 * cap_results : 16;
			struct result *nr = realloc(results, cap * sizeof *nr);
			if (!nr)
				goto oom;
			results = nr;
			cap_results = cap;
		}
		r = &results[n_results++];
		memset(r, 0, sizeof *r);
		copy_name(r->bench, sizeof r->bench, bench);
		copy_name(r->impl, sizeof r->impl, impl);
		copy_name(r->metric, sizeof r->metric, metric);
		copy_name(r->unit, sizeof r->unit, unit);
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 8;
		double *nv = realloc(r->v, cap * sizeof *nv);
		if (!nv)
			goto oom;
		r->v = nv;
		r->cap = cap;
	}
	r->v[r->n++] = value;
	return;
oom:
	bench_fail(bench, impl, "out of memory recording %s", metric);
}

/* ------------------------------------------------------------ the table */

static const struct result *find_result(const char *bench, const char *impl,
                                        const char *metric)
{
	for (size_t i = 0; i < n_results; i++)
		if (strcmp(results[i].bench, bench) == 0 &&
		    strcmp(results[i].impl, impl) == 0 &&
		    strcmp(results[i].metric, metric) == 0)
			return &results[i];
	return NULL;
}

static bool median_of(const char *bench, const char *impl, const char *metric,
                      double *out)
{
	const struct result *r = find_result(bench, impl, metric);

	if (!r || r->n == 0)
		return false;
	/* bench_median sorts: work on a copy so repeats keep their order. */
	double *tmp = malloc(r->n * sizeof *tmp);
	if (!tmp)
		return false;
	memcpy(tmp, r->v, r->n * sizeof *tmp);
	*out = bench_median(tmp, r->n);
	free(tmp);
	return true;
}

static void format_value(char *buf, size_t size, double v)
{
	double a = v < 0 ? -v : v;

	if (a >= 1000)
		snprintf(buf, size, "%.0f", v);
	else if (a >= 100)
		snprintf(buf, size, "%.1f", v);
	else if (a >= 10)
		snprintf(buf, size, "%.2f", v);
	else
		snprintf(buf, size, "%.3f", v);
}

/* uco's own variants (another backend, another API path, a hand-written
 * loop over uco): left out of the headline chart, which compares uco with
 * its peers.  Their ratios are in the table, and in the chart when named. */
static bool is_uco_variant(const char *impl)
{
	return strncmp(impl, "uco-", 4) == 0 || strncmp(impl, "recv-", 5) == 0;
}

/* Where uco-epoll reported: its ratios to the peers (not uco's own
 * variants), the readiness backend's own targets (epoll's echo, nginx,
 * libuv's sleeps). */
static void print_epoll_ratios(const struct bench_def *b)
{
	const char *peers[8];
	size_t n_peers = 0;
	char cell[96];

	for (size_t k = 1; b->impls[k] && n_peers < 8; k++)
		if (!is_uco_variant(b->impls[k]))
			peers[n_peers++] = b->impls[k];
	bool any = false;
	for (size_t i = 0; i < n_results && !any; i++)
		any = strcmp(results[i].bench, b->name) == 0 &&
		      strcmp(results[i].impl, "uco-epoll") == 0;
	if (!any || n_peers == 0)
		return;
	printf("  %-24s", "uco-epoll against");
	for (size_t k = 0; k < n_peers; k++) {
		snprintf(cell, sizeof cell, "%s/uco-epoll", peers[k]);
		printf(" %18s", cell);
	}
	printf("\n");
	for (size_t i = 0; i < n_results; i++) {
		const struct result *r = &results[i];
		double e, v;
		if (strcmp(r->bench, b->name) != 0 || strcmp(r->impl, "uco-epoll") != 0 ||
		    !median_of(b->name, "uco-epoll", r->metric, &e) || e == 0)
			continue;
		snprintf(cell, sizeof cell, "%s (%s)", r->metric, r->unit);
		printf("  %-24s", cell);
		for (size_t k = 0; k < n_peers; k++) {
			if (median_of(b->name, peers[k], r->metric, &v))
				snprintf(cell, sizeof cell, "%.2fx", v / e);
			else
				snprintf(cell, sizeof cell, "-");
			printf(" %18s", cell);
		}
		printf("\n");
	}
}

static void print_table(const struct bench_def *b)
{
	const char *impls[8];
	size_t n_impls = 0;
	bool has_uco = false;

	/* Columns: the implementations that reported something, in the
	 * registry's order (uco first). */
	for (size_t k = 0; b->impls[k] && n_impls < 8; k++) {
		bool any = false;
		for (size_t i = 0; i < n_results; i++)
			if (strcmp(results[i].bench, b->name) == 0 &&
			    strcmp(results[i].impl, b->impls[k]) == 0)
				any = true;
		if (any) {
			impls[n_impls++] = b->impls[k];
			if (strcmp(b->impls[k], "uco") == 0)
				has_uco = true;
		}
	}
	progress_clear();
	if (n_impls == 0) {
		printf("%s: no figure\n\n", b->name);
		return;
	}

	size_t n_ratios = has_uco ? n_impls - 1 : 0;
	printf("%s: %s", b->name, b->what);
	if (n_ratios)
		printf("  (medians; ratio = peer / uco)");
	else
		printf("  (medians)");
	printf("\n");

	char cell[96];
	printf("  %-24s", "figure");
	for (size_t k = 0; k < n_impls; k++)
		printf(" %14s", impls[k]);
	for (size_t k = 0; k < n_impls; k++) {
		if (!has_uco || strcmp(impls[k], "uco") == 0)
			continue;
		snprintf(cell, sizeof cell, "%s/uco", impls[k]);
		printf(" %18s", cell);
	}
	printf("\n");

	/* Rows: metrics in the order they were first reported. */
	for (size_t i = 0; i < n_results; i++) {
		const struct result *r = &results[i];
		bool first = true;

		if (strcmp(r->bench, b->name) != 0)
			continue;
		for (size_t j = 0; j < i; j++)
			if (strcmp(results[j].bench, b->name) == 0 &&
			    strcmp(results[j].metric, r->metric) == 0)
				first = false;
		if (!first)
			continue;

		snprintf(cell, sizeof cell, "%s (%s)", r->metric, r->unit);
		printf("  %-24s", cell);
		double uco_v = 0;
		bool uco_ok = median_of(b->name, "uco", r->metric, &uco_v);
		for (size_t k = 0; k < n_impls; k++) {
			double v;
			if (median_of(b->name, impls[k], r->metric, &v))
				format_value(cell, sizeof cell, v);
			else
				snprintf(cell, sizeof cell, "-");
			printf(" %14s", cell);
		}
		for (size_t k = 0; k < n_impls; k++) {
			double v;
			if (!has_uco || strcmp(impls[k], "uco") == 0)
				continue;
			if (uco_ok && uco_v != 0 &&
			    median_of(b->name, impls[k], r->metric, &v))
				snprintf(cell, sizeof cell, "%.2fx", v / uco_v);
			else
				snprintf(cell, sizeof cell, "-");
			printf(" %18s", cell);
		}
		printf("\n");
	}
	print_epoll_ratios(b);
	printf("\n");
	fflush(stdout);
}

/* ------------------------------------------------------------ the chart */

/* The default of --chart-metrics. */
#define CHART_DEFAULT "headline"

/* Whether word is one of the space-separated words of list. */
static bool in_words(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; p && *p; ) {
		size_t k = strcspn(p, " ");
		if (k == n && strncmp(p, word, n) == 0)
			return true;
		p += k;
		p += strspn(p, " ");
	}
	return false;
}

/* One item of --chart-metrics: "headline", "all", or
 * [BENCH:]METRIC[@PEER], each part a shell pattern (fnmatch). */
static bool chart_item_takes(const char *item, size_t len, const struct bench_def *b,
                             const char *metric, const char *peer)
{
	char buf[128];

	if (len >= sizeof buf)
		return false;
	memcpy(buf, item, len);
	buf[len] = '\0';
	if (strcmp(buf, "headline") == 0)
		return in_words(b->headline, metric) && !is_uco_variant(peer);
	if (strcmp(buf, "all") == 0)
		return true;
	const char *bench_pat = "*", *metric_pat = buf, *peer_pat = "*";
	char *at = strchr(buf, '@');
	if (at) {
		*at = '\0';
		peer_pat = at + 1;
	}
	char *colon = strchr(buf, ':');
	if (colon) {
		*colon = '\0';
		bench_pat = buf;
		metric_pat = colon + 1;
	}
	return fnmatch(bench_pat, b->name, 0) == 0 &&
	       fnmatch(*metric_pat ? metric_pat : "*", metric, 0) == 0 &&
	       fnmatch(*peer_pat ? peer_pat : "*", peer, 0) == 0;
}

/* Whether the bar (bench, metric, peer) goes in the chart: any item of the
 * comma-separated spec takes it. */
static bool chart_takes(const char *spec, const struct bench_def *b, const char *metric,
                        const char *peer)
{
	for (const char *p = spec; *p; ) {
		size_t k = strcspn(p, ",");
		if (k && chart_item_takes(p, k, b, metric, peer))
			return true;
		p += k;
		p += strspn(p, ",");
	}
	return false;
}

/* A --chart-metrics value that can be read: items of at most 127 bytes. */
static bool chart_spec_ok(const char *spec)
{
	bool any = false;

	for (const char *p = spec; *p; ) {
		size_t k = strcspn(p, ",");
		if (k >= 128)
			return false;
		any |= k > 0;
		p += k;
		p += strspn(p, ",");
	}
	return any;
}

/* The (figure, peer) ratios that --chart-metrics takes, in table order. */
static void write_chart(const char *path, const char *spec,
                        const struct bench_def *const *selected, size_t n_selected)
{
	struct bench_ratio *rows = calloc(n_results * 8 + 1, sizeof *rows);
	size_t n = 0, all = 0;
	if (!rows) {
		bench_fail(NULL, NULL, "out of memory for the chart");
		return;
	}
	for (size_t s = 0; s < n_selected; s++) {
		const struct bench_def *b = selected[s];
		for (size_t i = 0; i < n_results; i++) {
			const struct result *r = &results[i];
			double uco_v, peer_v;
			if (strcmp(r->bench, b->name) != 0 || strcmp(r->impl, "uco") != 0 ||
			    !median_of(b->name, "uco", r->metric, &uco_v) || uco_v <= 0)
				continue;
			for (size_t k = 1; b->impls[k]; k++) {
				if (!median_of(b->name, b->impls[k], r->metric, &peer_v) || peer_v <= 0)
					continue;
				all++;
				if (!chart_takes(spec, b, r->metric, b->impls[k]))
					continue;
				struct bench_ratio *row = &rows[n++];
				copy_name(row->bench, sizeof row->bench, b->name);
				copy_name(row->metric, sizeof row->metric, r->metric);
				copy_name(row->peer, sizeof row->peer, b->impls[k]);
				row->advantage = bench_higher_is_better(r->unit) ? uco_v / peer_v
				                                                 : peer_v / uco_v;
			}
		}
	}
	if (n == 0 && all > 0)
		bench_note("--chart-metrics %s takes none of the %zu ratios: the chart "
		           "is empty", spec, all);
	char subtitle[256];
	if (strcmp(spec, CHART_DEFAULT) == 0)
		snprintf(subtitle, sizeof subtitle, "headline figures against the peers, "
		         "%zu of %zu ratios (uco-bench --chart-metrics all: every one)", n, all);
	else
		snprintf(subtitle, sizeof subtitle, "--chart-metrics %.160s: %zu of %zu ratios",
		         spec, n, all);
	int err = bench_svg_write(path, subtitle, rows, n);
	if (err)
		bench_fail(NULL, NULL, "cannot write %s: %s", path, strerror(-err));
	else if (!json_out)
		printf("chart of %zu of %zu ratios: %s\n", n, all, path);
	free(rows);
}

/* ------------------------------------------------------------ command line */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: uco-bench [--json] [--quick|--full] [--svg FILE [--chart-metrics LIST]]\n"
	        "                 [NAME...]\n"
	        "       uco-bench --list\n"
	        "\n"
	        "Measures uco and its peers in the same run.  With no NAME, runs\n"
	        "every benchmark except those marked --full only.\n"
	        "\n"
	        "  --json    one JSON object per measurement on stdout, nothing else\n"
	        "  --quick   fewer rounds (for tests)\n"
	        "  --full    more rounds, and the --full only benchmarks\n"
	        "  --svg F   also write a bar chart of uco against each peer to F\n"
	        "  --chart-metrics LIST\n"
	        "            the bars of that chart, comma-separated items:\n"
	        "              headline  each benchmark's headline figures against\n"
	        "                        its peers (the default; uco's own variants\n"
	        "                        such as uco-epoll are left out)\n"
	        "              all       every ratio\n"
	        "              [BENCH:]METRIC[@PEER]  shell patterns, for example\n"
	        "                        headline,echo:server_cpu* or 'echo:*@uco-epoll'\n"
	        "  --list    print the benchmark names and exit\n"
	        "\n"
	        "benchmarks:\n");
	for (size_t i = 0; i < N_BENCHES; i++)
		fprintf(f, "  %-9s %s%s\n", benches[i].name, benches[i].what,
		        benches[i].full_only ? " (--full only)" : "");
}

static int run_internal_child(const char *name, const char *impl,
                              const struct bench_opts *opts)
{
	const struct bench_def *b = bench_lookup(name);

	json_out = true;
	progress_on = false;
	if (!b || !b->child) {
		fprintf(stderr, "uco-bench: no child benchmark %s\n", name);
		return 2;
	}
	int ret = b->child(impl, opts);
	if (ret == 0 && n_failures)
		ret = 1;
	return ret;
}

int main(int argc, char **argv)
{
	struct bench_opts opts = {.mode = BENCH_DEFAULT};
	const struct bench_def *selected[N_BENCHES];
	size_t n_selected = 0;
	bool list = false, quick = false, full = false;
	const char *child_bench = NULL, *child_impl = NULL, *svg_path = NULL;
	const char *chart_spec = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--json") == 0) {
			json_out = true;
		} else if (strcmp(a, "--quick") == 0) {
			quick = true;
		} else if (strcmp(a, "--full") == 0) {
			full = true;
		} else if (strcmp(a, "--svg") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "uco-bench: --svg FILE\n");
				return 2;
			}
			svg_path = argv[++i];
		} else if (strcmp(a, "--chart-metrics") == 0) {
			if (i + 1 >= argc || !chart_spec_ok(argv[i + 1])) {
				fprintf(stderr, "uco-bench: --chart-metrics LIST (comma-separated "
				        "items: headline, all, or [BENCH:]METRIC[@PEER])\n");
				return 2;
			}
			chart_spec = argv[++i];
		} else if (strcmp(a, "--list") == 0) {
			list = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--internal-child") == 0) {
			/* Hidden: run one implementation of one benchmark in
			 * this fresh process (see bench_run_self()). */
			if (i + 2 >= argc) {
				fprintf(stderr, "uco-bench: --internal-child BENCH IMPL\n");
				return 2;
			}
			child_bench = argv[++i];
			child_impl = argv[++i];
		} else if (a[0] == '-') {
			fprintf(stderr, "uco-bench: unknown option %s\n", a);
			usage(stderr);
			return 2;
		} else {
			const struct bench_def *b = bench_lookup(a);
			if (!b) {
				fprintf(stderr, "uco-bench: no benchmark named %s "
				        "(uco-bench --list)\n", a);
				return 2;
			}
			bool dup = false;
			for (size_t k = 0; k < n_selected; k++)
				dup |= selected[k] == b;
			if (!dup)
				selected[n_selected++] = b;
		}
	}
	if (chart_spec && !svg_path) {
		fprintf(stderr, "uco-bench: --chart-metrics chooses the bars of --svg FILE\n");
		return 2;
	}
	if (quick && full) {
		fprintf(stderr, "uco-bench: --quick and --full exclude each other\n");
		return 2;
	}
	opts.mode = quick ? BENCH_QUICK : full ? BENCH_FULL : BENCH_DEFAULT;

	if (list) {
		for (size_t i = 0; i < N_BENCHES; i++)
			printf("%s\n", benches[i].name);
		return 0;
	}
	if (child_bench)
		return run_internal_child(child_bench, child_impl, &opts);

	if (n_selected == 0)
		for (size_t i = 0; i < N_BENCHES; i++)
			if (!benches[i].full_only || opts.mode == BENCH_FULL)
				selected[n_selected++] = &benches[i];

	progress_on = !json_out && isatty(STDERR_FILENO);

	for (size_t i = 0; i < n_selected; i++) {
		const struct bench_def *b = selected[i];

		bench_progress(b->name, "", "starting");
		int ret = b->run(&opts);
		if (ret < 0 && n_failures == 0)
			bench_fail(b->name, "uco", "%s", strerror(-ret));
		if (!json_out)
			print_table(b);
	}
	progress_clear();
	if (svg_path)
		write_chart(svg_path, chart_spec ? chart_spec : CHART_DEFAULT, selected,
		            n_selected);

	for (size_t i = 0; i < n_results; i++)
		free(results[i].v);
	free(results);
	return n_failures ? 1 : 0;
}
