package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// demandPages is how many pages the demand workload touches (N in the
// issue: N touches, N faults, N USER|ANONYMOUS frames).
const demandPages = 64

// runDemand reserves a range without backing, loads the address space and
// touches every page: each first touch faults and the handler maps a zeroed
// frame. The host then verifies refcount == mappings for every frame.
func runDemand(bi *firmware.BootInfo) uint64 {
	startFree := kernelMM.FreeFrames()
	s := userSpace()
	as, ok := newAddressSpace()
	if !ok {
		return exitWorkloadFail
	}
	s.as = as
	if !s.reserve(userBase, 4*demandPages, true) || !switchTo(s, true) {
		return exitWorkloadFail
	}
	for p := uint64(0); p < demandPages; p++ {
		va := userBase + 2*p*mm.PageSize // every other page: the rest stay unbacked
		word := (*uint64)(vptr(uintptr(va + 8)))
		if *word != 0 { // a fresh anonymous page reads as zero
			return exitWorkloadFail
		}
		*word = p + 1
	}
	for p := uint64(0); p < demandPages; p++ { // no new faults: all mapped
		if *(*uint64)(vptr(uintptr(userBase + 2*p*mm.PageSize + 8))) != p+1 {
			return exitWorkloadFail
		}
	}
	faults := s.demandFaults
	if !switchTo(s, false) {
		return exitWorkloadFail
	}
	report("demand.touched", demandPages)
	report("demand.faults", faults)
	if !checkAndCheckpoint("demand-touched", 0) {
		return exitViolations
	}
	if !s.as.destroy() || kernelMM.FreeFrames() != startFree {
		putString("demand: frames leaked\n")
		return exitWorkloadFail
	}
	return exitOK
}

// runTicks busy-waits ~200 ms of guest TSC time so --tick interrupts can
// be counted; the count is reported as timer.ticks at exit.
func runTicks(bi *firmware.BootInfo) uint64 {
	if bi.TSCKHz == 0 {
		return exitWorkloadFail
	}
	end := rdtsc() + 200*bi.TSCKHz
	for rdtsc() < end {
	}
	report("ticks.window_ms", 200)
	return exitOK
}
