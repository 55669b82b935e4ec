package gdbstub

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// NextPCs returns every address the instruction at r.RIP (whose bytes are
// code) can continue at: a single-step without a trap flag is a temporary
// breakpoint on each. readMem reads guest virtual memory (for RET and
// memory-indirect jumps).
func NextPCs(code []byte, r Regs, readMem func(addr uint64, p []byte) error) ([]uint64, error) {
	inst, err := x86asm.Decode(code, 64)
	if err != nil {
		return nil, fmt.Errorf("decode at %#x: %w", r.RIP, err)
	}
	next := r.RIP + uint64(inst.Len)
	switch inst.Op {
	case x86asm.RET, x86asm.LRET:
		t, err := readU64(readMem, r.GPR[7])
		if err != nil {
			return nil, fmt.Errorf("return address at rsp %#x: %w", r.GPR[7], err)
		}
		return []uint64{t}, nil
	case x86asm.JMP, x86asm.CALL:
		t, err := target(inst, next, r, readMem)
		if err != nil {
			return nil, err
		}
		return []uint64{t}, nil
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE,
		x86asm.JL, x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO,
		x86asm.JP, x86asm.JS, x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ,
		x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		t, err := target(inst, next, r, readMem)
		if err != nil {
			return nil, err
		}
		if t == next {
			return []uint64{next}, nil
		}
		return []uint64{next, t}, nil
	}
	return []uint64{next}, nil
}

// target evaluates a branch operand: relative, register or memory.
func target(inst x86asm.Inst, next uint64, r Regs, readMem func(uint64, []byte) error) (uint64, error) {
	switch a := inst.Args[0].(type) {
	case x86asm.Rel:
		return next + uint64(int64(a)), nil
	case x86asm.Reg:
		v, ok := regValue(a, r, next)
		if !ok {
			return 0, fmt.Errorf("branch through %v: register not known", a)
		}
		return v, nil
	case x86asm.Mem:
		addr, err := effAddr(a, r, next)
		if err != nil {
			return 0, err
		}
		t, err := readU64(readMem, addr)
		if err != nil {
			return 0, fmt.Errorf("branch target at %#x: %w", addr, err)
		}
		return t, nil
	}
	return 0, fmt.Errorf("branch operand %v not understood", inst.Args[0])
}

func effAddr(m x86asm.Mem, r Regs, next uint64) (uint64, error) {
	var addr uint64
	if m.Base != 0 {
		v, ok := regValue(m.Base, r, next)
		if !ok {
			return 0, fmt.Errorf("base register %v not known", m.Base)
		}
		addr = v
	}
	if m.Index != 0 {
		v, ok := regValue(m.Index, r, next)
		if !ok {
			return 0, fmt.Errorf("index register %v not known", m.Index)
		}
		addr += v * uint64(m.Scale)
	}
	addr += uint64(m.Disp)
	switch m.Segment {
	case x86asm.FS:
		addr += r.FSBase
	case x86asm.GS:
		addr += r.GSBase
	}
	return addr, nil
}

// gprOrder maps x86asm's 64-bit registers to Regs.GPR indexes.
var gprOrder = map[x86asm.Reg]int{
	x86asm.RAX: 0, x86asm.RBX: 1, x86asm.RCX: 2, x86asm.RDX: 3, x86asm.RSI: 4, x86asm.RDI: 5,
	x86asm.RBP: 6, x86asm.RSP: 7, x86asm.R8: 8, x86asm.R9: 9, x86asm.R10: 10, x86asm.R11: 11,
	x86asm.R12: 12, x86asm.R13: 13, x86asm.R14: 14, x86asm.R15: 15,
}

func regValue(reg x86asm.Reg, r Regs, next uint64) (uint64, bool) {
	if reg == x86asm.RIP {
		return next, true
	}
	if i, ok := gprOrder[reg]; ok {
		return r.GPR[i], true
	}
	if reg >= x86asm.EAX && reg <= x86asm.R15L { // 32-bit forms
		if i, ok := gprOrder[reg-x86asm.EAX+x86asm.RAX]; ok {
			return r.GPR[i] & 0xffffffff, true
		}
	}
	return 0, false
}

func readU64(readMem func(uint64, []byte) error, addr uint64) (uint64, error) {
	var b [8]byte
	if err := readMem(addr, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}
