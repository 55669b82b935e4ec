package vmm

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// Registration is the guest's frame-metadata registration (HCRegisterMeta).
type Registration = verify.Registration

// Report is one named count the guest reported (HCReport).
type Report struct {
	Key   string `json:"key"`
	Value uint64 `json:"value"`
}

// hcResult is a decided hypercall: the value for the mailbox's Ret, and at
// most one effect on the VM, which the vCPU that made the call carries out
// (hcserve.go).
type hcResult struct {
	ret    uint64
	effect hcEffect // nil: none beyond ret
	why    string   // for the -v log: why the call was refused ("" if not explained)
}

// hcEffect is one thing a hypercall asks of the VM besides its return
// value; each kind is its own type, so a result carries exactly one.
type hcEffect interface{ hcEffect() }

type (
	effExit        struct{ status int } // HCExit: the guest ends the run
	effBadRequest  struct{ why string } // an exit request out of range: a guest fault, at once
	effProgramExit struct {
		status, signal int    // HCExitProgram: the user program ended (signal 0: it exited)
		rip, addr      uint64 // a killed program's faulting instruction and address
	}
	effOutput struct {
		fd int
		b  []byte
	} // HCWrite: bytes for the program's fd 1 or 2
	effCheckpoint struct { // stop the world and verify; Ret = violations
		label string
		flags uint64 // firmware.CheckpointUnwatched, CheckpointLast
	}
	effFault  struct{ frame *firmware.FaultFrame } // an exception the guest could not handle
	effSleep  struct{ d time.Duration }            // block this vCPU until woken or d has passed
	effWake   struct{ cpu int }                    // wake that vCPU
	effKick   struct{ cpu int }                    // interrupt that vCPU: out of KVM_RUN or HCSleep, with a timer interrupt
	effSetCR3 struct{ root uint64 }                // load this PML4 into the calling vCPU's CR3
)

func (effExit) hcEffect()        {}
func (effBadRequest) hcEffect()  {}
func (effProgramExit) hcEffect() {}
func (effOutput) hcEffect()      {}
func (effCheckpoint) hcEffect()  {}
func (effFault) hcEffect()       {}
func (effSleep) hcEffect()       {}
func (effWake) hcEffect()        {}
func (effKick) hcEffect()        {}
func (effSetCR3) hcEffect()      {}

// HCReport bounds: a key's length, and the distinct keys a run keeps (a
// guest reporting in a loop must not grow the VMM without bound).
const (
	maxKeyLen     = 64
	maxReportKeys = 256
)

// hcState is the VM state hypercalls may change; guarded by the VM's lock.
type hcState struct {
	reg     *Registration
	regErr  error        // why the last registration was refused
	boot    *verify.Boot // what the VMM placed in RAM (read back after setup)
	held    uint64       // phys of the guest's mm.Holdings, 0 if none registered
	roots   []uint64
	reports []Report
	dropped uint64     // reports refused because maxReportKeys keys exist
	ring    reportRing // posted reports (reports.go)
	cpus    int
}

// handleHypercall runs one hypercall against guest memory. It trusts nothing
// in the mailbox: every pointer and length is checked against RAM.
func handleHypercall(mem *GuestMemory, st *hcState, cpu int, mb *firmware.Mailbox) hcResult {
	a := mb.Args
	var r hcResult
	switch mb.Nr {
	case firmware.HCExit:
		// An invalid status still ends the run, as a guest fault: the guest
		// cannot be trusted to do anything sensible with a refusal.
		if a[0] > GuestStatusMax {
			r.effect = effBadRequest{fmt.Sprintf("guest requested exit status %d, outside 0..%d", a[0], GuestStatusMax)}
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.effect = effExit{int(a[0])}
	case firmware.HCConsoleFlush:
		// The vCPU loop drains the console for every hypercall.
	case firmware.HCRegisterMeta:
		var err error
		if r.ret, err = registerMeta(mem, st, a); err != nil {
			r.why = ": " + err.Error()
		}
	case firmware.HCCheckpoint:
		label, ok := guestString(mem, a[0], a[1], firmware.MaxLabelLen)
		if !ok || a[2]&^firmware.CheckpointFlagsKnown != 0 {
			r.ret = firmware.HCErrInvalid
			return r
		}
		if label == "" {
			label = "checkpoint"
		}
		r.effect = effCheckpoint{label, a[2]}
	case firmware.HCReport:
		key, ok := guestString(mem, a[0], a[1], maxKeyLen)
		if !ok || key == "" {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.ret = st.report(key, a[2])
	case firmware.HCRegisterHeld:
		r.ret = registerHeld(mem, st, a[0], a[1])
	case firmware.HCRegisterReports:
		r.ret = registerReports(mem, st, a[0], a[1])
	case firmware.HCRegisterRoot:
		r.ret = registerRoot(mem, st, a[0], a[1])
	case firmware.HCSleep:
		ns := a[0]
		if ns == 0 || ns > uint64(time.Second) {
			ns = uint64(time.Second)
		}
		r.effect = effSleep{time.Duration(ns)}
	case firmware.HCWake:
		if a[0] >= uint64(st.cpus) {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.effect = effWake{int(a[0])}
	case firmware.HCKick:
		if a[0] >= uint64(st.cpus) || a[0] == uint64(cpu) {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.effect = effKick{int(a[0])}
	case firmware.HCFault:
		var ff firmware.FaultFrame
		if err := readGuest(mem, a[0], &ff); err != nil {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.effect = effFault{&ff}
	case firmware.HCWrite:
		if a[0] != 1 && a[0] != 2 {
			r.ret = firmware.HCErrInvalid
			return r
		}
		b, ok := guestString(mem, a[1], a[2], firmware.MaxWriteLen)
		if !ok {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.effect, r.ret = effOutput{int(a[0]), []byte(b)}, a[2]
	case firmware.HCRandom:
		if a[1] > firmware.MaxWriteLen {
			r.ret = firmware.HCErrInvalid
			return r
		}
		b, err := mem.Slice(a[0], a[1])
		if err != nil {
			r.ret = firmware.HCErrInvalid
			return r
		}
		if _, err := rand.Read(b); err != nil {
			r.ret = firmware.HCErrState
			return r
		}
		mem.NoteWrite(a[0], a[1])
		r.ret = a[1]
	case firmware.HCExitProgram:
		if a[0] > 255 {
			r.effect = effBadRequest{fmt.Sprintf("guest reported program exit status %d, outside 0..255", a[0])}
			r.ret = firmware.HCErrInvalid
			return r
		}
		if a[1] > 64 {
			r.effect = effBadRequest{fmt.Sprintf("guest reported program signal %d, outside 0..64", a[1])}
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.effect = effProgramExit{status: int(a[0]), signal: int(a[1]), rip: a[2], addr: a[3]}
	case firmware.HCSetCR3:
		root, ok := checkRoot(mem, a[0])
		if !ok {
			r.ret = firmware.HCErrInvalid
			return r
		}
		r.effect = effSetCR3{root}
	default:
		r.ret = firmware.HCErrUnknown
	}
	return r
}

// report records value under key: a known key takes the new value in
// place; a new key past maxReportKeys is counted as dropped and refused.
func (st *hcState) report(key string, value uint64) uint64 {
	for i := range st.reports {
		if st.reports[i].Key == key {
			st.reports[i].Value = value
			return 0
		}
	}
	if len(st.reports) >= maxReportKeys {
		st.dropped++
		return firmware.HCErrState
	}
	st.reports = append(st.reports, Report{Key: key, Value: value})
	return 0
}

// checkRoot validates a PML4 the guest wants in CR3: page aligned, in RAM,
// and sharing the kernel's physmap in entry firmware.PhysMapSlot (the guest
// kernel must keep running after the switch). 0 names the kernel's own PML4.
func checkRoot(mem *GuestMemory, root uint64) (uint64, bool) {
	if root == 0 {
		return firmware.PageTableBase, true
	}
	if root%firmware.PageSize != 0 {
		return 0, false
	}
	e, err := mem.ReadU64(root + firmware.PhysMapSlot*8)
	if err != nil {
		return 0, false
	}
	kernel, err := mem.ReadU64(firmware.PageTableBase + firmware.PhysMapSlot*8)
	return root, err == nil && e == kernel
}

// registerMeta validates and records the guest's registration. A
// registration that can never verify is refused with HCErrInvalid and the
// error naming the rule it breaks; until one succeeds, the last refusal is
// kept for the run summary.
func registerMeta(mem *GuestMemory, st *hcState, a [5]uint64) (uint64, error) {
	reg := Registration{MetaPhys: a[0], FrameCount: a[1], Version: a[2], StatePhys: a[3]}
	if err := reg.Validate(mem, st.boot, mem.Map.RAMTop()/firmware.PageSize+1); err != nil {
		if st.reg == nil {
			st.regErr = err
		}
		return firmware.HCErrInvalid, err
	}
	if st.reg != nil {
		return firmware.HCErrState, nil
	}
	st.reg, st.regErr = &reg, nil
	return 0, nil
}

// registerHeld records where the guest declares what its workloads hold
// (an mm.Holdings, read at every checkpoint). Registering twice is
// HCErrState: the host would not know which one is current.
func registerHeld(mem *GuestMemory, st *hcState, phys, size uint64) uint64 {
	if phys == 0 || phys%8 != 0 || size != mm.HoldingsSize {
		return firmware.HCErrInvalid
	}
	if _, err := mem.Slice(phys, size); err != nil {
		return firmware.HCErrInvalid
	}
	if st.held != 0 {
		return firmware.HCErrState
	}
	st.held = phys
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
		firmware.HCSleep: "sleep", firmware.HCWake: "wake", firmware.HCFault: "fault", firmware.HCSetCR3: "set-cr3",
		firmware.HCRegisterHeld: "register-held", firmware.HCWrite: "write", firmware.HCExitProgram: "exit-program", firmware.HCRandom: "random", firmware.HCKick: "kick",
		firmware.HCRegisterReports: "register-reports"}
	if nr < uint64(len(names)) && names[nr] != "" {
		return names[nr]
	}
	return fmt.Sprintf("hypercall#%d", nr)
}
