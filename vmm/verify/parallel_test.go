package verify

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
)

// fanouts are the splits every state below is checked with; the first is
// one piece on one goroutine: the sequential pass.
var fanouts = []fanout{{workers: 1, frames: 1 << 40}, {workers: 2, frames: 1024}, {workers: 3, frames: 2048},
	{workers: 8, frames: 1024}, {workers: 0, frames: 3072}}

// reportJSON is the report as a client sees it, without the time taken.
func reportJSON(t *testing.T, r *Report) string {
	t.Helper()
	c := *r
	c.Nanos = 0
	b, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameVerdicts verifies mem with every fan-out and fails unless the
// reports are byte-identical, guest/mm's findings are those of its own
// sequential Check, and the histogram is the one a per-record count
// gives. It returns the sequential report.
func sameVerdicts(t *testing.T, mem flatMemory, in Input, what string) *Report {
	t.Helper()
	var want string
	var seq *Report
	for i, fo := range fanouts {
		r, err := verifyWith(mem, in, fo)
		if err != nil {
			t.Fatalf("%s: %+v: %v", what, fo, err)
		}
		got := reportJSON(t, r)
		if i == 0 {
			want, seq = got, r
			continue
		}
		if got != want {
			t.Fatalf("%s: fan-out %+v differs from the sequential pass:\n got %s\nwant %s", what, fo, got, want)
		}
	}
	v, err := NewView(mem, in)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]mm.Violation, MaxListed)
	total := mm.Check(&v, out)
	if seq.TotalViolations < total {
		t.Fatalf("%s: report has %d violations, guest/mm's Check alone %d", what, seq.TotalViolations, total)
	}
	for i, x := range out[:min(total, len(out))] {
		g, w := seq.Violations[i], fromChecker(x, v.FrameCount())
		if g.PFN != w.PFN || g.Kind != w.Kind || g.Expected != w.Expected || g.Actual != w.Actual || g.Scope != w.Scope ||
			(x.Covers > 0) != (g.Detail == coversDetail(x.Covers)) {
			t.Fatalf("%s: violation %d is %v (%q), guest/mm's Check says %v (covers %d)", what, i, g, g.Detail, w, x.Covers)
		}
	}
	ref := &Report{}
	ref.summarise(histogramOf(&v))
	if fmt.Sprint(ref.ByFlags, ref.FreeFrames, ref.FreeBlocks) != fmt.Sprint(seq.ByFlags, seq.FreeFrames, seq.FreeBlocks) {
		t.Fatalf("%s: histogram %v %d %v, per-record count %v %d %v", what, seq.ByFlags, seq.FreeFrames, seq.FreeBlocks,
			ref.ByFlags, ref.FreeFrames, ref.FreeBlocks)
	}
	return seq
}

// TestParallelSameVerdict: the passes split over pieces and goroutines
// report exactly what one pass reports, on a clean allocator and on
// thousands of single and multiple corruptions, many of them at piece
// boundaries. With the boot info given (no owners declared), the
// allocated blocks are leaks, so the leak reports are merged too.
func TestParallelSameVerdict(t *testing.T) {
	mem, in := busyGuestFrom(t, 0x20000) // clear of the boot info
	in.Boot = &Boot{}
	in.Roots = []uint64{mapSome(mem, 0x10000)}
	clean := sameVerdicts(t, mem, in, "clean")
	var leaks, mappings int
	for _, v := range clean.Violations {
		switch {
		case strings.Contains(v.Kind, "leak"):
			leaks++
		case v.Source == "pagetable":
			mappings++
		}
	}
	if leaks < 10 || mappings < 100 || clean.Mappings == 0 {
		t.Fatalf("%d leaks, %d mapping violations: the merges are not exercised: %v", leaks, mappings, clean.Violations)
	}
	r := rand.New(rand.NewSource(11))
	boundary := func() uint64 {
		b := uint64(1+r.Intn(int(in.FrameCount/1024)-1)) * 1024
		return b + uint64(r.Intn(9)) - 4
	}
	changed := 0
	for i := 0; i < 2000; i++ {
		var what string
		var undo func()
		if i%2 == 0 {
			what, _, undo = corruptOnce(r, mem, in)
		} else {
			var pfn uint64
			what, pfn, undo = corruptAt(r, mem, in, boundary())
			what = fmt.Sprintf("%s at %#x", what, pfn)
		}
		if sameVerdicts(t, mem, in, fmt.Sprintf("round %d: %s", i, what)).TotalViolations != clean.TotalViolations {
			changed++
		}
		undo()
	}
	for i := 0; i < 400; i++ {
		var undos []func()
		what := fmt.Sprintf("round %d:", i)
		for range 2 + r.Intn(5) {
			pfn := uint64(r.Intn(int(in.FrameCount)))
			if r.Intn(2) == 0 {
				pfn = boundary()
			}
			w, _, undo := corruptAt(r, mem, in, pfn)
			what += fmt.Sprintf(" %s at %#x", w, pfn)
			undos = append(undos, undo)
		}
		if sameVerdicts(t, mem, in, what).TotalViolations != clean.TotalViolations {
			changed++
		}
		for j := len(undos) - 1; j >= 0; j-- {
			undos[j]()
		}
	}
	if changed < 1200 {
		t.Fatalf("only %d of 2400 corruptions changed the verdict: the generator is too tame", changed)
	}
}

// mapSome writes an address space at base (four table frames, not RAM)
// whose one page table maps every 9th frame of mem, user or kernel,
// writable or not: frames in every piece are judged against their
// mappings (most of them wrongly mapped). It returns the root.
func mapSome(mem flatMemory, base uint64) uint64 {
	le := binary.LittleEndian
	pml4, pdpt, pd, ptab := base, base+mm.PageSize, base+2*mm.PageSize, base+3*mm.PageSize
	le.PutUint64(mem[pml4:], pdpt|ptePresent|pteWritable|pteUser)
	le.PutUint64(mem[pdpt:], pd|ptePresent|pteWritable|pteUser)
	le.PutUint64(mem[pd:], ptab|ptePresent|pteWritable|pteUser)
	frames := uint64(len(mem)) / mm.PageSize
	for i := uint64(0); i < 512 && i*9 < frames; i++ {
		bits := uint64(ptePresent)
		if i%2 == 0 {
			bits |= pteUser
		}
		if i%3 == 0 {
			bits |= pteWritable
		}
		le.PutUint64(mem[ptab+8*i:], i*9*mm.PageSize|bits)
	}
	return pml4
}

// TestParallelBlocksAcrossPieces: blocks whose head is misaligned or
// overruns, so that they reach into the next piece (the pass there must
// continue the one before), with and without bad tails beyond the
// boundary, and bad heads whose runs of tails end at the boundary.
func TestParallelBlocksAcrossPieces(t *testing.T) {
	const frames = 8192
	mem, _, in := newGuest(t, frames)
	le := binary.LittleEndian
	rec := func(pfn uint64) []byte { return mem[in.MetaPhys+pfn*mm.FrameMetaSize:][:mm.FrameMetaSize] }
	setRec := func(pfn uint64, flags uint32, order uint8, ref uint32) {
		b := rec(pfn)
		le.PutUint64(b[mm.OffNext:], mm.LinkNone)
		le.PutUint64(b[mm.OffPrev:], mm.LinkNone)
		le.PutUint32(b[mm.OffFlags:], flags)
		le.PutUint32(b[mm.OffOrder:], uint32(order))
		le.PutUint32(b[mm.OffRefcount:], ref)
	}
	save := append([]byte(nil), mem[in.MetaPhys:in.MetaPhys+frames*mm.FrameMetaSize]...)
	restore := func() { copy(mem[in.MetaPhys:], save) }
	sameVerdicts(t, mem, in, "clean")
	type head struct {
		flags uint32
		ref   uint32
	}
	heads := []head{{mm.FlagFree, 0}, {mm.FlagAllocated | mm.FlagKernel, 1}, {mm.FlagAllocated | mm.FlagUser | mm.FlagAnonymous, 1},
		{mm.FlagAllocated, 1} /* no owner: a bad head */, {mm.FlagPoisoned, 0}, {mm.FlagPerCPU, 0}}
	cases := 0
	for _, b := range []uint64{1024, 2048, 3072, 4096, 6144, frames - 1024} {
		for _, back := range []uint64{1, 4, 7, 500} {
			for _, k := range []uint8{1, 3, 9, 10, mm.OrderTail} {
				for hi, h := range heads {
					for _, bug := range []int{0, 1, 2, 3} {
						s := b - back
						setRec(s, h.flags, k, h.ref)
						end := s + 1<<(k%16)
						if k == mm.OrderTail {
							end = s + 600
						}
						tail := mm.FlagFree
						if h.flags&mm.FlagAllocated != 0 {
							tail = mm.FlagAllocated | h.flags&(mm.FlagKernel|mm.FlagUser)
							if tail == mm.FlagAllocated {
								tail |= mm.FlagKernel
							}
						}
						for p := s + 1; p < min(end, frames); p++ {
							setRec(p, tail, mm.OrderTail, 0)
						}
						switch bug {
						case 1: // a tail's own bug past the boundary
							le.PutUint32(rec(b + 1)[mm.OffRefcount:], 5)
						case 2: // the block ends early, just past the boundary
							setRec(b+1, mm.FlagAllocated|mm.FlagKernel, 0, 1)
						case 3: // a head inside the block at the boundary
							setRec(b, tail, 0, 0)
						}
						sameVerdicts(t, mem, in, fmt.Sprintf("head %d (%#x) order %d at %#x, bug %d", hi, h.flags, k, s, bug))
						restore()
						cases++
					}
				}
			}
		}
	}
	t.Logf("%d blocks across piece boundaries", cases)
}

// TestParallelCaps: more violations than a piece keeps and than the
// report lists: the pieces that overflow are checked again, and the
// report lists the first MaxListed in frame order and counts them all.
func TestParallelCaps(t *testing.T) {
	const frames = 8192
	mem, _, in := newGuest(t, frames)
	le := binary.LittleEndian
	for _, every := range []uint64{1, 3, 7, 700} {
		save := append([]byte(nil), mem[in.MetaPhys:in.MetaPhys+frames*mm.FrameMetaSize]...)
		for p := uint64(0); p < frames; p += every {
			le.PutUint32(mem[in.MetaPhys+p*mm.FrameMetaSize+mm.OffRefcount:], 2)
		}
		r := sameVerdicts(t, mem, in, fmt.Sprintf("refcount on every %d frames", every))
		if every == 1 && (r.TotalViolations <= 2*MaxListed || len(r.Violations) != MaxListed) {
			t.Fatalf("every frame: %d violations, %d listed", r.TotalViolations, len(r.Violations))
		}
		copy(mem[in.MetaPhys:], save)
	}
}

// TestPiecesOf: by default a guest that makes more than one piece is cut
// into minPieces pieces (whole top-order blocks, at least minPieceFrames),
// up to pieceFrames each; a guest of one piece stays one; an explicit size
// is kept.
func TestPiecesOf(t *testing.T) {
	for _, c := range []struct {
		fo      fanout
		n, want uint64
	}{
		{fanout{}, 1 << 15, pieceFrames},      // 128 MiB: one piece, no fan-out
		{fanout{}, pieceFrames, pieceFrames},  // 256 MiB: still one
		{fanout{}, 1 << 17, minPieceFrames},   // 512 MiB: 8 of the smallest
		{fanout{}, 1 << 18, 1 << 14},          // 1 GiB: 16
		{fanout{}, 1<<19 + 5, 1<<15 + 1<<10},  // rounded up to whole top blocks
		{fanout{}, 1 << 20, pieceFrames},      // 4 GiB: 16 of the largest
		{fanout{}, 1 << 22, pieceFrames},      // 16 GiB: 64
		{fanout{frames: 1024}, 1 << 18, 1024}, // tests' sizes stay
		{fanout{frames: 3000}, 1 << 18, 3072},
	} {
		if got := c.fo.piecesOf(c.n); got != c.want {
			t.Errorf("%+v over %d frames: pieces of %d, want %d", c.fo, c.n, got, c.want)
		}
	}
}
