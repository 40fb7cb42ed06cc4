/* SPDX-License-Identifier: MIT */
/* placeholder: being written */
#include <stdio.h>
int main(void)
{
	fputs("uco-http: not built yet\n", stderr);
	return 1;
}
