/* SPDX-License-Identifier: MIT */
/* placeholder */
typedef int hdr_placeholder;
