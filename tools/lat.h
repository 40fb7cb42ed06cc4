/* SPDX-License-Identifier: MIT */
/* uco-lat's shared pieces: what a run was asked to do, what it measured,
 * and the reports written from that (lat_report.c). */
#ifndef UCO_TOOLS_LAT_H
#define UCO_TOOLS_LAT_H

#include <stdbool.h>
#include <stdint.h>

#include "hdr.h"

enum lat_mode { LAT_ECHO, LAT_HTTP };

struct lat_config {
	enum lat_mode mode;
	const char *target; /* as given */
	char host[256], port[16], path[1024];
	unsigned connections, threads, pipeline;
	size_t size;          /* echo message bytes */
	double duration_s, warmup_s;
	double rate;          /* requests/s in all; 0: closed loop */
	double churn;         /* chance of a clean reconnect after an answer */
	double tick_us;       /* open loop: least time between the pacer's wake-ups */
	unsigned backend;     /* UCO_BACKEND_AUTO, _IO_URING or _EPOLL */
	const char *hgrm_path, *svg_path;
	bool json, quiet;
};

/* requests and latency cover the measured interval; errors, bad and bytes
 * the whole run, warm-up included (every answer is checked). */
struct lat_result {
	hdr *latency;        /* ns, from the scheduled send time in open loop */
	double elapsed_s;    /* of the measured interval */
	uint64_t requests;   /* completed inside the measured interval */
	uint64_t errors;     /* connect/IO errors and broken connections */
	uint64_t bad;        /* echo bytes that differed; HTTP answers not 2xx */
	uint64_t bytes;      /* payload bytes received and checked */
	uint64_t bytes_sent; /* request bytes put on the wire */
	uint64_t reconnects; /* clean ones (churn, Connection: close) */
	/* Open loop: how late the latest send was, among the sends due in the
	 * measured interval. */
	int64_t max_send_lag_ns;
	/* The client's own CPU over the measured interval, every thread
	 * (getrusage RUSAGE_SELF), seconds. */
	double cpu_user_s, cpu_sys_s;
	const char *backend;     /* uco_loop_backend() of the loops */
	const char *backend_why; /* why AUTO fell back, or NULL */
};

/* The human summary (stdout), and --json / --hgrm / --svg as asked.
 * 0, or -errno when a file could not be written. */
int lat_report(const struct lat_config *cfg, const struct lat_result *res);

#endif
