/* SPDX-License-Identifier: MIT */
/*
 * For the assembly files: the ELF note that says which control-flow
 * protection an object supports (x86 IBT/SHSTK, aarch64 BTI/PAC).  The
 * linker keeps a feature in its output only if every object claims it.
 */
#ifndef UCO_ARCH_GNU_PROPERTY_H
#define UCO_ARCH_GNU_PROPERTY_H

#define UCO_GNU_PROPERTY_X86_FEATURE_1_AND 0xc0000002
#define UCO_GNU_PROPERTY_AARCH64_FEATURE_1_AND 0xc0000000

/* NT_GNU_PROPERTY_TYPE_0 with one property `type` whose value is `bits`. */
#define UCO_GNU_PROPERTY(type, bits)                                   \
	.pushsection .note.gnu.property, "a";                          \
	.p2align 3;                                                    \
	.long 4;           /* name size */                             \
	.long 16;          /* descriptor size */                       \
	.long 5;           /* NT_GNU_PROPERTY_TYPE_0 */                \
	.asciz "GNU";                                                  \
	.long type;                                                    \
	.long 4;                                                       \
	.long bits;                                                    \
	.p2align 3;                                                    \
	.popsection

#endif
