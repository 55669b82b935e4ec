package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// Exception workloads: each ends the run through the unhandled-exception
// path (HCFault), so the VMM prints its symbolized report.

func runDivide(bi *firmware.BootInfo) uint64 {
	faultDivide()
	return exitWorkloadFail
}

func runGP(bi *firmware.BootInfo) uint64 {
	faultGP()
	return exitWorkloadFail
}

func runNested(bi *firmware.BootInfo) uint64 {
	registerTrap(6, faultingUD)
	faultUD()
	return exitWorkloadFail
}

// runStackOverflow recurses until the Go stack runs into its guard page.
func runStackOverflow(bi *firmware.BootInfo) uint64 {
	return recurse(1)
}

//go:noinline
func recurse(n uint64) uint64 {
	var frame [64]uint64
	frame[n%64] = n
	//lint:ignore SA5007 the recursion is the workload: it runs into the guard page
	return recurse(n+1) + frame[(n+1)%64]
}

// runDoubleFault points RSP0 at a guard page, so delivering #UD faults and
// the CPU raises #DF, which arrives on the IST1 stack and is reported.
func runDoubleFault(bi *firmware.BootInfo) uint64 {
	cpu := thisCPU().Index
	tss := physWords(firmware.TSSBase+cpu*firmware.TSSStride, 8)
	block := uint64(cpuBlock())
	bad := block + firmware.PerCPUGuardOff + mm.PageSize
	// RSP0 is the unaligned 8 bytes at TSS offset 4: rewrite words 0 and 1.
	tss[0] = tss[0]&0xffffffff | bad<<32
	tss[1] = tss[1]&^0xffffffff | bad>>32
	faultUD()
	return exitWorkloadFail
}

// runSegv touches an address no reserved range covers in a user address
// space: the page-fault handler reports a segmentation fault.
func runSegv(bi *firmware.BootInfo) uint64 {
	s := userSpace()
	as, ok := newAddressSpace()
	if !ok {
		return exitWorkloadFail
	}
	s.as = as
	s.reserve(userBase, 4, true)
	if !switchTo(s, true) {
		return exitWorkloadFail
	}
	*(*uint64)(vptr(uintptr(userBase + 8*mm.PageSize))) = 1
	return exitWorkloadFail
}

func sseAtRing0Addr() uint64

// sseAtRing0 is ordinary Go code; entered at CPL0 through the IDT it hits
// KVM's instruction emulator on the PVM host, which cannot run SSE.
func sseAtRing0() { putString("unreachable\n") }

// runEmulFail points the #UD gate at Go code and executes UD2. On the PVM
// host the first SSE instruction at ring 0 ends the run with an emulation
// failure, which the VMM must report like any crash.
func runEmulFail(bi *firmware.BootInfo) uint64 {
	idt := physWords(firmware.IDTBase, 16)
	idt[12], idt[13] = firmware.Gate(sseAtRing0Addr(), 0)
	faultUD()
	return exitWorkloadFail
}
