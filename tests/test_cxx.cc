// SPDX-License-Identifier: MIT
// The public header compiles as C++ and its functions link with C names.
// It brings the errno names its negative returns use: no <cerrno> here.
#include <uco.h>

#include <cstdio>
#include <cstring>

static void *answer(void *)
{
	return const_cast<char *>("42");
}

int main()
{
	uco_loop *loop = nullptr;
	int err = uco_loop_create(&loop, nullptr);
	if (err == -ENOSYS || err == -EPERM)
		return 77; // skip: no io_uring here
	if (err)
		return 1;
	uco_task *task = nullptr;
	void *value = nullptr;
	if (uco_spawn(loop, &task, answer, nullptr) || uco_loop_run_until(loop, task, &value))
		return 1;
	bool ok = std::strcmp(static_cast<char *>(value), "42") == 0;
	uco_task_release(task);
	uco_loop_close(loop);
	std::printf("%s\n", ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
	return ok ? 0 : 1;
}
