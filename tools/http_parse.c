/* SPDX-License-Identifier: MIT */
/* placeholder */
typedef int http_parse_placeholder;
