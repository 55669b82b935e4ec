package verify

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vmm-dev/vmm/guest/mm"
)

// Incremental checkpoints. A full check (Verify) reads every record; most
// checkpoints follow a small change. Incremental keeps, from the last
// checkpoint that found nothing wrong (the baseline), what the rules derive
// from the whole array, and at the next checkpoint re-checks only the
// records on metadata pages written since (the Dirty set) plus everything
// the rules tie to them:
//
//   - the top-order blocks (2^MaxOrder frames, which no block crosses)
//     holding a written record: every frame's legal state, block heads and
//     tails, free buddies, the ownership and mapping rules per frame, and
//     the leak rule per allocated block;
//   - the global counts (FREE heads per order, POISONED and PERCPU frames,
//     the flags histogram), updated by each re-checked block's delta;
//   - the allocator state (header, counts, per-CPU caches) in full: it is
//     small, and checking every live cache entry against its frame plus the
//     PERCPU count proves every PERCPU frame sits in its slot;
//   - the free lists, walked in O(changes): a run of list nodes whose
//     records are unchanged since the baseline is still the run of the
//     baseline list (same links), so the walk jumps over it by rank and
//     reads only the records that changed, with every link and count rule
//     of the full walk;
//   - the page tables of the registered roots (incr_pt.go): the mapping
//     counts move by the delta of the written table pages and of the roots
//     that came or went, and the frames whose counts moved are re-checked
//     with their blocks (mapping rules, owner, leak);
//   - the holdings, when a page of them was written: the declared owners
//     are given again and the frames whose owner changed are re-checked.
//
// It proves the absence of violations: as soon as any rule would fail, or
// something is outside what it can attribute (the registration, the
// holdings address or the boot info changed, a written page table is
// reached twice, the records changed since the baseline outgrew
// 1/2^maxChangedShift of the array), the checkpoint is a full check, whose
// report is the verdict, and a clean full check is the new baseline. So
// an incremental checkpoint reports exactly what a full one would:
// nothing, with the same summary.

// Dirty is the set of guest-physical pages written since the previous
// checkpoint.
type Dirty interface {
	// Pages calls fn with the address of every written page overlapping
	// [gpa, gpa+n), in increasing order.
	Pages(gpa, n uint64, fn func(page uint64))
}

// Checkpoint kinds (Outcome.Kind).
const (
	KindFull        = "full"
	KindIncremental = "incremental"
)

// Outcome says how a checkpoint was checked.
type Outcome struct {
	Kind string // KindFull or KindIncremental
	// Reason is why a checkpoint in incremental mode was a full check
	// ("no clean baseline", "frame 0x1234: block tail", "final check").
	Reason string
	// Rechecked is the number of frame records the check read: all of them
	// for a full check.
	Rechecked uint64
}

// errBusy is increment's failure when more than 1/2^maxChangedShift of the
// records changed since the baseline; busyReason is what the outcome says.
const (
	errBusy    = "busy"
	busyReason = "more than a quarter of the records changed since the last full check; the next checkpoint takes a new baseline"
)

// blockFrames is the re-check unit: a top-order block (parallel.go's
// chunkFrames is the full check's read unit).
const blockFrames = 1 << mm.MaxOrder

// maxChangedShift bounds the records changed since the baseline to
// 1/2^maxChangedShift of the array before a full check starts a new
// baseline (the list walk reads every changed node).
const maxChangedShift = 2

// legalFlags are the flag combinations of a record in a legal state; the
// per-block histogram counts them by index.
var legalFlags = [...]uint32{0, mm.FlagPoisoned, mm.FlagPerCPU, mm.FlagFree, mm.FlagAllocated | mm.FlagKernel,
	mm.FlagAllocated | mm.FlagUser, mm.FlagAllocated | mm.FlagUser | mm.FlagAnonymous,
	mm.FlagAllocated | mm.FlagUser | mm.FlagCOW, mm.FlagAllocated | mm.FlagUser | mm.FlagDLL,
	mm.FlagAllocated | mm.FlagUser | mm.FlagCOW | mm.FlagAnonymous}

// legalByHist maps a histogram index (histIndex) to 1 + the index in
// legalFlags (0: not a legal combination).
var legalByHist = func() (t [histSize]uint8) {
	for i, f := range legalFlags {
		h, _ := histIndex(f)
		t[h] = uint8(i + 1)
	}
	return t
}()

func legalIndex(f uint32) (int, bool) {
	h, ok := histIndex(f)
	if !ok || legalByHist[h] == 0 {
		return 0, false
	}
	return int(legalByHist[h]) - 1, true
}

// chunkSum is what one top-order block adds to the global counts.
type chunkSum struct {
	heads            [mm.NumOrders]uint16 // FREE heads per order
	poisoned, percpu uint16
	freeFrames       uint16 // FREE records, heads and tails
	flags            [len(legalFlags)]uint16
	ptBad            uint16 // frames that would break a mapping rule (see ptRule)
}

// totals are the sums of every chunkSum.
type totals struct {
	heads            [mm.NumOrders]uint64
	poisoned, percpu uint64
	freeFrames       uint64
	flags            [len(legalFlags)]uint64
	ptBad            uint64
}

func (t *totals) add(c *chunkSum, sign int64) {
	for k := range c.heads {
		t.heads[k] += uint64(sign * int64(c.heads[k]))
	}
	t.poisoned += uint64(sign * int64(c.poisoned))
	t.percpu += uint64(sign * int64(c.percpu))
	t.freeFrames += uint64(sign * int64(c.freeFrames))
	t.ptBad += uint64(sign * int64(c.ptBad))
	for i := range c.flags {
		t.flags[i] += uint64(sign * int64(c.flags[i]))
	}
}

// Incremental is the verifier state kept between checkpoints. The zero
// value has no baseline (its first Check is a full one). Not safe for
// concurrent use: checkpoints run one at a time, with the world stopped.
type Incremental struct {
	ok     bool  // the baseline is valid
	in     Input // a deep copy of the baseline's input
	n      uint64
	chunks []chunkSum
	tot    totals

	// The baseline's free lists: nodes[k] in list order, rank[p] the
	// position of FREE head p on its list plus one (0: none, so a fresh
	// array needs no filling).
	nodes [mm.NumOrders][]uint64
	rank  []uint32
	// changed marks the records on pages written since the baseline (one
	// bit a frame); nChanged counts them; broken[k] is the sorted ranks of
	// baseline list-k nodes among them.
	changed  []uint64
	nChanged uint64
	broken   [mm.NumOrders][]uint32

	pts      *ptState    // the mapping counts
	hasRoots bool        // the state being checked has a root: the mapping rules apply
	view     *mm.View    // the records, while a rebase sums them
	coarse   bool        // see ExpectCoarse
	own      *owners     // the baseline's owners (nil: no boot info)
	decl     []heldBlock // the declared blocks by frame, checked against their records
	held     []uint64    // the declared blocks (phys | order) in declaration order
	// holdSpans is the holdings table and the tables it names: written,
	// the declared owners are recomputed (redeclare).
	holdSpans []span
	bad       []uint64 // the boot info's bad frames, sorted
}

type span struct{ base, size uint64 }

type heldBlock struct {
	pfn   uint64
	order uint8
}

// Check verifies mem as Verify does, incrementally when it can (see the
// package comment on Incremental): dirty is what was written since the
// previous Check with this Incremental, or nil for "unknown" (a full check).
func (x *Incremental) Check(mem Memory, in Input, dirty Dirty) (*Report, Outcome, error) {
	return x.check(mem, in, dirty, true)
}

// CheckUnwatched is Check for a checkpoint after which nothing is watched
// (the guest's hint, a failed dirty-log fetch): it checks as Check does
// but keeps no baseline, so the next Check is a full one.
func (x *Incremental) CheckUnwatched(mem Memory, in Input, dirty Dirty) (*Report, Outcome, error) {
	rep, out, err := x.check(mem, in, dirty, false)
	x.ok = false
	return rep, out, err
}

func (x *Incremental) check(mem Memory, in Input, dirty Dirty, rebase bool) (*Report, Outcome, error) {
	if reason := x.canIncrement(in, dirty); reason != "" {
		return x.full(mem, in, reason, rebase)
	}
	start := time.Now()
	rep, rechecked, fail := x.increment(mem, in, dirty)
	coarse := x.coarse
	x.coarse = false
	if fail == errBusy && !coarse {
		// The guest rewrote much of the array: the next interval will
		// likely do the same, and watching it would cost a write fault a
		// page. Check in full with no baseline, so nothing is watched
		// until the next checkpoint (a full one) takes a new baseline.
		rep, err := Verify(mem, in)
		x.ok = false
		return rep, Outcome{Kind: KindFull, Reason: busyReason, Rechecked: in.FrameCount}, err
	}
	if fail == errBusy {
		return x.full(mem, in, "more than a quarter of the records changed since the last full check (the first dirty log after logging starts may over-report)", rebase)
	}
	if fail != "" {
		return x.full(mem, in, fail, rebase)
	}
	rep.Nanos = time.Since(start).Nanoseconds()
	return rep, Outcome{Kind: KindIncremental, Rechecked: rechecked}, nil
}

// Full runs a full check and, when it is clean, makes it the baseline.
func (x *Incremental) Full(mem Memory, in Input) (*Report, Outcome, error) {
	return x.full(mem, in, "requested", true)
}

// Watched calls fn for every range of guest memory the baseline reads:
// the metadata array, the allocator state, the holdings and the page
// tables. Writes elsewhere never change an incremental verdict, so a dirty
// log needs to keep watching only these (see vmm's manual protection).
func (x *Incremental) Watched(fn func(gpa, n uint64)) {
	if !x.ok {
		return
	}
	fn(x.in.MetaPhys, x.in.FrameCount*mm.FrameMetaSize)
	fn(x.in.StatePhys, mm.StateSize)
	for _, s := range x.holdSpans {
		fn(s.base, s.size)
	}
	for phys := range x.pts.shadow {
		fn(phys, mm.PageSize)
	}
}

// ExpectCoarse says that the next dirty set may mark whole runs of pages
// the guest did not write (KVM logs the first write to a huge mapping
// after logging starts as the whole 2 MiB): then a checkpoint with too
// many changes still takes a new baseline.
func (x *Incremental) ExpectCoarse() { x.coarse = true }

// HasBaseline reports whether the next Check can be incremental (the
// last one was clean and kept its state as the baseline).
func (x *Incremental) HasBaseline() bool { return x.ok }

// Invalidate drops the baseline: the next Check is a full one (guest
// memory changed in a way the dirty log does not show).
func (x *Incremental) Invalidate() { x.ok = false }

func (x *Incremental) canIncrement(in Input, dirty Dirty) string {
	switch {
	case !x.ok:
		return "no clean baseline"
	case dirty == nil:
		return "no dirty log"
	}
	a, b := in, x.in
	a.Roots, b.Roots = nil, nil
	if !reflect.DeepEqual(a, b) {
		return "registration, holdings or boot info changed"
	}
	return ""
}

// written reports whether dirty has a page in any of spans.
func written(dirty Dirty, spans []span) bool {
	w := false
	for _, s := range spans {
		dirty.Pages(s.base, s.size, func(uint64) { w = true })
		if w {
			return true
		}
	}
	return false
}

// full checks everything and, when rebase and the state is clean, makes
// it the baseline.
func (x *Incremental) full(mem Memory, in Input, reason string, rebase bool) (*Report, Outcome, error) {
	x.ok = false
	rep, err := Verify(mem, in)
	out := Outcome{Kind: KindFull, Reason: reason, Rechecked: in.FrameCount}
	if err != nil || rep.TotalViolations != 0 || !rebase {
		return rep, out, err
	}
	x.rebase(mem, in, rep)
	return rep, out, nil
}

// rebase makes the clean state in mem the baseline.
func (x *Incremental) rebase(mem Memory, in Input, rep *Report) {
	view, err := NewView(mem, in)
	if err != nil {
		return
	}
	n := view.FrameCount()
	*x = Incremental{in: deepCopy(in), n: n, chunks: make([]chunkSum, (n+blockFrames-1)/blockFrames),
		rank: make([]uint32, n), changed: make([]uint64, (n+63)/64)}
	x.pts, x.hasRoots = newPTState(n, in.SharedTables), len(in.Roots) > 0
	if x.pts.build(mem, in.Roots) != "" || x.pts.mappings != rep.Mappings || x.pts.tableFrames != rep.TableFrames {
		return // counted otherwise than the full check: stay without a baseline
	}
	pt := x.pts.mc
	if in.Boot != nil {
		x.own = markOwners(mem, &view, in, pt, &ptResult{})
		x.bad = slices.Clone(in.Boot.Bad)
		slices.Sort(x.bad)
		if in.Holdings != 0 {
			blocks, spans, ok := readHoldings(mem, in.Holdings)
			if !ok {
				return // the full check read it: memory changed under us
			}
			x.setHoldings(blocks, spans)
		}
	}
	for k := uint8(0); k <= mm.MaxOrder; k++ {
		for p := view.ListHead(k); p != mm.LinkNone && p < n; {
			x.rank[p] = uint32(len(x.nodes[k])) + 1
			x.nodes[k] = append(x.nodes[k], p)
			r, _ := view.Record(p)
			p = r.Next
		}
	}
	// The full check found every rule kept: only the sums are needed (a
	// rule of checkChunk stricter than the full check's would fail the
	// block's next re-check, which then falls back to a full check).
	meta, err := mem.Slice(in.MetaPhys, n*mm.FrameMetaSize)
	if err != nil {
		return
	}
	x.view = &view
	if !x.sumAll(meta) {
		return
	}
	x.ok = true
}

func deepCopy(in Input) Input {
	out := in
	out.Roots = slices.Clone(in.Roots)
	out.SharedTables = slices.Clone(in.SharedTables)
	if in.Boot != nil {
		b := &Boot{InUse: slices.Clone(in.Boot.InUse), Bad: slices.Clone(in.Boot.Bad)}
		out.Boot = b
	}
	return out
}

// readHoldings reads the holdings table at phys under the rules of the
// owners pass, returning the blocks it declares in declaration order and
// the memory it was read from; ok is false where that pass would report a
// violation.
func readHoldings(mem Memory, phys uint64) (blocks []uint64, spans []span, ok bool) {
	raw, err := mem.Slice(phys, mm.HoldingsSize)
	if err != nil || le64(raw) != mm.HoldingsMagic || le64(raw[8:]) > mm.MaxHoldings {
		return nil, nil, false
	}
	spans = append(spans, span{phys, mm.HoldingsSize})
	for i := range le64(raw[8:]) {
		d := raw[mm.HoldingsOffDecl+i*mm.HoldingSize:]
		block, table, words, stride := le64(d[0:]), le64(d[8:]), le64(d[16:]), le64(d[24:])
		if block != 0 {
			blocks = append(blocks, block)
		}
		if table == 0 {
			continue
		}
		if stride == 0 || stride > mm.MaxHoldStride || words > mm.MaxHoldWords || table%8 != 0 {
			return nil, nil, false
		}
		w, err := mem.Slice(table, words*8)
		if err != nil {
			return nil, nil, false
		}
		spans = append(spans, span{table, words * 8})
		for j := stride - 1; j < words; j += stride {
			if e := le64(w[j*8:]); e != 0 {
				blocks = append(blocks, e)
			}
		}
	}
	return blocks, spans, true
}

// setHoldings records the declared blocks (sorted, for frameRules).
func (x *Incremental) setHoldings(blocks []uint64, spans []span) {
	x.held, x.holdSpans = blocks, spans
	x.decl = x.decl[:0]
	for _, e := range blocks {
		x.decl = append(x.decl, heldBlock{e / mm.PageSize, uint8(e % mm.PageSize)})
	}
	sort.Slice(x.decl, func(i, j int) bool { return x.decl[i].pfn < x.decl[j].pfn })
}

// redeclare applies rewritten holdings: the declared owners are taken
// back and given again as the owners pass gives them (hold), and the
// frames whose owner changed are returned for the leak rule.
func (x *Incremental) redeclare(mem Memory, v *mm.View) (changed []uint64, fail string) {
	blocks, spans, ok := readHoldings(mem, x.in.Holdings)
	if !ok {
		return nil, "holdings unreadable or out of range"
	}
	o := x.own
	before := map[uint64]uint8{}
	visit := func(e uint64, fn func(p uint64)) {
		pfn, order := e/mm.PageSize, e%mm.PageSize
		if order > mm.MaxOrder {
			return
		}
		for p := pfn; p < pfn+1<<order && p < x.n; p++ {
			if _, seen := before[p]; !seen {
				before[p] = o.owner[p]
			}
			fn(p)
		}
	}
	for _, e := range x.held {
		visit(e, func(p uint64) {
			if o.owner[p] == ownDeclared {
				o.owner[p] = ownNone
			}
		})
	}
	for _, e := range blocks {
		pfn, order := e/mm.PageSize, e%mm.PageSize
		r, ok := v.Record(pfn)
		if !ok || order > mm.MaxOrder || r.Flags&(mm.FlagAllocated|mm.FlagFree|mm.FlagPoisoned|mm.FlagPerCPU) != mm.FlagAllocated || uint64(r.Order) != order {
			return nil, fmt.Sprintf("declared block %#x is not an allocated block of its order", e)
		}
		if o.owner[pfn] == ownDeclared {
			return nil, fmt.Sprintf("declared block %#x held twice", e)
		}
		visit(e, func(p uint64) {
			if !o.owned(p) {
				o.owner[p] = ownDeclared
			}
		})
	}
	for p, was := range before {
		if o.owner[p] != was {
			changed = append(changed, p)
		}
	}
	x.setHoldings(blocks, spans)
	return changed, ""
}

// increment is one incremental checkpoint; fail says why it cannot
// conclude (then the caller runs a full check).
func (x *Incremental) increment(mem Memory, in Input, dirty Dirty) (rep *Report, rechecked uint64, fail string) {
	view, err := NewView(mem, in)
	if err != nil {
		return nil, 0, "registration: " + err.Error()
	}
	// Too many changes for the list walk: say so before marking them.
	var pages uint64
	dirty.Pages(in.MetaPhys, in.FrameCount*mm.FrameMetaSize, func(uint64) { pages++ })
	if x.nChanged+pages*(mm.PageSize/mm.FrameMetaSize) > x.n>>maxChangedShift {
		return nil, 0, errBusy
	}
	// The chunks holding a written record, and the records changed since
	// the baseline.
	var chunks []uint64
	fresh := map[uint8][]uint32{}
	dirty.Pages(in.MetaPhys, in.FrameCount*mm.FrameMetaSize, func(page uint64) {
		lo := max(page, in.MetaPhys) - in.MetaPhys
		hi := min(page+mm.PageSize-in.MetaPhys, in.FrameCount*mm.FrameMetaSize)
		for p := lo / mm.FrameMetaSize; p < (hi+mm.FrameMetaSize-1)/mm.FrameMetaSize; p++ {
			if x.changed[p/64]&(1<<(p%64)) == 0 {
				x.changed[p/64] |= 1 << (p % 64)
				x.nChanged++
				if r := x.rank[p]; r != 0 {
					k := x.baseOrder(p)
					fresh[k] = append(fresh[k], r-1)
				}
			}
			if c := p / blockFrames; len(chunks) == 0 || chunks[len(chunks)-1] != c {
				chunks = append(chunks, c)
			}
		}
	})
	for k, rs := range fresh {
		x.broken[k] = append(x.broken[k], rs...)
		slices.Sort(x.broken[k])
	}
	redeclare := x.own != nil && written(dirty, x.holdSpans)
	x.hasRoots = len(in.Roots) > 0
	{
		if f := x.pts.delta(mem, in.Roots, dirty); f != "" {
			return nil, 0, f
		}
		for _, r := range x.pts.changed {
			for c := r.lo / blockFrames; c <= r.hi/blockFrames; c++ {
				chunks = append(chunks, c)
			}
		}
		// A frame the tables took or let go of may change which frames
		// a holding gives its owner (hold marks only unowned frames).
		redeclare = redeclare || x.own != nil && x.in.Holdings != 0 && len(x.pts.changed) > 0
		slices.Sort(chunks)
		chunks = slices.Compact(chunks)
	}
	if redeclare {
		owned, f := x.redeclare(mem, &view)
		if f != "" {
			return nil, 0, f
		}
		for _, p := range owned {
			chunks = append(chunks, p/blockFrames)
		}
		slices.Sort(chunks)
		chunks = slices.Compact(chunks)
	}
	if x.nChanged > x.n>>maxChangedShift {
		return nil, 0, errBusy
	}
	h, ok := view.Header()
	if !ok {
		return nil, 0, "no allocator state"
	}
	if f := x.header(&view, h); f != "" {
		return nil, 0, f
	}
	tot := x.tot
	newSums := make([]chunkSum, len(chunks))
	for i, c := range chunks {
		sum, n, f := x.checkChunk(&view, c)
		if f != "" {
			return nil, 0, f
		}
		rechecked += n
		tot.add(&x.chunks[c], -1)
		tot.add(&sum, 1)
		newSums[i] = sum
	}
	if f := x.caches(&view, h, tot.percpu); f != "" {
		return nil, 0, f
	}
	if x.hasRoots && tot.ptBad != 0 {
		return nil, 0, fmt.Sprintf("%d frames break a mapping rule", tot.ptBad)
	}
	if tot.poisoned != h.PoisonedFrames {
		return nil, 0, "poisoned total"
	}
	var listed uint64
	for k := uint8(0); k <= mm.MaxOrder; k++ {
		cnt, f := x.walk(&view, k)
		if f != "" {
			return nil, 0, f
		}
		if cnt != h.Counts[k] || cnt != tot.heads[k] {
			return nil, 0, fmt.Sprintf("free list of order %d: %d blocks, count %d, %d FREE heads", k, cnt, h.Counts[k], tot.heads[k])
		}
		listed += cnt << k
	}
	if listed != h.FreeFrames {
		return nil, 0, "free frame total"
	}
	// Clean: the re-checked chunks become part of the baseline.
	for i, c := range chunks {
		x.chunks[c] = newSums[i]
	}
	x.tot = tot
	x.in.Roots = slices.Clone(in.Roots)
	return x.report(&view, tot), rechecked, ""
}

// baseOrder is the order of the baseline list holding p.
func (x *Incremental) baseOrder(p uint64) uint8 {
	r := x.rank[p] - 1
	for k := range x.nodes {
		if uint64(r) < uint64(len(x.nodes[k])) && x.nodes[k][r] == p {
			return uint8(k)
		}
	}
	return 0
}

func (x *Incremental) header(v *mm.View, h mm.StateHeader) string {
	meta, state := v.Registered()
	if h.Magic != mm.Magic || h.Version != mm.LayoutVersion || h.MaxOrder != mm.MaxOrder ||
		h.MetaPhys != meta || h.FrameCount != v.FrameCount() || h.StatePhys != state {
		return "state header"
	}
	return ""
}

// caches checks the per-CPU caches whole: headers, totals, every live
// entry names a distinct PERCPU frame tagged with its CPU and slot. With
// their count equal to the PERCPU frames (percpu), every PERCPU frame is
// named by the slot its tags give.
func (x *Incremental) caches(v *mm.View, h mm.StateHeader, percpu uint64) string {
	ncpu := uint64(h.NumCPUs)
	if ncpu > mm.MaxCPUs {
		return "per-CPU caches: NumCPUs"
	}
	var count, synced uint64
	for cpu := uint64(0); cpu < mm.MaxCPUs; cpu++ {
		c, _ := v.Cache(cpu)
		if c.Count > mm.PCPCapacity || c.Synced > mm.PCPCapacity || c.Head >= mm.PCPCapacity || cpu >= ncpu && c.Count != 0 {
			return fmt.Sprintf("per-CPU cache %d header", cpu)
		}
		count += uint64(c.Count)
		synced += uint64(c.Synced)
		for i := uint64(0); i < uint64(c.Count); i++ {
			pfn, _ := v.CacheEntry(cpu, i)
			slot := (uint64(c.Head) + i) % mm.PCPCapacity
			r, ok := v.Record(pfn)
			if !ok || r.Flags != mm.FlagPerCPU || r.Next != cpu || r.Prev != slot {
				return fmt.Sprintf("per-CPU cache %d slot %d", cpu, slot)
			}
		}
	}
	if count != percpu || synced != h.PCPFrames {
		return "per-CPU totals"
	}
	return ""
}

// sumChunk is what top-order block c of the records in meta adds to the
// counts; false if it holds a record in no legal state. The full check
// before it found every block well formed, so it reads only the heads: a
// head of order k stands for 2^k-1 tails with its tail flags (which break
// no mapping rule while nothing maps them). It decodes the bytes itself.
func (x *Incremental) sumChunk(meta []byte, c uint64) (sum chunkSum, ok bool) {
	le := binary.LittleEndian
	hi := min((c+1)*blockFrames, x.n)
	for p := c * blockFrames; p < hi; {
		b := meta[p*mm.FrameMetaSize : p*mm.FrameMetaSize+mm.FrameMetaSize]
		f, o := le.Uint32(b[mm.OffFlags:]), b[mm.OffOrder]
		fi, legal := legalIndex(f)
		if !legal || o > mm.MaxOrder || p+1<<o > hi {
			return sum, false
		}
		size := uint16(1) << o
		sum.flags[fi]++
		switch {
		case f == mm.FlagFree:
			sum.freeFrames += size
			sum.heads[o]++
			sum.flags[fi] += size - 1
		case f == mm.FlagPoisoned:
			sum.poisoned++
		case f == mm.FlagPerCPU:
			sum.percpu++
		case f&mm.FlagAllocated != 0:
			ti, _ := legalIndex(mm.FlagAllocated | f&(mm.FlagKernel|mm.FlagUser))
			sum.flags[ti] += size - 1
		}
		if f&mm.FlagUser != 0 && !x.hasRoots {
			if r, _ := x.view.Record(p); x.ptRule(p, r) != "" {
				sum.ptBad++
			}
		}
		p += uint64(size)
	}
	return sum, true
}

// sumAll fills every chunk's sums and the totals, on every host CPU.
func (x *Incremental) sumAll(meta []byte) bool {
	workers := min(runtime.GOMAXPROCS(0), len(x.chunks))
	oks := make([]bool, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := len(x.chunks)*w/workers, len(x.chunks)*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			oks[w] = true
			for c := lo; c < hi && oks[w]; c++ {
				x.chunks[c], oks[w] = x.sumChunk(meta, uint64(c))
			}
		}()
	}
	wg.Wait()
	for _, ok := range oks {
		if !ok {
			return false
		}
	}
	for c := range x.chunks {
		x.tot.add(&x.chunks[c], 1)
	}
	return true
}

// checkChunk checks top-order block c against the legal states (strictly:
// anything either full checker could report fails it) and the per-frame
// ownership and mapping rules, and returns its sums.
func (x *Incremental) checkChunk(v *mm.View, c uint64) (sum chunkSum, read uint64, fail string) {
	lo, hi := c*blockFrames, min((c+1)*blockFrames, x.n)
	bad := func(p uint64, what string) (chunkSum, uint64, string) {
		return chunkSum{}, 0, fmt.Sprintf("frame %#x: %s", p, what)
	}
	for p := lo; p < hi; {
		r, _ := v.Record(p)
		fi, legal := legalIndex(r.Flags)
		noLinks := r.Next == mm.LinkNone && r.Prev == mm.LinkNone
		switch {
		case !legal || r.Reserved != 0:
			return bad(p, "flags or reserved bytes")
		case r.Flags == 0 || r.Flags == mm.FlagPoisoned || r.Flags == mm.FlagPerCPU:
			if r.Order != 0 || r.Refcount != 0 || (r.Flags != mm.FlagPerCPU && !noLinks) {
				return bad(p, "single frame state")
			}
			if r.Flags == mm.FlagPoisoned {
				sum.poisoned++
			} else if r.Flags == mm.FlagPerCPU {
				sum.percpu++
			}
			if f := x.rules(p, r, &sum); f != "" {
				return bad(p, f)
			}
			sum.flags[fi]++
			p++
			continue
		}
		if r.Order > mm.MaxOrder {
			return bad(p, "block order")
		}
		size := uint64(1) << r.Order
		if p%size != 0 || p+size > x.n {
			return bad(p, "block placement")
		}
		free := r.Flags == mm.FlagFree
		if free {
			if r.Refcount != 0 {
				return bad(p, "FREE refcount")
			}
			if r.Order < mm.MaxOrder {
				if b, ok := v.Record(p ^ size); ok && p^size > p && b.Flags == mm.FlagFree && b.Order == r.Order && b.Reserved == 0 {
					return bad(p, "unmerged buddy")
				}
			}
			sum.heads[r.Order]++
		} else if r.Refcount == 0 || !noLinks {
			return bad(p, "allocated head state")
		}
		tail := mm.FlagFree
		if !free {
			tail = mm.FlagAllocated | r.Flags&(mm.FlagKernel|mm.FlagUser)
		}
		owned := x.own == nil
		for q := p; q < p+size; q++ {
			t := r
			if q > p {
				t, _ = v.Record(q)
				if t.Flags != tail || t.Order != mm.OrderTail || t.Reserved != 0 || t.Refcount != 0 ||
					t.Next != mm.LinkNone || t.Prev != mm.LinkNone {
					return bad(q, "block tail")
				}
			}
			if f := x.rules(q, t, &sum); f != "" {
				return bad(q, f)
			}
			if x.own != nil && x.own.owned(q) {
				owned = true
			}
			ti, _ := legalIndex(t.Flags)
			sum.flags[ti]++
			if free {
				sum.freeFrames++
			}
		}
		if !free && !owned {
			return bad(p, "leak")
		}
		p += size
	}
	return sum, hi - lo, ""
}

// rules runs frameRules and ptRule on one record. A mapping rule broken
// while no root is registered is only counted in sum (see ptRule).
func (x *Incremental) rules(p uint64, r mm.Record, sum *chunkSum) string {
	if f := x.frameRules(p, r); f != "" {
		return f
	}
	if f := x.ptRule(p, r); f != "" {
		if x.hasRoots {
			return f
		}
		sum.ptBad++
	}
	return ""
}

// frameRules are the rules of the owners pass about one frame, as the
// owner map states them.
func (x *Incremental) frameRules(p uint64, r mm.Record) string {
	if o := x.own; o != nil {
		// kernelAreas: the frames the VMM placed and the registered areas.
		if k := o.owner[p]; (k == ownMeta || k == ownState || k >= ownBoot) && r.Flags != 0 && r.Flags != mm.FlagAllocated|mm.FlagKernel {
			return "owned area not ALLOCATED|KERNEL"
		}
		if _, isBad := slices.BinarySearch(x.bad, p); isBad && r.Flags != 0 && r.Flags != mm.FlagPoisoned {
			return "bad frame not POISONED"
		}
		i, _ := sort.Find(len(x.decl), func(i int) int { return cmp.Compare(p, x.decl[i].pfn) })
		for ; i < len(x.decl) && x.decl[i].pfn == p; i++ {
			if r.Flags&(mm.FlagAllocated|mm.FlagFree|mm.FlagPoisoned|mm.FlagPerCPU) != mm.FlagAllocated || r.Order != x.decl[i].order {
				return "declared block changed"
			}
		}
	}
	return ""
}

// ptRule is mapCounter.judge for one frame: why the frame breaks a
// mapping rule, or "". The rules apply only while some root is
// registered; without one, checkChunk counts the frames that would break
// them (chunkSum.ptBad), so that the first root needs no full check.
func (x *Incremental) ptRule(p uint64, r mm.Record) string {
	c := x.pts
	var maps uint64
	var table, noUser, writable bool
	if c != nil && c.mapCount != nil {
		maps, table, noUser, writable = uint64(c.mapCount[p]), c.visits[p] > 0, c.noUser[p] > 0, c.writable[p] > 0
	}
	{
		f := r.Flags
		if table && f&(mm.FlagKernel|mm.FlagAllocated) != mm.FlagKernel|mm.FlagAllocated {
			return "page-table frame flags"
		}
		head := r.Order != mm.OrderTail
		switch {
		case maps == 0:
			if f&mm.FlagUser != 0 && head && r.Refcount != 0 {
				return "unmapped USER frame holds references"
			}
		case f == 0 || f&(mm.FlagFree|mm.FlagPoisoned) != 0 || f&mm.FlagUser == 0:
			return "mapped frame state"
		case noUser || f&(mm.FlagCOW|mm.FlagDLL) != 0 && writable:
			return "mapping permissions"
		case head && (f&(mm.FlagAnonymous|mm.FlagDLL) == 0 || uint64(r.Refcount) != maps):
			return "mapped USER head"
		}
	}
	return ""
}

// walk follows free list k as the full walk does, reading only the nodes
// changed since the baseline: a node p whose record did not change is at
// rank[p] on the baseline list with the same links, and so are the nodes
// after it up to the next changed one (broken[k]), which the walk jumps
// to. It returns the number of blocks on the list, or why it cannot
// conclude.
func (x *Incremental) walk(v *mm.View, k uint8) (uint64, string) {
	nodes, broken := x.nodes[k], x.broken[k]
	prev, cur, cnt := mm.LinkNone, v.ListHead(k), uint64(0)
	// Each step reads a changed node or jumps a run that ends at one, and
	// no node is visited twice (the prev check): bounded by the changes.
	for steps := uint64(0); cur != mm.LinkNone; steps++ {
		if cur >= x.n || steps > 2*x.nChanged+2 {
			return 0, fmt.Sprintf("free list of order %d: link %#x", k, cur)
		}
		r, _ := v.Record(cur)
		if r.Flags != mm.FlagFree || r.Order != k || r.Reserved != 0 || r.Prev != prev {
			return 0, fmt.Sprintf("free list of order %d: node %#x", k, cur)
		}
		if x.changed[cur/64]&(1<<(cur%64)) != 0 {
			cnt++
			prev, cur = cur, r.Next
			continue
		}
		// Unchanged: a baseline node of this list (its record is the
		// baseline's, a FREE head of order k, and the baseline was clean).
		rk := x.rank[cur] - 1 // (0 - 1 wraps: caught below)
		if uint64(rk) >= uint64(len(nodes)) || nodes[rk] != cur {
			return 0, fmt.Sprintf("free list of order %d: node %#x not in the baseline", k, cur)
		}
		i, _ := slices.BinarySearch(broken, rk+1)
		end := uint32(len(nodes))
		if i < len(broken) {
			end = broken[i]
		}
		cnt += uint64(end - rk)
		prev = nodes[end-1]
		if end < uint32(len(nodes)) {
			cur = nodes[end]
		} else {
			cur = mm.LinkNone
		}
	}
	return cnt, ""
}

// report is what Verify would return for the clean state.
func (x *Incremental) report(v *mm.View, t totals) *Report {
	r := &Report{Frames: x.in.FrameCount, Roots: len(x.in.Roots), FreeFrames: t.freeFrames, PerCPU: decodeCaches(v)}
	r.TableFrames, r.Mappings = x.pts.tableFrames, x.pts.mappings
	for k := range r.FreeBlocks {
		r.FreeBlocks[k] = t.heads[k]
	}
	var h histogram
	for i, n := range t.flags {
		if n != 0 {
			hi, _ := histIndex(legalFlags[i])
			h.counts[hi] = n
		}
	}
	h.freeFrames, h.freeBlocks = r.FreeFrames, r.FreeBlocks
	r.summarise(&h)
	return r
}
