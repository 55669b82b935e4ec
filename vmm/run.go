package vmm

import (
	"fmt"
	"sync"
	"time"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
)

// Running the guest and ending the run: the vCPU goroutines, the summary,
// and the three ways a run stops (the guest's own exit or fault through
// stop, a timeout or a signal through requestHalt).

// Run runs the guest to its end: exit hypercall, fault, timeout or error.
func (vm *VM) Run() *Result {
	start := time.Now()
	timer := time.AfterFunc(vm.cfg.Timeout, vm.timeout)
	defer timer.Stop()
	if vm.cfg.Tick > 0 {
		stopTicks := vm.startTicks()
		defer stopTicks()
	}
	stopPoll := vm.pollConsole()
	var wg sync.WaitGroup
	for _, v := range vm.vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vm.loop(v)
		}()
	}
	wg.Wait()
	stopPoll()
	vm.mu.Lock()
	if vm.fallback != nil {
		vm.fallback.Stop()
	}
	note := drainReports(vm.mem, &vm.hc) // posted since the last hypercall
	vm.mu.Unlock()
	if note != "" {
		vm.logf("%s", note)
	}
	vm.drainConsole()
	vm.finish()
	vm.debugEnd()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	r := &vm.result
	r.Timing.RunNanos = time.Since(start).Nanoseconds()
	if !vm.timing.firstRun.IsZero() {
		r.Timing.CreateToEntryNanos = vm.timing.firstRun.Sub(vm.timing.created).Nanoseconds()
	}
	r.Reports = vm.hc.reports
	r.ReportsDropped = vm.hc.dropped
	r.Console = vm.console.stats()
	vm.doorbellMu.Lock()
	r.Console.DoorbellExits, r.Console.DoorbellEventfd = vm.doorbellExits, vm.doorbel != nil
	vm.doorbellMu.Unlock()
	r.Registration = vm.hc.reg
	if vm.hc.regErr != nil {
		r.RegistrationError = vm.hc.regErr.Error()
	}
	r.CPUs = len(vm.vcpus)
	r.VCPUs = vm.vcpuStats()
	r.TicksInjected = vm.vcpus[0].ticksInjected
	r.MemBytes = vm.cfg.MemBytes
	return r
}

func (vm *VM) vcpuStats() []VCPUStats {
	stats := make([]VCPUStats, len(vm.vcpus))
	for i, v := range vm.vcpus {
		var seq uint64
		if mb, err := guestView[firmware.Mailbox](vm.mem, mailboxGPA(i)); err == nil {
			seq = mb.Seq
		}
		stats[i] = VCPUStats{CPU: i, HypercallsIssued: seq, HypercallsHandled: v.hypercalls}
		if regs, err := kvm.GetRegs(v.fd); err == nil {
			stats[i].RIP = regs.RIP
			// After a clean exit nobody reads Where: skip loading the
			// symbol tables (about 1 ms of a hello boot).
			if vm.result.Outcome == OutcomeExit {
				stats[i].Where = fmt.Sprintf("%#x", regs.RIP)
			} else if sym := vm.symbolizer(); sym != nil {
				stats[i].Where = sym.Describe(regs.RIP)
			} else {
				stats[i].Where = fmt.Sprintf("%#x", regs.RIP)
			}
		}
	}
	return stats
}

// FirstEntry is when vCPU 0 first entered KVM_RUN (zero if never).
func (vm *VM) FirstEntry() time.Time { return vm.timing.firstRun }

// stop ends the run; the first caller decides the outcome.
func (vm *VM) stop(outcome string, status int, reason string, crash *CrashReport) {
	vm.mu.Lock()
	first := vm.result.Outcome == ""
	if first {
		vm.result.Outcome, vm.result.ExitStatus, vm.result.Reason = outcome, status, reason
		vm.result.Crash = crash
	}
	vm.mu.Unlock()
	if !first {
		return
	}
	vm.stopped.Store(true)
	vm.pauseMu.Lock()
	vm.pauseCnd.Broadcast()
	vm.pauseMu.Unlock()
	for _, v := range vm.vcpus {
		v.interrupt()
	}
}

// haltRequest is an outside request to end the run: a timeout or a signal.
type haltRequest struct {
	outcome string
	status  int
	reason  string
}

func (vm *VM) timeout() {
	vm.requestHalt(haltRequest{OutcomeTimeout, StatusTimeout, fmt.Sprintf("guest did not exit within %v", vm.cfg.Timeout)})
}

// Interrupt ends the run as a signal would: every vCPU stops and reports
// where it was, the final verification and the dump still happen, and the
// result carries status (130 for SIGINT, 143 for SIGTERM). Safe to call
// from any goroutine, any number of times; the first request wins.
func (vm *VM) Interrupt(reason string, status int) {
	vm.requestHalt(haltRequest{OutcomeSignal, status, reason})
}

// requestHalt asks every vCPU to stop and report where it was; a vCPU that
// does not come out of the guest within a second is stopped without report.
func (vm *VM) requestHalt(h haltRequest) {
	vm.mu.Lock()
	if vm.halting.Load() || vm.stopped.Load() {
		vm.mu.Unlock()
		return
	}
	vm.halt = h
	vm.halting.Store(true)
	vm.fallback = time.AfterFunc(time.Second, func() { vm.stop(h.outcome, h.status, h.reason, nil) })
	vm.mu.Unlock()
	for _, v := range vm.vcpus {
		v.interrupt()
	}
	vm.pauseMu.Lock()
	vm.pauseCnd.Broadcast()
	vm.pauseMu.Unlock()
}

// haltReason is the pending halt request (valid once halting is set).
func (vm *VM) haltReason() haltRequest {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.halt
}
