package vmm

import (
	"fmt"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
)

// Exit is one KVM_RUN exit, decoded once from the shared kvm_run page.
type Exit struct {
	Reason kvm.ExitType

	// KVM_EXIT_MMIO
	MMIOAddr  uint64
	MMIOData  uint64
	MMIOLen   uint32
	MMIOWrite bool

	// KVM_EXIT_INTERNAL_ERROR
	Suberror     uint32
	InternalData []uint64

	// KVM_EXIT_FAIL_ENTRY
	HardwareReason uint64

	// KVM_EXIT_IO
	IOPort  uint16
	IOWrite bool
}

// decodeExit copies what the handlers need out of kvm_run.
func decodeExit(r *kvm.RunData) Exit {
	e := Exit{Reason: kvm.ExitType(r.ExitReason)}
	switch e.Reason {
	case kvm.EXITMMIO:
		e.MMIOAddr = r.Data[0]
		e.MMIOData = r.Data[1]
		e.MMIOLen = uint32(r.Data[2])
		e.MMIOWrite = byte(r.Data[2]>>32) != 0
		if e.MMIOLen < 8 {
			e.MMIOData &= 1<<(8*e.MMIOLen) - 1
		}
	case kvm.EXITINTERNALERROR:
		e.Suberror = uint32(r.Data[0])
		n := min(int(r.Data[0]>>32), 16)
		e.InternalData = append([]uint64(nil), r.Data[1:1+n]...)
	case kvm.EXITFAILENTRY:
		e.HardwareReason = r.Data[0]
	case kvm.EXITIO:
		dir, _, port, _, _ := r.IO()
		e.IOPort = uint16(port)
		e.IOWrite = dir == kvm.EXITIOOUT
	}
	return e
}

// action is what the vCPU loop does after an exit.
type action int

const (
	actResume    action = iota // re-enter the guest
	actHypercall               // run the hypercall in the vCPU's mailbox, then resume
	actConsole                 // drain the console ring, then resume
	actFault                   // the guest died: report where and stop the VM
)

// Outcomes of a run, as reported in the summary.
const (
	OutcomeExit    = "exit"    // the guest called HCExit
	OutcomeFault   = "fault"   // the guest crashed
	OutcomeTimeout = "timeout" // --timeout expired
	OutcomeError   = "error"   // the VMM failed
	OutcomeSignal  = "signal"  // SIGINT or SIGTERM ended the run
)

// classifyExit decides what an exit means. It needs no KVM, so every exit
// reason is covered by a table test.
func classifyExit(e Exit) (action, string) {
	switch e.Reason {
	case kvm.EXITINTR, kvm.EXITIRQWINDOWOPEN:
		return actResume, ""
	case kvm.EXITMMIO:
		switch {
		case e.MMIOWrite && e.MMIOAddr == firmware.HypercallDoorbell && e.MMIOLen == 8:
			return actHypercall, ""
		case e.MMIOWrite && e.MMIOAddr >= firmware.ConsoleDoorbell && e.MMIOAddr < firmware.ConsoleDoorbell+firmware.PageSize:
			return actConsole, ""
		case e.MMIOWrite:
			return actFault, fmt.Sprintf("guest wrote %d bytes to unbacked physical address %#x", e.MMIOLen, e.MMIOAddr)
		default:
			return actFault, fmt.Sprintf("guest read %d bytes from unbacked physical address %#x", e.MMIOLen, e.MMIOAddr)
		}
	case kvm.EXITSHUTDOWN:
		return actFault, "triple fault (KVM_EXIT_SHUTDOWN)"
	case kvm.EXITINTERNALERROR:
		what := "internal error"
		if e.Suberror == 1 {
			what = "instruction emulation failure"
		}
		return actFault, fmt.Sprintf("%s (KVM_EXIT_INTERNAL_ERROR suberror %d, data %#x)", what, e.Suberror, e.InternalData)
	case kvm.EXITFAILENTRY:
		return actFault, fmt.Sprintf("VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason %#x)", e.HardwareReason)
	case kvm.EXITHLT:
		return actFault, "guest halted (HLT) without calling exit"
	case kvm.EXITIO:
		dir := "in"
		if e.IOWrite {
			dir = "out"
		}
		return actFault, fmt.Sprintf("unexpected port I/O: %s port %#x", dir, e.IOPort)
	default:
		return actFault, fmt.Sprintf("unexpected exit reason %d (%v)", uint32(e.Reason), e.Reason)
	}
}
