package coredump

import (
	"slices"

	"github.com/vmm-dev/vmm/vmm/memmap"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// VCPU is the register state of one vCPU at dump time.
type VCPU struct {
	// Index is the vCPU number (0-based); the dump stores Index+1 as
	// pr_pid, as QEMU does.
	Index int
	// General purpose registers in kvm_regs order.
	RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
	// Segment selectors.
	CS, SS, DS, ES, FS, GS uint16
	// Segment bases and control registers (CRs travel in the QEMU note).
	FSBase, GSBase, CR0, CR2, CR3, CR4 uint64
	// Signal is the thread's own signal, its si_signo (e.g. SIGSEGV for a
	// page fault); 0 when the vCPU did not fault. Every thread's pr_cursig
	// is the dump's first such signal, as in a Linux core.
	Signal int
	// Handler is set when the registers above are the context an
	// exception interrupted: it holds the vCPU's real registers at dump
	// time, inside the handler that reported the exception. The dump
	// stores it as one more NT_PRSTATUS thread, pr_pid HandlerPIDBase +
	// Index + 1, after every vCPU's; its own Handler is ignored.
	Handler *VCPU
}

// HandlerPIDBase offsets the pr_pid of handler-context threads from the
// vCPUs' (Index + 1): gdb lists vCPU 0's handler as "LWP 10001".
const HandlerPIDBase = 10000

// Registration is the guest's frame-metadata registration: the verifier's
// type, which the VMM note records field for field.
type Registration = verify.Registration

// Info is what the VMM note carries besides the vCPU count.
type Info struct {
	// Map is the guest memory map, every range with its kind. Write
	// records m.Ranges() and ignores this field.
	Map []memmap.Range
	// Reg is the frame-metadata registration, nil if the guest made none.
	Reg *Registration
	// Roots are the registered page-table roots (guest physical).
	Roots []uint64
	// Holdings is the physical address of the guest's declared holdings
	// (mm.Holdings), 0 if it registered none.
	Holdings uint64
	// Reason is free-form text, e.g. the exit reason. Write truncates it
	// to MaxReasonLen bytes.
	Reason string
}

// clone returns a deep copy of i.
func (i Info) clone() Info {
	c := Info{Map: slices.Clone(i.Map), Roots: slices.Clone(i.Roots), Holdings: i.Holdings, Reason: i.Reason}
	if i.Reg != nil {
		r := *i.Reg
		c.Reg = &r
	}
	return c
}

// Segment is one PT_LOAD of a dump: guest physical [PAddr, PAddr+Size)
// stored at file bytes [FileOff, FileOff+Size).
type Segment struct{ PAddr, Size, FileOff uint64 }

// Stats describes a written dump.
type Stats struct {
	// Written is the number of bytes actually written: headers, notes and
	// non-zero pages.
	Written uint64
	// FileSize is the apparent size of the file (holes included).
	FileSize uint64
	// PagesWritten and PagesSkipped count guest pages written and left
	// as holes because they were all zero.
	PagesWritten, PagesSkipped uint64
}
