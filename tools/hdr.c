/* SPDX-License-Identifier: MIT */
/* HdrHistogram's index arithmetic (unit magnitude 0, 2048 sub-buckets) and
 * its percentile iterator, so that the .hgrm output lists the same rows the
 * Java and C implementations would for the same counts. */
#include "hdr.h"

#include <math.h>
#include <string.h>

#define SUB_BUCKET_COUNT (2 * HDR_SUB_BUCKET_HALF)
#define SUB_BUCKET_MASK ((uint64_t)SUB_BUCKET_COUNT - 1)

void hdr_init(hdr *h)
{
	memset(h, 0, sizeof *h);
	h->min = INT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
	return 64 - (unsigned)__builtin_clzll(v | SUB_BUCKET_MASK) -
	       (HDR_SUB_BUCKET_HALF_MAGNITUDE + 1);
}

static size_t index_of(uint64_t v)
{
	unsigned b = bucket_of(v);
	uint64_t sub = v >> b;
	return ((size_t)(b + 1) << HDR_SUB_BUCKET_HALF_MAGNITUDE) + (sub - HDR_SUB_BUCKET_HALF);
}

/* The lowest value that lands on counts[i]. */
static uint64_t value_at_index(size_t i)
{
	int b = (int)(i >> HDR_SUB_BUCKET_HALF_MAGNITUDE) - 1;
	uint64_t sub = (i & (HDR_SUB_BUCKET_HALF - 1)) + HDR_SUB_BUCKET_HALF;
	if (b < 0) {
		sub -= HDR_SUB_BUCKET_HALF;
		b = 0;
	}
	return sub << b;
}

/* The highest value that lands on the same count as v. */
static int64_t highest_equivalent(uint64_t v)
{
	unsigned b = bucket_of(v);
	uint64_t sub = v >> b;
	uint64_t lowest = sub << b;
	unsigned range_shift = sub >= SUB_BUCKET_COUNT ? b + 1 : b;
	return (int64_t)(lowest + (UINT64_C(1) << range_shift) - 1);
}

void hdr_record(hdr *h, int64_t ns)
{
	if (ns < 0)
		ns = 0;
	if (ns > HDR_MAX_VALUE) {
		h->clipped++;
		ns = HDR_MAX_VALUE;
	}
	h->counts[index_of((uint64_t)ns)]++;
	h->total++;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
}

void hdr_merge(hdr *dst, const hdr *src)
{
	for (size_t i = 0; i < HDR_COUNTS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->clipped += src->clipped;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

int64_t hdr_percentile(const hdr *h, double p)
{
	if (!h->total)
		return 0;
	if (p > 100)
		p = 100;
	uint64_t want = (uint64_t)ceil(p / 100 * (double)h->total);
	if (want < 1)
		want = 1;
	uint64_t seen = 0;
	for (size_t i = 0; i < HDR_COUNTS; i++) {
		seen += h->counts[i];
		if (seen >= want)
			return highest_equivalent(value_at_index(i));
	}
	return h->max;
}

/* The midpoint of each bucket stands for its values, as HdrHistogram's
 * getMean does. */
static double median_equivalent(size_t i)
{
	uint64_t lo = value_at_index(i);
	return ((double)lo + (double)highest_equivalent(lo)) / 2;
}

double hdr_mean(const hdr *h)
{
	if (!h->total)
		return 0;
	double sum = 0;
	for (size_t i = 0; i < HDR_COUNTS; i++)
		if (h->counts[i])
			sum += median_equivalent(i) * (double)h->counts[i];
	return sum / (double)h->total;
}

double hdr_stddev(const hdr *h)
{
	if (!h->total)
		return 0;
	double mean = hdr_mean(h), sq = 0;
	for (size_t i = 0; i < HDR_COUNTS; i++)
		if (h->counts[i]) {
			double d = median_equivalent(i) - mean;
			sq += d * d * (double)h->counts[i];
		}
	return sqrt(sq / (double)h->total);
}

/* HdrHistogram's PercentileIterator: report at a level, then move the next
 * level up by 100 / (ticks * 2^(halvings + 1)), so the rows crowd towards
 * the tail; one last row at 100%. */
void hdr_percentiles(const hdr *h, hdr_visit_fn *visit, void *user)
{
	if (!h->total)
		return;
	const double ticks_per_half = 5;
	double level = 0;
	uint64_t seen = 0;
	for (size_t i = 0; i < HDR_COUNTS && seen < h->total; i++) {
		if (!h->counts[i])
			continue;
		seen += h->counts[i];
		double reached = 100.0 * (double)seen / (double)h->total;
		while (reached >= level) {
			visit(level, highest_equivalent(value_at_index(i)), seen, user);
			double halvings = floor(log2(100.0 / (100.0 - level)));
			level += 100.0 / (ticks_per_half * exp2(halvings + 1));
			/* Once every count is in, only the 100% row is left. */
			if (seen == h->total)
				break;
		}
	}
	visit(100.0, h->max > HDR_MAX_VALUE ? HDR_MAX_VALUE : highest_equivalent((uint64_t)h->max),
	      h->total, user);
}

struct hgrm_out {
	FILE *out;
	double unit;
};

static void hgrm_row(double percentile, int64_t value, uint64_t count, void *user)
{
	struct hgrm_out *o = user;
	double q = percentile / 100;
	if (percentile < 100)
		fprintf(o->out, "%12.3f %2.12f %10llu %14.2f\n", (double)value / o->unit, q,
		        (unsigned long long)count, 1 / (1 - q));
	else
		fprintf(o->out, "%12.3f %2.12f %10llu\n", (double)value / o->unit, q,
		        (unsigned long long)count);
}

int hdr_write_hgrm(const hdr *h, FILE *out, double unit_ns)
{
	struct hgrm_out o = { out, unit_ns };
	fprintf(out, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
	        "1/(1-Percentile)");
	hdr_percentiles(h, hgrm_row, &o);
	fprintf(out, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", hdr_mean(h) / unit_ns,
	        hdr_stddev(h) / unit_ns);
	fprintf(out, "#[Max     = %12.3f, Total count    = %12llu]\n",
	        (double)(h->total ? h->max : 0) / unit_ns, (unsigned long long)h->total);
	fprintf(out, "#[Buckets = %12d, SubBuckets     = %12d]\n", HDR_BUCKETS, SUB_BUCKET_COUNT);
	return ferror(out) ? -1 : 0;
}
