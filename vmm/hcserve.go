package vmm

import (
	"fmt"
	"time"

	"github.com/vmm-dev/vmm/firmware"
)

// Serving a hypercall on the vCPU that made it: read its mailbox, let the
// pure handleHypercall (hypercall.go) decide, then carry out what it asked
// of the VM (stop, checkpoint, sleep, wake, CR3 switch) and write Ret.

// hypercall serves the hypercall in v's mailbox.
func (vm *VM) hypercall(v *vcpu) {
	view, err := guestView[firmware.Mailbox](vm.mem, mailboxGPA(v.index))
	if err != nil {
		vm.stop(OutcomeError, StatusVMMError, fmt.Sprintf("mailbox of vCPU %d: %v", v.index, err), nil)
		return
	}
	mb := firmware.Mailbox{Nr: view.Nr, Args: view.Args} // one read: the guest may change it later
	v.hypercalls++
	vm.drainConsole()
	vm.mu.Lock()
	res := handleHypercall(vm.mem, &vm.hc, v.index, &mb)
	vm.mu.Unlock()
	vm.logf("vCPU %d: %s(%#x) = %#x%s", v.index, hcName(mb.Nr), mb.Args, res.ret, res.why)
	switch {
	case res.badExit != "":
		vm.stop(OutcomeFault, StatusFault, res.badExit, vm.crashReport(v, res.badExit))
	case res.progExit:
		vm.stopProgram(res.exitStatus, res.progSignal)
	case res.output != nil:
		vm.programOutput(res.outFD, res.output)
	case res.exit:
		vm.debugExit(v, res.exitStatus)
		vm.stop(OutcomeExit, res.exitStatus, fmt.Sprintf("guest exited with status %d", res.exitStatus), nil)
	case res.checkpoint != "":
		vm.stopTheWorld(v)
		res.ret = vm.checkpoint(res.checkpoint, false)
		vm.debugViolation(v, res.checkpoint, res.ret)
		vm.resumeTheWorld()
	case res.fault != nil:
		if vm.debugTrap(v, res.fault, mb.Args[1]) {
			res.ret = firmware.HCFaultResume
			break
		}
		vm.stop(OutcomeFault, StatusFault, "unhandled exception "+vectorName(res.fault.Vector), vm.faultFrameReport(v, res.fault))
	case res.sleepNanos > 0:
		select {
		case <-v.wake:
		case <-time.After(time.Duration(res.sleepNanos)):
		}
	case res.setCR3 != 0:
		if err := setCR3(v, res.setCR3); err != nil {
			vm.stop(OutcomeError, StatusVMMError, err.Error(), nil)
		}
	case res.wake >= 0:
		select {
		case vm.vcpus[res.wake].wake <- struct{}{}:
		default:
		}
	}
	view.Ret = res.ret
}

// stopProgram ends a `vmm run` whose program exited: its status becomes the
// VMM's unless it collides with the VMM's own (above GuestStatusMax).
func (vm *VM) stopProgram(status, signal int) {
	vm.mu.Lock()
	vm.result.ProgramExitStatus = &status
	vm.mu.Unlock()
	if signal != 0 {
		vm.stop(OutcomeFault, StatusFault, fmt.Sprintf("program killed by signal %d (status %d)", signal, status), nil)
		return
	}
	if status > GuestStatusMax {
		vm.stop(OutcomeFault, StatusFault, fmt.Sprintf("program exited with status %d, above %d (vmm keeps those for itself)", status, GuestStatusMax), nil)
		return
	}
	vm.stop(OutcomeExit, status, fmt.Sprintf("program exited with status %d", status), nil)
}

// programOutput writes a user program's fd 1 or 2 to the configured writer.
func (vm *VM) programOutput(fd int, b []byte) {
	w := vm.cfg.Stdout
	if fd == 2 {
		w = vm.cfg.Stderr
	}
	if w != nil {
		if _, err := w.Write(b); err != nil {
			vm.logf("program fd %d: %v", fd, err)
		}
	}
}
