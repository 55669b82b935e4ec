#include "textflag.h"
#include "trap_offsets.h"

// Ring-0 exception and interrupt stubs (see trap.go). They run in KVM's
// instruction emulator on the PVM host: keep them integer-only and short.
// TestStubInstructionCounts pins how many instructions each path executes.
//
// On entry from ring 3 the CPU has switched to RSP0 (= the TrapRecord's
// address) and pushed SS, RSP, RFLAGS, CS, RIP and, for some vectors, an
// error code. Each entry (generated into trap_stubs_amd64.s from
// TrapErrorCode) pushes a dummy error code where the CPU did not, then the
// vector, and jumps here, so the common path sees:
//   0(SP) vector  8(SP) error  16(SP) RIP  24(SP) CS  32(SP) RFLAGS
//   40(SP) RSP  48(SP) SS      56(SP) = the TrapRecord

#define REC 56

// The vector, error code, CS and RFLAGS stay where they are (TrapFrame in
// trap.go): the ring-3 dispatcher copies them into the record, natively.
TEXT ·trapCommon(SB),NOSPLIT|NOFRAME,$0
	MOVQ AX, (REC+TRAP_RAX)(SP)
	MOVQ 16(SP), AX
	MOVQ AX, (REC+TRAP_RIP)(SP)
	MOVQ 40(SP), AX
	MOVQ AX, (REC+TRAP_RSP)(SP)
	MOVQ CR2, AX
	MOVQ AX, (REC+TRAP_CR2)(SP)
	// Return to the ring-3 dispatcher, masked, on the top of the exception
	// stack; or, when the dispatcher itself faulted (Masked still set),
	// below its frames, so the report's backtrace can still walk them.
	MOVQ (REC+TRAP_DISPATCH)(SP), AX
	MOVQ AX, 16(SP)
	MOVQ (REC+TRAP_STACK)(SP), AX
	CMPQ (REC+TRAP_MASKED)(SP), $0
	JEQ  top
	MOVQ 40(SP), AX
	SUBQ $256, AX
	ANDQ $~15, AX
top:
	MOVQ AX, 40(SP)
	MOVQ (REC+TRAP_MASKED)(SP), AX // the interrupted code's mask, restored on return
	MOVQ AX, (REC+TRAP_PREVMASKED)(SP)
	MOVQ $1, (REC+TRAP_MASKED)(SP)
	MOVQ (REC+TRAP_RAX)(SP), AX
	ADDQ $16, SP
	IRETQ

TEXT ·trapStubTable(SB),NOSPLIT,$0-8
	LEAQ ·trapStubs(SB), AX
	MOVQ AX, ret+0(FP)
	RET
