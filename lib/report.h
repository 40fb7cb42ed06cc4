/* SPDX-License-Identifier: MIT */
/*
 * report.c: lines built without stdio or malloc, and names for code
 * addresses from the ELF symbol tables, for reports written from signal
 * handlers (overflow.c, stall.c) and the dump (debug.c).
 */
#ifndef UCO_REPORT_H
#define UCO_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* A line (or a few) being built, on the caller's stack; what does not fit
 * is cut. */
struct uco__msg {
	char text[1024];
	size_t len;
};

void uco__msg_put(struct uco__msg *m, const char *s);
void uco__msg_hex(struct uco__msg *m, uintptr_t v);
void uco__msg_dec(struct uco__msg *m, uint64_t v);
/* Write it all to stderr (retrying short writes and EINTR), then empty it. */
void uco__msg_flush(struct uco__msg *m);

/* "task 0x... (its function) of loop 0x..." */
void uco__msg_task(struct uco__msg *m, const uco_loop *loop, const uco_task *t);

/* Where the code a signal interrupted was: its program counter and stack
 * pointer, from the handler's ucontext (0 on other architectures). */
void uco__interrupted_at(const void *context, uintptr_t *pc, uintptr_t *sp);

/* What an address is: the function around it and how far in, and the
 * file it belongs to with the address as that file numbers it (what
 * `addr2line -f -e file vaddr` takes).  Async-signal-safe (see report.c). */
struct uco__sym {
	char name[128];   /* "" when no symbol covers the address */
	uintptr_t offset; /* from the function's start */
	char file[256];   /* "" when no loaded object holds it */
	uintptr_t vaddr;
};
/* True when it found a name. */
bool uco__symbolize(const void *addr, struct uco__sym *out);

/* A backtrace frame: "name+0x1a (file+0x11c4)"; a return address is
 * looked up one byte back, inside the call. */
void uco__msg_frame(struct uco__msg *m, const void *addr, bool return_address);
/* A task's function: its name, else "file+0x11c4" (addr2line's
 * input), else its address. */
void uco__msg_fn(struct uco__msg *m, uco_fn fn);
/* When fn has no name, a line with the addr2line command that finds it. */
void uco__msg_addr2line_hint(struct uco__msg *m, uco_fn fn);

#endif
