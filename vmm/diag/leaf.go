package diag

import "golang.org/x/arch/x86/x86asm"

// ReturnSlot finds where a function that has not (or no longer) set up its
// frame pointer keeps its return address. code is the function's bytes from
// its entry up to (not including) the instruction at RIP. It follows the
// stack-pointer arithmetic of those instructions linearly: if RBP has been
// pushed and pointed at the frame, the function is framed and the walk
// along RBP is right (ok false); otherwise the return address is at
// RSP+offset and RBP still belongs to the caller (frameless leaves such as
// assembly helpers, or a fault in a prologue or epilogue).
func ReturnSlot(code []byte) (offset uint64, ok bool) {
	var delta int64
	pushedBP, framed := false, false
	for len(code) > 0 {
		inst, err := x86asm.Decode(code, 64)
		if err != nil {
			return 0, false
		}
		code = code[inst.Len:]
		reg, _ := inst.Args[0].(x86asm.Reg)
		switch inst.Op {
		case x86asm.PUSH:
			delta += 8
			pushedBP = pushedBP || reg == x86asm.RBP
		case x86asm.POP:
			delta -= 8
			if reg == x86asm.RBP {
				pushedBP, framed = false, false
			}
		case x86asm.SUB, x86asm.ADD:
			imm, isImm := inst.Args[1].(x86asm.Imm)
			if reg != x86asm.RSP || !isImm {
				continue
			}
			if inst.Op == x86asm.SUB {
				delta += int64(imm)
			} else {
				delta -= int64(imm)
			}
		case x86asm.MOV:
			if src, _ := inst.Args[1].(x86asm.Reg); reg == x86asm.RBP && src == x86asm.RSP && pushedBP {
				framed = true
			}
		}
	}
	if framed || delta < 0 {
		return 0, false
	}
	return uint64(delta), true
}

// maxFuncScan bounds how much of a function Unwind decodes.
const maxFuncScan = 4096

// Unwind is Backtrace that also gets frame #0 right when it has no frame
// pointer yet (a frameless assembly leaf, a prologue or an epilogue): then
// its return address is read from the stack at RSP plus what ReturnSlot
// finds, and the walk goes on from RBP, which still belongs to the caller.
func Unwind(read func(gva uint64, buf []byte) bool, sym *Symbolizer, rip, rsp, rbp uint64, max int) []uint64 {
	_, off, _, _, found := sym.Lookup(rip)
	if read == nil || !found || off == 0 && rip == 0 || off > maxFuncScan {
		return Backtrace(read, rip, rbp, max)
	}
	code := make([]byte, off)
	if !read(rip-off, code) {
		return Backtrace(read, rip, rbp, max)
	}
	slot, ok := ReturnSlot(code)
	var ret [8]byte
	if !ok || !read(rsp+slot, ret[:]) {
		return Backtrace(read, rip, rbp, max)
	}
	caller := uint64(ret[0]) | uint64(ret[1])<<8 | uint64(ret[2])<<16 | uint64(ret[3])<<24 |
		uint64(ret[4])<<32 | uint64(ret[5])<<40 | uint64(ret[6])<<48 | uint64(ret[7])<<56
	if _, _, _, _, known := sym.Lookup(caller); !known {
		return Backtrace(read, rip, rbp, max) // not a return address after all
	}
	return append([]uint64{rip}, Backtrace(read, caller, rbp, max-1)...)
}
