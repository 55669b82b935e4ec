package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// runPoison checks that the frames the boot info lists as bad (`vmm boot
// --bad-frames`) are POISONED and never handed out, then poisons one free
// and one allocated frame at run time (mm.Buddy.Poison, Linux's
// memory_failure) and checks that they leave circulation too.
func runPoison(bi *firmware.BootInfo) uint64 {
	bad := bi.BadFrames[:min(int(bi.NumBad), len(bi.BadFrames))]
	// 1. Every bad RAM frame reads POISONED. A listed frame that is not RAM
	// (a hole, beyond RAM) has nothing to poison and is only counted.
	var bootBad, notRAM uint64
	for i := range bad {
		if seenBefore(bad[:i], bad[i]) {
			continue
		}
		flags, err := kernelMM.FlagsOf(mm.FrameFromPFN(bad[i]))
		switch {
		case err == mm.ErrInvalidAddress || err == mm.ErrNone && flags == 0:
			notRAM++
		case err == mm.ErrNone && flags == mm.FlagPoisoned:
			bootBad++
		default:
			putString("poison: bad frame ")
			putHex(bad[i], 1)
			putString(" has flags ")
			putHex(uint64(flags), 1)
			putString(", want POISONED\n")
			return exitWorkloadFail
		}
	}
	tok := kernelMM.Lock()
	poisoned0 := kernelMM.State().PoisonedFrames
	kernelMM.Unlock(&tok)
	if poisoned0 != bootBad {
		putString("poison: allocator counts ")
		putDec(poisoned0)
		putString(" poisoned frames, boot info lists ")
		putDec(bootBad)
		putString("\n")
		return exitWorkloadFail
	}

	table, ok := newBlockTableFor(kernelMM.FreeFrames()) // the drains take free frames
	if !ok {
		putString("poison: no block for the frame table\n")
		return exitWorkloadFail
	}
	// 2. Take every free frame: none may be a bad frame.
	handedOut, ok := drainCheck(&table, bad, 0, 0)
	if !ok {
		return exitWorkloadFail
	}
	drained := uint64(table.n)
	if !checkAndCheckpoint("poison-drained", hintUnwatched) || !freeTable(&table) {
		return exitWorkloadFail
	}

	// 3. Poison a free frame (in the middle of the largest free block, so
	// the block is split around it) and an allocated frame.
	free0 := kernelMM.FreeFrames()
	tok = kernelMM.Lock()
	st := kernelMM.State()
	k := mm.MaxOrder
	for k > 0 && st.Heads[k] == mm.LinkNone {
		k--
	}
	freePFN := st.Heads[k]
	if k > 0 {
		half := uint64(1) << (k - 1)
		freePFN += half + min(5, half-1)
	}
	errFree := kernelMM.Poison(mm.FrameFromPFN(freePFN), &tok)
	used, errAlloc := kernelMM.Alloc(0, &tok)
	if errAlloc == mm.ErrNone {
		errAlloc = kernelMM.Poison(used, &tok)
	}
	poisoned := st.PoisonedFrames
	kernelMM.Unlock(&tok)
	if errFree != mm.ErrNone || errAlloc != mm.ErrNone {
		putString("poison: run-time Poison failed: free frame: ")
		putString(errFree.Error())
		putString(", allocated frame: ")
		putString(errAlloc.Error())
		putString("\n")
		return exitWorkloadFail
	}
	if kernelMM.FreeFrames() != free0-2 || poisoned != bootBad+2 {
		putString("poison: after two run-time poisons ")
		putDec(kernelMM.FreeFrames())
		putString(" free (want ")
		putDec(free0 - 2)
		putString("), ")
		putDec(poisoned)
		putString(" poisoned\n")
		return exitWorkloadFail
	}
	putString("poison: poisoned free frame ")
	putHex(freePFN, 1)
	putString(" (in an order-")
	putDec(uint64(k))
	putString(" block) and allocated frame ")
	putHex(used.PFN(), 1)
	putString("\n")

	// 4. Take everything again: neither the boot-time nor the run-time
	// poisoned frames come back.
	more, ok := drainCheck(&table, bad, freePFN, used.PFN())
	handedOut += more
	if !ok {
		return exitWorkloadFail
	}
	if table.n < len(table.slots) && uint64(table.n) != drained-2 { // (a full table stopped both drains early)
		putString("poison: second drain took ")
		putDec(uint64(table.n))
		putString(" frames, want ")
		putDec(drained - 2)
		putString("\n")
		return exitWorkloadFail
	}
	if !freeTable(&table) {
		return exitWorkloadFail
	}
	table.release()
	for _, p := range [2]uint64{freePFN, used.PFN()} {
		if f, err := kernelMM.FlagsOf(mm.FrameFromPFN(p)); err != mm.ErrNone || f != mm.FlagPoisoned {
			putString("poison: run-time poisoned frame lost its flag\n")
			return exitWorkloadFail
		}
	}
	report("poison.boot_bad", bootBad)
	report("poison.runtime", poisoned-bootBad)
	report("poison.handed_out_bad", handedOut)
	if notRAM > 0 {
		report("poison.bad_not_ram", notRAM)
	}
	putString("poison: ")
	putDec(bootBad)
	putString(" boot-time and 2 run-time poisoned frames, ")
	putDec(drained)
	putString(" frames handed out, none of them poisoned\n")
	if handedOut != 0 {
		return exitWorkloadFail
	}
	return exitOK
}

// drainCheck allocates order-0 frames into t until OutOfMemory (or t is
// full), counting frames that are in bad or equal to x or y.
func drainCheck(t *blockTable, bad []uint64, x, y uint64) (uint64, bool) {
	var hits uint64
	for t.n < len(t.slots) {
		tok := kernelMM.Lock()
		f, err := kernelMM.Alloc(0, &tok)
		kernelMM.Unlock(&tok)
		if err == mm.ErrOutOfMemory {
			break
		}
		if err != mm.ErrNone {
			putString("poison: alloc failed: ")
			putString(err.Error())
			putString("\n")
			return hits, false
		}
		t.slots[t.n] = f.StartAddress()
		t.n++
		p := f.PFN()
		if p == x && x != 0 || p == y && y != 0 || seenBefore(bad, p) {
			putString("poison: a poisoned frame was handed out: ")
			putHex(p, 1)
			putString("\n")
			hits++
		}
	}
	return hits, true
}

// freeTable frees every order-0 frame in t.
func freeTable(t *blockTable) bool {
	for t.n > 0 {
		t.n--
		if err := freeBlockErr(t.slots[t.n]); err != mm.ErrNone { // order 0: low bits clear
			putString("poison: free failed: ")
			putString(err.Error())
			putString("\n")
			return false
		}
		t.slots[t.n] = 0
	}
	return true
}

func seenBefore(list []uint64, v uint64) bool {
	for _, w := range list {
		if w == v {
			return true
		}
	}
	return false
}
