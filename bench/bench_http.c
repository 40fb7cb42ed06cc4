/* SPDX-License-Identifier: MIT */
/*
 * http: uco-http (one thread) against nginx (one worker, `return 200`),
 * both answering GET /plaintext with "Hello, World!", both driven by the
 * same wrk client (one thread, 64 connections, --latency) in the same run.
 *
 * The server runs pinned to CPU 0 and wrk to CPU 1, so that each side has
 * a core and neither measures the other's scheduling.  The two servers
 * take turns, round after round, so that a slow spell of this shared
 * machine falls on both.  A round with socket errors or non-2xx answers
 * is reported as a failure, not as a figure.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define HTTP_SERVER_CPU 0
#define HTTP_CLIENT_CPU 1
#define HTTP_CONNECTIONS "64"

struct http_server {
	const char *impl;
	char *argv[12];
	pid_t pid;
};

/* A port nobody listens on right now (the kernel's pick). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Wait until the server accepts (5 s at most). */
static bool wait_listening(int port, pid_t pid)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int i = 0; i < 500; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool up = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
		if (fd >= 0)
			close(fd);
		if (up)
			return true;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		usleep(10000);
	}
	return false;
}

static pid_t spawn_pinned(char *const argv[], int cpu, bool pin, int stdout_fd)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (pin && bench_pin_to(cpu) < 0)
		fprintf(stderr, "uco-bench: http: sched_setaffinity: %s\n", strerror(errno));
	if (stdout_fd >= 0 && dup2(stdout_fd, STDOUT_FILENO) < 0)
		_exit(127);
	execv(argv[0], argv);
	fprintf(stderr, "uco-bench: http: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static void stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* "1.23ms" -> microseconds. */
static double wrk_time_us(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (strncmp(end, "us", 2) == 0)
		return v;
	if (strncmp(end, "ms", 2) == 0)
		return v * 1e3;
	if (*end == 's')
		return v * 1e6;
	if (strncmp(end, "m", 1) == 0)
		return v * 60e6;
	return -1;
}

/* Run wrk against the port; its requests/s and p99 from --latency. */
static int run_wrk(const char *impl, const char *wrk, int port, double seconds, bool pin,
                   double *rps, double *p99_us)
{
	char url[64], dur[32];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/plaintext", port);
	snprintf(dur, sizeof dur, "%.0fs", seconds);
	char *argv[] = { (char *)wrk, "-t1", "-c" HTTP_CONNECTIONS, "-d", dur, "--latency",
		         url, NULL };
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = spawn_pinned(argv, HTTP_CLIENT_CPU, pin, fds[1]);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return -errno;
	}
	FILE *f = fdopen(fds[0], "r");
	char line[512];
	bool errors = false;
	*rps = *p99_us = -1;
	while (f && fgets(line, sizeof line, f)) {
		const char *p = line + strspn(line, " \t");
		if (strncmp(p, "Requests/sec:", 13) == 0)
			*rps = strtod(p + 13, NULL);
		else if (strncmp(p, "99%", 3) == 0)
			*p99_us = wrk_time_us(p + 3 + strspn(p + 3, " \t"));
		else if (strncmp(p, "Socket errors", 13) == 0 || strncmp(p, "Non-2xx", 7) == 0) {
			errors = true;
			bench_note("http/%s: wrk: %.*s", impl, (int)strcspn(p, "\n"), p);
		}
	}
	if (f)
		fclose(f);
	else
		close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) || *rps <= 0 || *p99_us <= 0 || errors)
		return -EPROTO;
	return 0;
}

/* nginx as its own benchmarks run it: one worker, no logging, the answer
 * from `return 200`, everything it writes kept under a private prefix. */
static int nginx_config(char *dir, size_t size, int port, char *conf, size_t conf_size)
{
	snprintf(dir, size, "/tmp/uco-bench-nginx-XXXXXX");
	if (!mkdtemp(dir))
		return -errno;
	snprintf(conf, conf_size, "%s/nginx.conf", dir);
	char logs[PATH_MAX];
	snprintf(logs, sizeof logs, "%s/logs", dir);
	mkdir(logs, 0700);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -errno;
	fprintf(f,
	        "worker_processes 1;\n"
	        "daemon off;\n"
	        "pid %s/nginx.pid;\n"
	        "error_log stderr warn;\n"
	        "events { worker_connections 4096; }\n"
	        "http {\n"
	        "  access_log off;\n"
	        "  client_body_temp_path %s/body;\n"
	        "  keepalive_requests 1000000;\n"
	        "  server {\n"
	        "    listen 127.0.0.1:%d reuseport;\n"
	        "    location = /plaintext { default_type text/plain; return 200 \"Hello, World!\"; }\n"
	        "  }\n"
	        "}\n",
	        dir, dir, port);
	return fclose(f) ? -errno : 0;
}

static void remove_tree(const char *dir)
{
	char path[PATH_MAX];
	const char *files[] = { "nginx.conf", "nginx.pid", "logs", "body" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		if (unlink(path) < 0)
			rmdir(path);
	}
	rmdir(dir);
}

/* uco-http is built next to uco-bench (build/tools/ beside build/bench/)
 * or installed beside it. */
static char *find_uco_http(void)
{
	char exe[PATH_MAX], buf[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return NULL;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = 0;
	snprintf(buf, sizeof buf, "%s/../tools/uco-http", exe);
	if (access(buf, X_OK) == 0)
		return strdup(buf);
	snprintf(buf, sizeof buf, "%s/uco-http", exe);
	return access(buf, X_OK) == 0 ? strdup(buf) : NULL;
}

int bench_http_run(const struct bench_opts *opts)
{
	char *wrk = bench_find_in_path("wrk");
	char *uco_http = find_uco_http();
	char *nginx = bench_find_in_path("nginx");
	if (!nginx && access("/usr/sbin/nginx", X_OK) == 0)
		nginx = strdup("/usr/sbin/nginx");
	int ret = 0;
	if (!wrk) {
		bench_skip("http", "uco", "wrk not found (Debian package wrk)");
		bench_skip("http", "nginx", "wrk not found (Debian package wrk)");
		goto out;
	}
	if (!uco_http)
		bench_fail("http", "uco", "uco-http not found next to uco-bench");
	if (!nginx)
		bench_skip("http", "nginx", "nginx not found (Debian package nginx-light)");

	bool pin = bench_two_cpus(HTTP_SERVER_CPU, HTTP_CLIENT_CPU);
	int rounds = BENCH_PICK(opts, 1, 3, 5);
	double seconds = BENCH_PICK(opts, 1, 3, 10);
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < 2; k++) {
			const char *impl = k == 0 ? "uco" : "nginx";
			if (!(k == 0 ? uco_http : nginx))
				continue;
			int port = free_port();
			char portstr[16], dir[64] = "", conf[PATH_MAX];
			snprintf(portstr, sizeof portstr, "%d", port);
			char *argv_uco[] = { uco_http, "--port", portstr, "--addr", "127.0.0.1",
				             "--threads", "1", NULL };
			char *argv_nginx[] = { nginx, "-e", "stderr", "-p", dir, "-c", conf,
				               NULL };
			if (k == 1) {
				int err = nginx_config(dir, sizeof dir, port, conf, sizeof conf);
				if (err) {
					bench_fail("http", impl, "config in %s: %s", dir, strerror(-err));
					continue;
				}
			}
			bench_progress("http", impl, "serving");
			pid_t pid = spawn_pinned(k == 0 ? argv_uco : argv_nginx, HTTP_SERVER_CPU, pin,
			                         -1);
			double rps, p99;
			if (pid < 0 || !wait_listening(port, pid)) {
				bench_fail("http", impl, "the server did not start listening");
			} else {
				/* A short first run warms both sides; then the measured one. */
				run_wrk(impl, wrk, port, 1, pin, &rps, &p99);
				bench_progress("http", impl, "wrk");
				int err = run_wrk(impl, wrk, port, seconds, pin, &rps, &p99);
				if (err) {
					bench_fail("http", impl, "wrk run failed or saw errors");
				} else {
					bench_emit("http", impl, "rps", rps, "req/s");
					bench_emit("http", impl, "p99_us", p99, "us");
				}
			}
			stop(pid);
			if (*dir)
				remove_tree(dir);
		}
	}
out:
	free(wrk);
	free(uco_http);
	free(nginx);
	return ret;
}
