/* SPDX-License-Identifier: MIT */
/*
 * uco-bench: helpers around processes and memory.
 *
 * Benchmarks that report a peak RSS run every implementation in a fresh
 * child process (this executable again with --internal-child, or python3
 * with a peer script).  The child reports its figures on stdout as BENCH.md
 * JSON lines, including its own peak RSS read from VmHWM at its end; the
 * parent reads them from a pipe and passes them to bench_emit().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* ------------------------------------------------------------ JSON lines */

/* The value of "key" in a flat JSON object of BENCH.md's form: a string
 * copied into buf (returns true), or, with buf NULL, a number in *num. */
static bool json_field(const char *line, const char *key, char *buf,
                       size_t size, double *num)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof pat, "\"%s\"", key);
	p = strstr(line, pat);
	if (!p)
		return false;
	p += strlen(pat);
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p++ != ':')
		return false;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!buf) {
		char *end;
		errno = 0;
		*num = strtod(p, &end);
		return end != p && errno == 0;
	}
	if (*p++ != '"')
		return false;
	size_t n = 0;
	while (*p && *p != '"') {
		if (*p == '\\' && p[1])
			p++;
		if (n + 1 < size)
			buf[n++] = *p;
		p++;
	}
	buf[n] = '\0';
	return *p == '"';
}

static void take_line(const char *bench, const char *impl, char *line)
{
	char b[64], i[64], metric[64], unit[32];
	double value;

	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0')
		return;
	if (!json_field(line, "bench", b, sizeof b, NULL) ||
	    !json_field(line, "impl", i, sizeof i, NULL) ||
	    !json_field(line, "metric", metric, sizeof metric, NULL) ||
	    !json_field(line, "unit", unit, sizeof unit, NULL) ||
	    !json_field(line, "value", NULL, 0, &value)) {
		bench_note("%s/%s: child said: %s", bench, impl, line);
		return;
	}
	if (strcmp(b, bench) != 0 || strcmp(i, impl) != 0) {
		bench_note("%s/%s: child reported for %s/%s; ignored", bench,
		           impl, b, i);
		return;
	}
	bench_emit(bench, impl, metric, value, unit);
}

static int run_child(const char *bench, const char *impl, char *const argv[]);

int bench_run_child(const char *bench, const char *impl, char *const argv[])
{
	int st = run_child(bench, impl, argv);
	if (st != 0)
		bench_fail(bench, impl, "%s failed (%d)", argv[0], st);
	return st;
}

static int run_child(const char *bench, const char *impl, char *const argv[])
{
	int fds[2];

	fflush(stdout);
	fflush(stderr);
	if (pipe2(fds, O_CLOEXEC) < 0) {
		bench_note("%s/%s: pipe: %s", bench, impl, strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		bench_note("%s/%s: fork: %s", bench, impl, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		if (dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(127);
		if (strchr(argv[0], '/'))
			execv(argv[0], argv);
		else
			execvp(argv[0], argv);
		fprintf(stderr, "uco-bench: %s/%s: cannot run %s: %s\n", bench,
		        impl, argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);

	FILE *f = fdopen(fds[0], "r");
	if (!f) {
		close(fds[0]);
	} else {
		char *line = NULL;
		size_t cap = 0;
		while (getline(&line, &cap, f) >= 0)
			take_line(bench, impl, line);
		free(line);
		fclose(f);
	}

	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			bench_note("%s/%s: waitpid: %s", bench, impl,
			           strerror(errno));
			return -1;
		}
	}
	if (WIFSIGNALED(status)) {
		bench_note("%s/%s: child killed by signal %d (%s)", bench, impl,
		           WTERMSIG(status), strsignal(WTERMSIG(status)));
		return -1;
	}
	return WEXITSTATUS(status);
}

static char *self_exe(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);

	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

int bench_run_self(const char *bench, const char *impl,
                   const struct bench_opts *opts)
{
	char *exe = self_exe();
	char *argv[6];
	int n = 0, ret;

	argv[n++] = exe ? exe : (char *)"/proc/self/exe";
	argv[n++] = (char *)"--internal-child";
	argv[n++] = (char *)bench;
	argv[n++] = (char *)impl;
	if (opts->mode == BENCH_QUICK)
		argv[n++] = (char *)"--quick";
	else if (opts->mode == BENCH_FULL)
		argv[n++] = (char *)"--full";
	argv[n] = NULL;
	ret = bench_run_child(bench, impl, argv);
	free(exe);
	return ret;
}

/* ------------------------------------------------------------ memory */

double bench_peak_rss_mib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	double kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "VmHWM:", 6) == 0) {
			kib = strtod(line + 6, NULL);
			break;
		}
	}
	fclose(f);
	return kib < 0 ? -1 : kib / 1024.0;
}

void *bench_stack_alloc(size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
	               -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p, page, PROT_NONE) < 0) {
		munmap(p, size + page);
		return NULL;
	}
	return p + page;
}

void bench_stack_free(void *base, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	if (base)
		munmap((char *)base - page, size + page);
}

/* ------------------------------------------------------------ CPUs */

int bench_pin_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set);
}

bool bench_two_cpus(int a, int b)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof set, &set) < 0)
		return false;
	return CPU_ISSET(a, &set) && CPU_ISSET(b, &set);
}

/* ------------------------------------------------------------ files */

char *bench_find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");
		if (len == 0)
			snprintf(buf, sizeof buf, "./%s", name);
		else
			snprintf(buf, sizeof buf, "%.*s/%s", (int)len, path, name);
		if (access(buf, X_OK) == 0)
			return strdup(buf);
		path += len;
		if (*path == ':')
			path++;
	}
	return NULL;
}

char *bench_find_peer_file(const char *name)
{
	char *exe = self_exe();
	char buf[PATH_MAX];

	if (exe) {
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, sizeof buf, "%s/peers/%s", exe, name);
			if (access(buf, R_OK) == 0) {
				free(exe);
				return strdup(buf);
			}
		}
		free(exe);
	}
	return NULL;
}
