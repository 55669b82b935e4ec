package main

import (
	"sync/atomic"

	"github.com/vmm-dev/vmm/firmware"
)

// Implemented in trap_amd64.s.
func trapEntry()
func trapEntryAddr() uint64
func faultDivide()
func faultGP()

// trapRegs is the register block trapEntry pushes (lowest address first).
type trapRegs struct {
	AX, BX, CX, DX, SI, DI, BP, R8, R9, R10, R11, R12, R13, R14, R15 uint64
	ResumeSP                                                         uint64
	FSBase                                                           uint64 // of the interrupted code
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
	installHandlers()
}

// trapHandler handles one vector; false means it could not (the run then
// ends with a fault report).
type trapHandler func(rec *firmware.TrapRecord, regs *trapRegs) bool

// trapHandlers holds each vector's handler as the bits of its func value
// (see registerTrap); 0 means unhandled.
var trapHandlers [firmware.NumTrapVectors]uintptr

// installHandlers registers the kernel's own handlers.
func installHandlers() {
	registerTrap(14, handlePageFault)
	registerTrap(firmware.TimerVector, handleTick)
}

// dispatchTrap runs the handler registered for rec's vector.
func dispatchTrap(rec *firmware.TrapRecord, regs *trapRegs) bool {
	v := rec.Vector
	if v >= firmware.NumTrapVectors || trapHandlers[v] == 0 {
		return false
	}
	return handlerAt(v)(rec, regs)
}

func handleTick(rec *firmware.TrapRecord, regs *trapRegs) bool {
	thisCPU().Ticks++
	if proc.active && rec.RIP < userTop {
		preemptTick(rec, regs) // user code only: the kernel is never preempted
	}
	return true
}

// faultingUD is the exc-nested workload's #UD handler: it faults itself.
func faultingUD(rec *firmware.TrapRecord, regs *trapRegs) bool {
	faultNilWrite()
	return false
}

// skipUD is trapbench's #UD handler: step over the 2-byte UD2.
func skipUD(rec *firmware.TrapRecord, regs *trapRegs) bool {
	rec.RIP += 2
	return true
}

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
	return (*firmware.TrapRecord)(vptr(cpuBlock() + firmware.PerCPUTrapOff))
}

// handleTrap is called by trapEntry on the exception stack with interrupts
// off. It dispatches the vector and prepares the return to the interrupted
// code; an exception nobody handles ends the run with a report.
func handleTrap(regs *trapRegs) {
	rec := trapRecord()
	// The ring-0 stub left these in its frame below the record (each
	// instruction there is emulated): complete the record before anything
	// reads it.
	f := (*firmware.TrapFrame)(vptr(cpuBlock() + firmware.PerCPUTrapOff - firmware.TrapFrameSize))
	rec.Vector, rec.ErrorCode, rec.CS, rec.RFLAGS = f.Vector, f.ErrorCode, f.CS, f.RFLAGS
	rec.Depth++
	if rec.Depth > 1 {
		reportFault(rec, regs, "fault inside the exception handler")
	}
	// An entry from the program (its code, or the return path to it after
	// the kernel lock was released) takes the kernel lock (runsmp.go); an
	// interrupt between kernelExit's two stores finds the lock still ours.
	me := thisCPU().Index
	fromUser := atomic.LoadUint64(&inUser[me]) != 0 && atomic.LoadUint64(&klock) != me+1
	if fromUser {
		kernelEnter(me)
	}
	if !dispatchTrap(rec, regs) {
		if proc.active && rec.RIP < userTop {
			// The program's own fault: its handler runs (signal.go), or it
			// ends; the kernel does not.
			if !deliverFault(rec, regs) {
				programKilled(rec)
			}
		} else {
			reportFault(rec, regs, "")
		}
	}
	thisCPU().Traps++
	// trapEntry pops RFLAGS and RIP from the interrupted stack: Go code has
	// no red zone, so the 16 bytes below its stack pointer are free.
	sp := rec.RSP - 16
	if proc.active && rec.RSP < userTop {
		// A program's stack: written through the physmap, never through
		// the program's addresses (this vCPU may hold a stale not-present
		// translation of a page another vCPU has just mapped).
		p0, p1 := userPhys(sp, true), userPhys(sp+8, true)
		if p0 == 0 || p1 == 0 {
			programKilled(rec) // no room on the program's stack to return through
		}
		physWords(p0, 1)[0], physWords(p1, 1)[0] = rec.RFLAGS, rec.RIP
	} else {
		frame := (*[2]uint64)(vptr(uintptr(sp)))
		frame[0], frame[1] = rec.RFLAGS, rec.RIP
	}
	regs.ResumeSP = sp
	if fromUser {
		kernelExit(me)
	}
	rec.Depth--
}

// faultFrame is the argument block of HCFault (one per vCPU is enough: a
// fault report ends the run).
var faultFrames [firmware.MaxCPUs]firmware.FaultFrame

// reportFault hands an unhandled exception to the VMM, which prints the
// symbolized report and stops the guest. It returns only when a debugger
// resumes the vCPU.
func reportFault(rec *firmware.TrapRecord, regs *trapRegs, why string) {
	cpu := thisCPU().Index
	ff := &faultFrames[cpu]
	ff.Vector, ff.ErrorCode, ff.CR2 = rec.Vector, rec.ErrorCode, rec.CR2
	ff.RIP, ff.CS, ff.RFLAGS, ff.RSP, ff.SS, ff.RBP = rec.RIP, rec.CS, rec.RFLAGS, rec.RSP, rec.SS, regs.BP
	ff.Regs = [16]uint64{regs.AX, regs.CX, regs.DX, regs.BX, rec.RSP, regs.BP, regs.SI, regs.DI,
		regs.R8, regs.R9, regs.R10, regs.R11, regs.R12, regs.R13, regs.R14, regs.R15}
	if why != "" {
		putString("guest: ")
		putString(why)
		putString("\n")
	}
	if rec.Vector == 14 && stackGuard(rec.CR2) {
		putString("guest: stack overflow into the guard page\n")
	}
	consoleFlush()
	// Under a debugger the VMM may resume us: the interrupted context is
	// then restored from rec and regs. A fault inside the handler is never
	// resumable (the VMM refuses, and so does this check).
	if hypercall(firmware.HCFault, addrOf(ff), addrOf(regs), 0, 0) == firmware.HCFaultResume && rec.Depth == 1 {
		return
	}
	//lint:ignore SA5002 the VMM never resumes a vCPU after a fault report it did not ask to resume
	for {
	}
}

// stackGuard reports whether the virtual address va lies in a per-CPU
// guard page.
func stackGuard(va uint64) bool {
	bi := bootInfo()
	addr, ok := firmware.VirtToPhys(va)
	if !ok || addr < bi.PerCPUBase || addr >= bi.PerCPUBase+uint64(bi.NumCPUs)*bi.PerCPUStride {
		return false
	}
	off := (addr - bi.PerCPUBase) % bi.PerCPUStride
	return off>>12 == firmware.PerCPUGuardOff>>12 || off>>12 == firmware.PerCPUXGuardOff>>12
}

// irqSave masks interrupts on this vCPU (the paravirtual flag the VMM
// honours, see firmware/trap.go) and returns the previous state: the
// allocator's Lock calls it, so its IRQ-disabled token means what it says.
func irqSave() uintptr {
	rec := trapRecord()
	old := rec.Masked
	rec.Masked = 1
	return uintptr(old)
}

func irqRestore(old uintptr) { trapRecord().Masked = uint64(old) }
