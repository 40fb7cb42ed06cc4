/* SPDX-License-Identifier: MIT */
#include "uco.h"

const char *uco_version(void)
{
	return UCO_VERSION;
}
