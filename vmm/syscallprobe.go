package vmm

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// SYSCALL's privilege level on this KVM, found by running it. On the
// paravirtual kvm_pvm host SYSCALL jumps to LSTAR but stays at CPL3, and
// `vmm run`'s system-call entry (guest/user_amd64.s) relies on that: it is
// ring-3 Go code. On VMX/SVM SYSCALL enters LSTAR at CPL0, where that code
// must not run (it would run with the kernel's privileges on the user's
// stack, and SYSRET is never used to come back).

// probeLSTAR is where the probe's SYSCALL lands: an MMIO store, then a
// loop (the floor VM's code, copied there).
const probeLSTAR = floorCode + 0x100

// SyscallCPL boots the floor VM (see KVMFloor) with a SYSCALL as its
// first instruction at CPL3 and LSTAR pointing at its MMIO store, and
// returns the privilege level the store ran at: 3 on kvm_pvm, 0 on VMX and
// SVM. It takes a few milliseconds. Without usable KVM the error wraps
// ErrNoKVM.
func SyscallCPL() (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	kvmFile, err := OpenKVM()
	if err != nil {
		return 0, err
	}
	defer kvmFile.Close()
	kvmFd := kvmFile.Fd()
	vmFd, err := kvm.CreateVM(kvmFd)
	if err != nil {
		return 0, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	defer unix.Close(int(vmFd))
	ram, err := unix.Mmap(-1, 0, floorRAM, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return 0, fmt.Errorf("mmap probe RAM: %w", err)
	}
	defer unix.Munmap(ram)
	writeFloorRAM(ram)
	copy(ram[probeLSTAR:], ram[floorCode:floorCode+16])
	copy(ram[floorCode:], []byte{0x0f, 0x05, 0xeb, 0xfe}) // syscall; jmp .
	region := kvm.UserspaceMemoryRegion{Slot: 0, GuestPhysAddr: 0, MemorySize: floorRAM, UserspaceAddr: uint64(uintptrOf(ram))}
	if err := kvm.SetUserMemoryRegion(vmFd, &region); err != nil {
		return 0, fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	cpuFd, err := kvm.CreateVCPU(vmFd, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	defer unix.Close(int(cpuFd))
	runSize, err := kvm.GetVCPUMMmapSize(kvmFd)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	runMap, err := unix.Mmap(int(cpuFd), 0, int(runSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return 0, fmt.Errorf("mmap kvm_run: %w", err)
	}
	defer unix.Munmap(runMap)
	if err := setFloorRegisters(cpuFd); err != nil {
		return 0, err
	}
	msrs := &kvm.MSRS{NMSRs: 3, Entries: []kvm.MSREntry{
		{Index: msrSTAR, Data: starValue}, {Index: msrLSTAR, Data: probeLSTAR}, {Index: msrFMASK, Data: 0},
	}}
	if err := kvm.SetMSRs(cpuFd, msrs); err != nil {
		return 0, fmt.Errorf("KVM_SET_MSRS lstar=%#x: %w", probeLSTAR, err)
	}
	run := (*kvm.RunData)(unsafe.Pointer(&runMap[0]))
	for {
		run.ExitReason = uint32(kvm.EXITINTR)
		if err := kvm.Run(cpuFd); err != nil {
			return 0, fmt.Errorf("KVM_RUN: %w", err)
		}
		if e := decodeExit(run); e.Reason == kvm.EXITINTR {
			continue
		} else if e.Reason != kvm.EXITMMIO || e.MMIOAddr != floorMMIO || !e.MMIOWrite {
			return 0, fmt.Errorf("SYSCALL probe: unexpected exit %v (MMIO addr %#x), not the store at LSTAR", e.Reason, e.MMIOAddr)
		}
		break
	}
	sregs, err := kvm.GetSregs(cpuFd)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	return int(sregs.CS.Selector & 3), nil
}

// HostModule names the loaded KVM vendor module (kvm_pvm, kvm_intel,
// kvm_amd), or "" when none of them is; for messages only.
func HostModule() string {
	for _, m := range []string{"kvm_pvm", "kvm_intel", "kvm_amd"} {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			return m
		}
	}
	return ""
}
