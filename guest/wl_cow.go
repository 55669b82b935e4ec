package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

const (
	cowPages       = 32 // anonymous pages of the parent
	cowDLLPages    = 4  // shared library pages (never COW)
	cowChildWrite  = 16 // pages the child writes
	cowParentWrite = 8  // of those, pages the parent writes afterwards
	dllBase        = userBase + 0x1000_0000
)

// cowStats counts what the software write-fault handler did.
type cowStats struct{ faults, copies, takeovers uint64 }

// cowFork clones parent into a new space: anonymous frames become COW and
// read-only in both, DLL frames are shared read-only; every mapping takes
// a reference.
func cowFork(parent *addressSpace, vas []uint64) (addressSpace, bool) {
	child, ok := newAddressSpace()
	if !ok {
		return child, false
	}
	for _, va := range vas {
		e := parent.lookup(va)
		if e == nil {
			return child, false
		}
		frame := mm.ContainingAddress(*e & pteAddr)
		flags, _ := kernelMM.FlagsOf(frame)
		if flags&mm.FlagDLL == 0 {
			tok := kernelMM.Lock()
			err := kernelMM.MarkShared(frame, 0, mm.FlagCOW, &tok)
			kernelMM.Unlock(&tok)
			if err != mm.ErrNone {
				return child, false
			}
			*e &^= pteW
		}
		if kernelMM.Get(frame) != mm.ErrNone || !child.mapPage(va, frame.StartAddress(), false) {
			return child, false
		}
	}
	return child, true
}

// cowFault resolves a write fault on a COW mapping.
func cowFault(e *uint64, st *cowStats) bool {
	st.faults++
	old := mm.ContainingAddress(*e & pteAddr)
	flags, _ := kernelMM.FlagsOf(old)
	if flags&mm.FlagCOW == 0 {
		return false // a write to a read-only non-COW page: a real protection fault
	}
	if ref, _ := kernelMM.Refcount(old); ref == 1 {
		// Last reference: take the frame over.
		tok := kernelMM.Lock()
		err := kernelMM.ClearShared(old, 0, mm.FlagCOW, &tok)
		kernelMM.Unlock(&tok)
		*e |= pteW
		st.takeovers++
		return err == mm.ErrNone
	}
	nf, ok := allocZeroed(mm.FlagUser | mm.FlagAnonymous)
	if !ok {
		return false
	}
	*physPage(nf) = *physPage(old.StartAddress())
	*e = nf | pteP | pteU | pteW
	st.copies++
	return putFrame(old.StartAddress())
}

// writeIn loads as into CR3 and stores vals[p] to page p for p < n: every
// store to a COW page faults, and the page-fault handler copies the frame
// or takes it over. It returns the number of COW faults taken.
func writeIn(s *spaceState, as addressSpace, vas []uint64, n int, base uint64) (uint64, bool) {
	s.as = as
	before := s.cowFaults
	if !switchTo(s, true) {
		return 0, false
	}
	for p := 0; p < n; p++ {
		*(*uint64)(vptr(uintptr(vas[p]))) = base + uint64(p)
	}
	return s.cowFaults - before, switchTo(s, false)
}

// runCOW forks an address space; the writes that follow fault in hardware
// and the page-fault handler resolves them.
func runCOW(bi *firmware.BootInfo) uint64 {
	startFree := kernelMM.FreeFrames()
	parent, ok := newAddressSpace()
	if !ok {
		return exitWorkloadFail
	}
	var vas [cowPages + cowDLLPages]uint64
	for p := 0; p < cowPages; p++ {
		f, ok := allocZeroed(mm.FlagUser | mm.FlagAnonymous)
		vas[p] = userBase + uint64(p)*mm.PageSize
		if !ok || !parent.mapPage(vas[p], f, true) {
			return exitWorkloadFail
		}
		physWords(f, 1)[0] = 1000 + uint64(p)
	}
	for p := 0; p < cowDLLPages; p++ {
		f, ok := allocZeroed(mm.FlagUser | mm.FlagDLL)
		vas[cowPages+p] = dllBase + uint64(p)*mm.PageSize
		if !ok || !parent.mapPage(vas[cowPages+p], f, false) {
			return exitWorkloadFail
		}
	}
	child, ok := cowFork(&parent, vas[:])
	if !ok {
		putString("cow: fork failed\n")
		return exitWorkloadFail
	}
	if !checkAndCheckpoint("cow-forked", 0) {
		return exitViolations
	}
	s := userSpace()
	childFaults, ok := writeIn(s, child, vas[:], cowChildWrite, 2000)
	if !ok {
		return exitWorkloadFail
	}
	parentFaults, ok := writeIn(s, parent, vas[:], cowParentWrite, 3000)
	if !ok {
		return exitWorkloadFail
	}
	st := s.cow
	// The parent's unwritten pages still read the pre-fork values; the
	// child's written pages read what the child wrote.
	for p := 0; p < cowPages; p++ {
		pe, ce := parent.lookup(vas[p]), child.lookup(vas[p])
		want := uint64(1000 + p)
		if p < cowParentWrite {
			want = uint64(3000 + p)
		}
		childWant := uint64(1000 + p)
		if p < cowChildWrite {
			childWant = uint64(2000 + p)
		}
		if physWords(*pe&pteAddr, 1)[0] != want || physWords(*ce&pteAddr, 1)[0] != childWant {
			putString("cow: a write leaked between address spaces\n")
			return exitWorkloadFail
		}
	}
	if !checkAndCheckpoint("cow-written", 0) {
		return exitViolations
	}
	report("cow.child_faults", childFaults)
	report("cow.parent_faults", parentFaults)
	report("cow.faults", st.faults)
	report("cow.copies", st.copies)
	report("cow.takeovers", st.takeovers)
	report("cow.dll_shared", cowDLLPages)
	if !child.destroy() || !parent.destroy() || kernelMM.FreeFrames() != startFree {
		putString("cow: teardown leaked frames\n")
		return exitWorkloadFail
	}
	return exitOK
}
