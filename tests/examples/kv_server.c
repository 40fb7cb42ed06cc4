/* SPDX-License-Identifier: MIT */
/*
 * A line-based key-value server on uco's streams: what the new
 * user set out to write with asyncio's start_server + StreamReader.
 *
 *   SET key value\n  ->  OK\n
 *   GET key\n        ->  VALUE value\n   or  NOT_FOUND\n
 *   DEL key\n        ->  DELETED\n       or  NOT_FOUND\n
 *   QUIT\n           ->  BYE\n, and the server closes the connection
 *   anything else    ->  ERROR unknown command\n
 *
 * A line longer than the stream's limit gets "ERROR line too long\n" and
 * the connection is closed.  Clients may pipeline: the replies are queued
 * with uco_stream_write() and the reader pauses in uco_stream_drain() only
 * when a client does not read its replies (back-pressure).  One loop, one
 * task per connection, the store a plain hash table (the loop is one
 * thread, so no lock).  SIGINT or SIGTERM stops it.
 *
 * usage: kv_server [PORT]    (0 or nothing: the kernel picks; the port is
 *                             said on stderr: "listening on 127.0.0.1:P")
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uco.h>

#define LINE_LIMIT 4096

/* ------------------------------------------------------------ the store */

struct entry {
	struct entry *next;
	char *key, *value;
};

#define BUCKETS 4096
static struct entry *table[BUCKETS];

static unsigned hash(const char *s, size_t n)
{
	unsigned h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h % BUCKETS;
}

static struct entry **slot(const char *key, size_t n)
{
	struct entry **e = &table[hash(key, n)];
	while (*e && !(strlen((*e)->key) == n && memcmp((*e)->key, key, n) == 0))
		e = &(*e)->next;
	return e;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

static bool store_set(const char *key, size_t kn, const char *value, size_t vn)
{
	char *v = dup_n(value, vn);
	if (!v)
		return false;
	struct entry **e = slot(key, kn);
	if (*e) {
		free((*e)->value);
		(*e)->value = v;
		return true;
	}
	struct entry *n = malloc(sizeof *n);
	char *k = dup_n(key, kn);
	if (!n || !k) {
		free(n);
		free(k);
		free(v);
		return false;
	}
	*n = (struct entry){ NULL, k, v };
	*e = n;
	return true;
}

static void store_free(void)
{
	for (size_t i = 0; i < BUCKETS; i++)
		while (table[i]) {
			struct entry *e = table[i];
			table[i] = e->next;
			free(e->key);
			free(e->value);
			free(e);
		}
}

/* ------------------------------------------------------------ connections */

/* The next space-separated word of [*p, end): its start and length. */
static size_t word(const char **p, const char *end, const char **start)
{
	while (*p < end && **p == ' ')
		(*p)++;
	*start = *p;
	while (*p < end && **p != ' ')
		(*p)++;
	return (size_t)(*p - *start);
}

#define REPLY(s, lit) uco_stream_write((s), lit, sizeof lit - 1)

/* One command; false when the connection should end. */
static bool serve_line(uco_stream *s, const char *line, size_t n)
{
	const char *end = line + n, *p = line, *cmd, *key;
	if (end > p && end[-1] == '\n')
		end--;
	if (end > p && end[-1] == '\r')
		end--;
	size_t cn = word(&p, end, &cmd);
	size_t kn = word(&p, end, &key);
	if (cn == 3 && memcmp(cmd, "SET", 3) == 0 && kn) {
		while (p < end && *p == ' ')
			p++;
		if (store_set(key, kn, p, (size_t)(end - p)))
			REPLY(s, "OK\n");
		else
			REPLY(s, "ERROR out of memory\n");
	} else if (cn == 3 && memcmp(cmd, "GET", 3) == 0 && kn) {
		struct entry *e = *slot(key, kn);
		if (e) {
			REPLY(s, "VALUE ");
			uco_stream_write(s, e->value, strlen(e->value));
			REPLY(s, "\n");
		} else {
			REPLY(s, "NOT_FOUND\n");
		}
	} else if (cn == 3 && memcmp(cmd, "DEL", 3) == 0 && kn) {
		struct entry **e = slot(key, kn);
		if (*e) {
			struct entry *gone = *e;
			*e = gone->next;
			free(gone->key);
			free(gone->value);
			free(gone);
			REPLY(s, "DELETED\n");
		} else {
			REPLY(s, "NOT_FOUND\n");
		}
	} else if (cn == 4 && memcmp(cmd, "QUIT", 4) == 0) {
		REPLY(s, "BYE\n");
		return false;
	} else {
		REPLY(s, "ERROR unknown command\n");
	}
	return true;
}

static void *connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uco_stream *s;
	uco_stream_opts o = { .limit = LINE_LIMIT };
	int err = uco_stream_open(&s, fd, &o);
	if (err) {
		close(fd);
		return NULL;
	}
	for (;;) {
		const char *line;
		ssize_t n = uco_stream_readline(s, &line);
		if (n == -EMSGSIZE) {
			REPLY(s, "ERROR line too long\n");
			break;
		}
		if (n <= 0)
			break; /* end of file, an error, or cancelled (stopping) */
		if (!serve_line(s, line, (size_t)n))
			break;
		/* Back-pressure: a client that pipelines and does not read
		 * its replies stops being read until it does. */
		if (uco_stream_drain(s) < 0)
			break;
	}
	uco_stream_close_dl(s, uco_now() + UCO_NS_PER_S); /* flushes, closes fd */
	return NULL;
}

/* ------------------------------------------------------------ serving */

static uco_acceptor *acceptor;
static bool stopping; /* a signal came: no new connection */

static void *accepting(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = uco_acceptor_next(acceptor);
		if (fd == -ECANCELED || fd == -ESHUTDOWN)
			break;
		if (fd < 0) {
			if (fd == -EMFILE || fd == -ENFILE)
				uco_sleep(10 * UCO_NS_PER_MS); /* let connections end */
			continue;
		}
		/* A connection accepted in the same turn as the signal reaches
		 * this task after the cancel-all: a task spawned for it now would
		 * not be cancelled, and would keep the server up. */
		if (stopping || uco_spawn(NULL, NULL, connection, (void *)(intptr_t)fd) < 0)
			close(fd);
	}
	uco_acceptor_close(acceptor);
	return NULL;
}

static void on_signal(int signo, void *user)
{
	(void)signo;
	stopping = true;
	uco_loop_cancel_all(user); /* every connection and the acceptor */
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 0;
	signal(SIGPIPE, SIG_IGN);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 1024) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len)) {
		perror("kv_server: listen");
		return 1;
	}
	uco_loop *loop;
	int err = uco_loop_create(&loop, NULL);
	if (err) {
		fprintf(stderr, "kv_server: %s\n", uco_loop_strerror(err));
		return 1;
	}
	if ((err = uco_loop_on_signal(loop, SIGINT, on_signal, loop)) ||
	    (err = uco_loop_on_signal(loop, SIGTERM, on_signal, loop)) ||
	    (err = uco_acceptor_open(loop, &acceptor, lfd, SOCK_CLOEXEC)) ||
	    (err = uco_spawn(loop, NULL, accepting, NULL))) {
		fprintf(stderr, "kv_server: %s\n", strerror(-err));
		return 1;
	}
	fprintf(stderr, "kv_server: listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
	err = uco_loop_run(loop);
	uco_loop_close(loop);
	close(lfd);
	store_free();
	return err < 0 ? 1 : 0;
}
