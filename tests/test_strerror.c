/* SPDX-License-Identifier: MIT */
/* uco_strerror: a sentence of its own for every errno any man page's
 * ERRORS section names (parsed from include/man3 here, so that a page that
 * documents a new error without a sentence fails), never NULL, thread-safe
 * "unknown error N", the resolver's codes. */
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "helpers.h"

#ifndef UCO_MAN_DIR
#error "UCO_MAN_DIR: the source tree's include/man3"
#endif

/* The errno whose symbolic name is `name` (EPERM ...), or 0. */
static int errno_named(const char *name)
{
	/* Aliases: glibc names each number once. */
	if (strcmp(name, "ENOTSUP") == 0)
		return ENOTSUP;
	if (strcmp(name, "EWOULDBLOCK") == 0)
		return EWOULDBLOCK;
	for (int e = 1; e < 200; e++) {
		const char *n = strerrorname_np(e);
		if (n && strcmp(n, name) == 0)
			return e;
	}
	return 0;
}

/* Collect the E* words of the .B/.BR lines of a page's ERRORS section. */
static int page_errnos(const char *path, int *found, int cap, int n)
{
	FILE *f = fopen(path, "re");
	cr_assert(f, "%s", path);
	char line[1024];
	int in_errors = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, ".SH", 3) == 0) {
			in_errors = strstr(line, "ERRORS") != NULL;
			continue;
		}
		if (!in_errors || (strncmp(line, ".B ", 3) != 0 && strncmp(line, ".BR ", 4) != 0))
			continue;
		for (char *p = line; *p; p++) {
			if (*p != 'E' || (p > line && (p[-1] == '_' || (p[-1] >= 'A' && p[-1] <= 'Z'))))
				continue;
			char word[32];
			size_t k = 0;
			while (k < sizeof word - 1 && ((p[k] >= 'A' && p[k] <= 'Z') ||
			                               (p[k] >= '0' && p[k] <= '9') || p[k] == '_'))
				word[k] = p[k], k++;
			word[k] = '\0';
			if (k < 3 || strncmp(word, "EAI_", 4) == 0)
				continue; /* resolver codes: tested below */
			int e = errno_named(word);
			cr_assert(e, "%s names %s, which is no errno", path, word);
			int seen = 0;
			for (int i = 0; i < n; i++)
				seen |= found[i] == e;
			if (!seen && n < cap)
				found[n++] = e;
		}
	}
	fclose(f);
	return n;
}

Test(strerror, every_errno_a_man_page_names_has_a_sentence_of_its_own)
{
	int found[256], n = 0, pages = 0;
	DIR *d = opendir(UCO_MAN_DIR);
	cr_assert(d, "%s", UCO_MAN_DIR);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 3 || strcmp(e->d_name + len - 2, ".3") != 0)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", UCO_MAN_DIR, e->d_name);
		n = page_errnos(path, found, 256, n);
		pages++;
	}
	closedir(d);
	cr_assert_gt(pages, 50, "the pages were found");
	cr_assert_gt(n, 20, "the ERRORS sections were parsed");
	for (int i = 0; i < n; i++) {
		const char *s = uco_strerror(-found[i]);
		cr_assert(s && s[0], "%s", strerrorname_np(found[i]));
		cr_assert(strcasecmp(s, strerror(found[i])) != 0 &&
		          strncmp(s, "unknown error", 13) != 0,
		          "%s has only the generic text: \"%s\" (add it to lib/strerror.c)",
		          strerrorname_np(found[i]), s);
		/* A sentence: the general meaning and, after a colon, uco's. */
		cr_assert_gt(strlen(s), 12, "%s: \"%s\"", strerrorname_np(found[i]), s);
	}
}

Test(strerror, uco_meanings_are_named)
{
	cr_assert(strstr(uco_strerror(-EDEADLK), "nothing can ever wake"));
	cr_assert(strstr(uco_strerror(-ECANCELED), "cancelled"));
	cr_assert(strstr(uco_strerror(-ETIMEDOUT), "deadline"));
	cr_assert(strstr(uco_strerror(-EPERM), "coroutine"));
	cr_assert(strstr(uco_strerror(-EXDEV), "another loop"));
	cr_assert_str_eq(uco_strerror(0), "success");
	cr_assert_str_eq(uco_strerror(ETIMEDOUT), uco_strerror(-ETIMEDOUT), "either sign");
	/* Codes uco has no sentence for get libc's description. */
	cr_assert_str_eq(uco_strerror(-ENOLCK), strerror(ENOLCK));
}

Test(strerror, resolver_codes_get_gai_strerror_and_unknown_codes_a_number)
{
	cr_assert_str_eq(uco_strerror(UCO_EAI_ERROR(EAI_NONAME)), gai_strerror(EAI_NONAME));
	cr_assert_str_eq(uco_strerror(UCO_EAI_ERROR(EAI_AGAIN)), uco_gai_strerror(UCO_EAI_ERROR(EAI_AGAIN)));
	cr_assert_str_eq(uco_strerror(-100000), "unknown error -100000");
	cr_assert_str_eq(uco_strerror(INT32_MIN), "unknown error -2147483648");
	cr_assert_str_eq(uco_strerror(4999), "unknown error 4999");
}

static void *unknown_in_thread(void *arg)
{
	const char *s = uco_strerror((int)(intptr_t)arg);
	for (int i = 0; i < 10000; i++)
		if (strcmp(uco_strerror((int)(intptr_t)arg), s) != 0)
			return (void *)1;
	return (void *)(uintptr_t)(strstr(s, "unknown error") == NULL);
}

Test(strerror, each_thread_has_its_own_unknown_buffer)
{
	pthread_t th[4];
	for (intptr_t i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, unknown_in_thread, (void *)(-5000 - i)), 0);
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(th[i], &r);
		cr_assert_null(r, "thread %d saw another's text", i);
	}
}
