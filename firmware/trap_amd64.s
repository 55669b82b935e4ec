#include "textflag.h"
#include "trap_offsets.h"

// Ring-0 exception and interrupt stubs (see trap.go). They run in KVM's
// instruction emulator on the PVM host: keep them integer-only and short.
// TestStubInstructionCounts pins how many instructions each path executes.
//
// On entry from ring 3 the CPU has switched to RSP0 (= the TrapRecord's
// address) and pushed SS, RSP, RFLAGS, CS, RIP and, for some vectors, an
// error code. Each entry pushes a dummy error code where the CPU did not,
// then the vector, so the common path sees:
//   0(SP) vector  8(SP) error  16(SP) RIP  24(SP) CS  32(SP) RFLAGS
//   40(SP) RSP  48(SP) SS      56(SP) = the TrapRecord

#define REC 56

TEXT ·trap0(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $0
	JMP ·trapCommon(SB)

TEXT ·trap1(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $1
	JMP ·trapCommon(SB)

TEXT ·trap2(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $2
	JMP ·trapCommon(SB)

TEXT ·trap3(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $3
	JMP ·trapCommon(SB)

TEXT ·trap4(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $4
	JMP ·trapCommon(SB)

TEXT ·trap5(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $5
	JMP ·trapCommon(SB)

TEXT ·trap6(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $6
	JMP ·trapCommon(SB)

TEXT ·trap7(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $7
	JMP ·trapCommon(SB)

TEXT ·trap8(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $8
	JMP ·trapCommon(SB)

TEXT ·trap9(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $9
	JMP ·trapCommon(SB)

TEXT ·trap10(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $10
	JMP ·trapCommon(SB)

TEXT ·trap11(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $11
	JMP ·trapCommon(SB)

TEXT ·trap12(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $12
	JMP ·trapCommon(SB)

TEXT ·trap13(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $13
	JMP ·trapCommon(SB)

TEXT ·trap14(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $14
	JMP ·trapCommon(SB)

TEXT ·trap15(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $15
	JMP ·trapCommon(SB)

TEXT ·trap16(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $16
	JMP ·trapCommon(SB)

TEXT ·trap17(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $17
	JMP ·trapCommon(SB)

TEXT ·trap18(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $18
	JMP ·trapCommon(SB)

TEXT ·trap19(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $19
	JMP ·trapCommon(SB)

TEXT ·trap20(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $20
	JMP ·trapCommon(SB)

TEXT ·trap21(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $21
	JMP ·trapCommon(SB)

TEXT ·trap22(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $22
	JMP ·trapCommon(SB)

TEXT ·trap23(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $23
	JMP ·trapCommon(SB)

TEXT ·trap24(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $24
	JMP ·trapCommon(SB)

TEXT ·trap25(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $25
	JMP ·trapCommon(SB)

TEXT ·trap26(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $26
	JMP ·trapCommon(SB)

TEXT ·trap27(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $27
	JMP ·trapCommon(SB)

TEXT ·trap28(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $28
	JMP ·trapCommon(SB)

TEXT ·trap29(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $29
	JMP ·trapCommon(SB)

TEXT ·trap30(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $30
	JMP ·trapCommon(SB)

TEXT ·trap31(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $31
	JMP ·trapCommon(SB)

TEXT ·trap32(SB),NOSPLIT|NOFRAME,$0
	PUSHQ $0
	PUSHQ $32
	JMP ·trapCommon(SB)

TEXT ·trapCommon(SB),NOSPLIT|NOFRAME,$0
	MOVQ AX, (REC+TRAP_RAX)(SP)
	MOVQ 0(SP), AX
	MOVQ AX, (REC+TRAP_VECTOR)(SP)
	MOVQ 8(SP), AX
	MOVQ AX, (REC+TRAP_ERROR)(SP)
	MOVQ 16(SP), AX
	MOVQ AX, (REC+TRAP_RIP)(SP)
	MOVQ 24(SP), AX
	MOVQ AX, (REC+TRAP_CS)(SP)
	MOVQ 32(SP), AX
	MOVQ AX, (REC+TRAP_RFLAGS)(SP)
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
	MOVQ $1, (REC+TRAP_MASKED)(SP)
	MOVQ (REC+TRAP_RAX)(SP), AX
	ADDQ $16, SP
	IRETQ

// trapStubs is the table the guest reads to fill its IDT.
GLOBL ·trapStubs(SB),RODATA,$264
DATA ·trapStubs+0(SB)/8, $·trap0(SB)
DATA ·trapStubs+8(SB)/8, $·trap1(SB)
DATA ·trapStubs+16(SB)/8, $·trap2(SB)
DATA ·trapStubs+24(SB)/8, $·trap3(SB)
DATA ·trapStubs+32(SB)/8, $·trap4(SB)
DATA ·trapStubs+40(SB)/8, $·trap5(SB)
DATA ·trapStubs+48(SB)/8, $·trap6(SB)
DATA ·trapStubs+56(SB)/8, $·trap7(SB)
DATA ·trapStubs+64(SB)/8, $·trap8(SB)
DATA ·trapStubs+72(SB)/8, $·trap9(SB)
DATA ·trapStubs+80(SB)/8, $·trap10(SB)
DATA ·trapStubs+88(SB)/8, $·trap11(SB)
DATA ·trapStubs+96(SB)/8, $·trap12(SB)
DATA ·trapStubs+104(SB)/8, $·trap13(SB)
DATA ·trapStubs+112(SB)/8, $·trap14(SB)
DATA ·trapStubs+120(SB)/8, $·trap15(SB)
DATA ·trapStubs+128(SB)/8, $·trap16(SB)
DATA ·trapStubs+136(SB)/8, $·trap17(SB)
DATA ·trapStubs+144(SB)/8, $·trap18(SB)
DATA ·trapStubs+152(SB)/8, $·trap19(SB)
DATA ·trapStubs+160(SB)/8, $·trap20(SB)
DATA ·trapStubs+168(SB)/8, $·trap21(SB)
DATA ·trapStubs+176(SB)/8, $·trap22(SB)
DATA ·trapStubs+184(SB)/8, $·trap23(SB)
DATA ·trapStubs+192(SB)/8, $·trap24(SB)
DATA ·trapStubs+200(SB)/8, $·trap25(SB)
DATA ·trapStubs+208(SB)/8, $·trap26(SB)
DATA ·trapStubs+216(SB)/8, $·trap27(SB)
DATA ·trapStubs+224(SB)/8, $·trap28(SB)
DATA ·trapStubs+232(SB)/8, $·trap29(SB)
DATA ·trapStubs+240(SB)/8, $·trap30(SB)
DATA ·trapStubs+248(SB)/8, $·trap31(SB)
DATA ·trapStubs+256(SB)/8, $·trap32(SB)

TEXT ·trapStubTable(SB),NOSPLIT,$0-8
	LEAQ ·trapStubs(SB), AX
	MOVQ AX, ret+0(FP)
	RET
