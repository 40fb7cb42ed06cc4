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

/*
 * The 64-byte frame (uco__switch's comment below), shared by the routines
 * as assembler macros, so that its layout is written once and costs no
 * call: SAVE_FRAME stores the running context's frame under the resume
 * address its caller's `call` pushed (with `SAVE_FRAME reg`, reg's 8 bytes
 * as its MXCSR and x87 control word, not the ones in force); RESUME_FRAME
 * a, b loads the frame at rsp (its MXCSR already loaded; fldcw only when
 * the control words `cmpw a, b` compares differ) and jumps to its resume
 * address, in r8.
 */
.macro SAVE_FRAME fpctl
	leaq	-56(%rsp), %rsp
	.cfi_adjust_cfa_offset 56
	.ifb \fpctl
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	.else
	movq	\fpctl, (%rsp)
	.endif
	movq	%r15, 8(%rsp)
	.cfi_rel_offset r15, 8
	movq	%r14, 16(%rsp)
	.cfi_rel_offset r14, 16
	movq	%r13, 24(%rsp)
	.cfi_rel_offset r13, 24
	movq	%r12, 32(%rsp)
	.cfi_rel_offset r12, 32
	movq	%rbx, 40(%rsp)
	.cfi_rel_offset rbx, 40
	movq	%rbp, 48(%rsp)
	.cfi_rel_offset rbp, 48
.endm

.macro RESUME_FRAME cw_a, cw_b
	cmpw	\cw_a, \cw_b
	jne	2f
1:
	.cfi_remember_state
	movq	8(%rsp), %r15
	.cfi_restore r15
	movq	16(%rsp), %r14
	.cfi_restore r14
	movq	24(%rsp), %r13
	.cfi_restore r13
	movq	32(%rsp), %r12
	.cfi_restore r12
	movq	40(%rsp), %rbx
	.cfi_restore rbx
	movq	48(%rsp), %rbp
	.cfi_restore rbp
	leaq	64(%rsp), %rsp
	.cfi_adjust_cfa_offset -64
	.cfi_register rip, r8
	notrack jmp *%r8
2:
	.cfi_restore_state
	fldcw	4(%rsp)
	jmp	1b
.endm

/*
 * void uco__switch(void **from_sp, void *to_sp)
 *
 * The 64-byte frame, lowest address first (what uco__context_init lays
 * out as struct first_frame, and tools/uco-gdb.py reads):
 *   0 MXCSR | 4 x87 CW | 8 r15 | 16 r14 | 24 r13 | 32 r12 | 40 rbx
 *  48 rbp | 56 resume address (pushed by the caller's `call`)
 *
 * Resuming is an indirect jump to the saved address, not `ret`: a `ret`
 * into another context misses the return-stack predictor on every switch
 * (it predicts the return to this context's caller), which cost about half
 * of a switch here (14-16 ns one-way vs 6.5-7 ns on a Zen 3 VM).  The
 * resume address is loaded as soon as the stack is switched, so the jump's
 * target is known long before the jump.
 *
 * IBT: the resume sites (the instruction after some `call uco__switch`)
 * carry no endbr64, so the jump is `notrack`: under IBT a notrack indirect
 * jump may land anywhere, as long as the process allows NOTRACK, which
 * every IBT process built by GCC does (GCC's own switch-table jumps under
 * -fcf-protection=branch are notrack).  The first resume of a new context
 * lands on uco__trampoline, which has its endbr64 anyway.  Shadow stacks
 * (SHSTK) are not claimed: neither `ret` nor this form works under them
 * without one shadow stack per coroutine.
 */
	.globl	uco__switch
	.hidden	uco__switch
	.type	uco__switch, @function
	.p2align 4
uco__switch:
	.cfi_startproc
	ENDBR
	/* Both contexts' frames have this same layout, so this CFI also
	 * describes the incoming frame once rsp has been switched. */
	/* The psABI makes the control bits of MXCSR and the x87 control word
	 * callee-saved (rounding mode, exception masks): a coroutine that
	 * changes them must not change them for the others (libco #84). */
	SAVE_FRAME

	movq	%rsp, (%rdi)
	movq	%rsp, %rax		/* the frame just saved */
	movq	%rsi, %rsp
	movq	56(%rsp), %r8		/* where the incoming context resumes */

	/* MXCSR is loaded every time: measured on Zen 3, ldmxcsr costs less
	 * than comparing first (a load of what stmxcsr just stored does not
	 * forward from the store and waits for it).  fldcw stalls, and nearly
	 * every switch would load the word already there, so it is loaded
	 * only when the two contexts' x87 control words differ (the 16-bit
	 * load of what fnstcw stored forwards fine).  Loading MXCSR also
	 * gives each context its own sticky exception flags, as Boost does. */
	ldmxcsr	(%rsp)
	movzwl	4(%rsp), %ecx
	RESUME_FRAME 4(%rax), %cx
	.cfi_endproc
	.size	uco__switch, .-uco__switch

/*
 * The scheduler's side: uco__switch_in and uco__switch_start_in are
 * uco__switch and a first entry into a new context, except that the
 * scheduler's MXCSR and x87 control word are not read (stmxcsr, fnstcw)
 * but stored from the word the caller passes (switch.h).  stmxcsr is the
 * slow one of the four (back to back ~5 ns each on this EPYC VM, ldmxcsr
 * ~0.7 ns), and the scheduler's word almost never changes: the loop reads
 * it once a turn, before the turn's tasks, and again after user code that
 * runs on its stack between them (coro.h's uco__sched_fpctl_note).  Measured:
 * 5.78 -> 4.37 ns a switch in a ping-pong with one side switching this way,
 * ~0.5 ns less CPU per yield and per spawn + run + join through the loop.
 * What the frame restores is the same as before, so whatever resumes the
 * scheduler (uco__switch as a task parks, uco__switch_exit) is unchanged.
 *
 * Sticky exception flags (MXCSR's low 6 bits) stay per context: the word
 * carries the scheduler's flags as they were when read, which are its
 * flags at the switch too, as nothing between raises one (the library's
 * own scheduler code does no floating point; user code there is followed
 * by a fresh read).  A task's flags never leak to the scheduler (the
 * frame's word is loaded when it returns), nor the scheduler's to a new
 * task (it starts with the default MXCSR, flags clear).
 */

/* void uco__switch_in(void **from_sp, void *to_sp, uint64_t fpctl) */
	.globl	uco__switch_in
	.hidden	uco__switch_in
	.type	uco__switch_in, @function
	.p2align 4
uco__switch_in:
	.cfi_startproc
	ENDBR
	SAVE_FRAME %rdx
	movq	%rsp, (%rdi)
	shrq	$32, %rdx		/* the x87 control word in force */
	movq	%rsi, %rsp
	movq	56(%rsp), %r8		/* where the incoming context resumes */
	ldmxcsr	(%rsp)
	movzwl	4(%rsp), %ecx
	RESUME_FRAME %dx, %cx
	.cfi_endproc
	.size	uco__switch_in, .-uco__switch_in

/*
 * void uco__switch_start_in(void **from_sp, void *stack_top,
 *                           uco__entry_fn entry, void *arg, uint64_t fpctl)
 *
 * uco__switch_in into a context that has never run: saves the running one
 * as uco__switch_in does, then enters uco__trampoline on the new stack in
 * the state uco__context_init's first frame would have restored (the
 * default MXCSR and x87 control word, r12 = arg, r13 = entry, rbp = 0, rsp
 * 16 below the 16-aligned top with two zero words above it), without
 * writing that frame to load it straight back: a task's first switch is
 * ~25 instructions and ten stores shorter.
 */
	.globl	uco__switch_start_in
	.hidden	uco__switch_start_in
	.type	uco__switch_start_in, @function
	.p2align 4
uco__switch_start_in:
	.cfi_startproc
	ENDBR
	SAVE_FRAME %r8
	movq	%rsp, (%rdi)
	shrq	$32, %r8		/* the x87 control word in force */
	andq	$-16, %rsi
	leaq	-16(%rsi), %rsp
	/* On the new stack nothing is left to unwind to. */
	.cfi_def_cfa rsp, 16
	.cfi_undefined rip
	.cfi_undefined r15
	.cfi_undefined r14
	.cfi_undefined r13
	.cfi_undefined r12
	.cfi_undefined rbx
	.cfi_undefined rbp
	movq	$0, (%rsp)
	movq	$0, 8(%rsp)
	/* Loaded even when the scheduler's word is already the default:
	 * skipping it (tried with no ldmxcsr here at all) left the CPU per
	 * spawn + run + join unchanged, 31.71 against 31.65 ns, medians of 7
	 * alternating pairs.  ldmxcsr is cheap here; stmxcsr is what costs. */
	ldmxcsr	default_fpctl(%rip)
	cmpw	default_fpctl+4(%rip), %r8w
	jne	2f
1:
	movq	%rcx, %r12
	movq	%rdx, %r13
	xorl	%ebp, %ebp
	jmp	uco__trampoline
2:
	fldcw	default_fpctl+4(%rip)
	jmp	1b
	.cfi_endproc
	.size	uco__switch_start_in, .-uco__switch_start_in

	.section .rodata
	.p2align 3
/* A new context's MXCSR and x87 control word, as in context_x86_64.c's
 * first frame: the ABI's defaults. */
default_fpctl:
	.long	0x1f80
	.short	0x037f
	.text

/*
 * void uco__switch_exit(void *to_sp), which does not return
 *
 * uco__switch from a context that has ended: nothing of it is saved, only
 * to_sp's frame is restored.  stmxcsr alone measured ~5 ns here (an EPYC
 * VM; it waits for the ldmxcsr before it), as much as all the rest of a
 * switch, and every task's last switch paid it for a frame nobody reads.
 * The x87 control word is still compared first (fnstcw is cheap, fldcw
 * is not), read through the red zone.  The restore is uco__switch's code
 * (RESUME_FRAME) inlined, not a jump into uco__switch: that shared tail
 * (a jump, the word compared from memory) measured slower per task in 4 of
 * 5 alternating pairs.
 */
	.globl	uco__switch_exit
	.hidden	uco__switch_exit
	.type	uco__switch_exit, @function
	.p2align 4
uco__switch_exit:
	.cfi_startproc
	ENDBR
	fnstcw	-8(%rsp)
	movzwl	-8(%rsp), %eax
	movq	%rdi, %rsp
	/* From here the frame is the incoming one, laid out as uco__switch's
	 * (CFA = rsp + 64). */
	.cfi_def_cfa_offset 64
	.cfi_offset r15, -56
	.cfi_offset r14, -48
	.cfi_offset r13, -40
	.cfi_offset r12, -32
	.cfi_offset rbx, -24
	.cfi_offset rbp, -16
	movq	56(%rsp), %r8
	ldmxcsr	(%rsp)
	RESUME_FRAME 4(%rsp), %ax
	.cfi_endproc
	.size	uco__switch_exit, .-uco__switch_exit

/*
 * First code run on a new stack, reached by uco__switch's jump.  The frame
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
