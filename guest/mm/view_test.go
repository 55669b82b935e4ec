package mm

import (
	"encoding/binary"
	"testing"
	"unsafe"
)

// TestViewPinsFrameMeta sets each FrameMeta field alone to a distinctive
// value and checks that View.Record reads it back in that field only, and
// that the bytes sit at the documented Off* offsets.
func TestViewPinsFrameMeta(t *testing.T) {
	cases := []struct {
		name string
		set  func(m *FrameMeta)
		off  int
		size int
		want Record
	}{
		{"next", func(m *FrameMeta) { m.next = 0x1122334455667788 }, OffNext, 8, Record{Next: 0x1122334455667788}},
		{"prev", func(m *FrameMeta) { m.prev = 0x8877665544332211 }, OffPrev, 8, Record{Prev: 0x8877665544332211}},
		{"flags", func(m *FrameMeta) { m.flags = 0xa5a50f0f }, OffFlags, 4, Record{Flags: 0xa5a50f0f}},
		{"order", func(m *FrameMeta) { m.orderWord = 0x07 }, OffOrder, 1, Record{Order: 7}},
		{"reserved", func(m *FrameMeta) { m.orderWord = 0xabcdef00 }, OffOrder + 1, 3, Record{Reserved: 0xabcdef}},
		{"refcount", func(m *FrameMeta) { m.refcount = 0xdeadbeef }, OffRefcount, 4, Record{Refcount: 0xdeadbeef}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs := make([]FrameMeta, 3)
			c.set(&recs[1])
			b := unsafe.Slice((*byte)(unsafe.Pointer(&recs[0])), len(recs)*FrameMetaSize)
			v, err := NewRecordsView(b, 0x10000, 3)
			if err != ErrNone {
				t.Fatal(err)
			}
			if got, ok := v.Record(1); !ok || got != c.want {
				t.Fatalf("Record(1) = %+v, %v; want %+v", got, ok, c.want)
			}
			if got, _ := v.Record(0); got != (Record{}) {
				t.Fatalf("neighbour record changed: %+v", got)
			}
			raw := v.RecordBytes(1)
			var word [8]byte
			copy(word[:], raw[c.off:c.off+c.size])
			if got := binary.LittleEndian.Uint64(word[:]); got == 0 {
				t.Fatalf("field %s not at byte offset %d", c.name, c.off)
			}
			for i, x := range raw {
				if x != 0 && (i < c.off || i >= c.off+c.size) {
					t.Fatalf("field %s wrote byte %d outside [%d,%d)", c.name, i, c.off, c.off+c.size)
				}
			}
		})
	}
	var v View
	if _, ok := v.Record(0); ok {
		t.Fatal("Record on an empty view succeeded")
	}
	if v.RecordBytes(0) != nil || v.NumCPUs() != 0 || v.ListHead(0) != LinkNone {
		t.Fatal("empty view returned data")
	}
}

// TestViewBlocksAndCaches reads a live allocator through the view: blocks
// cover every frame once and agree with the free lists, BlockOf finds each
// tail's head, and the caches match what AllocLocal/FreeLocal left.
func TestViewBlocksAndCaches(t *testing.T) {
	e := simpleEnv(t, 4096)
	if err := e.b.SetCPUs(2); err != ErrNone {
		t.Fatal(err)
	}
	f := e.alloc(t, 3)
	var cached []PhysFrame
	for i := 0; i < 3; i++ {
		c, err := e.b.AllocLocal(1, FlagKernel)
		if err != ErrNone {
			t.Fatal(err)
		}
		cached = append(cached, c)
	}
	if err := e.b.FreeLocal(1, cached[0]); err != ErrNone {
		t.Fatal(err)
	}
	v := e.b.View()
	it := v.Blocks()
	var covered, freeBlocks uint64
	sawAlloc := false
	for {
		b, ok := it.Next()
		if !ok {
			break
		}
		if b.PFN != covered {
			t.Fatalf("block at %#x, expected %#x", b.PFN, covered)
		}
		covered += b.Frames
		if b.IsBlock && b.Frames != 1<<b.Rec.Order {
			t.Fatalf("block %#x order %d spans %d frames", b.PFN, b.Rec.Order, b.Frames)
		}
		if b.Rec.Flags == FlagFree {
			freeBlocks++
		}
		if b.PFN == f.PFN() {
			sawAlloc = b.IsBlock && b.Rec.Order == 3 && b.Rec.Flags == FlagAllocated|FlagKernel && b.Rec.Refcount == 1
		}
	}
	if covered != v.FrameCount() || !sawAlloc {
		t.Fatalf("blocks covered %d of %d frames; allocated order-3 block seen: %v", covered, v.FrameCount(), sawAlloc)
	}
	var listed uint64
	for k := uint8(0); k <= MaxOrder; k++ {
		listed += e.b.State().Counts[k]
	}
	if listed != freeBlocks {
		t.Fatalf("free lists hold %d blocks, the view found %d", listed, freeBlocks)
	}
	if h, k, ok := v.BlockOf(f.PFN() + 5); !ok || h != f.PFN() || k != 3 {
		t.Fatalf("BlockOf(tail) = %#x, %d, %v", h, k, ok)
	}
	if v.NumCPUs() != 2 {
		t.Fatalf("NumCPUs = %d", v.NumCPUs())
	}
	h, ok := v.Cache(1)
	if !ok || h.Count != uint32(e.b.State().PCP[1].Count) {
		t.Fatalf("Cache(1) = %+v, %v", h, ok)
	}
	found := false
	for i := uint64(0); i < uint64(h.Count); i++ {
		p, ok := v.CacheEntry(1, i)
		r, _ := v.Record(p)
		if !ok || r.Flags != FlagPerCPU || r.Next != 1 {
			t.Fatalf("entry %d = %#x (%+v)", i, p, r)
		}
		found = found || p == cached[0].PFN()
	}
	if !found {
		t.Fatal("the freed frame is not in CPU 1's cache")
	}
	if _, ok := v.CacheEntry(1, uint64(h.Count)); ok {
		t.Fatal("CacheEntry past Count succeeded")
	}
	if _, ok := v.Cache(MaxCPUs); ok {
		t.Fatal("Cache(MaxCPUs) succeeded")
	}
	if n := testing.AllocsPerRun(10, func() {
		it := v.Blocks()
		for {
			if _, ok := it.Next(); !ok {
				break
			}
		}
		v.Record(7)
		v.CacheEntry(1, 0)
		v.BlockOf(9)
	}); n != 0 {
		t.Fatalf("the view allocates: %v per run", n)
	}
}
