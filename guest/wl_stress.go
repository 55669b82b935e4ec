package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// scratch is a kernel block a workload uses as an array (no heap here):
// the largest block available up to MaxOrder, so small guests work too.
type scratch struct {
	phys  uint64
	order uint8
	held  int // its declaration in holdings
}

// minScratchOrder is the smallest scratch block a workload accepts.
const minScratchOrder = 2

func allocScratch() (scratch, bool) { return allocScratchOrder(mm.MaxOrder) }

// allocScratchOrder allocates the smallest block of at least order want
// (up to MaxOrder) that is available, else the largest below it.
func allocScratchOrder(want uint8) (scratch, bool) {
	want = min(max(want, minScratchOrder), mm.MaxOrder)
	tok := kernelMM.Lock()
	s, ok := scratch{}, false
	try := func(order uint8) {
		if f, err := kernelMM.AllocFlags(order, &tok, mm.FlagKernel); err == mm.ErrNone {
			s, ok = scratch{phys: f.StartAddress(), order: order}, true
			s.held = hold(mm.Holding{Block: mm.HeldBlock(f, order)})
		}
	}
	for order := want; order <= mm.MaxOrder && !ok; order++ {
		try(order)
	}
	for order := want - 1; order >= minScratchOrder && !ok; order-- {
		try(order)
	}
	kernelMM.Unlock(&tok) // no defer: it needs the runtime
	return s, ok
}

// words is the block as a slice of uint64.
func (s scratch) words() []uint64 { return physWords(s.phys, (mm.PageSize<<s.order)/8) }

func (s scratch) release() {
	unhold(s.held)
	freeBlock(s.phys | uint64(s.order))
}

// declareTable declares the scratch block as a table of held blocks: an
// entry every stride words, whose last word is phys | order (0: empty).
func (s scratch) declareTable(stride uint64) {
	rehold(s.held, mm.Holding{Block: s.phys | uint64(s.order), Table: s.phys,
		Words: (mm.PageSize << s.order) / 8, Stride: stride})
}

// freeBlock frees the block recorded as physical address | order, the way
// the workloads' tables hold them.
func freeBlock(v uint64) bool { return freeBlockErr(v) == mm.ErrNone }

func freeBlockErr(v uint64) mm.AllocError {
	tok := kernelMM.Lock()
	err := kernelMM.Free(mm.ContainingAddress(v), uint8(v&0xfff), &tok)
	kernelMM.Unlock(&tok)
	return err
}

// blockTable is a scratch block used as an array of allocated blocks
// (physical address | order).
type blockTable struct {
	scratch
	slots []uint64
	n     int
}

// newBlockTable allocates the table, zeroed, and declares it to the host:
// a slot not in use holds 0.
func newBlockTable() (blockTable, bool) { return newBlockTableFor(^uint64(0)) }

// newBlockTableFor is newBlockTable with room for at least entries slots
// where a block that large is free (at most a MaxOrder block, 512 Ki
// slots). The table is zeroed, and each of its pages is a first touch of
// guest RAM (a KVM page fault of ~10 us on this host): a workload that can
// hold at most one block per free frame sizes it by the free frames, not
// at 4 MiB.
func newBlockTableFor(entries uint64) (blockTable, bool) {
	order := uint8(0)
	for order < mm.MaxOrder && mm.PageSize/8<<order < entries {
		order++
	}
	s, ok := allocScratchOrder(order)
	if !ok {
		return blockTable{}, false
	}
	t := blockTable{scratch: s, slots: s.words()}
	clear(t.slots)
	s.declareTable(1)
	return t, true
}

// runStress allocates blocks of random orders until memory is nearly
// exhausted (handling OutOfMemory), frees at random along the way, then
// frees everything and checks that every frame is free again.
func runStress(bi *firmware.BootInfo) uint64 {
	startFree := kernelMM.FreeFrames()
	table, ok := newBlockTableFor(startFree) // every live block holds a frame
	if !ok {
		return exitWorkloadFail
	}
	r := rng{s: 0x9e3779b97f4a7c15}
	var allocs, frees, ooms, peak uint64
	// Fill until 256 requests have failed for lack of memory: by then
	// every order the workload asks for has run dry at least once.
	for ooms < 256 && table.n < len(table.slots) {
		if table.n > 0 && r.below(4) == 0 { // a quarter of the steps free something
			i := int(r.below(uint64(table.n)))
			if !freeSlot(&table, i) {
				return exitWorkloadFail
			}
			frees++
			continue
		}
		order := uint8(0)
		if x := r.below(16); x >= 10 { // 10/16 order 0, the rest 1..6
			order = uint8(x - 9)
		}
		tok := kernelMM.Lock()
		f, err := kernelMM.AllocFlags(order, &tok, mm.FlagKernel)
		kernelMM.Unlock(&tok)
		if err == mm.ErrOutOfMemory {
			ooms++
			continue
		}
		if err != mm.ErrNone {
			putString("stress: alloc failed: ")
			putString(err.Error())
			putString("\n")
			return exitWorkloadFail
		}
		table.slots[table.n] = f.StartAddress() | uint64(order)
		table.n++
		allocs++
		peak = max(peak, startFree-kernelMM.FreeFrames())
	}
	putString("stress: memory nearly exhausted: ")
	putDec(kernelMM.FreeFrames())
	putString(" frames free\n")
	printBuddyInfo()
	if !checkAndCheckpoint("stress-full", hintUnwatched) {
		return exitViolations
	}
	for table.n > 0 {
		if !freeSlot(&table, int(r.below(uint64(table.n)))) {
			return exitWorkloadFail
		}
		frees++
	}
	table.release()
	report("stress.allocs", allocs)
	report("stress.frees", frees)
	report("stress.oom", ooms)
	report("stress.peak_frames", peak)
	if kernelMM.FreeFrames() != startFree {
		putString("stress: frames leaked: ")
		putDec(startFree - kernelMM.FreeFrames())
		putString("\n")
		return exitWorkloadFail
	}
	putString("stress: ")
	putDec(allocs)
	putString(" allocations, ")
	putDec(ooms)
	putString(" out-of-memory, every frame free again\n")
	return exitOK
}

// freeSlot frees table entry i and moves the last entry into its place.
func freeSlot(t *blockTable, i int) bool {
	if err := freeBlockErr(t.slots[i]); err != mm.ErrNone {
		putString("stress: free failed: ")
		putString(err.Error())
		putString("\n")
		return false
	}
	t.n--
	t.slots[i] = t.slots[t.n]
	t.slots[t.n] = 0
	return true
}
