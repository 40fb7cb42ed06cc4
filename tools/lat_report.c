/* SPDX-License-Identifier: MIT */
/* uco-lat's outputs: the summary a person reads, one JSON object for
 * machines, HdrHistogram's .hgrm percentile distribution, and an SVG plot
 * of latency by percentile on a log-scale percentile axis (the plot that
 * shows a tail, which a linear axis squeezes into its last pixel). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lat.h"

static const struct {
	const char *name, *json;
	double p;
} marks[] = {
	{ "p50", "p50_us", 50 },         { "p90", "p90_us", 90 },
	{ "p99", "p99_us", 99 },         { "p99.9", "p999_us", 99.9 },
	{ "p99.99", "p9999_us", 99.99 },
};

static double us(int64_t ns)
{
	return (double)ns / 1e3;
}

static const char *mode_name(const struct lat_config *cfg)
{
	return cfg->mode == LAT_HTTP ? "http" : "echo";
}

static double rps(const struct lat_result *r)
{
	return r->elapsed_s > 0 ? (double)r->requests / r->elapsed_s : 0;
}

/* The client's own CPU (user + system, every thread) per request measured,
 * in microseconds: what the load itself costs the machine it runs on. */
static double cpu_us_per_request(const struct lat_result *r)
{
	return r->requests ? (r->cpu_user_s + r->cpu_sys_s) * 1e6 / (double)r->requests : 0;
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (const char *c = s; *c; c++)
		if (*c == '"' || *c == '\\')
			printf("\\%c", *c);
		else if ((unsigned char)*c >= 0x20)
			putchar(*c);
	putchar('"');
}

static void print_summary(const struct lat_config *cfg, const struct lat_result *r)
{
	printf("uco-lat: %s %s, %u connection%s on %u thread%s", mode_name(cfg), cfg->target,
	       cfg->connections, cfg->connections == 1 ? "" : "s", cfg->threads,
	       cfg->threads == 1 ? "" : "s");
	if (cfg->mode == LAT_ECHO)
		printf(", %zu B messages", cfg->size);
	if (cfg->pipeline > 1)
		printf(", pipeline %u", cfg->pipeline);
	if (cfg->rate > 0)
		printf(", open loop at %.0f req/s\n", cfg->rate);
	else
		printf(", closed loop\n");
	printf("  %llu requests in %.2f s: %.1f req/s; errors %llu, %s %llu\n",
	       (unsigned long long)r->requests, r->elapsed_s, rps(r),
	       (unsigned long long)r->errors, cfg->mode == LAT_HTTP ? "non-2xx" : "bad bytes",
	       (unsigned long long)r->bad);
	printf("  %llu bytes sent, %llu received and checked, %llu clean reconnects\n",
	       (unsigned long long)r->bytes_sent, (unsigned long long)r->bytes,
	       (unsigned long long)r->reconnects);
	printf("  latency (us):");
	for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
		printf(" %s %.1f", marks[i].name, us(hdr_percentile(r->latency, marks[i].p)));
	printf(" max %.1f mean %.1f\n", us(r->latency->max * (r->latency->total > 0)),
	       hdr_mean(r->latency) / 1e3);
	if (cfg->rate > 0)
		printf("  latency counts from each request's scheduled send time; latest send "
		       "%.1f us behind schedule\n", us(r->max_send_lag_ns));
	printf("  client CPU %.2f us per request (user %.2f s, system %.2f s); %s backend\n",
	       cpu_us_per_request(r), r->cpu_user_s, r->cpu_sys_s,
	       r->backend ? r->backend : "no");
	if (r->backend_why)
		printf("  (%s)\n", r->backend_why);
}

static void print_json(const struct lat_config *cfg, const struct lat_result *r)
{
	printf("{\"tool\": \"uco-lat\", \"mode\": \"%s\", \"target\": ", mode_name(cfg));
	print_json_string(cfg->target);
	printf(", \"connections\": %u, \"threads\": %u, \"pipeline\": %u, \"size\": %zu, "
	       "\"rate\": %.0f, \"duration_s\": %.3f, \"requests\": %llu, \"rps\": %.1f, "
	       "\"errors\": %llu, \"bad\": %llu, \"bytes\": %llu, \"bytes_sent\": %llu, "
	       "\"reconnects\": %llu",
	       cfg->connections, cfg->threads, cfg->pipeline, cfg->mode == LAT_ECHO ? cfg->size : 0,
	       cfg->rate, r->elapsed_s, (unsigned long long)r->requests, rps(r),
	       (unsigned long long)r->errors, (unsigned long long)r->bad,
	       (unsigned long long)r->bytes, (unsigned long long)r->bytes_sent,
	       (unsigned long long)r->reconnects);
	for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
		printf(", \"%s\": %.3f", marks[i].json, us(hdr_percentile(r->latency, marks[i].p)));
	printf(", \"max_us\": %.3f, \"mean_us\": %.3f, \"max_send_lag_us\": %.3f",
	       us(r->latency->total ? r->latency->max : 0), hdr_mean(r->latency) / 1e3,
	       us(r->max_send_lag_ns));
	printf(", \"tick_us\": %.3f, \"cpu_user_s\": %.6f, \"cpu_sys_s\": %.6f, "
	       "\"cpu_us_per_request\": %.3f, \"backend\": ",
	       cfg->rate > 0 ? cfg->tick_us : 0, r->cpu_user_s, r->cpu_sys_s,
	       cpu_us_per_request(r));
	if (r->backend)
		print_json_string(r->backend);
	else
		fputs("null", stdout);
	fputs(", \"backend_why\": ", stdout);
	if (r->backend_why)
		print_json_string(r->backend_why);
	else
		fputs("null", stdout);
	puts("}");
}

/* ---------------------------------------------------------------- SVG */

struct point {
	double x, y; /* log10(1/(1-q)), microseconds */
};

struct points {
	struct point p[512];
	size_t n;
	double max_x;
};

/* The percentile axis ends at the last row below 100%, one decade past it
 * at most: 1/(1-q) grows without bound. */
static void collect(double percentile, int64_t value, uint64_t count, void *user)
{
	struct points *pts = user;
	if (pts->n == sizeof pts->p / sizeof pts->p[0])
		return;
	double q = percentile / 100;
	double x = q < 1 ? log10(1 / (1 - q)) : -1; /* placed after the loop */
	pts->p[pts->n++] = (struct point){ x, us(value) };
	if (x > pts->max_x)
		pts->max_x = x;
}

static double nice_ceiling(double v)
{
	if (v <= 0)
		return 1;
	double mag = pow(10, floor(log10(v)));
	for (double step = 1; step <= 10; step += step < 2 ? 1 : step < 5 ? 3 : 5)
		if (step * mag >= v)
			return step * mag;
	return 10 * mag;
}

static int write_svg(const struct lat_config *cfg, const struct lat_result *r, FILE *f)
{
	struct points pts = { .n = 0, .max_x = 1 };
	hdr_percentiles(r->latency, collect, &pts);
	double decades = ceil(pts.max_x);
	if (decades < 2)
		decades = 2;
	for (size_t i = 0; i < pts.n; i++)
		if (pts.p[i].x < 0) /* the 100% row: the right edge */
			pts.p[i].x = decades;
	double top = nice_ceiling(us(r->latency->total ? r->latency->max : 1) * 1.05);

	const double W = 800, H = 480, L = 70, R = 50, T = 40, B = 50;
	const double pw = W - L - R, ph = H - T - B;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
	           "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
	        W, H, W, H);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"14\">uco-lat: %s %s, %u connections, "
	           "%.0f req/s</text>\n", L, mode_name(cfg), cfg->target, cfg->connections, rps(r));
	/* Percentile grid: 0%, 90%, 99%, ... one per decade. */
	for (int d = 0; d <= (int)decades; d++) {
		double x = L + pw * d / decades;
		char label[32];
		if (d == 0)
			snprintf(label, sizeof label, "0%%");
		else
			snprintf(label, sizeof label, "%.*f%%", d > 2 ? d - 2 : 0, 100 - pow(10, 2 - d));
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n"
		           "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n",
		        x, T, x, T + ph, x, T + ph + 18, label);
	}
	for (int i = 0; i <= 5; i++) {
		double y = T + ph - ph * i / 5;
		fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
		           "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
		        L, y, L + pw, y, L - 6, y + 4, top * i / 5);
	}
	fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">percentile</text>\n",
	        L + pw / 2, H - 10);
	fprintf(f, "<text transform=\"translate(16 %.0f) rotate(-90)\" text-anchor=\"middle\">"
	           "latency (us)</text>\n", T + ph / 2);
	/* A step line: each row holds its value up to the next row. */
	fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"");
	for (size_t i = 0; i < pts.n; i++) {
		double x = L + pw * pts.p[i].x / decades;
		double y = T + ph - ph * pts.p[i].y / top;
		fprintf(f, "%.1f,%.1f ", x, y);
		if (i + 1 < pts.n)
			fprintf(f, "%.1f,%.1f ", L + pw * pts.p[i + 1].x / decades, y);
	}
	fprintf(f, "\"/>\n</svg>\n");
	return ferror(f) ? -EIO : 0;
}

/* ---------------------------------------------------------------- files */

static int write_file(const char *path, const struct lat_config *cfg,
                      const struct lat_result *r, int (*writer)(const struct lat_config *,
                                                                const struct lat_result *, FILE *))
{
	FILE *f = fopen(path, "w");
	if (!f) {
		int err = -errno;
		fprintf(stderr, "uco-lat: cannot write %s: %s\n", path, strerror(errno));
		return err;
	}
	int err = writer(cfg, r, f);
	if (fclose(f) && !err)
		err = -errno;
	if (err)
		fprintf(stderr, "uco-lat: writing %s failed: %s\n", path, strerror(-err));
	return err;
}

/* .hgrm in milliseconds, the unit wrk2 and HdrHistogram's plotter use. */
static int write_hgrm(const struct lat_config *cfg, const struct lat_result *r, FILE *f)
{
	(void)cfg;
	return hdr_write_hgrm(r->latency, f, 1e6) ? -EIO : 0;
}

int lat_report(const struct lat_config *cfg, const struct lat_result *res)
{
	if (cfg->json)
		print_json(cfg, res);
	else
		print_summary(cfg, res);
	int err = 0, e;
	if (cfg->hgrm_path && (e = write_file(cfg->hgrm_path, cfg, res, write_hgrm)))
		err = e;
	if (cfg->svg_path && (e = write_file(cfg->svg_path, cfg, res, write_svg)))
		err = e;
	fflush(stdout);
	return err;
}
