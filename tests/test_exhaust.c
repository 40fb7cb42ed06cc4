/* SPDX-License-Identifier: MIT */
/*
 * Resources running out for real, in the test's own process (Criterion
 * runs each test in one): descriptors (RLIMIT_NOFILE, the table filled
 * with dup), and address space (RLIMIT_AS).  The limits are lowered on
 * the soft side only and raised back before anything is asserted, so
 * Criterion can report.  The refusal of io_uring itself is in
 * test_setup.c.
 */
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

/* Under ASan a failed allocation must come back as NULL, as it would
 * without ASan, rather than end the process. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static int set_soft_limit(int resource, rlim_t value)
{
	struct rlimit lim;
	if (getrlimit(resource, &lim))
		return -errno;
	lim.rlim_cur = value;
	return setrlimit(resource, &lim) ? -errno : 0;
}

static int listener(struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	*addr = (struct sockaddr_in){ .sin_family = AF_INET,
	                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(fd, (struct sockaddr *)addr, sizeof *addr), 0);
	cr_assert_eq(listen(fd, 64), 0);
	socklen_t len = sizeof *addr;
	cr_assert_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

/* ------------------------------------------------------------ descriptors */

enum { CLIENTS = 3, SPARE = 8 };

static struct {
	uco_acceptor *acceptor;
	int listen_fd, plain_fd;           /* the acceptor's, plain accept's */
	struct sockaddr_in addr, plain_addr;
	int clients[CLIENTS];
	int fillers[4096];
	int nfillers;
	int first_error, again_error, plain_error;
	uint64_t cqes_while_full;
	int accepted;
	int plain_accepted;
} st;

/* The highest descriptor open now. */
static int highest_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert(d);
	int highest = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (atoi(e->d_name) > highest)
			highest = atoi(e->d_name);
	closedir(d);
	return highest;
}

/* Take every descriptor left. */
static void fill_table(void)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(null, 0);
	st.nfillers = 0;
	st.fillers[st.nfillers++] = null;
	for (;;) {
		int fd = fcntl(null, F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			cr_assert(errno == EMFILE || errno == ENFILE, "F_DUPFD: %s", strerror(errno));
			break;
		}
		cr_assert_lt(st.nfillers, 4096);
		st.fillers[st.nfillers++] = fd;
	}
}

static void free_some(int n)
{
	while (n-- > 0 && st.nfillers > 0)
		close(st.fillers[--st.nfillers]);
}

static void *server(void *arg)
{
	uco_loop *loop = arg;
	/* The table is full and clients wait in the backlog. */
	st.first_error = uco_acceptor_next_dl(st.acceptor, uco_now() + UCO_NS_PER_S);
	/* The acceptor must not spin on -EMFILE while nobody asks. */
	uco_loop_stats before, after;
	uco_loop_stats_get(loop, &before);
	uco_sleep(50 * UCO_NS_PER_MS);
	uco_loop_stats_get(loop, &after);
	st.cqes_while_full = after.cqes_reaped - before.cqes_reaped;
	/* Asked again with the table still full: the same error, at once. */
	st.again_error = uco_acceptor_next_dl(st.acceptor, uco_now() + UCO_NS_PER_S);
	/* A plain accept says the same. */
	st.plain_error = uco_accept_dl(st.plain_fd, NULL, NULL, SOCK_CLOEXEC,
	                               uco_now() + UCO_NS_PER_S);

	/* Descriptors come back: the waiting clients are accepted. */
	free_some(SPARE);
	for (int i = 0; i < CLIENTS - 1; i++) {
		int fd = uco_acceptor_next_dl(st.acceptor, uco_now() + UCO_NS_PER_S);
		if (fd < 0)
			return uco_fail(fd);
		if (uco_write(fd, "k", 1, -1) == 1)
			st.accepted++;
		close(fd);
	}
	uco_acceptor_close(st.acceptor);
	/* And the last one by a plain accept. */
	int fd = uco_accept_dl(st.plain_fd, NULL, NULL, SOCK_CLOEXEC, uco_now() + UCO_NS_PER_S);
	if (fd < 0)
		return uco_fail(fd);
	if (uco_write(fd, "k", 1, -1) == 1)
		st.plain_accepted++;
	close(fd);
	return NULL;
}

Test(exhaust, a_full_descriptor_table_is_survived_by_acceptor_and_accept, .timeout = 30)
{
	struct rlimit old;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* A small table: io_uring's accept takes the limit when the SQE is
	 * prepared, so it is lowered before anything is opened. */
	int highest = highest_open();
	cr_assert_eq(set_soft_limit(RLIMIT_NOFILE, (rlim_t)highest + 64), 0);

	uco_loop *loop = test_loop();
	st.listen_fd = listener(&st.addr);
	st.plain_fd = listener(&st.plain_addr);
	cr_assert_eq(uco_acceptor_open(loop, &st.acceptor, st.listen_fd, SOCK_CLOEXEC), 0);
	for (int i = 0; i < CLIENTS; i++) {
		st.clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(st.clients[i], 0);
	}
	fill_table();
	/* The last client is for the plain accept. */
	for (int i = 0; i < CLIENTS; i++) {
		struct sockaddr_in *to = i < CLIENTS - 1 ? &st.addr : &st.plain_addr;
		cr_assert_eq(connect(st.clients[i], (struct sockaddr *)to, sizeof *to), 0);
	}

	uco_task *t;
	cr_assert_eq(uco_spawn(loop, &t, server, loop), 0);
	int r = uco_loop_run_until(loop, t, NULL);
	if (!r)
		r = uco_task_result(t, NULL);
	uco_task_release(t);
	free_some(st.nfillers);
	cr_assert_eq(r, 0, "server: %d", r);

	cr_assert(st.first_error == -EMFILE || st.first_error == -ENFILE, "acceptor: %d",
	          st.first_error);
	cr_assert_lt(st.cqes_while_full, 10, "the acceptor spun: %lu completions in 50 ms",
	             (unsigned long)st.cqes_while_full);
	cr_assert(st.again_error == -EMFILE || st.again_error == -ENFILE, "acceptor again: %d",
	          st.again_error);
	cr_assert(st.plain_error == -EMFILE || st.plain_error == -ENFILE, "accept: %d",
	          st.plain_error);
	cr_assert_eq(st.accepted, CLIENTS - 1);
	cr_assert_eq(st.plain_accepted, 1);
	for (int i = 0; i < CLIENTS; i++) {
		char c = 0;
		cr_assert_eq(read(st.clients[i], &c, 1), 1, "client %d was never served", i);
		cr_assert_eq(c, 'k');
		close(st.clients[i]);
	}
	close(st.listen_fd);
	close(st.plain_fd);
	test_close(loop);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}

/* Loop creation needs descriptors too (the ring, the inbox's eventfd). */
Test(exhaust, no_descriptor_left_for_a_loop_is_EMFILE, .timeout = 30)
{
	struct rlimit old;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	int highest = highest_open();
	cr_assert_eq(set_soft_limit(RLIMIT_NOFILE, (rlim_t)highest + 16), 0);
	fill_table();
	/* Free one at a time: the ring's descriptor, then the eventfd's. */
	int errs[4], tries = 0, err;
	uco_loop *loop = NULL;
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	const char *ring = getenv("UCO_TEST_RING");
	if (ring && strcmp(ring, "plain") == 0)
		opts.flags |= UCO_LOOP_PLAIN_RING;
	while ((err = uco_loop_create(&loop, &opts)) != 0 && tries < 4) {
		errs[tries++] = err;
		free_some(1);
	}
	free_some(st.nfillers);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	if (err == -ENOSYS || err == -EPERM)
		cr_skip_test("io_uring unavailable here");
	cr_assert_eq(err, 0, "no loop with 4 descriptors free: %d", err);
	cr_assert_geq(tries, 1);
	for (int i = 0; i < tries; i++)
		cr_assert(errs[i] == -EMFILE || errs[i] == -ENFILE, "try %d: %d", i, errs[i]);
	test_close(loop);
}

/* ------------------------------------------------------------ address space */

static rlim_t address_space_now(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	cr_assert(f);
	cr_assert_eq(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	return (rlim_t)pages * (rlim_t)getpagesize();
}

static void *sleeps_1ms(void *arg)
{
	uco_sleep(UCO_NS_PER_MS);
	return arg;
}

/* The stack pool runs dry: spawning says -ENOMEM, for pooled stacks and
 * stacks of their own size, and once tasks end their stacks serve again. */
Test(exhaust, spawning_until_the_stacks_run_out, .timeout = 60)
{
	uco_loop *loop = test_loop();
	rlim_t now = address_space_now();
	cr_assert_eq(set_soft_limit(RLIMIT_AS, now + 32ul * 1024 * 1024), 0);
	int spawned = 0, err = 0, sized_err = 0;
	for (; spawned < 100000; spawned++)
		if ((err = uco_spawn(loop, NULL, sleeps_1ms, NULL)) != 0)
			break;
	sized_err = uco_spawn_sized(loop, NULL, sleeps_1ms, NULL, 256ul * 1024 * 1024);
	uco_loop_stats s;
	uco_loop_stats_get(loop, &s);
	int run = uco_loop_run(loop);
	uco_task *t = NULL;
	int again = uco_spawn(loop, &t, sleeps_1ms, (void *)7);
	void *v = NULL;
	int ran = again ? again : uco_loop_run_until(loop, t, &v);
	cr_assert_eq(set_soft_limit(RLIMIT_AS, RLIM_INFINITY), 0);

	cr_assert_eq(err, -ENOMEM, "spawn %d: %d", spawned, err);
	cr_assert_gt(spawned, 0);
	cr_assert_eq(sized_err, -ENOMEM);
	cr_assert_eq(s.tasks_live_now, (uint64_t)spawned, "a failed spawn started a task");
	cr_assert_eq(run, 0);
	cr_assert_eq(again, 0, "no stack came back to the pool");
	cr_assert_eq(ran, 0);
	cr_assert_eq(v, (void *)7);
	uco_task_release(t);
	test_close(loop);
}

/* Little memory at all: a loop made under a tight RLIMIT_AS, the limit
 * raised 64 KiB at a time until creation works.  Every failure is a clean
 * -ENOMEM; then spawning runs out the same way, and the loop closes. */
Test(exhaust, a_loop_under_a_tight_address_space_limit, .timeout = 60)
{
	uco_loop_opts opts;
	memset(&opts, 0, sizeof opts);
	const char *ring = getenv("UCO_TEST_RING");
	if (ring && strcmp(ring, "plain") == 0)
		opts.flags |= UCO_LOOP_PLAIN_RING;
	enum { STEPS = 2048 };
	static int errs[STEPS];
	rlim_t base = address_space_now();
	uco_loop *loop = NULL;
	int step, err = -ENOMEM;
	for (step = 0; step < STEPS; step++) {
		if (set_soft_limit(RLIMIT_AS, base + (rlim_t)step * 64 * 1024))
			break;
		err = uco_loop_create(&loop, &opts);
		errs[step] = err;
		if (err != -ENOMEM)
			break;
	}
	/* Room for a few slabs of stacks more. */
	int spawned = 0, spawn_err = 0, run = -1;
	if (err == 0) {
		set_soft_limit(RLIMIT_AS, base + (rlim_t)step * 64 * 1024 + 16ul * 1024 * 1024);
		for (; spawned < 100000; spawned++)
			if ((spawn_err = uco_spawn(loop, NULL, sleeps_1ms, NULL)) != 0)
				break;
		run = uco_loop_run(loop);
	}
	cr_assert_eq(set_soft_limit(RLIMIT_AS, RLIM_INFINITY), 0);
	if (err == -ENOSYS || err == -EPERM)
		cr_skip_test("io_uring unavailable here");
	cr_assert_eq(err, 0, "step %d: %d", step, err);
	for (int i = 0; i < step; i++)
		cr_assert_eq(errs[i], -ENOMEM, "step %d: %d", i, errs[i]);
	cr_assert_eq(spawn_err, -ENOMEM, "spawn %d: %d", spawned, spawn_err);
	cr_assert_eq(run, 0);
	test_close(loop);
	fprintf(stderr, "exhaust: a loop needed %d KiB of address space, then ran %d tasks\n",
	        step * 64, spawned);
}
