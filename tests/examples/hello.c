/* SPDX-License-Identifier: MIT */
/* The README's first example: a task's value through the task and through
 * a done-callback that gets an extra argument (the seed's get_html). */
#include <stdio.h>
#include <uco.h>

static void *get_html(void *url)
{
	printf("start get %s\n", (const char *)url);
	uco_sleep(20 * UCO_NS_PER_MS); /* an io_uring timeout, not a thread */
	return "bobby";
}

static void send_email(uco_task *task, void *url)
{
	void *name;
	uco_task_result(task, &name);
	printf("%s done: send email to %s\n", (const char *)url, (const char *)name);
}

int main(void)
{
	uco_loop *loop;
	int err = uco_loop_create(&loop, NULL);
	if (err) {
		fprintf(stderr, "uco: %s\n", uco_loop_strerror(err));
		return 1;
	}
	uco_task *task;
	void *value;
	const char *url = "http://www.imooc.com";
	if ((err = uco_spawn(loop, &task, get_html, (void *)url)) ||
	    (err = uco_task_add_done_callback(task, send_email, (void *)url)) ||
	    (err = uco_loop_run_until(loop, task, NULL)) ||
	    (err = uco_task_result(task, &value))) {
		fprintf(stderr, "uco: error %d\n", err);
		return 1;
	}
	printf("result: %s\n", (const char *)value);
	uco_task_release(task);
	return uco_loop_close(loop) ? 1 : 0;
}
