package verify

import (
	"encoding/binary"
	"math/rand"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
)

// busyGuest is a real allocator with blocks of several orders allocated
// (kernel and user flavours), some freed again, and two CPUs' caches
// holding frames.
func busyGuest(t *testing.T) (flatMemory, Input) {
	t.Helper()
	return busyGuestFrom(t, mm.PageSize)
}

// busyGuestFrom is busyGuest with RAM from base.
func busyGuestFrom(t *testing.T, base uint64) (flatMemory, Input) {
	t.Helper()
	mem, b, in := newGuestFrom(t, 4096, base)
	if err := b.SetCPUs(2); err != mm.ErrNone {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	var held []mm.PhysFrame
	var orders []uint8
	tok := b.Lock()
	for i := 0; i < 200; i++ {
		o := uint8(r.Intn(4))
		flags := []uint32{mm.FlagKernel, mm.FlagUser | mm.FlagAnonymous, mm.FlagUser | mm.FlagDLL}[r.Intn(3)]
		f, err := b.AllocFlags(o, &tok, flags)
		if err != mm.ErrNone {
			t.Fatal(err)
		}
		held, orders = append(held, f), append(orders, o)
	}
	for i := 0; i < len(held); i += 3 {
		if err := b.Free(held[i], orders[i], &tok); err != mm.ErrNone {
			t.Fatal(err)
		}
	}
	b.Unlock(&tok)
	for cpu := 0; cpu < 2; cpu++ {
		for i := 0; i < 5+cpu*7; i++ {
			f, err := b.AllocLocal(cpu, mm.FlagKernel)
			if err != mm.ErrNone {
				t.Fatal(err)
			}
			if i%2 == 0 {
				b.FreeLocal(cpu, f)
			}
		}
	}
	return mem, in
}

// counts runs both checkers over mem.
func counts(t *testing.T, mem flatMemory, in Input) (shared, spec int, specOut []Violation) {
	t.Helper()
	v, err := NewView(mem, in)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]mm.Violation, 16)
	shared = mm.Check(&v, out)
	specOut, spec = checkSpec(&v, nil, nil)
	return shared, spec, specOut
}

// TestSpecAgreesWithCheck: the host's independent check and the shared
// checker agree on a clean allocator and on thousands of single
// corruptions of records and allocator state: each finds a violation
// exactly when the other does, so neither can silently lose a rule.
func TestSpecAgreesWithCheck(t *testing.T) {
	mem, in := busyGuest(t)
	if a, b, out := counts(t, mem, in); a != 0 || b != 0 {
		t.Fatalf("clean state: shared checker %d, spec check %d violations: %v", a, b, out)
	}
	r := rand.New(rand.NewSource(7))
	const rounds = 4000
	detected := 0
	for i := 0; i < rounds; i++ {
		what, pfn, undo := corruptOnce(r, mem, in)
		a, b, out := counts(t, mem, in)
		undo()
		if (a == 0) != (b == 0) {
			t.Fatalf("round %d, %s of frame %#x: shared checker %d, spec check %d violations: %v", i, what, pfn, a, b, out)
		}
		if a != 0 {
			detected++
		}
	}
	if detected < rounds/2 {
		t.Fatalf("only %d of %d corruptions were visible: the generator is too tame", detected, rounds)
	}
	t.Logf("%d of %d corruptions detected by both checkers", detected, rounds)
}

// TestSpecBadHeadOnce: the host's own check also reports a bad block head
// once, saying how many frames it covers, and still reports a bug on one
// of its tails and one elsewhere; a list cut at the bad head is reported
// at the cut, not again at every block behind it.
func TestSpecBadHeadOnce(t *testing.T) {
	mem, _, in := newGuest(t, 8192) // free top-order blocks at 1024, 2048, ... 7168; 7168 heads the list
	le := binary.LittleEndian
	rec := func(pfn uint64) []byte { return mem[in.MetaPhys+pfn*mm.FrameMetaSize:][:mm.FrameMetaSize] }
	for _, p := range []uint64{1024, 2048, 3072, 5120} {
		if r := rec(p); le.Uint32(r[mm.OffFlags:]) != mm.FlagFree || r[mm.OffOrder] != mm.MaxOrder {
			t.Fatalf("frame %d is not a free top-order head", p)
		}
	}
	le.PutUint32(rec(1024)[mm.OffFlags:], mm.FlagAllocated) // no owner: illegal
	le.PutUint32(rec(1030)[mm.OffRefcount:], 5)             // a tail's own bug
	le.PutUint32(rec(5120)[mm.OffRefcount:], 7)             // an unrelated bug elsewhere
	rec(3072)[mm.OffOrder] = 9                              // cuts the list (2048 behind it); 3584..4095: tails outside a block
	v, err := NewView(mem, in)
	if err != nil {
		t.Fatal(err)
	}
	out, total := checkSpec(&v, nil, nil)
	find := func(pfn uint64, kind string) Violation {
		for _, x := range out {
			if x.PFN == pfn && x.Kind == kind {
				return x
			}
		}
		t.Errorf("no %q at %d in %v", kind, pfn, out)
		return Violation{}
	}
	if x := find(1024, "spec: illegal flag combination"); !strings.Contains(x.Detail, "covers 1024 frames") {
		t.Errorf("bad head's detail: %q", x.Detail)
	}
	if x := find(3584, "spec: tail outside any block"); !strings.Contains(x.Detail, "covers 512 frames") {
		t.Errorf("first orphan tail's detail: %q", x.Detail)
	}
	find(1030, "spec: block tail holds references")
	find(5120, "spec: FREE frame holds references")
	for _, x := range out {
		if x.Scope == "" && x.PFN != 1024 && x.PFN != 1030 && x.PFN != 3072 && x.PFN != 5120 && x.PFN != 3584 {
			t.Errorf("a consequence reported on its own: %v", x)
		}
	}
	if total != len(out) || total > 10 {
		t.Errorf("%d violations (%d listed): %v", total, len(out), out)
	}
	// The report merges both checkers: the same frames, once each.
	r, err := Verify(mem, in)
	if err != nil {
		t.Fatal(err)
	}
	if r.TotalViolations > 12 {
		t.Errorf("report: %d violations: %v", r.TotalViolations, r.Violations)
	}
}

// corruptOnce damages one random field of a random frame's record or of
// the allocator state in mem; undo restores it.
func corruptOnce(r *rand.Rand, mem flatMemory, in Input) (what string, pfn uint64, undo func()) {
	pfn = uint64(r.Intn(int(in.FrameCount)))
	return corruptAt(r, mem, in, pfn)
}

// corruptAt is corruptOnce with the record of frame pfn.
func corruptAt(r *rand.Rand, mem flatMemory, in Input, pfn uint64) (what string, _ uint64, undo func()) {
	le := binary.LittleEndian
	flagChoices := []uint32{0, mm.FlagFree, mm.FlagPoisoned, mm.FlagPerCPU, mm.FlagAllocated | mm.FlagKernel,
		mm.FlagAllocated | mm.FlagUser, mm.FlagAllocated | mm.FlagUser | mm.FlagAnonymous, mm.FlagAllocated | mm.FlagUser | mm.FlagDLL,
		mm.FlagAllocated | mm.FlagUser | mm.FlagCOW | mm.FlagDLL, mm.FlagAllocated | mm.FlagKernel | mm.FlagCOW, 1 << 20}
	pfnChoice := func() uint64 {
		switch r.Intn(4) {
		case 0:
			return mm.LinkNone
		case 1:
			return uint64(r.Intn(1 << 20))
		}
		return uint64(r.Intn(int(in.FrameCount)))
	}
	rec := mem[in.MetaPhys+pfn*mm.FrameMetaSize:][:mm.FrameMetaSize]
	st := mem[in.StatePhys:][:mm.StateSize]
	saveRec, saveSt := append([]byte(nil), rec...), append([]byte(nil), st...)
	undo = func() { copy(rec, saveRec); copy(st, saveSt) }
	switch r.Intn(10) {
	case 0, 1:
		what = "flags"
		le.PutUint32(rec[mm.OffFlags:], flagChoices[r.Intn(len(flagChoices))])
	case 2:
		what = "order"
		rec[mm.OffOrder] = []uint8{0, 1, 2, 3, 5, 10, 11, mm.OrderTail}[r.Intn(8)]
	case 3:
		what = "reserved"
		rec[mm.OffOrder+1+r.Intn(3)] = 1
	case 4:
		what = "refcount"
		le.PutUint32(rec[mm.OffRefcount:], uint32(r.Intn(3)))
	case 5:
		what = "next"
		le.PutUint64(rec[mm.OffNext:], pfnChoice())
	case 6:
		what = "prev"
		le.PutUint64(rec[mm.OffPrev:], pfnChoice())
	case 7:
		what = "list head"
		le.PutUint64(st[mm.StateOffHeads+8*r.Intn(mm.NumOrders):], pfnChoice())
	case 8:
		what = "counts"
		off := []int{mm.StateOffCounts + 8*r.Intn(mm.NumOrders), mm.StateOffFreeFrames, mm.StateOffPCPFrames, mm.StateOffPoisonedFrames}[r.Intn(4)]
		le.PutUint64(st[off:], le.Uint64(st[off:])+uint64(1-2*r.Intn(2)))
	case 9:
		what = "per-CPU cache"
		c := st[mm.StateOffPCP+mm.CacheSize*r.Intn(3):]
		switch r.Intn(4) {
		case 0:
			le.PutUint32(c[mm.CacheOffCount:], uint32(r.Intn(mm.PCPCapacity+2)))
		case 1:
			le.PutUint32(c[mm.CacheOffHead:], uint32(r.Intn(mm.PCPCapacity+2)))
		case 2:
			le.PutUint64(c[mm.CacheOffPFN+8*r.Intn(mm.PCPCapacity):], pfnChoice())
		case 3:
			le.PutUint32(st[mm.StateOffNumCPUs:], uint32(r.Intn(4)))
		}
	}
	return what, pfn, undo
}
