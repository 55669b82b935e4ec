package mm

import (
	"bytes"
	"math/rand"
	"testing"
)

func (e *testEnv) poison(pfn uint64) AllocError {
	tok := e.b.Lock()
	err := e.b.Poison(FrameFromPFN(pfn), &tok)
	e.b.Unlock(&tok)
	return err
}

// drain allocates order-0 frames until OutOfMemory and returns them.
func (e *testEnv) drain(tb testing.TB) []PhysFrame {
	tb.Helper()
	var out []PhysFrame
	tok := e.b.Lock()
	defer e.b.Unlock(&tok)
	for {
		f, err := e.b.Alloc(0, &tok)
		if err == ErrOutOfMemory {
			return out
		}
		if err != ErrNone {
			tb.Fatalf("Alloc: %v", err)
		}
		out = append(out, f)
	}
}

func (e *testEnv) freeAll(tb testing.TB, fs []PhysFrame) {
	tb.Helper()
	tok := e.b.Lock()
	defer e.b.Unlock(&tok)
	for _, f := range fs {
		if err := e.b.Free(f, 0, &tok); err != ErrNone {
			tb.Fatalf("Free %#x: %v", f.PFN(), err)
		}
	}
}

func (e *testEnv) wantPoisoned(tb testing.TB, pfn uint64) {
	tb.Helper()
	raw := e.a.rawMeta(e.b, pfn)
	if le64(raw[OffNext:]) != LinkNone || le64(raw[OffPrev:]) != LinkNone ||
		le32(raw[OffFlags:]) != FlagPoisoned || le32(raw[OffOrder:]) != 0 || le32(raw[OffRefcount:]) != 0 {
		tb.Fatalf("pfn %#x: record %x is not POISONED/order 0/refcount 0/links none", pfn, raw[:28])
	}
}

// neverHandedOut drains the allocator, checks no frame in bad comes back,
// frees everything and checks the allocator is clean again.
func (e *testEnv) neverHandedOut(tb testing.TB, bad ...uint64) {
	tb.Helper()
	before := e.b.FreeFrames()
	fs := e.drain(tb)
	if uint64(len(fs)) != before {
		tb.Fatalf("drained %d frames, %d were free", len(fs), before)
	}
	for _, f := range fs {
		for _, p := range bad {
			if f.PFN() == p {
				tb.Fatalf("poisoned frame %#x handed out", p)
			}
		}
	}
	e.check(tb)
	e.freeAll(tb, fs)
	e.check(tb)
	if e.b.FreeFrames() != before {
		tb.Fatalf("free frames %d after drain+free, want %d", e.b.FreeFrames(), before)
	}
	for _, p := range bad {
		e.wantPoisoned(tb, p) // never merged into a free block
	}
}

func TestPoisonFreeFrameSplitsBlock(t *testing.T) {
	// 4096 frames: the first 16 in use, then the metadata and the state;
	// 1024, 2048 and 3072 head free order-10 blocks.
	for _, pfn := range []uint64{2048, 2049, 2500, 3071, 4095, 1024 + 511, 1023} {
		e := simpleEnv(t, 4096)
		st := e.b.State()
		free0, pois0 := st.FreeFrames, st.PoisonedFrames
		if err := e.poison(pfn); err != ErrNone {
			t.Fatalf("Poison(%#x): %v", pfn, err)
		}
		e.check(t)
		e.wantPoisoned(t, pfn)
		if st.FreeFrames != free0-1 || st.PoisonedFrames != pois0+1 {
			t.Fatalf("pfn %#x: free %d poisoned %d, want %d %d", pfn, st.FreeFrames, st.PoisonedFrames, free0-1, pois0+1)
		}
		if f, _ := e.b.FlagsOf(FrameFromPFN(pfn)); f != FlagPoisoned {
			t.Fatalf("FlagsOf = %#x", f)
		}
		e.neverHandedOut(t, pfn)
		// Poisoning twice is refused and changes nothing.
		snap := e.snapshot()
		if err := e.poison(pfn); err != ErrInvalidAddress {
			t.Fatalf("second Poison: %v", err)
		}
		if !bytes.Equal(snap, e.snapshot()) {
			t.Fatal("refused Poison changed the allocator")
		}
	}
}

func TestPoisonSplitIsMaximal(t *testing.T) {
	// Poisoning frame 2048+5 of the order-10 block at 2048 leaves the
	// siblings along its path: 2048/o2, 2052/o0, 2054/o1, 2056/o3, 2064/o4,
	// ..., 2560/o9. Exactly as carve would do for the two runs.
	e := simpleEnv(t, 4096)
	if err := e.poison(2048 + 5); err != ErrNone {
		t.Fatal(err)
	}
	e.check(t)
	want := map[uint64]uint8{2048: 2, 2052: 0, 2054: 1, 2056: 3, 2064: 4, 2080: 5, 2112: 6, 2176: 7, 2304: 8, 2560: 9}
	for pfn, k := range want {
		raw := e.a.rawMeta(e.b, pfn)
		if le32(raw[OffFlags:]) != FlagFree || raw[OffOrder] != k {
			t.Errorf("pfn %d: flags %#x order %d, want FREE order %d", pfn, le32(raw[OffFlags:]), raw[OffOrder], k)
		}
	}
}

func TestPoisonAllocatedFrame(t *testing.T) {
	e := simpleEnv(t, 4096)
	f := e.alloc(t, 0)
	st := e.b.State()
	free0 := st.FreeFrames
	if err := e.poison(f.PFN()); err != ErrNone {
		t.Fatalf("Poison allocated: %v", err)
	}
	e.check(t)
	e.wantPoisoned(t, f.PFN())
	if st.FreeFrames != free0 || st.PoisonedFrames != 1 {
		t.Fatalf("free %d (want %d) poisoned %d", st.FreeFrames, free0, st.PoisonedFrames)
	}
	// The caller's reference is gone: Free, Put and Get all refuse it.
	if err := e.free(f, 0); err != ErrInvalidAddress {
		t.Errorf("Free after Poison: %v", err)
	}
	if err := e.b.Get(f); err != ErrInvalidAddress {
		t.Errorf("Get after Poison: %v", err)
	}
	tok := e.b.Lock()
	if _, err := e.b.Put(f, 0, &tok); err != ErrInvalidAddress {
		t.Errorf("Put after Poison: %v", err)
	}
	e.b.Unlock(&tok)
	e.check(t)
	e.neverHandedOut(t, f.PFN())
}

func TestPoisonUserFrame(t *testing.T) {
	e := simpleEnv(t, 1024)
	tok := e.b.Lock()
	f, err := e.b.AllocFlags(0, &tok, FlagUser|FlagAnonymous)
	if err != ErrNone {
		t.Fatal(err)
	}
	if err := e.b.Poison(f, &tok); err != ErrNone {
		t.Fatalf("Poison USER frame: %v", err)
	}
	e.b.Unlock(&tok)
	e.check(t)
	e.wantPoisoned(t, f.PFN())
}

func TestPoisonRefusals(t *testing.T) {
	const top = 4096 * PageSize
	ram := []Range{{0, 0x9f000}, {0x100000, top - 0x100000}}
	e := newEnv(t, top, ram, []Range{{0, 16 * PageSize}}, []uint64{0x200 * PageSize})
	e.check(t)
	b := e.b
	mp, n, sp := b.Registration()

	o1 := e.alloc(t, 1) // head and tail of an order-1 block
	shared := e.alloc(t, 0)
	if err := b.Get(shared); err != ErrNone { // refcount 2
		t.Fatal(err)
	}
	cases := []struct {
		name string
		pfn  uint64
	}{
		{"boot-time poisoned", 0x200},
		{"hole (not RAM)", 0xa0},
		{"beyond the array", n},
		{"far beyond", 1 << 40},
		{"metadata first frame", mp >> PageShift},
		{"metadata last frame", (mp + n*FrameMetaSize - 1) >> PageShift},
		{"state first frame", sp >> PageShift},
		{"state last frame", (sp + StateSize - 1) >> PageShift},
		{"order-1 head", o1.PFN()},
		{"order-1 tail", o1.PFN() + 1},
		{"refcount 2", shared.PFN()},
	}
	for _, c := range cases {
		snap := e.snapshot()
		tok := b.Lock()
		err := b.Poison(FrameFromPFN(c.pfn), &tok)
		b.Unlock(&tok)
		if err != ErrInvalidAddress {
			t.Errorf("%s (pfn %#x): %v, want ErrInvalidAddress", c.name, c.pfn, err)
		}
		if !bytes.Equal(snap, e.snapshot()) {
			t.Errorf("%s: refused Poison changed the allocator", c.name)
		}
	}
	// No token, a stale token.
	snap := e.snapshot()
	if err := b.Poison(FrameFromPFN(0x300), nil); err != ErrNotLocked {
		t.Errorf("nil token: %v", err)
	}
	tok := b.Lock()
	b.Unlock(&tok)
	if err := b.Poison(FrameFromPFN(0x300), &tok); err != ErrNotLocked {
		t.Errorf("stale token: %v", err)
	}
	if !bytes.Equal(snap, e.snapshot()) {
		t.Error("refused Poison changed the allocator")
	}
	e.check(t)
	// After the last Put the shared frame can be poisoned.
	tok = b.Lock()
	if freed, err := b.Put(shared, 0, &tok); freed || err != ErrNone {
		t.Fatalf("Put: %v %v", freed, err)
	}
	if err := b.Poison(shared, &tok); err != ErrNone {
		t.Errorf("Poison after Put to 1: %v", err)
	}
	b.Unlock(&tok)
	e.check(t)
}

// TestPoisonRandom poisons random free and allocated frames among random
// allocations, checking after every step, then verifies none of them is
// ever handed out or merged.
func TestPoisonRandom(t *testing.T) {
	e := simpleEnv(t, 8192)
	b := e.b
	r := rand.New(rand.NewSource(1))
	type blk struct {
		f PhysFrame
		o uint8
	}
	var held []blk
	var poisoned []uint64
	for step := 0; step < 3000; step++ {
		tok := b.Lock()
		switch x := r.Intn(10); {
		case x < 5:
			o := uint8(r.Intn(4))
			if f, err := b.Alloc(o, &tok); err == ErrNone {
				held = append(held, blk{f, o})
			}
		case x < 8 && len(held) > 0:
			i := r.Intn(len(held))
			if err := b.Free(held[i].f, held[i].o, &tok); err != ErrNone {
				t.Fatalf("Free: %v", err)
			}
			held[i] = held[len(held)-1]
			held = held[:len(held)-1]
		case x == 8:
			p := 16 + uint64(r.Intn(8192-16))
			before := b.State().FreeFrames
			flags, _ := b.FlagsOf(FrameFromPFN(p))
			err := b.Poison(FrameFromPFN(p), &tok)
			switch {
			case flags == FlagFree && err == ErrNone:
				poisoned = append(poisoned, p)
				if b.State().FreeFrames != before-1 {
					t.Fatalf("FreeFrames %d, want %d", b.State().FreeFrames, before-1)
				}
			case flags != FlagFree && err != ErrNone:
			default:
				t.Fatalf("Poison(%#x) with flags %#x: %v", p, flags, err)
			}
		default:
			for i, h := range held {
				if h.o == 0 {
					if err := b.Poison(h.f, &tok); err != ErrNone {
						t.Fatalf("Poison allocated: %v", err)
					}
					poisoned = append(poisoned, h.f.PFN())
					held[i] = held[len(held)-1]
					held = held[:len(held)-1]
					break
				}
			}
		}
		b.Unlock(&tok)
		if step%50 == 0 {
			e.check(t)
		}
	}
	e.check(t)
	if got := b.State().PoisonedFrames; got != uint64(len(poisoned)) {
		t.Fatalf("PoisonedFrames %d, poisoned %d", got, len(poisoned))
	}
	tok := b.Lock()
	for _, h := range held {
		if err := b.Free(h.f, h.o, &tok); err != ErrNone {
			t.Fatal(err)
		}
	}
	b.Unlock(&tok)
	e.check(t)
	e.neverHandedOut(t, poisoned...)
	t.Logf("%d frames poisoned, %d free", len(poisoned), b.FreeFrames())
}

func TestPoisonZeroAllocs(t *testing.T) {
	e := simpleEnv(t, 4096)
	p := uint64(100)
	n := testing.AllocsPerRun(10, func() {
		tok := e.b.Lock()
		e.b.Poison(FrameFromPFN(p), &tok)
		e.b.Unlock(&tok)
		p++
	})
	if n != 0 {
		t.Errorf("Poison allocates %v times", n)
	}
	e.check(t)
}
