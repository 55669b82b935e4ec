package vmm

import (
	"fmt"
	"time"
)

// progressf writes one line to Config.Progress: what long work is doing
// as it happens (checkpoints, dumps), for a person watching a terminal.
func (vm *VM) progressf(format string, args ...any) {
	if vm.cfg.Progress != nil {
		fmt.Fprintf(vm.cfg.Progress, "vmm: "+format+"\n", args...)
	}
}

func (vm *VM) progressCheckpoint(cp Checkpoint) {
	vm.progressf("checkpoint %q: %s in %v", cp.Label, cp.State(), time.Duration(cp.Nanos).Round(time.Microsecond))
}

// State says in a few words what the checkpoint found.
func (cp Checkpoint) State() string {
	switch {
	case cp.Verified:
		return fmt.Sprintf("%d violations", cp.Violations)
	case cp.Violations > 0:
		return "not verified: the registration was refused (1 violation)"
	}
	return "not verified (no metadata registered)"
}

func (vm *VM) progressDump(d *DumpResult) {
	if d.Error != "" {
		vm.progressf("dump %s failed after %v", d.Path, time.Duration(d.Nanos).Round(time.Millisecond))
		return
	}
	vm.progressf("dump %s: %d KiB of data written in %v", d.Path, d.Written>>10, time.Duration(d.Nanos).Round(time.Millisecond))
}
