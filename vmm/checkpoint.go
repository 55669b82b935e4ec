package vmm

import (
	"errors"
	"time"

	"github.com/vmm-dev/vmm/firmware"

	"github.com/vmm-dev/vmm/vmm/verify"
)

// Checkpoint is one host verification of guest memory.
type Checkpoint struct {
	Label string `json:"label"`
	Final bool   `json:"final"` // taken when the guest stopped
	// SafePoint is false for a final check after the guest was stopped
	// wherever it was (a fault, a timeout, a signal, a debugger's kill):
	// an allocator operation or a holdings update may be caught half
	// done, so its violations are not a verdict on the allocator. Every
	// checkpoint the guest asks for, and the one after it exits, is a safe
	// point.
	SafePoint  bool   `json:"safe_point"`
	Verified   bool   `json:"verified"` // false when the guest never registered its metadata
	Violations int    `json:"violations"`
	Error      string `json:"error,omitempty"` // the registration could not be read
	Nanos      int64  `json:"ns"`
	// Kind is how the check ran (verify.KindFull or KindIncremental; empty
	// when nothing was verified), RecheckedFrames how many frame records
	// it re-checked (all of them for a full check), FullReason why a
	// checkpoint in incremental mode was a full one.
	Kind            string `json:"kind,omitempty"`
	RecheckedFrames uint64 `json:"rechecked_frames"`
	FullReason      string `json:"full_reason,omitempty"`
	// AtNanos is when the checkpoint began, counted from vCPU 0's first
	// entry: the first one dates the end of the guest's boot.
	AtNanos int64 `json:"at_ns"`

	Report *verify.Report `json:"report,omitempty"`
}

// checkpoint verifies guest memory with every vCPU stopped and returns the
// number of violations (the hypercall's return value). flags are the
// guest's firmware.Checkpoint* hints (see verifyAt).
func (vm *VM) checkpoint(label string, final bool, flags uint64) uint64 {
	start := time.Now()
	vm.mu.Lock()
	reg, boot, held, refused := vm.hc.reg, vm.hc.boot, vm.hc.held, vm.hc.regErr
	roots := append([]uint64(nil), vm.hc.roots...)
	exited := vm.result.Outcome == OutcomeExit
	vm.mu.Unlock()
	cp := Checkpoint{Label: label, Final: final, SafePoint: !final || exited}
	if !vm.timing.firstRun.IsZero() {
		cp.AtNanos = start.Sub(vm.timing.firstRun).Nanoseconds()
	}
	if reg != nil {
		cp.Verified = true
		in := verify.Input{Registration: *reg, Boot: boot, Holdings: held,
			Roots: roots, SharedTables: []uint64{firmware.KernelPDPT}}
		rep, out, err := vm.verifyAt(in, final, flags)
		cp.Kind, cp.RecheckedFrames, cp.FullReason = out.Kind, out.Rechecked, out.Reason
		if vm.afterVerify != nil {
			vm.afterVerify(label, in, rep, out)
		}
		if err != nil {
			cp.Error = err.Error()
			cp.Violations = 1 // an unreadable registration is itself a violation
		} else {
			cp.Report = rep
			cp.Violations = rep.TotalViolations
		}
	}
	var re *verify.RegistrationError
	if reg == nil && errors.As(refused, &re) {
		// Nothing can be verified, and that is the guest's fault: its
		// allocator placed its metadata where no check can trust it.
		cp.Report = &verify.Report{Violations: []verify.Violation{re.Violation()}, TotalViolations: 1}
		cp.Violations = 1
	}
	cp.Nanos = time.Since(start).Nanoseconds()
	if vm.cfg.DumpPath != "" && vm.cfg.DumpAt == label && !final {
		vm.dump("checkpoint " + label)
	}
	vm.mu.Lock()
	vm.result.Checkpoints = append(vm.result.Checkpoints, cp)
	vm.mu.Unlock()
	if vm.cfg.Log != nil { // (the arguments cost allocations even unprinted)
		vm.logf("checkpoint %q: verified=%v violations=%d in %v", label, cp.Verified, cp.Violations, time.Duration(cp.Nanos))
	}
	if vm.cfg.Progress != nil {
		vm.progressCheckpoint(cp)
	}
	return uint64(cp.Violations)
}

// finalLabel names the checkpoint taken when the guest has stopped.
const finalLabel = "exit"

// finish runs the final verification and writes the dump once every vCPU
// has stopped.
func (vm *VM) finish() {
	vm.checkpoint(finalLabel, true, 0)
	vm.checkReplay()
	vm.dumpAtExit()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	r := &vm.result
	if r.Outcome == OutcomeExit {
		st := r.ExitStatus
		r.GuestExitStatus = &st
	}
	if status, overridden := finalStatus(r.Outcome, r.ExitStatus, r.Violations()); overridden {
		r.ExitStatus = status
		r.Reason += "; host verification found violations"
	}
	if d := r.Dump; d != nil && d.Error != "" && r.Outcome == OutcomeExit && r.ExitStatus != StatusViolation {
		r.ExitStatus = StatusVMMError
		r.Reason += "; the requested dump was not written"
	}
}

// finalStatus applies the host's verdict: violations outrank whatever the
// guest said about itself, so a guest that exits 0 (or 13) over a corrupt
// allocator still ends with StatusViolation. Faults, timeouts and signals
// keep their own status (their report says more than the verdict).
func finalStatus(outcome string, status, violations int) (int, bool) {
	if outcome == OutcomeExit && violations > 0 {
		return StatusViolation, true
	}
	return status, false
}

// dump writes the core file once (at the --dump-at checkpoint, or at the
// end) and records how it went.
func (vm *VM) dump(reason string) {
	start := time.Now()
	vm.progressf("writing dump %s (%d MiB of guest RAM)...", vm.cfg.DumpPath, vm.cfg.MemBytes>>20)
	st, err := vm.writeDump(reason)
	d := &DumpResult{Path: vm.cfg.DumpPath, FileSize: st.FileSize, Written: st.Written, Nanos: time.Since(start).Nanoseconds()}
	if err != nil {
		d.Error = err.Error()
		vm.logf("dump: %v", err)
	}
	vm.progressDump(d)
	vm.mu.Lock()
	vm.result.Dump = d
	vm.mu.Unlock()
}
