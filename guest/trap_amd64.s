#include "textflag.h"
#include "trap_offsets.h"

// trapEntry is the ring-3 half of exception delivery. The ring-0 stub has
// saved the hardware frame in this vCPU's TrapRecord and IRETQed here, on
// the exception stack, with interrupts off and every other register as the
// interrupted code left it. Layout built on the exception stack:
//
//	top-8           padding
//	top-16          FS base of the interrupted code (a user program's TLS,
//	                or the kernel's); GS base is always the kernel's
//	top-24          resume SP (written by handleTrap)
//	top-144..top-24 the 15 general-purpose registers (trapRegs)
//	below           512 bytes of FXSAVE: top is 16-aligned, so is top-656
//	                (FXSAVE64 raises #GP on a misaligned operand)
TEXT main·trapEntry(SB),NOSPLIT|NOFRAME,$0
	SUBQ $24, SP // padding, FS base and resume SP slots
	PUSHQ R15
	PUSHQ R14
	PUSHQ R13
	PUSHQ R12
	PUSHQ R11
	PUSHQ R10
	PUSHQ R9
	PUSHQ R8
	PUSHQ BP
	PUSHQ DI
	PUSHQ SI
	PUSHQ DX
	PUSHQ CX
	PUSHQ BX
	PUSHQ AX
	// Go code needs the kernel's FS (FS:-8 = g): save whatever FS the
	// interrupted code had and load the kernel's, kept in GS base.
	RDFSBASEQ AX
	MOVQ AX, 128(SP)
	RDGSBASEQ AX
	WRFSBASEQ AX
	MOVQ SP, AX
	SUBQ $512, SP
	FXSAVE64 (SP)
	SUBQ $16, SP
	MOVQ AX, 0(SP)
	CALL main·handleTrap(SB)
	ADDQ $16, SP
	FXRSTOR64 (SP)
	ADDQ $512, SP
	MOVQ 128(SP), AX // FS base to resume with (handleTrap may switch threads)
	WRFSBASEQ AX
	POPQ AX
	POPQ BX
	POPQ CX
	POPQ DX
	POPQ SI
	POPQ DI
	POPQ BP
	POPQ R8
	POPQ R9
	POPQ R10
	POPQ R11
	POPQ R12
	POPQ R13
	POPQ R14
	POPQ R15
	// Back on the interrupted stack, where handleTrap left RFLAGS and RIP.
	// Raw bytes: the assembler's PUSH/POP bookkeeping cannot follow a stack
	// switch.
	BYTE $0x5c // POPQ SP
	// TrapRecord.Masked = PrevMasked, the interrupted code's own mask (an
	// exception inside an irqSave region must not unmask it), with no free
	// register: PUSHQ GS:TRAP_PREVMASKED_FS; POPQ GS:TRAP_MASKED_FS (GS base
	// = the kernel's FS base, whatever FS now holds; the slot below SP is
	// free, Go code has no red zone).
	BYTE $0x65; BYTE $0xff; BYTE $0x34; BYTE $0x25
	BYTE $(TRAP_PREVMASKED_FS&0xff); BYTE $((TRAP_PREVMASKED_FS>>8)&0xff)
	BYTE $((TRAP_PREVMASKED_FS>>16)&0xff); BYTE $((TRAP_PREVMASKED_FS>>24)&0xff)
	BYTE $0x65; BYTE $0x8f; BYTE $0x04; BYTE $0x25
	BYTE $(TRAP_MASKED_FS&0xff); BYTE $((TRAP_MASKED_FS>>8)&0xff)
	BYTE $((TRAP_MASKED_FS>>16)&0xff); BYTE $((TRAP_MASKED_FS>>24)&0xff)
	BYTE $0x9d // POPFQ
	BYTE $0xc3 // RET

// trapEntryAddr returns trapEntry's address for the TrapRecord.
TEXT main·trapEntryAddr(SB),NOSPLIT,$0-8
	LEAQ main·trapEntry(SB), AX
	MOVQ AX, ret+0(FP)
	RET

// Deliberate faults for the exception workloads.
TEXT main·faultDivide(SB),NOSPLIT,$0-0
	XORQ CX, CX
	MOVQ $1, AX
	XORQ DX, DX
	DIVQ CX
	RET

TEXT main·faultGP(SB),NOSPLIT,$0-0
	MOVQ $0x8000000000000000, AX // non-canonical: #GP
	MOVQ (AX), AX
	RET

// sseAtRing0Addr returns the address of a Go function's ABI0 wrapper,
// whose prologue uses SSE (XORPS X15, X15): the emulfail workload points
// an IDT gate at it.
TEXT main·sseAtRing0Addr(SB),NOSPLIT,$0-8
	LEAQ main·sseAtRing0(SB), AX
	MOVQ AX, ret+0(FP)
	RET
