package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// Page-fault error-code bits.
const (
	pfPresent = 1 << 0
	pfWrite   = 1 << 1
	pfUser    = 1 << 2
)

// vma is a reserved range of an address space backed on first touch.
type vma struct {
	start, end uint64
	writable   bool
}

// maxVMAs bounds the reserved ranges per address space.
const maxVMAs = 8

// spaceState is what the page-fault handler knows about the address space
// in CR3. One at a time per vCPU is enough for the workloads.
type spaceState struct {
	as           addressSpace
	vmas         [maxVMAs]vma
	nvma         int
	demandFaults uint64
	cowFaults    uint64
	cow          cowStats
	segv         bool
	loaded       bool // s.as is in CR3: page faults are resolved in it
}

// spaceSlots holds each vCPU's user address space state. It lives in a
// global array and is reached by index: storing a pointer to a stack
// object in a global would move it to the heap and need a write barrier.
var spaceSlots [firmware.MaxCPUs]spaceState

// userSpace returns this vCPU's (reset) address-space slot.
func userSpace() *spaceState {
	s := &spaceSlots[thisCPU().Index]
	*s = spaceState{}
	return s
}

// reserve adds a lazily backed range: nothing is allocated until touched.
func (s *spaceState) reserve(start, pages uint64, writable bool) bool {
	if s.nvma == maxVMAs {
		return false
	}
	s.vmas[s.nvma] = vma{start: start, end: start + pages*mm.PageSize, writable: writable}
	s.nvma++
	return true
}

// switchTo loads s's page tables (load false: back to the kernel's)
// through the VMM; the CR3 write also flushes the TLB.
func switchTo(s *spaceState, load bool) bool {
	root := uint64(0)
	if load {
		root = s.as.root
	}
	if hypercall(firmware.HCSetCR3, root, 0, 0, 0) != 0 {
		return false
	}
	s.loaded = load
	thisCPU().Space = root
	return true
}

// handlePageFault resolves demand-paging and copy-on-write faults in the
// address space in CR3; anything else is a fault the run reports.
func handlePageFault(rec *firmware.TrapRecord, regs *trapRegs) bool {
	if proc.active {
		return procPageFault(rec)
	}
	s := &spaceSlots[thisCPU().Index]
	if !s.loaded {
		return false
	}
	addr := rec.CR2 &^ (mm.PageSize - 1)
	e := s.as.lookup(addr)
	if e != nil && rec.ErrorCode&(pfPresent|pfWrite) == pfPresent|pfWrite {
		s.cowFaults++
		return cowFault(e, &s.cow)
	}
	if e != nil {
		return true // spurious: another path mapped it (stale TLB); retry
	}
	for i := 0; i < s.nvma; i++ {
		v := &s.vmas[i]
		if addr < v.start || addr >= v.end {
			continue
		}
		if rec.ErrorCode&pfWrite != 0 && !v.writable {
			break
		}
		f, ok := allocZeroed(mm.FlagUser | mm.FlagAnonymous)
		if !ok || !s.as.mapPage(addr, f, v.writable) {
			return false
		}
		s.demandFaults++
		return true
	}
	putString("guest: segmentation fault at ")
	putHex(rec.CR2, 1)
	putString(" (no reserved range covers it)\n")
	s.segv = true
	return false
}
