/* SPDX-License-Identifier: MIT */
/* uco-lat's histogram: HdrHistogram's precision promise (three significant
 * digits), its percentile rule, and the .hgrm layout plotters read. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hdr.h"

static hdr *fresh(void)
{
	hdr *h = malloc(sizeof *h);
	cr_assert(h);
	hdr_init(h);
	return h;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

Test(hdr, percentiles_within_three_digits_of_exact)
{
	enum { N = 100000 };
	static int64_t v[N];
	hdr *h = fresh();
	srand(7);
	for (int i = 0; i < N; i++) {
		/* Spread over seven decades: 10 ns .. 100 ms. */
		v[i] = (int64_t)pow(10, 1 + 6.0 * rand() / RAND_MAX);
		hdr_record(h, v[i]);
	}
	qsort(v, N, sizeof v[0], cmp64);
	const double ps[] = { 0, 1, 50, 90, 99, 99.9, 99.99, 100 };
	for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
		size_t rank = (size_t)ceil(ps[i] / 100 * N);
		int64_t exact = v[rank ? rank - 1 : 0];
		int64_t got = hdr_percentile(h, ps[i]);
		/* Reported as the top of the exact value's bucket. */
		cr_expect(got >= exact && (double)(got - exact) <= exact / 1000.0 + 1,
		          "p%g: %lld vs exact %lld", ps[i], (long long)got, (long long)exact);
	}
	cr_expect_eq(h->total, N);
	cr_expect_eq(h->min, v[0]);
	cr_expect_eq(h->max, v[N - 1]);
	free(h);
}

Test(hdr, small_values_are_exact_and_big_ones_clip)
{
	hdr *h = fresh();
	for (int64_t i = 0; i < 2048; i++)
		hdr_record(h, i);
	cr_expect_eq(hdr_percentile(h, 50), 1023);
	cr_expect_eq(hdr_percentile(h, 100), 2047);
	hdr_record(h, -5);
	hdr_record(h, INT64_MAX);
	cr_expect_eq(h->clipped, 1);
	cr_expect_eq(h->min, 0);
	cr_expect_eq(h->max, HDR_MAX_VALUE);
	free(h);
}

Test(hdr, merge_adds_counts)
{
	hdr *a = fresh(), *b = fresh();
	for (int i = 1; i <= 100; i++)
		hdr_record(i <= 50 ? a : b, i * 1000);
	hdr_merge(a, b);
	cr_expect_eq(a->total, 100);
	cr_expect_eq(a->max, 100000);
	int64_t p50 = hdr_percentile(a, 50);
	cr_expect(p50 >= 50000 && p50 < 50100, "%lld", (long long)p50);
	free(a);
	free(b);
}

Test(hdr, hgrm_has_the_layout_plotters_read)
{
	hdr *h = fresh();
	for (int i = 1; i <= 10000; i++)
		hdr_record(h, i * 1000); /* 1 us .. 10 ms */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert(f);
	cr_assert_eq(hdr_write_hgrm(h, f, 1e6), 0);
	fclose(f);
	static const char head[] =
		"       Value     Percentile TotalCount 1/(1-Percentile)\n\n";
	cr_assert(strncmp(text, head, sizeof head - 1) == 0, "%.80s", text);
	/* Rows: value, percentile, cumulative count rising to the total; the
	 * percentile steps shrink towards 100% (5 ticks per halving). */
	double last_p = -1, last_v = -1;
	unsigned long long last_n = 0;
	int rows = 0;
	char *line = strchr(text, '\n') + 2;
	while (*line && *line != '#') {
		double value, p;
		unsigned long long n;
		cr_assert_geq(sscanf(line, "%lf %lf %llu", &value, &p, &n), 3, "%.60s", line);
		cr_expect(p > last_p && value >= last_v && n >= last_n, "row %d: %.60s", rows, line);
		last_p = p, last_v = value, last_n = n;
		rows++;
		line = strchr(line, '\n') + 1;
	}
	cr_expect_eq(last_p, 1.0);
	cr_expect_eq(last_n, 10000);
	cr_expect(last_v > 9.99 && last_v < 10.02, "max row %f ms", last_v);
	cr_expect(rows > 50 && rows < 200, "%d rows", rows);
	cr_expect(strstr(line, "#[Mean    =") && strstr(line, "Total count    =        10000]") &&
	          strstr(line, "#[Buckets ="), "%s", line);
	free(text);
	free(h);
}
