/* SPDX-License-Identifier: MIT */
/* Context switch for aarch64 AAPCS64.  See switch.h for the contract. */

#include "gnu_property.h"

#if defined(__aarch64__)

/* bti c, spelled as its hint so that assemblers without +bti accept it; a
 * nop on cores without BTI. */
#define BTI_C	hint	#34

	.text

/*
 * void uco__switch(void **from_sp, void *to_sp)
 *
 * The 160-byte frame, lowest address first (sp stays 16-byte aligned):
 *   0 x19 x20 | 16 x21 x22 | 32 x23 x24 | 48 x25 x26 | 64 x27 x28
 *  80 x29 x30 | 96 d8 d9 | 112 d10 d11 | 128 d12 d13 | 144 d14 d15
 * Only the low 64 bits of v8-v15 are callee-saved.  x18 (the platform
 * register) and FPSR/FPCR are deliberately left alone.
 *
 * The CFI describes whichever frame sp points at: after the stack switch
 * the same offsets hold the other context's registers, so an unwinder
 * stopped anywhere in here sees a consistent caller.
 */
	.globl	uco__switch
	.hidden	uco__switch
	.type	uco__switch, %function
	.p2align 4
uco__switch:
	.cfi_startproc
	BTI_C
	sub	sp, sp, #160
	.cfi_def_cfa_offset 160
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8,  d9,  [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	.cfi_offset x19, -160
	.cfi_offset x20, -152
	.cfi_offset x21, -144
	.cfi_offset x22, -136
	.cfi_offset x23, -128
	.cfi_offset x24, -120
	.cfi_offset x25, -112
	.cfi_offset x26, -104
	.cfi_offset x27, -96
	.cfi_offset x28, -88
	.cfi_offset x29, -80
	.cfi_offset x30, -72
	.cfi_offset d8,  -64
	.cfi_offset d9,  -56
	.cfi_offset d10, -48
	.cfi_offset d11, -40
	.cfi_offset d12, -32
	.cfi_offset d13, -24
	.cfi_offset d14, -16
	.cfi_offset d15, -8

	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1

	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8,  d9,  [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #160
	.cfi_def_cfa_offset 0
	.cfi_restore x19
	.cfi_restore x20
	.cfi_restore x21
	.cfi_restore x22
	.cfi_restore x23
	.cfi_restore x24
	.cfi_restore x25
	.cfi_restore x26
	.cfi_restore x27
	.cfi_restore x28
	.cfi_restore x29
	.cfi_restore x30
	.cfi_restore d8
	.cfi_restore d9
	.cfi_restore d10
	.cfi_restore d11
	.cfi_restore d12
	.cfi_restore d13
	.cfi_restore d14
	.cfi_restore d15
	/* A return, never `br`: a `br` into a return site that has no
	 * landing pad faults on BTI-guarded pages. */
	ret
	.cfi_endproc
	.size	uco__switch, .-uco__switch

/*
 * First code run on a new stack, reached by uco__switch's `ret`.  The frame
 * built by uco__context_init() leaves x19 = arg, x20 = entry, x29 = 0 and
 * sp 16-byte aligned, so entry() starts with an aligned sp and a frame
 * record chain that ends at 0.  The return address is marked undefined so
 * that debuggers and unwinders stop here.
 */
	.globl	uco__trampoline
	.hidden	uco__trampoline
	.type	uco__trampoline, %function
	.p2align 4
uco__trampoline:
	.cfi_startproc
	.cfi_undefined x30
	BTI_C
	mov	x0, x19
	blr	x20
	/* entry() must not return. */
	brk	#0
	.cfi_endproc
	.size	uco__trampoline, .-uco__trampoline

/* BTI only: this file does not sign return addresses (the pointers it
 * saves and restores are plain x30 values, signed or not by their owners),
 * so it must not claim PAC. */
	UCO_GNU_PROPERTY(UCO_GNU_PROPERTY_AARCH64_FEATURE_1_AND, 1)

#endif /* __aarch64__ */

	.section .note.GNU-stack, "", %progbits
