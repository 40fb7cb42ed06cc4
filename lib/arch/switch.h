/* SPDX-License-Identifier: MIT */
/*
 * The context switch: the only architecture-specific part of uco.
 *
 * uco__switch() saves the callee-saved registers of the running context
 * on its own stack, stores the resulting stack pointer in *from_sp, loads
 * to_sp and restores the registers saved there, then resumes the other
 * context.  The saved registers lie at and above the saved stack pointer, in
 * the live part of a stack that nobody runs while it is suspended, so a
 * signal delivered meanwhile cannot overwrite them (Tencent libco #90 kept
 * them below sp).
 *
 * Saved per architecture:
 *   x86_64  (SysV)     rbx rbp r12-r15, rsp, MXCSR and the x87 control word
 *   aarch64 (AAPCS64)  x19-x30, sp, d8-d15
 * aarch64 resumes with a plain `ret`, so BTI never needs a landing pad at
 * a resume site.  x86_64 resumes with a `notrack` indirect jump to the
 * saved address, because a cross-context `ret` misses the return-stack
 * predictor every time (switch_x86_64.S says why that is IBT-safe).
 */
#ifndef UCO_ARCH_SWITCH_H
#define UCO_ARCH_SWITCH_H

#include <stddef.h>
#include <stdint.h>

typedef void (*uco__entry_fn)(void *arg);

void uco__switch(void **from_sp, void *to_sp);

/*
 * uco__switch from a context that has ended and will never be resumed:
 * nothing of it is saved (switch_x86_64.S says what that spares).  x86_64
 * only; elsewhere the caller uses uco__switch with a scratch from_sp.
 */
#if defined(__x86_64__)
#define UCO__HAVE_SWITCH_EXIT 1
__attribute__((noreturn)) void uco__switch_exit(void *to_sp);
#endif

/*
 * The scheduler's side, x86_64 only (switch_x86_64.S says what they spare):
 *
 * uco__switch_in(from_sp, to_sp, fpctl) is uco__switch, except that the
 * frame it saves gets fpctl as its MXCSR and x87 control word instead of
 * what stmxcsr and fnstcw would read: the caller keeps its own word cached
 * (the scheduler's rarely changes).  fpctl is MXCSR | x87 CW << 32, as
 * uco__fpctl_read() returns it; its x87 part must be the control word in
 * force (the switch compares it with the incoming one's to skip fldcw),
 * its MXCSR part is what the caller gets back when resumed.
 *
 * uco__switch_start_in(from_sp, stack_top, entry, arg, fpctl) is
 * uco__context_init(stack_top, entry, arg) and uco__switch_in(from_sp, to,
 * fpctl) in one step, without writing the first frame: the new context
 * starts exactly as it would have.
 */
#if defined(__x86_64__)
#define UCO__HAVE_SWITCH_IN 1
void uco__switch_in(void **from_sp, void *to_sp, uint64_t fpctl);
void uco__switch_start_in(void **from_sp, void *stack_top, uco__entry_fn entry, void *arg,
                          uint64_t fpctl);

/* The running context's MXCSR and x87 control word as uco__switch_in's
 * fpctl (and as the frame's first 8 bytes hold them, upper 2 bytes 0). */
static inline uint64_t uco__fpctl_read(void)
{
	uint32_t mxcsr;
	uint16_t cw;
	__asm__ volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(cw));
	return mxcsr | (uint64_t)cw << 32;
}
#endif

/*
 * Lay out the first frame of a fresh stack whose highest usable address is
 * stack_top, so that the first uco__switch() into the returned stack pointer
 * "returns" into uco__trampoline, which calls entry(arg) with the stack
 * aligned exactly as the ABI wants at a function's entry, a zero frame
 * pointer, and CFI that ends every unwind there.  entry must never return:
 * if it does, the trampoline traps (ud2 / brk) instead of running garbage.
 */
void *uco__context_init(void *stack_top, uco__entry_fn entry, void *arg);

/* Bytes of the first frame below stack_top (for tests and size checks). */
#define UCO__CONTEXT_FRAME_BYTES 256

#endif
