/* SPDX-License-Identifier: MIT */
/* A latency histogram in HdrHistogram's layout (log-linear buckets, three
 * significant digits), recording nanoseconds from 1 ns to ~4.6 min, with
 * HdrHistogram's percentile-distribution text output (.hgrm) so that the
 * usual plotters read uco-lat's files.  Recording is one index computation
 * and an increment: no allocation after hdr_init. */
#ifndef UCO_TOOLS_HDR_H
#define UCO_TOOLS_HDR_H

#include <stdint.h>
#include <stdio.h>

/* 2048 sub-buckets give 3 significant decimal digits (HdrHistogram's
 * sub_bucket_count for precision 3); 28 buckets reach 2^38 ns. */
#define HDR_SUB_BUCKET_HALF_MAGNITUDE 10
#define HDR_SUB_BUCKET_HALF (1u << HDR_SUB_BUCKET_HALF_MAGNITUDE)
#define HDR_BUCKETS 28
#define HDR_COUNTS ((HDR_BUCKETS + 1) * HDR_SUB_BUCKET_HALF)
#define HDR_MAX_VALUE ((INT64_C(1) << (HDR_BUCKETS + HDR_SUB_BUCKET_HALF_MAGNITUDE)) - 1)

typedef struct hdr {
	uint64_t total;
	uint64_t clipped; /* values above HDR_MAX_VALUE, recorded as the max */
	int64_t min, max;
	uint64_t counts[HDR_COUNTS];
} hdr;

void hdr_init(hdr *h);
/* Record one value in ns (negative values count as 0). */
void hdr_record(hdr *h, int64_t ns);
/* Add every count of src to dst. */
void hdr_merge(hdr *dst, const hdr *src);
/* The value at percentile p (0..100) as HdrHistogram reports it: the
 * highest value equivalent to the bucket where the count reaches p. */
int64_t hdr_percentile(const hdr *h, double p);
double hdr_mean(const hdr *h);
double hdr_stddev(const hdr *h);

/* The percentile distribution in HdrHistogram's .hgrm format, values
 * divided by `unit_ns` (1e6 prints milliseconds, as wrk2 does). */
int hdr_write_hgrm(const hdr *h, FILE *out, double unit_ns);

/* Walk the distribution at HdrHistogram's reporting percentiles (five
 * ticks per halving of the distance to 100%), as the .hgrm lists them. */
typedef void hdr_visit_fn(double percentile, int64_t value, uint64_t count, void *user);
void hdr_percentiles(const hdr *h, hdr_visit_fn *visit, void *user);

#endif
