/* SPDX-License-Identifier: MIT */
/* The first frame of a new aarch64 coroutine stack (see switch.h). */
#if defined(__aarch64__)

#include <stdint.h>
#include <string.h>

#include "switch.h"

void uco__trampoline(void);

/* What uco__switch loads, lowest address first (its 160-byte frame). */
struct first_frame {
	uint64_t x19, x20, x21, x22, x23, x24, x25, x26, x27, x28;
	uint64_t x29; /* frame pointer: 0 ends the frame record chain */
	uint64_t x30; /* -> uco__trampoline, taken by uco__switch's `ret` */
	uint64_t d[8]; /* d8-d15 */
};

void *uco__context_init(void *stack_top, uco__entry_fn entry, void *arg)
{
	/* After uco__switch pops the frame, sp must be 16-byte aligned (the
	 * AAPCS64 requires it at all times, and Linux enables sp alignment
	 * checks).  The 16 bytes above that are a zero frame record for
	 * unwinders that walk x29 without looking at CFI. */
	uintptr_t aligned = ((uintptr_t)stack_top & ~(uintptr_t)15) - 16;
	struct first_frame *f = (struct first_frame *)(aligned - sizeof *f);

	_Static_assert(sizeof(struct first_frame) == 160, "matches uco__switch");
	_Static_assert(sizeof(struct first_frame) % 16 == 0, "frame keeps alignment");
	_Static_assert(sizeof(struct first_frame) + 16 + 15 <= UCO__CONTEXT_FRAME_BYTES,
		       "frame fits");
	/* Everything zero, d8-d15 included: a new coroutine inherits no
	 * register state from whoever spawned it. */
	memset(f, 0, sizeof *f + 16);
	f->x19 = (uint64_t)(uintptr_t)arg;
	f->x20 = (uint64_t)(uintptr_t)entry;
	f->x29 = 0;
	f->x30 = (uint64_t)(uintptr_t)uco__trampoline;
	return f;
}

#endif
