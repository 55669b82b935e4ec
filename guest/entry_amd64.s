#include "textflag.h"

// entry is the ELF entry point. The VMM enters every vCPU here at CPL3 with
// RDI = vCPU index, RSI = boot info address, RSP = top of the vCPU's stack
// RBP = 0 (ends the frame-pointer chain for backtraces) and FS based so that FS:-8 holds a zeroed g (see firmware/layout.go).
TEXT main·entry(SB),NOSPLIT|NOFRAME,$0
	SUBQ $16, SP
	MOVQ DI, 0(SP)
	MOVQ SI, 8(SP)
	CALL main·kmain(SB)  // never returns
	UD2

// cpuBlock returns this vCPU's per-CPU block: the g pointer at FS:-8.
TEXT main·cpuBlock(SB),NOSPLIT,$0-8
	MOVQ (TLS), AX
	MOVQ AX, ret+0(FP)
	RET

// ring stores val to the MMIO doorbell at addr: the store itself is the
// hypercall (it exits to the VMM, or signals an ioeventfd).
TEXT main·ring(SB),NOSPLIT,$0-16
	MOVQ addr+0(FP), AX
	MOVQ val+8(FP), BX
	MOVQ BX, (AX)
	RET

TEXT main·rdtsc(SB),NOSPLIT,$0-8
	RDTSC
	SHLQ $32, DX
	ORQ DX, AX
	MOVQ AX, ret+0(FP)
	RET

TEXT main·cpuPause(SB),NOSPLIT,$0-0
	PAUSE
	RET

// faultNilWrite stores to address 0, which the kernel leaves unmapped.
TEXT main·faultNilWrite(SB),NOSPLIT,$0-0
	MOVQ $0, AX
	MOVQ $0xdead, BX
	MOVQ BX, (AX)
	RET

TEXT main·faultUD(SB),NOSPLIT,$0-0
	UD2
	RET
