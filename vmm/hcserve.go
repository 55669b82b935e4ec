package vmm

import (
	"errors"
	"fmt"
	"syscall"
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
	note := drainReports(vm.mem, &vm.hc) // the guest's posted reports come before this call
	res := handleHypercall(vm.mem, &vm.hc, v.index, &mb)
	vm.mu.Unlock()
	if note != "" {
		vm.logf("vCPU %d: %s", v.index, note)
	}
	vm.logf("vCPU %d: %s(%#x) = %#x%s", v.index, hcName(mb.Nr), mb.Args, res.ret, res.why)
	switch e := res.effect.(type) {
	case effBadRequest:
		vm.stop(OutcomeFault, StatusFault, e.why, vm.crashReport(v, e.why))
	case effProgramExit:
		vm.stopProgram(e.status, e.signal, e.rip, e.addr)
	case effOutput:
		if err := vm.programOutput(e.fd, e.b); errors.Is(err, syscall.EPIPE) {
			res.ret = firmware.HCErrClosed
		}
	case effExit:
		vm.debugExit(v, e.status)
		vm.stop(OutcomeExit, e.status, fmt.Sprintf("guest exited with status %d", e.status), nil)
	case effCheckpoint:
		vm.stopTheWorld(v)
		res.ret = vm.checkpoint(e.label, false, e.flags)
		vm.debugViolation(v, e.label, res.ret)
		vm.resumeTheWorld()
	case effFault:
		if vm.debugTrap(v, e.frame, mb.Args[1]) {
			res.ret = firmware.HCFaultResume
			break
		}
		vm.stop(OutcomeFault, StatusFault, "unhandled exception "+vectorName(e.frame.Vector), vm.faultFrameReport(v, e.frame))
	case effSleep:
		select {
		case <-v.wake:
		case <-time.After(e.d):
		}
	case effSetCR3:
		if err := setCR3(v, e.root); err != nil {
			vm.stop(OutcomeError, StatusVMMError, err.Error(), nil)
		}
	case effKick:
		t := vm.vcpus[e.cpu]
		t.kickPending.Store(true)
		t.interrupt()
	case effWake:
		select {
		case vm.vcpus[e.cpu].wake <- struct{}{}:
		default:
		}
	}
	view.Ret = res.ret
}

// stopProgram ends a `vmm run` whose program exited: its status becomes the
// VMM's unless it collides with the VMM's own (above GuestStatusMax).
func (vm *VM) stopProgram(status, signal int, rip, addr uint64) {
	vm.mu.Lock()
	vm.result.ProgramExitStatus = &status
	if signal != 0 {
		vm.result.ProgramKilled = &ProgramKill{Signal: signal, RIP: rip, Address: addr}
	}
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
func (vm *VM) programOutput(fd int, b []byte) error {
	w := vm.cfg.Stdout
	if fd == 2 {
		w = vm.cfg.Stderr
	}
	if w == nil {
		return nil
	}
	_, err := w.Write(b)
	if err != nil {
		vm.logf("program fd %d: %v", fd, err)
	}
	return err
}
