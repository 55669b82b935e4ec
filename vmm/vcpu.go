package vmm

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
	"golang.org/x/sys/unix"
)

// vcpu is one virtual CPU, run by one goroutine locked to its OS thread.
type vcpu struct {
	index   int
	fd      uintptr
	runMap  []byte
	run     *kvm.RunData
	tid     atomic.Int32 // OS thread while in its run loop, 0 otherwise
	kickMu  sync.Mutex
	wake    chan struct{} // HCSleep waits on it
	entered atomic.Bool

	tickPending   atomic.Bool // a timer interrupt waits for injection
	kickPending   atomic.Bool // HCKick: another vCPU wants this one in its kernel (same vector)
	ticksInjected uint64
	kicksInjected uint64

	hypercalls uint64 // hypercalls handled (compared with the mailbox's Seq)

	// fault is the interrupted context of the exception this vCPU reported
	// (HCFault), nil if none: the dump shows it as the vCPU's thread.
	fault *firmware.FaultFrame
}

func (vm *VM) createVCPU(index int, cpuid *cpuidTable) (*vcpu, error) {
	fd, err := kvm.CreateVCPU(vm.vmFd, index)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU id=%d: %w", index, err)
	}
	v := &vcpu{index: index, fd: fd, wake: make(chan struct{}, 1)}
	m, err := unix.Mmap(int(fd), 0, vm.runSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("mmap kvm_run of vCPU %d (%d bytes): %w", index, vm.runSize, err)
	}
	v.runMap = m
	v.run = (*kvm.RunData)(unsafe.Pointer(&m[0]))
	if cpuid != nil {
		if err := cpuid.set(fd); err != nil {
			return v, fmt.Errorf("KVM_SET_CPUID2 vCPU %d: %w", index, err)
		}
	}
	if err := vm.setVCPURegisters(v); err != nil {
		return v, err
	}
	return v, nil
}

func (v *vcpu) close() {
	if v.runMap != nil {
		unix.Munmap(v.runMap)
		v.runMap = nil
	}
	unix.Close(int(v.fd))
}

// setVCPURegisters enters the vCPU directly in 64-bit mode at CPL3 at the
// kernel's entry, with RDI = vCPU index and RSI = boot info physical address.
func (vm *VM) setVCPURegisters(v *vcpu) error {
	sregs, err := kvm.GetSregs(v.fd)
	if err != nil {
		return fmt.Errorf("KVM_GET_SREGS vCPU %d: %w", v.index, err)
	}
	code := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: firmware.SelUserCode, Typ: 11,
		Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	data := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: firmware.SelUserData, Typ: 3,
		Present: 1, DPL: 3, DB: 1, S: 1, G: 1}
	sregs.CS = code
	sregs.DS, sregs.ES, sregs.SS = data, data, data
	sregs.FS, sregs.GS = data, data
	// FS is the kernel's TLS (FS:-8 = g); GS holds the same base for good:
	// a user program owns FS, and the kernel's entry paths find their
	// per-CPU block through GS.
	sregs.FS.Base = vm.layout.fsBase(v.index)
	sregs.GS.Base = vm.layout.fsBase(v.index)
	// Descriptor-table and TSS bases are virtual: physmap addresses.
	sregs.TR = kvm.Segment{Base: firmware.PhysToVirt(vm.layout.tss(v.index)), Limit: 103,
		Selector: firmware.TSSSelector(v.index), Typ: 11, Present: 1}
	sregs.LDT = kvm.Segment{Typ: 2, Present: 1, Unusable: 1}
	sregs.GDT = kvm.Descriptor{Base: firmware.PhysToVirt(firmware.GDTBase), Limit: firmware.GDTSize - 1}
	sregs.IDT = kvm.Descriptor{Base: firmware.PhysToVirt(firmware.IDTBase), Limit: firmware.IDTSize - 1}
	sregs.CR0 = 0x80050033 // PG|AM|WP|NE|ET|MP|PE
	sregs.CR4 = 0x10620    // FSGSBASE|OSXMMEXCPT|OSFXSR|PAE: WRFSBASE at CPL3 switches TLS
	sregs.EFER = 0x501     // LMA|LME|SCE
	sregs.CR3 = vm.layout.pml4
	if err := kvm.SetSregs(v.fd, sregs); err != nil {
		return fmt.Errorf("KVM_SET_SREGS vCPU %d: %w", v.index, err)
	}
	if err := vm.setSyscallMSRs(v); err != nil {
		return err
	}
	regs := &kvm.Regs{
		RIP:    vm.kernel.Entry,
		RSP:    vm.layout.stackTop(v.index) - 8,
		RDI:    uint64(v.index),
		RSI:    firmware.BootInfoBase,
		RFLAGS: 0x2 | firmware.RFlagsIF, // masking is paravirtual: see firmware/trap.go
	}
	if err := kvm.SetRegs(v.fd, regs); err != nil {
		return fmt.Errorf("KVM_SET_REGS vCPU %d: %w", v.index, err)
	}
	return nil
}

// kick brings the vCPU out of KVM_RUN: immediate_exit covers the window
// before it enters, the signal covers a vCPU already in the guest.
func (v *vcpu) kick() {
	v.kickMu.Lock()
	defer v.kickMu.Unlock()
	if v.runMap == nil {
		return
	}
	v.run.ImmediateExit = 1
	v.kickSignal()
}

// interrupt makes the vCPU look at the VM's state soon: out of KVM_RUN,
// or out of an HCSleep.
func (v *vcpu) interrupt() {
	v.kick()
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// loop runs the vCPU until the VM stops.
func (vm *VM) loop(v *vcpu) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	v.tid.Store(int32(unix.Gettid()))
	defer v.tid.Store(0)
	for {
		if vm.stopped.Load() {
			return
		}
		if vm.halting.Load() {
			h := vm.haltReason()
			vm.stop(h.outcome, h.status, h.reason, vm.stoppedReport(v, h.reason))
			return
		}
		if vm.pausing.Load() {
			vm.park(v)
			continue
		}
		if vm.debugGate(v) {
			continue
		}
		if !v.entered.Swap(true) && v.index == 0 {
			vm.timing.firstRun = time.Now()
		}
		if v.tickPending.Load() || v.kickPending.Load() {
			vm.injectTick(v)
		}
		// gokvm's Run reports EINTR and EAGAIN (an immediate_exit kick, a
		// signal) as success, and KVM leaves exit_reason untouched on that
		// path: preset it so an entry that never happened reads as
		// "interrupted" rather than as a second copy of the previous exit.
		v.run.ExitReason = uint32(kvm.EXITINTR)
		if err := kvm.Run(v.fd); err != nil {
			vm.stop(OutcomeError, StatusVMMError, fmt.Sprintf("KVM_RUN vCPU %d: %v", v.index, err), nil)
			return
		}
		if v.run.ImmediateExit != 0 {
			v.kickMu.Lock()
			v.run.ImmediateExit = 0
			v.kickMu.Unlock()
		}
		e := decodeExit(v.run)
		act, why := classifyExit(e)
		switch act {
		case actResume:
		case actConsole:
			vm.consoleDoorbell()
		case actHypercall:
			vm.hypercall(v)
		case actFault:
			vm.debugFatal(v, why)
			vm.stop(OutcomeFault, StatusFault, why, vm.crashReport(v, why))
			return
		}
	}
}

// injectTick delivers the pending timer interrupt when the guest can take
// it (no in-kernel irqchip: KVM_INTERRUPT), or asks KVM to exit as soon as
// it can. Ticks that arrive while one is pending coalesce, as on hardware;
// a kick (HCKick) is the same interrupt, counted apart: the guest only
// needs this vCPU to enter its kernel, whichever the reason.
func (vm *VM) injectTick(v *vcpu) {
	rec := vm.layout.perCPU(v.index) + firmware.PerCPUTrapOff
	dispatch, err1 := vm.mem.ReadU64(rec + firmware.TrapOffDispatch)
	masked, err2 := vm.mem.ReadU64(rec + firmware.TrapOffMasked)
	if err1 != nil || err2 != nil || dispatch == 0 || masked != 0 {
		return // not ready or masked: retried at the vCPU's next exit
	}
	if v.run.ReadyForInterruptInjection != 0 && v.run.IfFlag != 0 {
		if err := injectInterrupt(v.fd, firmware.TimerVector); err != nil {
			vm.logf("KVM_INTERRUPT vCPU %d vector %d: %v", v.index, firmware.TimerVector, err)
			return
		}
		if v.tickPending.Swap(false) {
			v.ticksInjected++
		} else {
			v.kicksInjected++
		}
		v.kickPending.Store(false)
		v.run.RequestInterruptWindow = 0
		return
	}
	v.run.RequestInterruptWindow = 1
}

// startTicks marks a tick pending on every vCPU every --tick and kicks
// each out of the guest so its loop injects it (a user program's threads
// are preempted on every vCPU).
func (vm *VM) startTicks() (stop func()) {
	t := time.NewTicker(vm.cfg.Tick)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-t.C:
				for _, v := range vm.vcpus {
					v.tickPending.Store(true)
					v.kickSignal()
				}
			case <-done:
				return
			}
		}
	}()
	// Stopping waits for the goroutine: it must not signal a thread that
	// has gone back to the Go scheduler, or a vCPU that is closed.
	return func() { t.Stop(); close(done); <-exited }
}

// kickSignal interrupts KVM_RUN without asking the vCPU to stop.
func (v *vcpu) kickSignal() {
	if tid := v.tid.Load(); tid != 0 {
		unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG)
	}
}

// setCR3 loads a new page-table root into v (called on v's own thread).
func setCR3(v *vcpu, root uint64) error {
	sregs, err := kvm.GetSregs(v.fd)
	if err != nil {
		return fmt.Errorf("KVM_GET_SREGS vCPU %d: %w", v.index, err)
	}
	sregs.CR3 = root
	if err := kvm.SetSregs(v.fd, sregs); err != nil {
		return fmt.Errorf("KVM_SET_SREGS vCPU %d cr3=%#x: %w", v.index, root, err)
	}
	return nil
}

// Syscall MSRs (Intel SDM vol. 4, table 2-2).
const (
	msrSTAR  = 0xc0000081
	msrLSTAR = 0xc0000082
	msrFMASK = 0xc0000084
	// starValue: SYSCALL would load CS 0x10 / SS 0x18, SYSRET CS 0x33 / SS
	// 0x2b (firmware's selectors). On the PVM host SYSCALL stays at CPL3.
	starValue = uint64(firmware.SelUserData-8)<<48 | uint64(firmware.SelKernelCode)<<32
)

// setSyscallMSRs points LSTAR at the kernel's system-call entry, when the
// kernel has one (main.syscallEntry).
func (vm *VM) setSyscallMSRs(v *vcpu) error {
	if vm.kernel.SyscallEntry == 0 {
		return nil
	}
	msrs := &kvm.MSRS{NMSRs: 3, Entries: []kvm.MSREntry{
		{Index: msrSTAR, Data: starValue},
		{Index: msrLSTAR, Data: vm.kernel.SyscallEntry},
		{Index: msrFMASK, Data: 0},
	}}
	if err := kvm.SetMSRs(v.fd, msrs); err != nil {
		return fmt.Errorf("KVM_SET_MSRS vCPU %d lstar=%#x: %w", v.index, vm.kernel.SyscallEntry, err)
	}
	return nil
}
