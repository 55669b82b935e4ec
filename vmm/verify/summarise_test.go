package verify

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
)

// TestSummariseMatchesReference: the array histogram gives the counts a
// plain per-frame map gives, for defined flags and for garbage ones.
func TestSummariseMatchesReference(t *testing.T) {
	if histLowBits >= 8 || histHighBits&0xff != 0 || histHighBits>>8 >= histSize>>3 {
		t.Fatalf("flag bits %#x / %#x do not pack into the %d-entry histogram", histLowBits, histHighBits, histSize)
	}
	for i := range histSize {
		if j, ok := histIndex(histFlags(i)); histFlags(i)&^(histLowBits|histHighBits) == 0 && (!ok || j != i) {
			t.Fatalf("histIndex(histFlags(%d)) = %d, %v", i, j, ok)
		}
	}
	const frames = 5000
	meta := make([]byte, frames*mm.FrameMetaSize+mm.StateSize)
	rng := rand.New(rand.NewPCG(5, 6))
	choices := []uint32{0, mm.FlagFree, mm.FlagAllocated | mm.FlagKernel, mm.FlagAllocated | mm.FlagUser | mm.FlagCOW,
		mm.FlagPoisoned, mm.FlagAllocated | mm.FlagKernel | mm.FlagPerCPU | mm.FlagAnonymous, 0xdead0000, 1 << 31, 1 << 3, 1 << 14}
	want := map[uint32]uint64{}
	var wantFree uint64
	var wantBlocks [mm.NumOrders]uint64
	for pfn := range frames {
		f := choices[rng.IntN(len(choices))]
		order := uint8(rng.IntN(mm.MaxOrder + 3))
		rec := meta[pfn*mm.FrameMetaSize:]
		binary.LittleEndian.PutUint32(rec[mm.OffFlags:], f)
		rec[mm.OffOrder] = order
		want[f]++
		if f == mm.FlagFree {
			wantFree++
			if order <= mm.MaxOrder {
				wantBlocks[order]++
			}
		}
	}
	r := &Report{Frames: frames}
	r.summarise(histogramOf(viewOf(t, meta, frames)))
	got := map[uint32]uint64{}
	for i, fc := range r.ByFlags {
		got[fc.Raw] = fc.Frames
		if i > 0 && r.ByFlags[i-1].Raw >= fc.Raw {
			t.Errorf("ByFlags not sorted at %d", i)
		}
		if fc.Flags != FlagNames(fc.Raw) {
			t.Errorf("flags %#x named %q", fc.Raw, fc.Flags)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d flag values, want %d", len(got), len(want))
	}
	for f, n := range want {
		if got[f] != n {
			t.Errorf("flags %#x: %d frames, want %d", f, got[f], n)
		}
	}
	if r.FreeFrames != wantFree || r.FreeBlocks != wantBlocks {
		t.Errorf("free %d %v, want %d %v", r.FreeFrames, r.FreeBlocks, wantFree, wantBlocks)
	}
}

func BenchmarkSummarise(b *testing.B) {
	const frames = 1 << 20
	meta := make([]byte, frames*mm.FrameMetaSize+mm.StateSize)
	for pfn := range frames {
		binary.LittleEndian.PutUint32(meta[pfn*mm.FrameMetaSize+mm.OffFlags:], mm.FlagFree)
	}
	v := viewOf(b, meta, frames)
	b.SetBytes(int64(frames * mm.FrameMetaSize))
	for b.Loop() {
		r := &Report{Frames: frames}
		r.summarise(histogramOf(v))
	}
}

// viewOf returns a view of the records in meta (the allocator state, which
// summarise does not read, follows them).
func viewOf(t testing.TB, meta []byte, frames uint64) *mm.View {
	t.Helper()
	v, err := mm.NewView(meta, 0, 0, frames, frames*mm.FrameMetaSize)
	if err != mm.ErrNone {
		t.Fatalf("NewView: %v", err)
	}
	return &v
}

// histogramOf runs the histogram over every record, as the host pass does.
func histogramOf(v *mm.View) *histogram {
	var h histogram
	for pfn := range v.FrameCount() {
		r, _ := v.Record(pfn)
		h.add(r)
	}
	return &h
}
