/* SPDX-License-Identifier: MIT */
/*
 * uco-bench --svg: one horizontal bar per (benchmark, figure, peer) that
 * --chart-metrics takes, grouped under each benchmark's name, the
 * length being how many times better uco did than that peer, on a log
 * scale centred on 1x: to the right (green) where uco is ahead, to the
 * left (red) where the peer is.  "Better" follows the unit: more is better
 * for rates (units ending in "/s"), less for times and sizes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

bool bench_higher_is_better(const char *unit)
{
	size_t n = strlen(unit);
	/* "cpu_s/s" is a cost (CPU seconds per second), not a rate. */
	return n >= 2 && strcmp(unit + n - 2, "/s") == 0 && strncmp(unit, "cpu", 3) != 0;
}

static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else
			fputc(*s, f);
	}
}

int bench_svg_write(const char *path, const char *subtitle,
                    const struct bench_ratio *rows, size_t n)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	const double span = 4; /* log2: 1/16x .. 16x */
	const double W = 950, label_w = 300, bar_h = 18, gap = 6, head_h = 22;
	const double top = 66, bottom = 40;
	const double plot_w = W - label_w - 70, mid = label_w + plot_w / 2;
	size_t groups = 0;
	for (size_t i = 0; i < n; i++)
		groups += i == 0 || strcmp(rows[i].bench, rows[i - 1].bench) != 0;
	double H = top + (double)n * (bar_h + gap) + (double)groups * head_h + bottom;

	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
	           "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
	           "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
	           "<text x=\"10\" y=\"22\" font-size=\"15\">uco-bench: how many times better "
	           "uco did than each peer (same run, medians)</text>\n"
	           "<text x=\"10\" y=\"40\" fill=\"#555\">",
	        W, H, W, H);
	xml_text(f, subtitle ? subtitle : "");
	fputs("</text>\n", f);
	for (int e = -(int)span; e <= (int)span; e++) {
		double x = mid + plot_w / 2 * e / span;
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"%s\"/>\n"
		           "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%gx</text>\n",
		        x, top - 8, x, H - bottom + 4, e ? "#ddd" : "#333", x, H - bottom + 20,
		        e < 0 ? 1 / exp2(-e) : exp2(e));
	}
	double y = top;
	for (size_t i = 0; i < n; i++) {
		const struct bench_ratio *r = &rows[i];
		if (i == 0 || strcmp(r->bench, rows[i - 1].bench) != 0) {
			/* The benchmark's name heads its group of bars. */
			fprintf(f, "<text x=\"10\" y=\"%.1f\" font-weight=\"bold\">", y + head_h - 7);
			xml_text(f, r->bench);
			fputs("</text>\n", f);
			y += head_h;
		}
		double lg = log2(r->advantage);
		if (lg > span)
			lg = span;
		if (lg < -span)
			lg = -span;
		double len = plot_w / 2 * fabs(lg) / span;
		double x = lg >= 0 ? mid : mid - len;
		fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">", label_w - 8,
		        y + bar_h - 5);
		xml_text(f, r->metric);
		fputs(" vs ", f);
		xml_text(f, r->peer);
		/* The figure goes beyond a green bar's end, and just right of
		 * the 1x line for a red one, clear of the labels on the left. */
		fprintf(f, "</text>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" "
		           "fill=\"%s\"/>\n<text x=\"%.1f\" y=\"%.1f\">%.2fx</text>\n",
		        x, y, len < 1 ? 1 : len, bar_h, lg >= 0 ? "#2ca02c" : "#d62728",
		        lg >= 0 ? x + len + 4 : mid + 4, y + bar_h - 5, r->advantage);
		y += bar_h + gap;
	}
	fputs("</svg>\n", f);
	int err = ferror(f) ? -EIO : 0;
	if (fclose(f) && !err)
		err = -errno;
	return err;
}
