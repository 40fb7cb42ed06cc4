/* SPDX-License-Identifier: MIT */
/*
 * http: uco-http (one thread) against nginx (one worker, `return 200`),
 * both answering GET /plaintext with "Hello, World!", both driven by the
 * same wrk client (one thread, 64 connections, --latency) in the same run.
 * uco-epoll is the same uco-http with --backend epoll (the readiness
 * backend, nginx's own model; skipped where a loop asked for it does not run
 * on epoll); uco-http says on stderr which backend it runs on.
 *
 * The server runs pinned to CPU 0 and wrk to CPU 1, so that each side has
 * a core and neither measures the other's scheduling.  The two servers
 * take turns, round after round, so that a slow spell of this shared
 * machine falls on both.  A round with socket errors or non-2xx answers
 * is reported as a failure, not as a figure.
 *
 * https: the same over TLS 1.3, both servers with one certificate (ECDSA
 * P-256, made with the openssl command), TLS_AES_128_GCM_SHA256 and key
 * exchange on P-256: keep-alive (rps, p99), then a full handshake per
 * request (wrk -H 'Connection: close': hs_per_s).
 *
 * Extra figures: the server's CPU (user + system, nginx's worker included)
 * per request, and per full handshake (server_cpu_us_per_req, _per_hs).
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
/* New connections per request: fewer, as each costs a handshake. */
#define HTTPS_CLOSE_CONNECTIONS "16"
#define HTTPS_SUITE "TLS_AES_128_GCM_SHA256"

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

/* CPU seconds (user + system) one process has used, from /proc: 0 if it
 * is gone. */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces and ')'. */
	const char *p = strrchr(buf, ')');
	unsigned long utime, stime;
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	                 &utime, &stime) != 2)
		return 0;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The server's CPU seconds so far: the process and its children (nginx's
 * worker does the work, its master waits). */
static double server_cpu_s(pid_t pid)
{
	char path[64];
	double s = proc_cpu_s(pid);
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
	FILE *f = fopen(path, "r");
	int child;
	while (f && fscanf(f, "%d", &child) == 1)
		s += proc_cpu_s(child);
	if (f)
		fclose(f);
	return s;
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

/* Run wrk against the port; its requests/s and p99 from --latency.
 * close: a new connection per request (wrk then counts each close by the
 * server as a read error, which is no error here). */
static int run_wrk(const char *impl, const char *wrk, int port, bool tls, bool close_each,
                   double seconds, bool pin, double *rps, double *p99_us,
                   double *requests)
{
	char url[64], dur[32];
	snprintf(url, sizeof url, "%s://127.0.0.1:%d/plaintext", tls ? "https" : "http", port);
	snprintf(dur, sizeof dur, "%.0fs", seconds);
	char *argv[] = { (char *)wrk, "-t1",
		         close_each ? "-c" HTTPS_CLOSE_CONNECTIONS : "-c" HTTP_CONNECTIONS,
		         "-d", dur, "--latency", url,
		         close_each ? "-H" : NULL, "Connection: close", NULL };
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
	*rps = *p99_us = *requests = -1;
	while (f && fgets(line, sizeof line, f)) {
		const char *p = line + strspn(line, " \t");
		char *end;
		double count = strtod(p, &end);
		if (end != p && strncmp(end, " requests in ", 13) == 0)
			*requests = count;
		else if (strncmp(p, "Requests/sec:", 13) == 0)
			*rps = strtod(p + 13, NULL);
		else if (strncmp(p, "99%", 3) == 0)
			*p99_us = wrk_time_us(p + 3 + strspn(p + 3, " \t"));
		else if (strncmp(p, "Socket errors", 13) == 0 || strncmp(p, "Non-2xx", 7) == 0) {
			unsigned c = 0, r = 0, w = 0, t = 0;
			bool only_reads = sscanf(p, "Socket errors: connect %u, read %u, write %u, "
			                         "timeout %u", &c, &r, &w, &t) == 4 && !c && !w && !t;
			if (close_each && only_reads)
				continue;
			errors = true;
			bench_note("%s/%s: wrk: %.*s", tls ? "https" : "http", impl,
			           (int)strcspn(p, "\n"), p);
		}
	}
	if (f)
		fclose(f);
	else
		close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) || *rps <= 0 || *p99_us <= 0 ||
	    *requests <= 0 || errors)
		return -EPROTO;
	return 0;
}

/* nginx as its own benchmarks run it: one worker, no logging, the answer
 * from `return 200`, everything it writes kept under a private prefix. */
static int nginx_config(char *dir, size_t size, int port, char *conf, size_t conf_size,
                        const char *cert, const char *key)
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
	        "    listen 127.0.0.1:%d%s reuseport;\n",
	        dir, dir, port, cert ? " ssl" : "");
	if (cert)
		fprintf(f,
		        "    ssl_certificate %s;\n"
		        "    ssl_certificate_key %s;\n"
		        "    ssl_protocols TLSv1.3;\n"
		        "    ssl_conf_command Ciphersuites " HTTPS_SUITE ";\n"
		        "    ssl_ecdh_curve prime256v1;\n",
		        cert, key);
	fprintf(f,
	        "    location = /plaintext { default_type text/plain; return 200 \"Hello, World!\"; }\n"
	        "  }\n"
	        "}\n");
	return fclose(f) ? -errno : 0;
}

static void remove_tree(const char *dir)
{
	char path[PATH_MAX];
	const char *files[] = { "nginx.conf", "nginx.pid", "logs", "body", "cert.pem", "key.pem" };
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

/* The https bench's certificate and key, in dir (made with mkdtemp). */
static int make_cert(char *dir, size_t size, char *cert, char *key, size_t len)
{
	snprintf(dir, size, "/tmp/uco-bench-https-XXXXXX");
	if (!mkdtemp(dir))
		return -errno;
	snprintf(cert, len, "%s/cert.pem", dir);
	snprintf(key, len, "%s/key.pem", dir);
	char cmd[3 * PATH_MAX];
	snprintf(cmd, sizeof cmd,
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	         "-days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
	         "-keyout %s -out %s >/dev/null 2>&1", key, cert);
	return system(cmd) == 0 ? 0 : -ENOENT;
}

static int run_http(const struct bench_opts *opts, bool tls)
{
	const char *bench = tls ? "https" : "http";
	char *wrk = bench_find_in_path("wrk");
	char *uco_http = find_uco_http();
	char *nginx = bench_find_in_path("nginx");
	if (!nginx && access("/usr/sbin/nginx", X_OK) == 0)
		nginx = strdup("/usr/sbin/nginx");
	char certdir[64] = "", cert[PATH_MAX], key[PATH_MAX];
	int ret = 0;
	if (!wrk) {
		bench_skip(bench, "uco", "wrk not found (Debian package wrk)");
		bench_skip(bench, "nginx", "wrk not found (Debian package wrk)");
		goto out;
	}
	if (tls && make_cert(certdir, sizeof certdir, cert, key, sizeof cert) < 0) {
		bench_skip(bench, "uco", "no certificate: the openssl command failed or is missing");
		bench_skip(bench, "nginx", "no certificate: the openssl command failed or is missing");
		goto out;
	}
	if (!uco_http)
		bench_fail(bench, "uco", "uco-http not found next to uco-bench");
	if (!nginx)
		bench_skip(bench, "nginx", "nginx not found (Debian package nginx-light)");

	bool pin = bench_two_cpus(HTTP_SERVER_CPU, HTTP_CLIENT_CPU);
	int rounds = BENCH_PICK(opts, 1, 3, 5);
	double seconds = BENCH_PICK(opts, 1, 3, 10);
	/* uco-epoll: the same uco-http with --backend epoll (http only). */
	static const char *const impls[] = { "uco", "uco-epoll", "nginx" };
	bool run[3] = { uco_http != NULL, false, nginx != NULL };
	if (uco_http) {
		bench_uco_impl_available(bench, "uco");
		run[1] = !tls && bench_uco_impl_available(bench, "uco-epoll");
	}
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < 3; k++) {
			const char *impl = impls[k];
			if (!run[k])
				continue;
			bool is_nginx = k == 2;
			int port = free_port();
			char portstr[16], dir[64] = "", conf[PATH_MAX];
			snprintf(portstr, sizeof portstr, "%d", port);
			char *argv_uco[16] = { uco_http, "--port", portstr, "--addr", "127.0.0.1",
				               "--threads", "1" };
			int n = 7;
			if (bench_is_uco_epoll(impl)) {
				argv_uco[n++] = "--backend";
				argv_uco[n++] = (char *)bench_uco_backend_arg(impl);
			}
			if (tls) {
				char *t[] = { "--tls", cert, key, "--tls-ciphers", HTTPS_SUITE,
				              "--tls-groups", "P-256" };
				memcpy(argv_uco + n, t, sizeof t);
				n += (int)(sizeof t / sizeof t[0]);
			}
			argv_uco[n] = NULL;
			char *argv_nginx[] = { nginx, "-e", "stderr", "-p", dir, "-c", conf,
				               NULL };
			if (is_nginx) {
				int err = nginx_config(dir, sizeof dir, port, conf, sizeof conf,
				                       tls ? cert : NULL, key);
				if (err) {
					bench_fail(bench, impl, "config in %s: %s", dir, strerror(-err));
					continue;
				}
			}
			bench_progress(bench, impl, "serving");
			pid_t pid = spawn_pinned(is_nginx ? argv_nginx : argv_uco, HTTP_SERVER_CPU,
			                         pin, -1);
			double rps, p99;
			if (pid < 0 || !wait_listening(port, pid)) {
				bench_fail(bench, impl, "the server did not start listening");
			} else {
				/* A short first run warms both sides; then the measured one. */
				double reqs, cpu0;
				run_wrk(impl, wrk, port, tls, false, 1, pin, &rps, &p99, &reqs);
				bench_progress(bench, impl, "wrk");
				cpu0 = server_cpu_s(pid);
				int err = run_wrk(impl, wrk, port, tls, false, seconds, pin, &rps, &p99,
				                  &reqs);
				if (err) {
					bench_fail(bench, impl, "wrk run failed or saw errors");
				} else {
					bench_emit(bench, impl, "rps", rps, "req/s");
					bench_emit(bench, impl, "p99_us", p99, "us");
					bench_emit(bench, impl, "server_cpu_us_per_req",
					           (server_cpu_s(pid) - cpu0) * 1e6 / reqs, "us");
				}
				if (tls) {
					/* Full handshakes: a new connection per request.
					 * wrk's own handshakes can be what limits the
					 * rate, so the server's CPU per handshake is the
					 * figure that compares the servers. */
					bench_progress(bench, impl, "wrk, Connection: close");
					cpu0 = server_cpu_s(pid);
					err = run_wrk(impl, wrk, port, tls, true, seconds, pin, &rps, &p99,
					              &reqs);
					if (err) {
						bench_fail(bench, impl, "wrk (Connection: close) failed or "
						           "saw errors");
					} else {
						bench_emit(bench, impl, "hs_per_s", rps, "handshakes/s");
						bench_emit(bench, impl, "server_cpu_us_per_hs",
						           (server_cpu_s(pid) - cpu0) * 1e6 / reqs, "us");
					}
				}
			}
			stop(pid);
			if (*dir)
				remove_tree(dir);
		}
	}
out:
	if (*certdir)
		remove_tree(certdir);
	free(wrk);
	free(uco_http);
	free(nginx);
	return ret;
}

int bench_http_run(const struct bench_opts *opts)
{
	return run_http(opts, false);
}

int bench_https_run(const struct bench_opts *opts)
{
	return run_http(opts, true);
}
