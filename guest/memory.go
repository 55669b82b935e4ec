package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// Checkpoint hints: hintUnwatched goes with a checkpoint before an
// interval that rewrites most of the frame metadata (the host does not
// watch it with the dirty log, firmware.CheckpointUnwatched), hintLast with
// the last checkpoint before the exit (firmware.CheckpointLast).
const (
	hintUnwatched = firmware.CheckpointUnwatched
	hintLast      = firmware.CheckpointLast
)

// The kernel's memory-management state. Zero-initialised globals are fine
// in the guest (they live in BSS); mm keeps its real state in guest RAM.
// Nothing that holds Go pointers may be stored into a global: that store
// would go through the write barrier (TestGuestNeverCallsTheRuntimeAllocator).
var (
	kernelMM   mm.Buddy
	ramRanges  [firmware.MaxMemRanges]mm.Range
	inUse      [firmware.MaxInUse]mm.Range
	badFrames  [firmware.MaxBadFrames]uint64
	violations [32]mm.Violation
)

// mmInit builds the frame metadata and buddy allocator from the boot info
// and registers them with the VMM for host verification.
func mmInit(bi *firmware.BootInfo) bool {
	nRAM := 0
	for i := 0; i < min(int(bi.NumMem), len(bi.Mem)); i++ {
		if r := &bi.Mem[i]; r.Kind == firmware.MemRAM {
			ramRanges[nRAM] = mm.Range{Base: r.Base, Size: r.Size}
			nRAM++
		}
	}
	nUse := min(int(bi.NumInUse), len(bi.InUse))
	for i := 0; i < nUse; i++ {
		inUse[i] = mm.Range{Base: bi.InUse[i].Base, Size: bi.InUse[i].Size}
	}
	nBad := min(int(bi.NumBad), len(bi.BadFrames))
	for i := 0; i < nBad; i++ {
		badFrames[i] = bi.BadFrames[i] << mm.PageShift
	}
	var bootAlloc mm.BootAllocator // holds slices: stack only, see above
	if err := kernelMM.Setup(firmware.PhysMapBase, &bootAlloc, ramRanges[:nRAM], inUse[:nUse], badFrames[:nBad]); err != mm.ErrNone {
		putString("mm: setup failed: ")
		putString(err.Error())
		putString("\n")
		return false
	}
	if err := kernelMM.SetCPUs(int(bi.NumCPUs)); err != mm.ErrNone {
		putString("mm: per-CPU caches: ")
		putString(err.Error())
		putString("\n")
		return false
	}
	setRelax(&kernelMM, relax)
	setIRQHooks(&kernelMM, irqSave, irqRestore)
	metaPhys, frames, statePhys := kernelMM.Registration()
	if ret := hypercall(firmware.HCRegisterMeta, metaPhys, frames, uint64(mm.LayoutVersion), statePhys); ret != 0 {
		putString("mm: the VMM refused the metadata registration: ")
		putHex(ret, 1)
		putString("\n")
		return false
	}
	if !registerHoldings() {
		putString("mm: the VMM refused the holdings declaration\n")
		return false
	}
	st := kernelMM.State()
	putString("mm: ")
	putDec(frames)
	putString(" frame records at ")
	putHex(metaPhys, 1)
	putString(" (")
	putDec(frames * mm.FrameMetaSize >> 10)
	putString(" KiB), ")
	putDec(st.RAMFrames)
	putString(" RAM frames, ")
	putDec(st.FreeFrames)
	putString(" free, ")
	putDec(st.PoisonedFrames)
	putString(" poisoned\n")
	printBuddyInfo()
	return true
}

// printBuddyInfo prints free blocks per order like /proc/buddyinfo.
func printBuddyInfo() {
	st := kernelMM.State()
	putString("buddyinfo: Node 0, zone   Normal")
	for k := 0; k < mm.NumOrders; k++ {
		putString(" ")
		putDec(st.Counts[k])
	}
	putString("\n")
}

// checkAndCheckpoint runs the guest's own invariant checker, then asks the
// host to verify; it fails if either finds a violation. flags are 0 or
// checkpoint hints.
func checkAndCheckpoint(label string, flags uint64) bool {
	tok := kernelMM.Lock()
	n := kernelMM.Check(violations[:])
	kernelMM.Unlock(&tok)
	for i := 0; i < min(n, len(violations)); i++ {
		v := &violations[i]
		putString("mm check: frame ")
		putHex(v.PFN, 1)
		putString(": ")
		putString(v.Kind.String())
		putString(" expected ")
		putHex(v.Expected, 1)
		putString(" actual ")
		putHex(v.Actual, 1)
		if v.Covers > 0 { // as the host words it (verify.coversDetail)
			putString(" (bad block head: covers ")
			putDec(v.Covers + 1)
			putString(" frames; its ")
			putDec(v.Covers)
			putString(" tails are not reported one by one)")
		}
		putString("\n")
	}
	hostViolations := checkpoint(label, flags)
	if n != 0 || hostViolations != 0 {
		putString("checkpoint ")
		putString(label)
		putString(": guest found ")
		putDec(uint64(n))
		putString(", host found ")
		putDec(hostViolations)
		putString(" violations\n")
		return false
	}
	return true
}
