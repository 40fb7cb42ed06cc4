/* SPDX-License-Identifier: MIT */
/* The first frame of a new x86_64 coroutine stack (see switch.h). */
#if defined(__x86_64__)

#include <stdint.h>
#include <string.h>

#include "switch.h"

void uco__trampoline(void);

/* What uco__switch pops, lowest address first. */
struct first_frame {
	uint32_t mxcsr;
	uint16_t x87_cw;
	uint16_t pad;
	uint64_t r15, r14, r13, r12, rbx, rbp;
	uint64_t ret; /* -> uco__trampoline, where uco__switch jumps */
};

void *uco__context_init(void *stack_top, uco__entry_fn entry, void *arg)
{
	/* Once uco__switch drops the resume address, rsp must be 16-byte
	 * aligned, so that the trampoline's call leaves entry() with rsp + 8
	 * aligned.
	 * The 8 bytes above that are a zero "return address" for unwinders
	 * that ignore CFI. */
	uintptr_t aligned = ((uintptr_t)stack_top & ~(uintptr_t)15) - 16;
	struct first_frame *f = (struct first_frame *)(aligned - sizeof *f);

	_Static_assert(sizeof(struct first_frame) % 16 == 0, "frame keeps alignment");
	_Static_assert(sizeof(struct first_frame) + 16 <= UCO__CONTEXT_FRAME_BYTES, "frame fits");
	/* One assignment of the whole frame rather than memset and stores:
	 * memset of this size compiles to rep stosq, whose start-up costs
	 * more than the stores (this runs once per spawn). */
	*f = (struct first_frame){
		/* A new coroutine starts with the ABI's default floating-point
		 * control state (round to nearest, all exceptions masked), not
		 * with whatever its spawner happened to set. */
		.mxcsr = 0x1f80,
		.x87_cw = 0x037f,
		.r12 = (uint64_t)(uintptr_t)arg,
		.r13 = (uint64_t)(uintptr_t)entry,
		.rbp = 0,
		.ret = (uint64_t)(uintptr_t)uco__trampoline,
	};
	/* The zero "return address" above the frame, and its padding. */
	uint64_t *above = (uint64_t *)(f + 1);
	above[0] = 0;
	above[1] = 0;
	return f;
}

#endif
