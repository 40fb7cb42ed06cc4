// SPDX-License-Identifier: MIT
// <uco/criterion.h> compiles as C++ (and its tests run): the options are
// given in declaration order, as C++20's designated initializers want.
#include <uco/criterion.h>

static uco_loop_opts small_stacks()
{
	uco_loop_opts o;
	std::memset(&o, 0, sizeof o);
	o.stack_size = UCO_STACK_SIZE_MIN;
	return o;
}

static const uco_loop_opts small = small_stacks();

UCO_TEST(cxx, sleeps_and_yields, .deadline_ms = 5000, .loop_opts = &small)
{
	cr_assert_eq(uco_sleep(UCO_NS_PER_MS), 0);
	cr_assert_eq(uco_yield(), 0);
	return nullptr;
}

UCO_TEST(cxx, the_argument_reaches_the_body, .arg = const_cast<char *>("hi"))
{
	cr_assert_str_eq(static_cast<const char *>(arg), "hi");
	return nullptr;
}
