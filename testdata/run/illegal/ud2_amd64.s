#include "textflag.h"

// func ud2()
TEXT ·ud2(SB),NOSPLIT,$0-0
	BYTE $0x0f; BYTE $0x0b // UD2
	RET
