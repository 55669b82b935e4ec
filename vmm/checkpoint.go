package vmm

import (
	"time"
)

// Checkpoint is one host verification of guest memory.
type Checkpoint struct {
	Label      string `json:"label"`
	Final      bool   `json:"final"`    // taken when the guest stopped
	Verified   bool   `json:"verified"` // false when the guest never registered its metadata
	Violations int    `json:"violations"`
	Nanos      int64  `json:"ns"`
}

// checkpoint verifies guest memory with every vCPU stopped and returns the
// number of violations (the hypercall's return value).
func (vm *VM) checkpoint(label string, final bool) uint64 {
	start := time.Now()
	vm.mu.Lock()
	reg := vm.hc.reg
	vm.mu.Unlock()
	cp := Checkpoint{Label: label, Final: final}
	if reg != nil {
		cp.Verified = true
		cp.Violations = vm.verify(reg)
	}
	cp.Nanos = time.Since(start).Nanoseconds()
	vm.mu.Lock()
	vm.result.Checkpoints = append(vm.result.Checkpoints, cp)
	vm.mu.Unlock()
	vm.logf("checkpoint %q: verified=%v violations=%d in %v", label, cp.Verified, cp.Violations, time.Duration(cp.Nanos))
	return uint64(cp.Violations)
}

// finish runs the final verification once every vCPU has stopped.
func (vm *VM) finish() {
	vm.checkpoint("exit", true)
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.result.Outcome == OutcomeExit && vm.result.ExitStatus == 0 && vm.result.Violations() > 0 {
		vm.result.ExitStatus = StatusViolation
		vm.result.Reason += "; host verification found violations"
	}
}

// verify checks the registered metadata; replaced by the full verifier.
func (vm *VM) verify(reg *Registration) int { return 0 }
