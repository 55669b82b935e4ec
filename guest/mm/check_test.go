package mm

import (
	"encoding/binary"
	"testing"
)

// corruptEnv is an allocator with a few allocations, so that every order
// has a list and there are allocated heads and tails.
func corruptEnv(t testing.TB) (*testEnv, []PhysFrame) {
	e := newEnv(t, 4096*PageSize, []Range{{0, 2000 * PageSize}, {2100 * PageSize, 1996 * PageSize}}, []Range{{0, 16 * PageSize}}, []uint64{3000 * PageSize})
	var held []PhysFrame
	for _, o := range []uint8{0, 2, 0, 1, 3, 0, 0} {
		held = append(held, e.alloc(t, o))
	}
	e.free(held[0], 0) // leaves an order-0 free block
	e.free(held[5], 0)
	e.check(t)
	return e, held
}

// freeHeadWithNext returns a free list head of some order k whose list has at least 2 nodes.
func freeHeadWithNext(t testing.TB, b *Buddy) (k uint8, p uint64) {
	st := b.State()
	for k := uint8(0); k < NumOrders; k++ {
		if st.Counts[k] >= 2 {
			return k, st.Heads[k]
		}
	}
	t.Fatal("no list with 2 nodes")
	return 0, 0
}

func TestCheckDetectsCorruption(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t testing.TB, b *Buddy, held []PhysFrame)
		want    ViolationKind
	}{
		{"next out of range", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			_, p := freeHeadWithNext(t, b)
			b.meta.at(p).next = b.meta.count + 5
		}, VNextRange},
		{"list head out of range", func(t testing.TB, b *Buddy, _ []PhysFrame) { b.State().Heads[3] = 1 << 40 }, VNextRange},
		{"prev of next is not self", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			_, p := freeHeadWithNext(t, b)
			b.meta.at(b.meta.at(p).next).prev = 77
		}, VPrevMismatch},
		{"cycle", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			k, p := freeHeadWithNext(t, b)
			q := p
			for b.meta.at(q).next != LinkNone {
				q = b.meta.at(q).next
			}
			b.meta.at(q).next = b.State().Heads[k]
		}, VPrevMismatch},
		{"block in the wrong list", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			st := b.State()
			st.Heads[1], st.Heads[2] = st.Heads[2], st.Heads[1]
		}, VListTarget},
		{"misaligned free block", func(t testing.TB, b *Buddy, held []PhysFrame) {
			p := held[0].PFN() // free order 0 head; make it look like order 1 at an odd PFN
			if p%2 == 0 {
				p = held[5].PFN()
			}
			b.meta.at(p).orderWord = 1
		}, VMisaligned},
		{"free block crossing a hole", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			// 1984 is the head of the free order-4 block 1984..2000 (RAM
			// ends at 2000): claim order 6, i.e. 1984..2048 over the hole.
			b.meta.at(1984).orderWord = 6
		}, VTailFlags},
		{"free block over a poisoned frame", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			b.meta.at(3000).flags = FlagFree
			b.meta.at(3000).orderWord = uint32(OrderTail)
			b.meta.at(2998).orderWord = 3 // odd neighbourhood: misaligned or crossing
			b.meta.at(2992).orderWord = 4
		}, VTailFlags},
		{"tail with a head order", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[1].PFN() + 1).orderWord = 0
		}, VTailOrder},
		{"tail with refcount", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[1].PFN() + 2).refcount = 3
		}, VTailRefcount},
		// One link at a time: the clean-tail and clean-hole fast paths
		// test both links in one compare.
		{"tail with a next link", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[1].PFN() + 3).next = 9
		}, VStaleLinks},
		{"tail with a prev link", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[1].PFN() + 3).prev = 9
		}, VStaleLinks},
		{"tail with reserved order bytes", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[1].PFN() + 1).orderWord |= 1 << 24
		}, VTailOrder},
		{"hole frame with a prev link", func(t testing.TB, b *Buddy, _ []PhysFrame) { b.meta.at(2050).prev = 3 }, VStaleLinks},
		{"hole frame with reserved order bytes", func(t testing.TB, b *Buddy, _ []PhysFrame) { b.meta.at(2050).orderWord = 1 << 8 }, VReservedBits},
		{"unmerged buddies", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			st := b.State()
			p := st.Heads[5]
			b.unlink(5, p)
			b.push(4, p)
			b.push(4, p+16)
		}, VUnmergedBuddy},
		{"illegal flags FREE|ALLOCATED", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[2].PFN()).flags |= FlagFree
		}, VIllegalFlags},
		{"illegal flags KERNEL|COW", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[2].PFN()).flags |= FlagCOW
		}, VIllegalFlags},
		{"reserved PerCPU bit", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[2].PFN()).flags |= FlagPerCPU
		}, VIllegalFlags},
		{"reserved order bytes", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[2].PFN()).orderWord |= 1 << 16
		}, VReservedBits},
		{"free with refcount", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			b.meta.at(b.State().Heads[2]).refcount = 1
		}, VFreeRefcount},
		{"allocated head with refcount 0", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[2].PFN()).refcount = 0
		}, VAllocRefcount},
		{"block count", func(t testing.TB, b *Buddy, _ []PhysFrame) { b.State().Counts[4]++ }, VBlockCount},
		{"free frame count", func(t testing.TB, b *Buddy, _ []PhysFrame) { b.State().FreeFrames-- }, VFreeFrames},
		{"poisoned frame count", func(t testing.TB, b *Buddy, _ []PhysFrame) { b.State().PoisonedFrames++ }, VPoisonedFrames},
		{"free head not on any list", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			_, p := freeHeadWithNext(t, b)
			m := b.meta.at(p)
			q := m.next
			m.next = b.meta.at(q).next
			if m.next != LinkNone {
				b.meta.at(m.next).prev = p
			}
		}, VNotOnList},
		{"orphan with no links", func(t testing.TB, b *Buddy, held []PhysFrame) {
			// Turn an allocated order-0 kernel frame into a FREE head nobody links to.
			m := b.meta.at(held[6].PFN())
			m.flags, m.refcount = FlagFree, 0
		}, VNotOnList},
		{"links on an allocated frame", func(t testing.TB, b *Buddy, held []PhysFrame) {
			b.meta.at(held[2].PFN()).next = 5
		}, VStaleLinks},
		{"order on a hole frame", func(t testing.TB, b *Buddy, _ []PhysFrame) { b.meta.at(2050).orderWord = 2 }, VStaleOrder},
		{"bad magic", func(t testing.TB, b *Buddy, _ []PhysFrame) { b.State().Magic = 1 }, VStateHeader},
		{"frame count mismatch", func(t testing.TB, b *Buddy, _ []PhysFrame) { b.State().FrameCount = 7 }, VStateHeader},
		{"allocated block past the end", func(t testing.TB, b *Buddy, _ []PhysFrame) {
			m := b.meta.at(4088)
			m.flags, m.orderWord, m.refcount = FlagAllocated|FlagKernel, 4, 1
		}, VBlockOverrun},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, held := corruptEnv(t)
			mp, fc, sp := e.b.Registration()
			c.corrupt(t, e.b, held)
			var out [64]Violation
			n := e.b.Check(out[:])
			if !hasKind(out[:], n, c.want) {
				t.Errorf("want %s, got %d violations: %v", c.want, n, out[:min(n, len(out))])
			}
			// The same through a byte copy, as the host does.
			mem := append([]byte(nil), e.a.mem...)
			v, err := NewView(mem, 0, mp, fc, sp)
			if err != ErrNone {
				t.Fatal(err)
			}
			var out2 [64]Violation
			if n2 := Check(&v, out2[:]); n2 != n || out2 != out {
				t.Errorf("copy: %d violations, live %d", n2, n)
			}
		})
	}
}

func TestCheckTotalBeyondOut(t *testing.T) {
	e, _ := corruptEnv(t)
	for p := uint64(16); p < 40; p++ {
		e.b.meta.at(p).flags |= FlagPerCPU // kernel/metadata frames
	}
	var out [4]Violation
	if n := e.b.Check(out[:]); n < 24 {
		t.Errorf("total %d", n)
	}
	if n := e.b.Check(nil); n < 24 {
		t.Errorf("total with nil out %d", n)
	}
}

func TestNewViewBounds(t *testing.T) {
	e, _ := corruptEnv(t)
	mp, n, sp := e.b.Registration()
	mem := append([]byte(nil), e.a.mem...)
	size := uint64(len(mem))
	for _, c := range []struct {
		name                     string
		base, meta, count, state uint64
		want                     AllocError
	}{
		{"ok", 0, mp, n, sp, ErrNone},
		{"zero frames", 0, mp, 0, sp, ErrUninitialized},
		{"meta below base", 0x1000, 0, n, sp, ErrInvalidAddress},
		{"meta beyond mem", 0, size, 1, sp, ErrInvalidAddress},
		{"meta runs past mem", 0, mp, size, sp, ErrInvalidAddress},
		{"count overflows", 0, mp, 1 << 62, sp, ErrInvalidAddress},
		{"count wraps", 0, mp, ^uint64(0)/64 + 2, sp, ErrInvalidAddress},
		{"state beyond mem", 0, mp, n, size - 8, ErrInvalidAddress},
		{"state wraps", 0, mp, n, ^uint64(0) - 7, ErrInvalidAddress},
		{"misaligned meta", 0, mp + 4, n, sp, ErrInvalidAddress},
		{"misaligned state", 0, mp, n, sp + 1, ErrInvalidAddress},
		{"base above everything", ^uint64(0) - 4096, mp, n, sp, ErrInvalidAddress},
	} {
		if _, err := NewView(mem, c.base, c.meta, c.count, c.state); err != c.want {
			t.Errorf("%s: %v want %v", c.name, err, c.want)
		}
	}
	if _, err := NewView(nil, 0, 0, 1, 0); err != ErrInvalidAddress {
		t.Errorf("empty mem: %v", err)
	}
	if _, err := NewView(mem[1:], 0, 0, 1, 0); err != ErrInvalidAddress {
		t.Errorf("unaligned mem: %v", err)
	}
	// A dump that starts at a non-zero physical base.
	v, err := NewView(mem[0x10000:], 0x10000, mp, n, sp)
	if err != ErrNone || Check(&v, nil) != 0 {
		t.Errorf("offset dump: %v", err)
	}
}

// garbageCheck builds a view over data in one of two ways and runs Check.
func garbageCheck(data []byte) int {
	if len(data) < 1 {
		return 0
	}
	mode := data[0]
	data = data[1:]
	if mode&1 == 0 || len(data) < 24 {
		// Raw garbage: registration from the first bytes.
		mem := make([]byte, len(data)+8)
		copy(mem, data)
		var reg [3]uint64
		for i := 0; i < 3 && 8*i+8 <= len(data); i++ {
			reg[i] = binary.LittleEndian.Uint64(data[8*i:])
		}
		v, err := NewView(mem, 0, reg[0]%uint64(len(mem)+64)&^7, reg[1]%(uint64(len(mem))/64+2), reg[2]%uint64(len(mem)+64)&^7)
		if err != ErrNone {
			return 0
		}
		var out [16]Violation
		return Check(&v, out[:])
	}
	return -1
}

func FuzzCheckGarbage(f *testing.F) {
	f.Add([]byte{0})
	f.Add(make([]byte, 4096))
	seed := make([]byte, 1+24+64*8+StateSize)
	binary.LittleEndian.PutUint64(seed[1:], 64)      // meta at 64
	binary.LittleEndian.PutUint64(seed[9:], 8)       // 8 frames
	binary.LittleEndian.PutUint64(seed[17:], 64+512) // state after
	f.Add(seed)
	f.Add([]byte{1, 0, 0, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		if garbageCheck(data) != -1 {
			return
		}
		// Patch a real dump: data = (offset uint16, value byte) triples.
		e, _ := dumpEnv(t)
		mem := e.a.mem
		mp, n, sp := e.b.Registration()
		lo := mp
		for i := 1; i+3 <= len(data); i += 3 {
			off := uint64(binary.LittleEndian.Uint16(data[i:])) % (n*FrameMetaSize + StateSize)
			if off < n*FrameMetaSize {
				mem[lo+off] = data[i+2]
			} else {
				mem[sp+off-n*FrameMetaSize] = data[i+2]
			}
		}
		v, err := NewView(mem, 0, mp, n, sp)
		if err != ErrNone {
			t.Fatal(err)
		}
		var out [16]Violation
		Check(&v, out[:])
	})
}

// dumpEnv: a small allocator (256 frames) with a mix of blocks.
func dumpEnv(t testing.TB) (*testEnv, []PhysFrame) {
	e := newEnv(t, 256*PageSize, []Range{{0, 200 * PageSize}, {210 * PageSize, 46 * PageSize}}, []Range{{0, 4 * PageSize}}, []uint64{100 * PageSize})
	var held []PhysFrame
	for _, o := range []uint8{0, 1, 0, 3, 0} {
		held = append(held, e.alloc(t, o))
	}
	e.free(held[2], 0)
	return e, held
}

func TestCheckGarbageRandom(t *testing.T) {
	// A quick deterministic sweep in addition to the fuzz target.
	x := uint64(0x9E3779B97F4A7C15)
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	for i := 0; i < 300; i++ {
		data := make([]byte, 1+int(next()%8192))
		for j := range data {
			data[j] = byte(next())
		}
		data[0] = 0
		garbageCheck(data)
		e, _ := dumpEnv(t)
		mp, n, sp := e.b.Registration()
		mem := e.a.mem
		for j := 0; j < 1+i%40; j++ {
			off := next() % (n*FrameMetaSize + StateSize)
			if off < n*FrameMetaSize {
				mem[mp+off] = byte(next())
			} else {
				mem[sp+off-n*FrameMetaSize] = byte(next())
			}
		}
		v, _ := NewView(mem, 0, mp, n, sp)
		Check(&v, nil)
	}
}

// TestCheckBadHeadOnce: a bad block head is one violation that covers its
// tails (they are not reported as tails outside a block), while bugs on
// those tails and elsewhere are still reported, and Check still
// allocates nothing.
func TestCheckBadHeadOnce(t *testing.T) {
	e := simpleEnv(t, 4096) // free order-10 blocks at 1024, 2048 and 3072
	b := e.b
	for _, p := range []uint64{1024, 2048, 3072} {
		if m := b.meta.at(p); m.flags != FlagFree || m.orderWord != MaxOrder {
			t.Fatalf("frame %d: flags %#x order %d, want a free top-order head", p, m.flags, m.orderWord)
		}
	}
	b.meta.at(1024).flags = FlagAllocated // no owner: illegal
	b.meta.at(1030).refcount = 5          // a tail's own bug, inside the run
	b.meta.at(2048).refcount = 7          // an unrelated bug elsewhere
	b.meta.at(3072).orderWord = 9         // too small: 3584..4095 are tails outside a block
	var out [32]Violation
	n := b.Check(out[:])
	if n > len(out) {
		t.Fatalf("%d violations: %v", n, out)
	}
	find := func(pfn uint64, k ViolationKind) *Violation {
		for i := range out[:n] {
			if out[i].PFN == pfn && out[i].Kind == k {
				return &out[i]
			}
		}
		t.Errorf("no %s at %d in %v", k, pfn, out[:n])
		return &Violation{}
	}
	if v := find(1024, VIllegalFlags); v.Covers != 1023 {
		t.Errorf("bad head covers %d tails, want 1023", v.Covers)
	}
	if v := find(3584, VTailOrder); v.Covers != 511 {
		t.Errorf("first orphan tail covers %d tails, want 511", v.Covers)
	}
	find(1030, VTailRefcount)
	find(2048, VFreeRefcount)
	for _, v := range out[:n] {
		if v.Kind == VTailOrder && v.PFN != 3584 {
			t.Errorf("tail reported on its own: %+v", v)
		}
		if v.Covers != 0 && v.PFN != 1024 && v.PFN != 3584 {
			t.Errorf("covers on a violation that has no run: %+v", v)
		}
	}
	if n > 12 {
		t.Errorf("%d violations for four bad records: %v", n, out[:n])
	}
	if a := testing.AllocsPerRun(10, func() { b.Check(out[:]) }); a != 0 {
		t.Errorf("Check allocates %v times", a)
	}
}

// TestCheckStaleOrderInHole: a not-RAM frame with an order is one bad
// head; the not-RAM frames after it end its run at once and are clean
// (the pass skips runs of clean not-RAM frames, but not into a run), and
// a not-RAM frame's own bug further on is still found.
func TestCheckStaleOrderInHole(t *testing.T) {
	e, _ := corruptEnv(t) // frames 2000..2099 are not RAM; RAM from 2100 on
	b := e.b
	b.meta.at(2095).orderWord = 3 // its run could reach 3072
	b.meta.at(2097).refcount = 1
	var out [16]Violation
	n := b.Check(out[:])
	if n != 2 || out[0].PFN != 2095 || out[0].Kind != VStaleOrder || out[1].PFN != 2097 || out[1].Kind != VTailRefcount {
		t.Fatalf("%d violations, want a stale order at 2095 and a refcount at 2097: %v", n, out[:min(n, len(out))])
	}
}
