#include "textflag.h"

// func divZero()
TEXT ·divZero(SB),NOSPLIT,$0-0
	XORQ CX, CX
	MOVQ $1, AX
	XORQ DX, DX
	DIVQ CX
	RET
