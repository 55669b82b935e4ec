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
	state := "not verified (no metadata registered)"
	if cp.Verified {
		state = fmt.Sprintf("%d violations", cp.Violations)
	}
	vm.progressf("checkpoint %q: %s in %v", cp.Label, state, time.Duration(cp.Nanos).Round(time.Microsecond))
}

func (vm *VM) progressDump(d *DumpResult) {
	if d.Error != "" {
		vm.progressf("dump %s failed after %v", d.Path, time.Duration(d.Nanos).Round(time.Millisecond))
		return
	}
	vm.progressf("dump %s: %d KiB of data written in %v", d.Path, d.Written>>10, time.Duration(d.Nanos).Round(time.Millisecond))
}
