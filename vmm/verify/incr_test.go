package verify

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
)

// pageDiff is a simulated dirty log: the pages whose bytes differ from a
// snapshot taken at the previous checkpoint (what a guest wrote, less the
// writes that stored what was there, which cannot change a verdict), plus
// some pages reported though unchanged (KVM logs every write).
type pageDiff struct {
	bits []uint64 // one bit a page from address 0
}

func (d *pageDiff) set(page uint64) {
	i := page / mm.PageSize
	for uint64(len(d.bits)) <= i/64 {
		d.bits = append(d.bits, 0)
	}
	d.bits[i/64] |= 1 << (i % 64)
}

func (d pageDiff) Pages(gpa, n uint64, fn func(uint64)) {
	for i := gpa / mm.PageSize; i < (gpa+n+mm.PageSize-1)/mm.PageSize && i/64 < uint64(len(d.bits)); i++ {
		if w := d.bits[i/64]; w == 0 {
			i |= 63 // skip the empty word
		} else if w&(1<<(i%64)) != 0 {
			fn(i * mm.PageSize)
		}
	}
}

// takeDirty diffs mem against snap, then makes snap a copy of mem; both
// are the part of guest memory the allocator and the holdings live in, so
// the other pages the test wrote (page tables) come in as wrote, which it
// empties.
func takeDirty(r *rand.Rand, mem, snap []byte, wrote *pageDiff) pageDiff {
	d := pageDiff{bits: wrote.bits}
	wrote.bits = nil
	for p := 0; p < len(mem); p += mm.PageSize {
		if !bytes.Equal(mem[p:p+mm.PageSize], snap[p:p+mm.PageSize]) || r.Intn(64) == 0 {
			d.set(uint64(p))
		}
	}
	copy(snap, mem)
	return d
}

// heldGuest is an allocator whose workload declares every block it holds
// in a Holdings table, with the boot info known, so the ownership rules
// (leaks, declared blocks, bad frames, owned areas) apply.
type heldGuest struct {
	mem   flatMemory
	b     *mm.Buddy
	in    Input
	table []byte // the declared blocks, one word per slot (phys | order)
	refs  []uint32
	sp    *spaces // address spaces (nil: none)
}

const (
	heldHoldings = 0x1000 // the Holdings, in a frame the allocator does not manage
	heldTable    = 0x2000 // its one table: 1024 words over two frames
	heldSlots    = 1024
)

func newHeldGuest(t *testing.T, frames uint64) *heldGuest {
	t.Helper()
	mem := make(flatMemory, frames*mm.PageSize)
	var b mm.Buddy
	var boot mm.BootAllocator
	bad := []uint64{frames/2 + 3, frames/2 + 77}
	ram := []mm.Range{{Base: 0x10000, Size: uint64(len(mem)) - 0x10000}} // above the boot info page
	if err := b.Setup(uintptrOf(mem), &boot, ram, nil, []uint64{bad[0] * mm.PageSize, bad[1] * mm.PageSize}); err != mm.ErrNone {
		t.Fatal(err)
	}
	if err := b.SetCPUs(2); err != mm.ErrNone {
		t.Fatal(err)
	}
	meta, n, st := b.Registration()
	g := &heldGuest{mem: mem, b: &b, table: mem[heldTable : heldTable+8*heldSlots], refs: make([]uint32, heldSlots)}
	g.in = Input{Registration: Registration{MetaPhys: meta, FrameCount: n, Version: uint64(mm.LayoutVersion), StatePhys: st},
		Boot: &Boot{InUse: []Region{{Name: "test holdings", Base: heldHoldings, Size: 0x3000}}, Bad: bad}, Holdings: heldHoldings}
	h := mem[heldHoldings:]
	binary.LittleEndian.PutUint64(h[0:], mm.HoldingsMagic)
	binary.LittleEndian.PutUint64(h[8:], 1)
	d := h[mm.HoldingsOffDecl:]
	binary.LittleEndian.PutUint64(d[8:], heldTable)
	binary.LittleEndian.PutUint64(d[16:], heldSlots)
	binary.LittleEndian.PutUint64(d[24:], 1)
	return g
}

func (g *heldGuest) slot(i int) uint64   { return binary.LittleEndian.Uint64(g.table[8*i:]) }
func (g *heldGuest) set(i int, e uint64) { binary.LittleEndian.PutUint64(g.table[8*i:], e) }

// step runs one random allocator operation, declaring what it holds, or
// changes the address spaces.
func (g *heldGuest) step(t *testing.T, r *rand.Rand) {
	t.Helper()
	if g.sp != nil && r.Intn(3) == 0 {
		g.sp.step(r)
		return
	}
	i := r.Intn(heldSlots)
	e := g.slot(i)
	f, order := mm.FrameFromPFN(e/mm.PageSize), uint8(e%mm.PageSize)
	flags := []uint32{mm.FlagKernel, mm.FlagUser | mm.FlagAnonymous, mm.FlagUser | mm.FlagDLL}[r.Intn(3)]
	if g.sp != nil {
		flags = mm.FlagKernel // with address spaces, an unmapped USER block must hold no references
	}
	cpu := r.Intn(2)
	switch {
	case e == 0 && r.Intn(3) == 0:
		nf, err := g.b.AllocLocal(cpu, flags)
		if err == mm.ErrNone {
			g.set(i, mm.HeldBlock(nf, 0))
			g.refs[i] = 1
		}
	case e == 0:
		o := uint8(r.Intn(5))
		tok := g.b.Lock()
		nf, err := g.b.AllocFlags(o, &tok, flags)
		g.b.Unlock(&tok)
		if err == mm.ErrNone {
			g.set(i, mm.HeldBlock(nf, o))
			g.refs[i] = 1
		}
	case r.Intn(4) == 0:
		if g.b.Get(f) == mm.ErrNone {
			g.refs[i]++
		}
	case order == 0 && g.refs[i] == 1 && r.Intn(2) == 0:
		if err := g.b.FreeLocal(cpu, f); err != mm.ErrNone {
			t.Fatalf("FreeLocal %#x: %v", e, err)
		}
		g.set(i, 0)
	default:
		tok := g.b.Lock()
		freed, err := g.b.Put(f, order, &tok)
		g.b.Unlock(&tok)
		if err != mm.ErrNone {
			t.Fatalf("Put %#x: %v", e, err)
		}
		if g.refs[i]--; freed {
			g.set(i, 0)
		}
	}
	if r.Intn(200) == 0 {
		g.b.Drain(cpu)
	}
}

// corrupt damages one record or one field of the allocator state as the
// spec check's generator does (corruptOnce), or makes one of the damages
// that span records: a free block taken off its list with its neighbours
// relinked and the counts fixed, or two blocks cut into a cycle of their
// own. It returns what it did and how to undo it.
func (g *heldGuest) corrupt(r *rand.Rand) (string, func()) {
	if g.sp != nil && len(g.sp.maps) > 0 && r.Intn(4) == 0 {
		return g.sp.corrupt(r)
	}
	if g.sp == nil && r.Intn(6) == 0 {
		// A first address space, over USER blocks that nothing maps but
		// that hold references: every one breaks a mapping rule now. Its
		// root heads a top-order block of its own, so only the count of
		// such frames in the blocks not re-checked can tell.
		tok := g.b.Lock()
		f, err := g.b.AllocFlags(mm.MaxOrder, &tok, mm.FlagKernel)
		g.b.Unlock(&tok)
		if err != mm.ErrNone {
			return corruptRecord(r, g)
		}
		root := f.StartAddress()
		clear(g.mem[root : root+mm.PageSize])
		g.in.Roots = []uint64{root}
		return "a first address space", func() {
			g.in.Roots = nil
			tok := g.b.Lock()
			g.b.Free(f, mm.MaxOrder, &tok)
			g.b.Unlock(&tok)
		}
	}
	if r.Intn(3) != 0 {
		return corruptRecord(r, g)
	}
	save := append([]byte(nil), g.mem[:g.in.StatePhys+mm.StateSize]...)
	undo := func() { copy(g.mem, save) }
	v, _ := NewView(g.mem, g.in)
	le := binary.LittleEndian
	rec := func(p uint64) []byte { return g.mem[g.in.MetaPhys+p*mm.FrameMetaSize:][:mm.FrameMetaSize] }
	st := g.mem[g.in.StatePhys:][:mm.StateSize]
	for k := uint8(0); k <= mm.MaxOrder; k++ {
		var nodes []uint64
		for p := v.ListHead(k); p != mm.LinkNone && len(nodes) < 64; {
			nodes = append(nodes, p)
			rr, _ := v.Record(p)
			p = rr.Next
		}
		if len(nodes) < 4 || r.Intn(2) == 0 {
			continue
		}
		i := 1 + r.Intn(len(nodes)-3)
		a, b, c, d := nodes[i-1], nodes[i], nodes[i+1], nodes[i+2]
		if r.Intn(2) == 0 { // one link of a node inside the list
			field := []int{mm.OffNext, mm.OffPrev}[r.Intn(2)]
			le.PutUint64(rec(nodes[r.Intn(len(nodes))])[field:], []uint64{a, b, c, d, mm.LinkNone}[r.Intn(5)])
			return "free-list link", undo
		}
		taken := uint64(1)
		if r.Intn(2) == 0 { // off the list: a -> c
			le.PutUint64(rec(a)[mm.OffNext:], c)
			le.PutUint64(rec(c)[mm.OffPrev:], a)
			le.PutUint64(rec(b)[mm.OffNext:], mm.LinkNone)
			le.PutUint64(rec(b)[mm.OffPrev:], mm.LinkNone)
		} else { // a -> d, and b <-> c on their own
			le.PutUint64(rec(a)[mm.OffNext:], d)
			le.PutUint64(rec(d)[mm.OffPrev:], a)
			le.PutUint64(rec(b)[mm.OffPrev:], c)
			le.PutUint64(rec(c)[mm.OffNext:], b)
			taken = 2
		}
		off := mm.StateOffCounts + 8*int(k)
		le.PutUint64(st[off:], le.Uint64(st[off:])-taken)
		le.PutUint64(st[mm.StateOffFreeFrames:], le.Uint64(st[mm.StateOffFreeFrames:])-taken<<k)
		return "list surgery", undo
	}
	return corruptRecord(r, g)
}

// corruptRecord is corruptOnce over g, saying which frame it damaged.
func corruptRecord(r *rand.Rand, g *heldGuest) (string, func()) {
	what, pfn, undo := corruptOnce(r, g.mem, g.in)
	return fmt.Sprintf("%s of frame %#x", what, pfn), undo
}

// sameReport compares two reports but for their timing.
func sameReport(a, b *Report) bool {
	x, y := *a, *b
	x.Nanos, y.Nanos = 0, 0
	return reflect.DeepEqual(x, y)
}

// TestIncrementalEqualsFull runs random workloads and, between them,
// injected corruptions: at every checkpoint the incremental verdict (with
// its whole report) must equal a full check's, a corruption must never get
// through an incremental checkpoint, and most clean checkpoints must be
// incremental (or the test proves nothing about the incremental path).
func TestIncrementalEqualsFull(t *testing.T) {
	seeds := 6
	if testing.Short() {
		seeds = 2
	}
	var incremental, clean, corrupt, caught, hinted, caughtUnwatched int
	reasons := map[string]int{}
	var maxMappings uint64
	var maxRoots, rootless int
	for seed := range seeds {
		r := rand.New(rand.NewSource(int64(seed)))
		g := newHeldGuest(t, 16384)
		var wrote pageDiff
		if seed%2 == 1 {
			g.sp = &spaces{g: g}
			g.sp.step(r) // the first address space, before any USER block
		}
		meta := g.mem[:max(g.in.MetaPhys+g.in.FrameCount*mm.FrameMetaSize, g.in.StatePhys+mm.StateSize)]
		snap := append([]byte(nil), meta...)
		var x Incremental
		// unwatched: the last check was CheckUnwatched (the guest's hint
		// that the interval rewrites the metadata): nothing was logged since,
		// and a hostile guest may have written anything.
		unwatched := false
		check := func(label string) *Report {
			t.Helper()
			full, err := Verify(g.mem, g.in)
			if err != nil {
				t.Fatal(err)
			}
			w := &wrote
			if g.sp != nil {
				w = &g.sp.wrote
			}
			dirty := takeDirty(r, meta, snap, w)
			after := unwatched
			if after {
				dirty = pageDiff{} // the interval was not logged
			}
			var got *Report
			var out Outcome
			if unwatched = r.Intn(8) == 0; unwatched {
				got, out, err = x.CheckUnwatched(g.mem, g.in, dirty)
				hinted++
			} else {
				got, out, err = x.Check(g.mem, g.in, dirty)
			}
			if err != nil {
				t.Fatal(err)
			}
			if after && out.Kind != KindFull {
				t.Fatalf("seed %d, %s: a %s check after an unwatched interval", seed, label, out.Kind)
			}
			if after && full.TotalViolations != 0 {
				caughtUnwatched++
			}
			if !sameReport(full, got) {
				t.Fatalf("seed %d, %s: %s check (%s) differs from the full one:\nfull %+v\ngot  %+v", seed, label, out.Kind, out.Reason, full, got)
			}
			if full.TotalViolations != 0 && out.Kind == KindIncremental {
				t.Fatalf("seed %d, %s: incremental checkpoint over %d violations", seed, label, full.TotalViolations)
			}
			maxMappings, maxRoots = max(maxMappings, full.Mappings), max(maxRoots, full.Roots)
			if g.sp != nil && full.Roots == 0 {
				rootless++
			}
			if full.TotalViolations == 0 && out.Reason != "no clean baseline" { // after a corruption
				reasons[strings.Map(func(r rune) rune { // one key per kind of reason
					if r >= '0' && r <= '9' {
						return 'N'
					}
					return r
				}, out.Reason)]++
				clean++
				if out.Kind == KindIncremental {
					incremental++
				}
			}
			return full
		}
		check("boot")
		for round := 0; round < 150; round++ {
			for range 1 + r.Intn(8) {
				g.step(t, r)
			}
			rep := check("workload")
			if rep.TotalViolations != 0 {
				t.Fatalf("seed %d round %d: the workload itself broke a rule: %v", seed, round, rep.Violations)
			}
			if r.Intn(4) == 0 {
				what, undo := g.corrupt(r)
				if rep := check(what); rep.TotalViolations != 0 {
					caught++
				}
				corrupt++
				undo()
				check("repaired")
			}
		}
	}
	t.Logf("full checks at clean checkpoints: %v", reasons)
	t.Logf("up to %d address spaces, %d frames mapped; %d checkpoints with none", maxRoots, maxMappings, rootless)
	if maxMappings < 100 || maxRoots < 2 || rootless == 0 {
		t.Errorf("the address spaces stayed too small to test the page-table deltas")
	}
	t.Logf("%d clean checkpoints, %d of them incremental; %d corruptions, %d visible to the full check", clean, incremental, corrupt, caught)
	if incremental < clean*3/4 {
		t.Errorf("only %d of %d clean checkpoints were incremental", incremental, clean)
	}
	t.Logf("%d unwatched checkpoints; %d corruptions caught just after one", hinted, caughtUnwatched)
	if hinted == 0 || caughtUnwatched == 0 {
		t.Errorf("the unwatched path went untested")
	}
	if caught < corrupt/2 {
		t.Errorf("only %d of %d corruptions were visible: the generator is too tame", caught, corrupt)
	}
}
