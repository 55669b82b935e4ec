package vmm

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"time"
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

// probeLSTAR is where the probe's SYSCALL lands: `jmp *%rcx`, back to the
// instruction after the SYSCALL at the privilege SYSCALL gave.
const probeLSTAR = floorCode + 0x100

// SyscallCPL boots the floor VM (see KVMFloor) with a SYSCALL as its
// first instruction at CPL3, LSTAR pointing at a jump back, then an MMIO
// store, and returns the privilege level the store ran at: 3 on kvm_pvm,
// 0 on VMX and SVM. It takes a few milliseconds. Without usable KVM the
// error wraps ErrNoKVM.
func SyscallCPL() (int, error) {
	cpl, _, err := syscallLoop(1)
	return cpl, err
}

// syscallLoop runs n SYSCALL round trips (SYSCALL, LSTAR's `jmp *%rcx`)
// in the probe VM and returns the CPL of the store after them and the
// time from KVM_RUN to that store's exit: the floor under any system
// call of a guest that enters its kernel this way.
func syscallLoop(n uint32) (int, time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	kvmFile, err := OpenKVM()
	if err != nil {
		return 0, 0, err
	}
	defer kvmFile.Close()
	kvmFd := kvmFile.Fd()
	vmFd, err := createVM(kvmFd)
	if err != nil {
		return 0, 0, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	defer unix.Close(int(vmFd))
	ram, err := unix.Mmap(-1, 0, floorRAM, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return 0, 0, fmt.Errorf("mmap probe RAM: %w", err)
	}
	defer unix.Munmap(ram)
	writeFloorRAM(ram)
	// mov $n, %ebx; 1: syscall; dec %ebx; jnz 1b; movb $42, floorMMIO; jmp .
	code := []byte{0xbb, 0, 0, 0, 0, 0x0f, 0x05, 0xff, 0xcb, 0x75, 0xfa,
		0xc6, 0x04, 0x25, 0, 0, 0, 0, floorMMIOVal, 0xeb, 0xfe}
	binary.LittleEndian.PutUint32(code[1:], max(n, 1))
	binary.LittleEndian.PutUint32(code[14:], floorMMIO)
	copy(ram[floorCode:], code)
	copy(ram[probeLSTAR:], []byte{0xff, 0xe1}) // jmp *%rcx
	region := kvm.UserspaceMemoryRegion{Slot: 0, GuestPhysAddr: 0, MemorySize: floorRAM, UserspaceAddr: uint64(uintptrOf(ram))}
	if err := kvm.SetUserMemoryRegion(vmFd, &region); err != nil {
		return 0, 0, fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	cpuFd, err := kvm.CreateVCPU(vmFd, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	defer unix.Close(int(cpuFd))
	runSize, err := kvm.GetVCPUMMmapSize(kvmFd)
	if err != nil {
		return 0, 0, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	runMap, err := unix.Mmap(int(cpuFd), 0, int(runSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return 0, 0, fmt.Errorf("mmap kvm_run: %w", err)
	}
	defer unix.Munmap(runMap)
	if err := setFloorRegisters(cpuFd); err != nil {
		return 0, 0, err
	}
	msrs := &kvm.MSRS{NMSRs: 3, Entries: []kvm.MSREntry{
		{Index: msrSTAR, Data: starValue}, {Index: msrLSTAR, Data: probeLSTAR}, {Index: msrFMASK, Data: 0},
	}}
	if err := kvm.SetMSRs(cpuFd, msrs); err != nil {
		return 0, 0, fmt.Errorf("KVM_SET_MSRS lstar=%#x: %w", probeLSTAR, err)
	}
	run := (*kvm.RunData)(unsafe.Pointer(&runMap[0]))
	start := time.Now()
	for {
		run.ExitReason = uint32(kvm.EXITINTR)
		if err := kvm.Run(cpuFd); err != nil {
			return 0, 0, fmt.Errorf("KVM_RUN: %w", err)
		}
		if e := decodeExit(run); e.Reason == kvm.EXITINTR {
			continue
		} else if e.Reason != kvm.EXITMMIO || e.MMIOAddr != floorMMIO || !e.MMIOWrite {
			return 0, 0, fmt.Errorf("SYSCALL probe: unexpected exit %v (MMIO addr %#x), not the store after the SYSCALLs", e.Reason, e.MMIOAddr)
		}
		break
	}
	elapsed := time.Since(start)
	sregs, err := kvm.GetSregs(cpuFd)
	if err != nil {
		return 0, 0, fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	return int(sregs.CS.Selector & 3), elapsed, nil
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
