package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

const benchSamples = 512

// samples is scratch for medians (global: too big for comfort on the stack).
var samples [benchSamples]uint64

// median sorts s in place (insertion sort: small n, no runtime).
func median(s []uint64) uint64 {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

// ticksToNS converts guest TSC ticks to nanoseconds.
func ticksToNS(t uint64) uint64 { return t * 1000000 / bootInfo().TSCKHz }

// runTrapBench measures, with the guest TSC (median of benchSamples), one
// exception round trip (UD2 -> ring-0 stub -> Go handler -> back), one
// demand-paging fault and one copy-on-write fault.
func runTrapBench(bi *firmware.BootInfo) uint64 {
	if bi.TSCKHz == 0 {
		return exitWorkloadFail
	}
	registerTrap(6, skipUD)
	for i := range samples {
		t := rdtsc()
		faultUD()
		samples[i] = rdtsc() - t
	}
	registerTrap(6, nil)
	report("trapbench.exception_ns", ticksToNS(median(samples[:])))

	s := userSpace()
	as, ok := newAddressSpace()
	if !ok {
		return exitWorkloadFail
	}
	s.as = as
	if !s.reserve(userBase, benchSamples, true) || !switchTo(s, true) {
		return exitWorkloadFail
	}
	for i := range samples {
		va := userBase + uint64(i)*mm.PageSize
		t := rdtsc()
		*(*uint64)(vptr(uintptr(va))) = uint64(i)
		samples[i] = rdtsc() - t
	}
	if !switchTo(s, false) {
		return exitWorkloadFail
	}
	report("trapbench.demand_fault_ns", ticksToNS(median(samples[:])))

	var vas [benchSamples]uint64
	for i := range vas {
		vas[i] = userBase + uint64(i)*mm.PageSize
	}
	child, ok := cowFork(&s.as, vas[:])
	if !ok {
		return exitWorkloadFail
	}
	parent := s.as
	s.as = child
	if !switchTo(s, true) {
		return exitWorkloadFail
	}
	for i := range samples {
		t := rdtsc()
		*(*uint64)(vptr(uintptr(vas[i]))) = 7
		samples[i] = rdtsc() - t
	}
	if !switchTo(s, false) {
		return exitWorkloadFail
	}
	report("trapbench.cow_fault_ns", ticksToNS(median(samples[:])))
	if !checkAndCheckpoint("trapbench", 0) || !child.destroy() || !parent.destroy() {
		return exitWorkloadFail
	}
	return exitOK
}

// runIRQMask takes a handled exception (UD2, skipped) with interrupts
// masked by irqSave, as the allocator's lock holder would, and again
// unmasked: each must return with the mask it had, or a timer tick could
// preempt a lock holder.
func runIRQMask(bi *firmware.BootInfo) uint64 {
	registerTrap(6, skipUD)
	old := irqSave()
	faultUD()
	inside := trapRecord().Masked
	irqRestore(old)
	faultUD()
	outside := trapRecord().Masked
	registerTrap(6, nil)
	report("irqmask.inside", inside)
	report("irqmask.outside", outside)
	if inside != 1 || outside != 0 {
		return exitWorkloadFail
	}
	return exitOK
}
