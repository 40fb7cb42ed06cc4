/* SPDX-License-Identifier: MIT */
/* Context switch for x86_64 System V.  See switch.h for the contract. */

#include "gnu_property.h"

#if defined(__x86_64__)

#if defined(__CET__)
#define ENDBR endbr64
#else
#define ENDBR .byte 0xf3, 0x0f, 0x1e, 0xfa /* endbr64: a nop without CET */
#endif

	.text

/* void uco__switch(void **from_sp, void *to_sp) */
	.globl	uco__switch
	.hidden	uco__switch
	.type	uco__switch, @function
	.p2align 4
uco__switch:
	.cfi_startproc
	ENDBR
	/* Both contexts' frames have this same layout, so this CFI also
	 * describes the incoming frame once rsp has been switched. */
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbp, 0
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r15, 0
	/* The psABI makes the control bits of MXCSR and the x87 control word
	 * callee-saved (rounding mode, exception masks): a coroutine that
	 * changes them must not change them for the others (libco #84). */
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)

	movq	%rsp, (%rdi)
	movq	%rsp, %rax		/* the frame just saved */
	movq	%rsi, %rsp

	/* ldmxcsr and fldcw stall the pipeline (~40% of a switch measured
	 * here), and nearly every switch restores what is already loaded:
	 * load them only when the control bits differ.  The MXCSR exception
	 * flags (bits 0-5) are status, not callee-saved state, so they are
	 * left out of the comparison. */
	movl	(%rsp), %ecx
	xorl	(%rax), %ecx
	andl	$0xffffffc0, %ecx
	movzwl	4(%rsp), %edx
	xorw	4(%rax), %dx
	orl	%edx, %ecx
	jz	1f
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
1:
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	.cfi_restore r15
	popq	%r14
	.cfi_adjust_cfa_offset -8
	.cfi_restore r14
	popq	%r13
	.cfi_adjust_cfa_offset -8
	.cfi_restore r13
	popq	%r12
	.cfi_adjust_cfa_offset -8
	.cfi_restore r12
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbx
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbp
	ret
	.cfi_endproc
	.size	uco__switch, .-uco__switch

/*
 * First code run on a new stack, reached by uco__switch's `ret`.  The frame
 * built by uco__context_init() leaves r12 = arg, r13 = entry, rbp = 0 and
 * rsp 16-byte aligned, so the call below enters `entry` with rsp + 8
 * aligned, as a normal call would.  The return address is marked undefined
 * so that debuggers and backtrace() stop here.
 */
	.globl	uco__trampoline
	.hidden	uco__trampoline
	.type	uco__trampoline, @function
	.p2align 4
uco__trampoline:
	.cfi_startproc
	.cfi_undefined rip
	ENDBR
	movq	%r12, %rdi
	call	*%r13
	/* entry() must not return. */
	ud2
	.cfi_endproc
	.size	uco__trampoline, .-uco__trampoline

/* IBT only: shadow stacks (SHSTK) would need one shadow stack per
 * coroutine, which uco does not create, so it must not claim SHSTK. */
	UCO_GNU_PROPERTY(UCO_GNU_PROPERTY_X86_FEATURE_1_AND, 1)

#endif /* __x86_64__ */

	.section .note.GNU-stack, "", @progbits
