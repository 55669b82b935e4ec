package main

import (
	"github.com/vmm-dev/vmm/firmware"
)

// Implemented in trap_amd64.s.
func trapEntry()
func trapEntryAddr() uint64
func readFlags() uint64
func faultDivide()
func faultGP()

// trapRegs is the register block trapEntry pushes (lowest address first).
type trapRegs struct {
	AX, BX, CX, DX, SI, DI, BP, R8, R9, R10, R11, R12, R13, R14, R15 uint64
	ResumeSP                                                         uint64
}

// installIDT fills the IDT (once, on vCPU 0) with the ring-0 stubs.
func installIDT() {
	idt := physWords(firmware.IDTBase, firmware.NumTrapVectors*2)
	for v := 0; v < firmware.NumTrapVectors; v++ {
		ist := uint8(0)
		if v == 8 { // double faults get a known-good stack: never a silent triple fault
			ist = 1
		}
		idt[2*v], idt[2*v+1] = firmware.Gate(firmware.TrapStub(v), ist)
	}
}

// dispatchTrap runs the handler for rec's vector; false means unhandled.
// A switch, not a table of func values: storing those into a global would
// need the GC write barrier.
func dispatchTrap(rec *firmware.TrapRecord, regs *trapRegs) bool {
	switch rec.Vector {
	case 14:
		return handlePageFault(rec, regs)
	case firmware.TimerVector:
		thisCPU().Ticks++
		return true
	case 6:
		if faultInHandler != 0 { // exc-nested: this handler itself faults
			faultNilWrite()
		}
		if skipUD != 0 { // trapbench: step over the 2-byte UD2
			rec.RIP += 2
			return true
		}
	}
	return false
}

// faultInHandler makes the #UD handler fault (the exc-nested workload);
// skipUD makes it step over the instruction (trapbench).
var faultInHandler, skipUD uint64

// initTrapRecord points this vCPU's TrapRecord at the dispatcher and its
// exception stack; from then on the VMM may inject interrupts.
func initTrapRecord() {
	block := uint64(cpuBlock())
	rec := trapRecord()
	rec.Dispatch = trapEntryAddr()
	rec.DispatchStack = block + firmware.PerCPUXStackOff + firmware.PerCPUXStackSize
	rec.Depth = 0
}

func trapRecord() *firmware.TrapRecord {
	return (*firmware.TrapRecord)(ptr(cpuBlock() + firmware.PerCPUTrapOff))
}

// handleTrap is called by trapEntry on the exception stack with interrupts
// off. It dispatches the vector and prepares the return to the interrupted
// code; an exception nobody handles ends the run with a report.
func handleTrap(regs *trapRegs) {
	rec := trapRecord()
	rec.Depth++
	if rec.Depth > 1 {
		reportFault(rec, regs, "fault inside the exception handler")
	}
	if !dispatchTrap(rec, regs) {
		reportFault(rec, regs, "")
	}
	thisCPU().Traps++
	// trapEntry pops RFLAGS and RIP from the interrupted stack: Go code has
	// no red zone, so the 16 bytes below its stack pointer are free.
	sp := rec.RSP - 16
	frame := (*[2]uint64)(ptr(uintptr(sp)))
	frame[0], frame[1] = rec.RFLAGS, rec.RIP
	regs.ResumeSP = sp
	rec.Depth--
}

// faultFrame is the argument block of HCFault (one per vCPU is enough: a
// fault report ends the run).
var faultFrames [firmware.MaxCPUs]firmware.FaultFrame

// reportFault hands an unhandled exception to the VMM, which prints the
// symbolized report and stops the guest. It does not return.
func reportFault(rec *firmware.TrapRecord, regs *trapRegs, why string) {
	cpu := thisCPU().Index
	ff := &faultFrames[cpu]
	ff.Vector, ff.ErrorCode, ff.CR2 = rec.Vector, rec.ErrorCode, rec.CR2
	ff.RIP, ff.CS, ff.RFLAGS, ff.RSP, ff.SS, ff.RBP = rec.RIP, rec.CS, rec.RFLAGS, rec.RSP, rec.SS, regs.BP
	if why != "" {
		putString("guest: ")
		putString(why)
		putString("\n")
	}
	if rec.Vector == 14 && stackGuard(rec.CR2) {
		putString("guest: stack overflow into the guard page\n")
	}
	consoleFlush()
	hypercall(firmware.HCFault, addrOf(ff), 0, 0, 0)
	for {
	}
}

// stackGuard reports whether addr lies in a per-CPU guard page.
func stackGuard(addr uint64) bool {
	bi := bootInfo()
	if addr < bi.PerCPUBase || addr >= bi.PerCPUBase+uint64(bi.NumCPUs)*bi.PerCPUStride {
		return false
	}
	off := (addr - bi.PerCPUBase) % bi.PerCPUStride
	return off>>12 == firmware.PerCPUGuardOff>>12 || off>>12 == firmware.PerCPUXGuardOff>>12
}
