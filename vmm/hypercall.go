package vmm

import (
	"fmt"
	"time"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// Registration is the guest's frame-metadata registration (HCRegisterMeta).
type Registration struct {
	MetaPhys   uint64 `json:"meta_phys"`
	FrameCount uint64 `json:"frame_count"`
	Version    uint64 `json:"layout_version"`
	StatePhys  uint64 `json:"state_phys"`
}

// Report is one named count the guest reported (HCReport).
type Report struct {
	Key   string `json:"key"`
	Value uint64 `json:"value"`
}

// hcResult is what a hypercall asks of the vCPU loop besides its return value.
type hcResult struct {
	ret        uint64
	exit       bool // stop the VM with exitStatus
	exitStatus int
	checkpoint string // non-empty: stop the world and verify, ret = violations
	sleepNanos int64  // >0: block this vCPU until woken or timed out
	wake       int    // >=0: wake that vCPU
	fault      *firmware.FaultFrame
	setCR3     uint64 // non-zero: load this PML4 into the calling vCPU's CR3
}

// maxKeyLen bounds HCReport keys.
const maxKeyLen = 64

// hcState is the VM state hypercalls may change; guarded by the VM's lock.
type hcState struct {
	reg     *Registration
	roots   []uint64
	reports []Report
	cpus    int
}

// handleHypercall runs one hypercall against guest memory. It trusts nothing
// in the mailbox: every pointer and length is checked against RAM.
func handleHypercall(mem *GuestMemory, st *hcState, cpu int, mb *firmware.Mailbox) hcResult {
	a := mb.Args
	r := hcResult{wake: -1}
	switch mb.Nr {
	case firmware.HCExit:
		if a[0] > 255 {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.exit, r.exitStatus = true, int(a[0])
	case firmware.HCConsoleFlush:
		// The vCPU loop drains the console for every hypercall.
	case firmware.HCRegisterMeta:
		r.ret = registerMeta(mem, st, a)
	case firmware.HCCheckpoint:
		label, ok := guestString(mem, a[0], a[1], firmware.MaxLabelLen)
		if !ok {
			r.ret = firmware.HCErrInvalid
			return r
		}
		if label == "" {
			label = "checkpoint"
		}
		r.checkpoint = label
	case firmware.HCReport:
		key, ok := guestString(mem, a[0], a[1], maxKeyLen)
		if !ok || key == "" {
			r.ret = firmware.HCErrInvalid
			return r
		}
		st.reports = append(st.reports, Report{Key: key, Value: a[2]})
	case firmware.HCRegisterRoot:
		r.ret = registerRoot(mem, st, a[0], a[1])
	case firmware.HCSleep:
		ns := a[0]
		if ns == 0 || ns > uint64(time.Second) {
			ns = uint64(time.Second)
		}
		r.sleepNanos = int64(ns)
	case firmware.HCWake:
		if a[0] >= uint64(st.cpus) {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.wake = int(a[0])
	case firmware.HCFault:
		var ff firmware.FaultFrame
		if err := readGuest(mem, a[0], &ff); err != nil {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.fault = &ff
	case firmware.HCSetCR3:
		root, ok := checkRoot(mem, a[0])
		if !ok {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.setCR3 = root
	default:
		r.ret = firmware.HCErrUnknown
	}
	return r
}

// checkRoot validates a PML4 the guest wants in CR3: page aligned, in RAM,
// and sharing the kernel's identity map in entry 0 (the guest kernel must
// keep running after the switch). 0 names the kernel's own PML4.
func checkRoot(mem *GuestMemory, root uint64) (uint64, bool) {
	if root == 0 {
		return firmware.PageTableBase, true
	}
	if root%firmware.PageSize != 0 {
		return 0, false
	}
	e, err := mem.ReadU64(root)
	if err != nil {
		return 0, false
	}
	kernel, err := mem.ReadU64(firmware.PageTableBase)
	return root, err == nil && e == kernel
}

// metaLayoutVersion is the FrameMeta layout the host verifier decodes.
const metaLayoutVersion = uint64(mm.LayoutVersion)

func registerMeta(mem *GuestMemory, st *hcState, a [5]uint64) uint64 {
	reg := Registration{MetaPhys: a[0], FrameCount: a[1], Version: a[2], StatePhys: a[3]}
	if reg.Version != metaLayoutVersion || reg.FrameCount == 0 || reg.MetaPhys%mm.FrameMetaAlign != 0 {
		return firmware.HCErrInvalid
	}
	if reg.FrameCount > mem.Map.RAMTop()/firmware.PageSize+1 {
		return firmware.HCErrInvalid
	}
	if _, err := mem.Slice(reg.MetaPhys, reg.FrameCount*mm.FrameMetaSize); err != nil {
		return firmware.HCErrInvalid
	}
	if _, err := mem.Slice(reg.StatePhys, mm.StateSize); err != nil {
		return firmware.HCErrInvalid
	}
	if st.reg != nil {
		return firmware.HCErrState
	}
	st.reg = &reg
	return 0
}

func registerRoot(mem *GuestMemory, st *hcState, root, add uint64) uint64 {
	if root%firmware.PageSize != 0 {
		return firmware.HCErrInvalid
	}
	if _, err := mem.Slice(root, firmware.PageSize); err != nil {
		return firmware.HCErrInvalid
	}
	for i, r := range st.roots {
		if r == root {
			if add == 0 {
				st.roots = append(st.roots[:i], st.roots[i+1:]...)
				return 0
			}
			return firmware.HCErrState
		}
	}
	if add == 0 {
		return firmware.HCErrState
	}
	if len(st.roots) >= firmware.MaxRoots {
		return firmware.HCErrState
	}
	st.roots = append(st.roots, root)
	return 0
}

// guestString reads a string of at most max bytes from guest RAM.
func guestString(mem *GuestMemory, gpa, n uint64, max uint64) (string, bool) {
	if n == 0 {
		return "", true
	}
	if n > max {
		return "", false
	}
	b, err := mem.Slice(gpa, n)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// hcName names a hypercall for logs.
func hcName(nr uint64) string {
	names := [...]string{firmware.HCExit: "exit", firmware.HCConsoleFlush: "console-flush",
		firmware.HCRegisterMeta: "register-meta", firmware.HCCheckpoint: "checkpoint",
		firmware.HCReport: "report", firmware.HCRegisterRoot: "register-root",
		firmware.HCSleep: "sleep", firmware.HCWake: "wake", firmware.HCFault: "fault", firmware.HCSetCR3: "set-cr3"}
	if nr < uint64(len(names)) && names[nr] != "" {
		return names[nr]
	}
	return fmt.Sprintf("hypercall#%d", nr)
}
