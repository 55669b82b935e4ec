#include "textflag.h"
#include "user_offsets.h"

// User programs run at CPL3 like the kernel (see firmware/layout.go); the
// kernel is entered by SYSCALL (at LSTAR = syscallEntry, still CPL3 on the
// PVM host) and by the trap path (trap_amd64.s). GS base always holds the
// kernel's per-CPU FS base; FS belongs to whoever runs.
//
// A userCtx (process.go) is 20 words: AX BX CX DX SI DI BP R8..R15 (0..112),
// RSP 120, RIP 128, RFLAGS 136, FS base 144, padding 152.

// Raw encodings of GS-relative moves (the assembler has no GS override).
#define MOVQ_SP_TO_GS(off) BYTE $0x65; BYTE $0x48; BYTE $0x89; BYTE $0x24; BYTE $0x25; LONG $off
#define MOVQ_GS_TO_SP(off) BYTE $0x65; BYTE $0x48; BYTE $0x8b; BYTE $0x24; BYTE $0x25; LONG $off
#define MOVQ_AX_TO_GS(off) BYTE $0x65; BYTE $0x48; BYTE $0x89; BYTE $0x04; BYTE $0x25; LONG $off
#define MOVQ_GS_TO_AX(off) BYTE $0x65; BYTE $0x48; BYTE $0x8b; BYTE $0x04; BYTE $0x25; LONG $off
#define JMP_GS(off) BYTE $0x65; BYTE $0xff; BYTE $0x24; BYTE $0x25; LONG $off

// syscallEntry: RCX = user RIP, R11 = user RFLAGS, RSP = user stack.
// It builds a userCtx on the kernel stack, calls handleSyscall(ctx) with
// the kernel's FS, and resumes whatever ctx then holds (the same thread,
// or another one the scheduler picked).
TEXT main·syscallEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ_SP_TO_GS(CPU_USP)
	MOVQ_GS_TO_SP(CPU_KSP)
	ANDQ $~15, SP
	SUBQ $40, SP // padding, FS, RFLAGS, RIP, RSP
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
	MOVQ CX, 128(SP)
	MOVQ R11, 136(SP)
	MOVQ_GS_TO_AX(CPU_USP)
	MOVQ AX, 120(SP)
	RDFSBASEQ AX
	MOVQ AX, 144(SP)
	RDGSBASEQ AX
	WRFSBASEQ AX
	MOVQ SP, AX
	SUBQ $512, SP
	FXSAVE64 (SP)
	SUBQ $16, SP
	MOVQ AX, 0(SP)
	CALL main·handleSyscall(SB)
	ADDQ $16, SP
	FXRSTOR64 (SP)
	ADDQ $512, SP
	JMP main·resumeCtx(SB)

// resumeCtx restores the userCtx at SP and jumps to its RIP. Interrupts
// taken between the RIP store and the jump return here normally: the
// scheduler never preempts kernel code.
TEXT main·resumeCtx(SB),NOSPLIT|NOFRAME,$0
	MOVQ 144(SP), AX
	WRFSBASEQ AX
	MOVQ 120(SP), AX
	MOVQ_AX_TO_GS(CPU_USP)
	MOVQ 128(SP), AX
	MOVQ_AX_TO_GS(CPU_RIP)
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
	ADDQ $16, SP // RSP, RIP
	POPFQ
	MOVQ_GS_TO_SP(CPU_USP)
	JMP_GS(CPU_RIP)

// enterUser starts ctx (a copy is made on the stack): it never returns.
// System calls then run on this stack, below the caller's frame.
TEXT main·enterUser(SB),NOSPLIT|NOFRAME,$0-8
	MOVQ 8(SP), SI
	MOVQ_SP_TO_GS(CPU_KSP)
	ANDQ $~15, SP
	SUBQ $160, SP
	MOVQ $0, CX
copy:
	MOVQ (SI)(CX*8), AX
	MOVQ AX, (SP)(CX*8)
	INCQ CX
	CMPQ CX, $20
	JLT  copy
	JMP main·resumeCtx(SB)

// enterThread is enterUser for a thread that ran before (picked by a
// vCPU that just joined): its x87/SSE state comes back from fx first,
// through an aligned copy (FXRSTOR64 needs 16-byte alignment).
TEXT main·enterThread(SB),NOSPLIT|NOFRAME,$0-16
	MOVQ 8(SP), SI
	MOVQ 16(SP), DI
	MOVQ_SP_TO_GS(CPU_KSP)
	ANDQ $~15, SP
	SUBQ $512, SP
	MOVQ $0, CX
fxcopy:
	MOVQ (DI)(CX*8), AX
	MOVQ AX, (SP)(CX*8)
	INCQ CX
	CMPQ CX, $64
	JLT  fxcopy
	FXRSTOR64 (SP)
	ADDQ $512, SP
	SUBQ $160, SP
	MOVQ $0, CX
ctxcopy:
	MOVQ (SI)(CX*8), AX
	MOVQ AX, (SP)(CX*8)
	INCQ CX
	CMPQ CX, $20
	JLT  ctxcopy
	JMP main·resumeCtx(SB)

TEXT main·syscallEntryAddr(SB),NOSPLIT,$0-8
	LEAQ main·syscallEntry(SB), AX
	MOVQ AX, ret+0(FP)
	RET
