// Package gdbstub serves the GDB remote serial protocol over a
// connection for a Target: a stopped (or running) set of vCPUs, each shown
// to gdb as a thread (thread id = vCPU index + 1). It knows nothing about
// KVM: the VM implements Target, and the tests drive the protocol with a
// fake one.
//
// The stub is all-stop: a stop of one vCPU stops every vCPU, a continue
// resumes them all, a single-step runs the chosen vCPU alone.
package gdbstub

import "errors"

// Regs are the registers gdb sees, in the target description's order.
// Floating-point registers are not carried: the stub reports them as
// unavailable.
type Regs struct {
	GPR    [16]uint64 // rax rbx rcx rdx rsi rdi rbp rsp r8..r15 (gdb's order)
	RIP    uint64
	RFLAGS uint64
	Seg    [6]uint64 // cs ss ds es fs gs selectors
	FSBase uint64
	GSBase uint64
}

// Signals gdb understands in stop replies (its own numbering, which is
// Linux's for these).
const (
	SigInt  = 2
	SigIll  = 4
	SigTrap = 5
	SigAbrt = 6
	SigFPE  = 8
	SigKill = 9
	SigSegv = 11
)

// Stop is why the target stopped, or that the run is over.
type Stop struct {
	CPU     int  // the vCPU that stopped
	Signal  int  // one of the Sig constants
	SwBreak bool // stopped at a software breakpoint gdb inserted (PC already at it)
	Exited  bool // the run is over with exit status Status: no vCPU will run again
	Status  int
	Message string // shown by gdb before the stop (one line, no newline needed)
}

// ErrUnsupported answers a breakpoint kind the target cannot provide: the
// stub then gives gdb the empty reply, and gdb falls back or says so.
var ErrUnsupported = errors.New("not supported on this host")

// Target is what the stub debugs. Every method except Stop and Stops is
// called only while the target is stopped (after a Stop arrived and before
// the next Resume).
type Target interface {
	CPUs() int
	ReadRegs(cpu int) (Regs, error)
	WriteRegs(cpu int, r Regs) error
	// ReadMem and WriteMem take guest virtual addresses, translated through
	// the cpu's page tables; an unmapped byte is an error.
	ReadMem(cpu int, addr uint64, p []byte) error
	WriteMem(cpu int, addr uint64, p []byte) error
	// Breakpoint inserts or removes a breakpoint: kind 0 software, 1
	// hardware, 2/3/4 write/read/access watchpoint (gdb's Z numbering).
	Breakpoint(insert bool, kind int, addr uint64, size int) error
	// Resume continues every vCPU, or, with step, runs cpu alone for one
	// instruction. A Stop follows on Stops.
	Resume(cpu int, step bool) error
	// Stop asks a running target to stop (Ctrl-C); a Stop follows.
	Stop()
	// Stops delivers each stop, and finally the end of the run.
	Stops() <-chan Stop
	// Monitor runs a `monitor` command and returns its output.
	Monitor(cmd string) (string, error)
	// Detach removes every breakpoint and lets the target run on without a
	// debugger; Kill ends the run.
	Detach()
	Kill()
}
