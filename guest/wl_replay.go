package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// traceTable maps a trace PFN to the block our allocator returned for it:
// open addressing with linear probing in a kernel block (no maps here).
// A slot holds key = trace PFN + 1 (0 = empty) and value = phys | order.
type traceTable struct {
	scratch
	slots []uint64 // key, value pairs
	mask  uint64
	n     uint64
}

func newTraceTable() (traceTable, bool) {
	s, ok := allocScratch()
	if !ok {
		return traceTable{}, false
	}
	words := s.words()
	t := traceTable{scratch: s, slots: words, mask: uint64(len(words)/2 - 1)}
	clear(t.slots)
	s.declareTable(2) // key, phys | order
	return t, true
}

func (t *traceTable) full() bool { return t.n*2 > t.mask }

func hashPFN(pfn uint64) uint64 { return (pfn * 0x9e3779b97f4a7c15) >> 20 }

func (t *traceTable) put(pfn, value uint64) {
	for i := hashPFN(pfn) & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[2*i] == 0 || t.slots[2*i] == pfn+1 {
			if t.slots[2*i] == 0 {
				t.n++
			}
			t.slots[2*i], t.slots[2*i+1] = pfn+1, value
			return
		}
	}
}

// take removes pfn and returns its value (backward-shift deletion keeps
// probe chains intact without tombstones).
func (t *traceTable) take(pfn uint64) (uint64, bool) {
	if pfn+1 == 0 { // would match an empty slot
		return 0, false
	}
	i := hashPFN(pfn) & t.mask
	for t.slots[2*i] != pfn+1 {
		if t.slots[2*i] == 0 {
			return 0, false
		}
		i = (i + 1) & t.mask
	}
	v := t.slots[2*i+1]
	t.n--
	for j := (i + 1) & t.mask; t.slots[2*j] != 0; j = (j + 1) & t.mask {
		home := hashPFN(t.slots[2*j]-1) & t.mask
		// Move j back to i if i lies cyclically in [home, j).
		if (j-home)&t.mask >= (j-i)&t.mask {
			t.slots[2*i], t.slots[2*i+1] = t.slots[2*j], t.slots[2*j+1]
			i = j
		}
	}
	t.slots[2*i], t.slots[2*i+1] = 0, 0
	return v, true
}

// runReplay replays the page-allocation trace the VMM loaded into guest
// RAM (vmm boot --trace): every alloc asks our buddy allocator for a block
// of that order, every free returns the block the trace PFN got.
func runReplay(bi *firmware.BootInfo) uint64 {
	if bi.TraceSize == 0 {
		putString("replay: no trace loaded (vmm boot --trace FILE); skipped\n")
		return exitOK
	}
	startFree := kernelMM.FreeFrames()
	table, ok := newTraceTable()
	if !ok {
		return exitWorkloadFail
	}
	trace := physBytes(bi.TraceBase, int(bi.TraceSize))
	var served, failed, fragmented, tableFull, frees, skipped, bad, invalid uint64
	for len(trace) > 0 {
		op, pfn, order, rest, ok := mm.ParseTraceLine(trace)
		trace = rest
		switch {
		case !ok:
			bad++
		case op == '#':
		case !mm.ValidTraceRecord(pfn, order):
			// The table's keys are pfn+1: an impossible PFN (2^64-1 would
			// wrap to the empty key) never reaches it.
			invalid++
		case op == 'a':
			if table.full() {
				tableFull++
				continue
			}
			tok := kernelMM.Lock()
			f, err := kernelMM.AllocFlags(order, &tok, mm.FlagKernel)
			kernelMM.Unlock(&tok)
			if err != mm.ErrNone {
				failed++
				if kernelMM.FreeFrames() >= 1<<order {
					fragmented++ // enough free frames, no contiguous block
				}
				continue
			}
			if old, dup := table.take(pfn); dup { // the trace re-allocated a PFN it never freed
				freeBlock(old)
			}
			table.put(pfn, f.StartAddress()|uint64(order))
			served++
		case op == 'f':
			v, ok := table.take(pfn)
			if !ok {
				skipped++
				continue
			}
			if !freeBlock(v) {
				return exitWorkloadFail
			}
			frees++
		}
	}
	putString("replay: served ")
	putDec(served)
	putString(", failed ")
	putDec(failed)
	putString(" (")
	putDec(fragmented)
	putString(" of them for lack of a contiguous block), freed ")
	putDec(frees)
	putString(", skipped ")
	putDec(skipped)
	putString(" frees of unknown pages, ")
	putDec(bad)
	putString(" malformed lines, ")
	putDec(invalid)
	putString(" impossible frame numbers or orders\n")
	printBuddyInfo()
	report("replay.served", served)
	report("replay.failed", failed)
	report("replay.failed_fragmented", fragmented)
	report("replay.table_full", tableFull)
	report("replay.freed", frees)
	report("replay.skipped_frees", skipped)
	report("replay.malformed", bad)
	report("replay.invalid", invalid)
	st := kernelMM.State()
	for k := 0; k < mm.NumOrders; k++ {
		report(orderKeys[k], st.Counts[k])
	}
	if !checkAndCheckpoint("replay-end", hintUnwatched) {
		return exitViolations
	}
	for i := uint64(0); i <= table.mask; i++ {
		if table.slots[2*i] != 0 && !freeBlock(table.slots[2*i+1]) {
			return exitWorkloadFail
		}
	}
	table.release()
	if kernelMM.FreeFrames() != startFree {
		putString("replay: frames leaked\n")
		return exitWorkloadFail
	}
	return exitOK
}

// orderKeys are constant report keys (no string building in the guest).
var orderKeys = [mm.NumOrders]string{"replay.free_blocks.order0", "replay.free_blocks.order1",
	"replay.free_blocks.order2", "replay.free_blocks.order3", "replay.free_blocks.order4",
	"replay.free_blocks.order5", "replay.free_blocks.order6", "replay.free_blocks.order7",
	"replay.free_blocks.order8", "replay.free_blocks.order9", "replay.free_blocks.order10"}
