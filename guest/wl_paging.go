package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

const (
	pagingSpaces = 4
	pagingPages  = 96                    // private pages per space
	pagingShared = 16                    // pages of space 0 also mapped by every other space
	userBase     = 0x0000_0080_0000_0000 // PML4 entry 1
)

// runPaging builds several address spaces, maps private and shared pages
// (refcounted per mapping), unmaps some, checkpoints, tears down.
func runPaging(bi *firmware.BootInfo) uint64 {
	startFree := kernelMM.FreeFrames()
	var spaces [pagingSpaces]addressSpace
	var mapped, shared, unmapped uint64
	for s := range spaces {
		as, ok := newAddressSpace()
		if !ok {
			return exitWorkloadFail
		}
		spaces[s] = as
		for p := uint64(0); p < pagingPages; p++ {
			f, ok := allocZeroed(mm.FlagUser | mm.FlagAnonymous)
			if !ok || !spaces[s].mapPage(userBase+p*mm.PageSize, f, true) {
				return exitWorkloadFail
			}
			physWords(f, 1)[0] = uint64(s)<<32 | p // content to check later
			mapped++
		}
	}
	// Share space 0's first pages with every other space at a second address.
	for s := 1; s < pagingSpaces; s++ {
		for p := uint64(0); p < pagingShared; p++ {
			e := spaces[0].lookup(userBase + p*mm.PageSize)
			if e == nil || kernelMM.Get(mm.ContainingAddress(*e&pteAddr)) != mm.ErrNone ||
				!spaces[s].mapPage(2*userBase+p*mm.PageSize, *e&pteAddr, true) {
				return exitWorkloadFail
			}
			shared++
		}
	}
	if !checkAndCheckpoint("paging-mapped", 0) {
		return exitViolations
	}
	// Unmap every other private page of each space, and the shared pages
	// from space 0 itself: the others keep those frames alive.
	for s := range spaces {
		for p := uint64(1); p < pagingPages; p += 2 {
			if !spaces[s].unmapPage(userBase + p*mm.PageSize) {
				return exitWorkloadFail
			}
			unmapped++
		}
	}
	for p := uint64(0); p < pagingShared; p += 2 {
		if !spaces[0].unmapPage(userBase + p*mm.PageSize) {
			return exitWorkloadFail
		}
		unmapped++
	}
	// A shared frame must still hold what space 0 wrote.
	for p := uint64(0); p < pagingShared; p++ {
		e := spaces[1].lookup(2*userBase + p*mm.PageSize)
		if e == nil || physWords(*e&pteAddr, 1)[0] != p {
			putString("paging: shared frame lost its contents\n")
			return exitWorkloadFail
		}
	}
	if !checkAndCheckpoint("paging-unmapped", 0) {
		return exitViolations
	}
	for s := range spaces {
		if !spaces[s].destroy() {
			return exitWorkloadFail
		}
	}
	report("paging.spaces", pagingSpaces)
	report("paging.mapped", mapped)
	report("paging.shared", shared)
	report("paging.unmapped", unmapped)
	if kernelMM.FreeFrames() != startFree {
		putString("paging: frames leaked\n")
		return exitWorkloadFail
	}
	return exitOK
}
