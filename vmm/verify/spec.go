package verify

import (
	"encoding/binary"
	"fmt"

	"github.com/vmm-dev/vmm/guest/mm"
)

// The host's own check of the core buddy invariants, written from the
// frame-metadata rules (docs/frame-metadata.md) rather than from
// guest/mm.Check, so that a rule deleted from or broken in the shared
// checker does not blind the host too. It may use the host's memory
// freely (sets of visited frames) and so takes another route than the
// guest's bounded, allocation-free checker: lists first, then every frame
// against what the lists and caches say about it.

type specCheck struct {
	v    *mm.View
	meta []byte // the records' bytes (v.MetaBytes)
	n    uint64
	out  []Violation
	tot  int
	hist *histogram // fed every record (nil: none)
	own  *owners    // told of every allocated block (nil: no ownership rules)
	// leaks receives own's reports (own.res, or a piece's own list)
	leaks *ptResult
}

func (s *specCheck) bad(pfn uint64, kind, field string, exp, act uint64) {
	s.tot++
	if len(s.out) < MaxListed {
		s.out = append(s.out, Violation{PFN: pfn, Phys: pfn * mm.PageSize, Source: "spec", Kind: kind, Field: field, Expected: exp, Actual: act})
	}
}

func (s *specCheck) badScope(scope, kind, field string, exp, act uint64) {
	s.tot++
	if len(s.out) < MaxListed {
		s.out = append(s.out, Violation{PFN: mm.LinkNone, Source: "spec", Scope: scope, Kind: kind, Field: field, Expected: exp, Actual: act})
	}
}

// legalAllocated reports whether f is ALLOCATED plus exactly one owner and
// modifiers the owner may carry: none on KERNEL; on USER any of
// ANONYMOUS, COW, DLL except COW with DLL or DLL with ANONYMOUS.
func legalAllocated(f uint32) bool {
	const mods = mm.FlagCOW | mm.FlagDLL | mm.FlagAnonymous
	switch f &^ mods {
	case mm.FlagAllocated | mm.FlagKernel:
		return f&mods == 0
	case mm.FlagAllocated | mm.FlagUser:
		return f&(mm.FlagCOW|mm.FlagDLL) != mm.FlagCOW|mm.FlagDLL && f&(mm.FlagDLL|mm.FlagAnonymous) != mm.FlagDLL|mm.FlagAnonymous
	}
	return false
}

func newSpecCheck(v *mm.View, hist *histogram, own *owners) *specCheck {
	s := &specCheck{v: v, meta: v.MetaBytes(), n: v.FrameCount(), hist: hist, own: own}
	if own != nil {
		s.leaks = own.res
	}
	return s
}

// checkSpec runs the independent check and returns its violations and
// their total.
func checkSpec(v *mm.View, hist *histogram, own *owners) ([]Violation, int) {
	s := newSpecCheck(v, hist, own)
	fp, h, ok := s.beforeFrames()
	if ok {
		s.frames(&fp, 0, s.n)
		s.poisonedTotal(h, fp.poisoned)
	}
	return s.out, s.tot
}

// beforeFrames runs the checks before the pass over the frames (header,
// lists, caches) and returns the pass to run and the header; ok is false
// without an allocator state (reported), when there is nothing more to
// check.
func (s *specCheck) beforeFrames() (fp framePass, h mm.StateHeader, ok bool) {
	h, ok = s.v.Header()
	if !ok {
		s.badScope("allocator state", "spec: no allocator state", "state", 1, 0)
		return framePass{}, h, false
	}
	s.header(h)
	onList := s.lists(h)
	inCache := s.caches()
	return framePass{on: onList, cached: inCache}, h, true
}

// poisonedTotal is the rule after the pass over the frames.
func (s *specCheck) poisonedTotal(h mm.StateHeader, poisoned uint64) {
	if poisoned != h.PoisonedFrames {
		s.badScope("allocator totals", "spec: poisoned total differs from the POISONED frames", "count", poisoned, h.PoisonedFrames)
	}
}

func (s *specCheck) header(h mm.StateHeader) {
	check := func(name string, got, want uint64) {
		if got != want {
			s.badScope("allocator state "+name, "spec: state header wrong", "state", want, got)
		}
	}
	meta, state := s.v.Registered()
	check("magic", h.Magic, mm.Magic)
	check("version", uint64(h.Version), uint64(mm.LayoutVersion))
	check("max order", uint64(h.MaxOrder), mm.MaxOrder)
	check("metadata address", h.MetaPhys, meta)
	check("frame count", h.FrameCount, s.n)
	check("state address", h.StatePhys, state)
}

// lists walks every free list and returns, for each frame on one, the
// order of the list it is on plus one (0: on none). A list node must be a FREE
// head of the list's order whose prev is the node before it; a node seen
// twice ends the walk (a cycle or a node on two lists).
func (s *specCheck) lists(h mm.StateHeader) []uint8 {
	on := bytePool.get(s.n) // order+1 (0: on none), so that a cleared array has none
	var listed uint64
	for k := uint8(0); k <= mm.MaxOrder; k++ {
		prev, blocks := mm.LinkNone, uint64(0)
		for p := s.v.ListHead(k); p != mm.LinkNone; {
			r, ok := s.v.Record(p)
			if !ok {
				if prev == mm.LinkNone {
					s.badScope(fmt.Sprintf("free list of order %d", k), "spec: free-list head outside the array", "next", s.n, p)
				} else {
					s.bad(prev, "spec: free-list link outside the array", "next", s.n, p)
				}
				break
			}
			if on[p] != 0 {
				s.bad(p, "spec: frame reached twice on the free lists", "list", uint64(k), uint64(int8(on[p]-1)))
				break
			}
			if r.Flags != mm.FlagFree || r.Order != k || r.Reserved != 0 {
				s.bad(p, "spec: free-list node is not a FREE head of the list's order", "list", uint64(k), uint64(r.Flags)<<8|uint64(r.Order))
				s.behindBreak(on, k, p, r.Next)
				break
			}
			if r.Prev != prev {
				s.bad(p, "spec: free-list prev link broken", "prev", prev, r.Prev)
				on[p] = k + 1
				s.behindBreak(on, k, p, r.Next)
				break
			}
			on[p] = k + 1
			blocks++
			prev, p = p, r.Next
		}
		if blocks != h.Counts[k] {
			s.badScope(fmt.Sprintf("free list of order %d", k), "spec: block count differs from the list", "count", blocks, h.Counts[k])
		}
		listed += blocks << k
	}
	if listed != h.FreeFrames {
		s.badScope("allocator totals", "spec: free frame total differs from the lists", "count", listed, h.FreeFrames)
	}
	return on
}

// behindBreak marks the well-formed rest of list k after the broken node
// at (its next link: from) as on the list: those blocks are reached
// through the break, which is reported once, not again as FREE heads off
// their list. It stops where the rest is not well formed or meets a
// frame already seen.
func (s *specCheck) behindBreak(on []uint8, k uint8, at, from uint64) {
	prev := at
	for p := from; p != mm.LinkNone; {
		r, ok := s.v.Record(p)
		if !ok || on[p] != 0 || r.Flags != mm.FlagFree || r.Order != k || r.Reserved != 0 || r.Prev != prev {
			return
		}
		on[p] = k + 1
		prev, p = p, r.Next
	}
}

// caches returns, for each frame, whether a live per-CPU cache entry holds
// it (tagged with that CPU and slot), checking the headers and totals.
func (s *specCheck) caches() []bool {
	in := boolPool.get(s.n)
	ncpu := uint64(s.v.NumCPUs())
	if ncpu > mm.MaxCPUs {
		s.badScope("per-CPU caches", "spec: more CPUs than caches", "pcp", mm.MaxCPUs, ncpu)
	}
	var synced uint64
	for cpu := uint64(0); cpu < mm.MaxCPUs; cpu++ {
		h, _ := s.v.Cache(cpu)
		synced += uint64(h.Synced)
		scope := func() string { return fmt.Sprintf("per-CPU cache of cpu %d", cpu) } // only when one is bad
		switch {
		case h.Count > mm.PCPCapacity || h.Synced > mm.PCPCapacity:
			s.badScope(scope(), "spec: cache count above capacity", "pcp", mm.PCPCapacity, uint64(max(h.Count, h.Synced)))
		case h.Head >= mm.PCPCapacity:
			s.badScope(scope(), "spec: cache head outside the ring", "pcp", mm.PCPCapacity-1, uint64(h.Head))
		case cpu >= ncpu && h.Count != 0:
			s.badScope(scope(), "spec: cache of an absent CPU holds frames", "pcp", 0, uint64(h.Count))
		}
		for i := uint64(0); ; i++ {
			pfn, ok := s.v.CacheEntry(cpu, i)
			if !ok {
				break
			}
			slot := (uint64(h.Head%mm.PCPCapacity) + i) % mm.PCPCapacity
			r, inArray := s.v.Record(pfn)
			switch {
			case !inArray:
				s.badScope(fmt.Sprintf("per-CPU cache of cpu %d, slot %d (entry %#x)", cpu, slot, pfn),
					"spec: cache entry outside the array", "pcp", cpu<<32|slot, pfn)
			case in[pfn]:
				s.bad(pfn, "spec: frame cached twice", "pcp", cpu<<32|slot, 1)
			case r.Flags != mm.FlagPerCPU || r.Next != cpu || r.Prev != slot:
				s.bad(pfn, "spec: cache entry's frame not tagged with its CPU and slot", "pcp", cpu<<32|slot, r.Next<<32|r.Prev&0xFFFFFFFF)
				in[pfn] = true
			default:
				in[pfn] = true
			}
		}
	}
	if h, _ := s.v.Header(); h.PCPFrames != synced {
		s.badScope("allocator totals", "spec: cached-frame total differs from the caches", "count", synced, h.PCPFrames)
	}
	return in
}

// framePass is the pass over the frames, resumable over consecutive
// ranges (like mm.LinearPass): what the lists and caches say, where it is
// in the block structure, and the POISONED frames it counted.
type framePass struct {
	on       []uint8 // lists' result
	cached   []bool  // caches' result
	blockEnd uint64  // frames below blockEnd are tails of the current block
	tail     uint32  // the flags those tails must carry
	run      badRun  // the tails charged to a bad head
	poisoned uint64
}

// carries reports whether the pass, stopped at frame at, is inside a
// block that goes on past it (a bad head's run ends at a multiple of
// 2^MaxOrder; a misaligned or overrunning block may not).
func (fp *framePass) carries(at uint64) bool { return fp.blockEnd > at }

// resume is the pass as a range that starts where this one stopped sees
// it when run on its own: its position in the block structure, no counts.
func (fp *framePass) resume() framePass {
	return framePass{on: fp.on, cached: fp.cached, blockEnd: fp.blockEnd, tail: fp.tail}
}

// frames checks records [lo, hi) against the legal states and the block
// structure, and against what the lists and caches say, continuing fp.
func (s *specCheck) frames(fp *framePass, lo, hi uint64) {
	on, cached := fp.on, fp.cached
	blockEnd, tail := fp.blockEnd, fp.tail
	run := &fp.run
	tails := uint64(0) // clean tails of blocks, counted into the histogram at the end
	for p := lo; p < hi; p++ {
		if p < blockEnd {
			// The common case, clean tails of the current block (no run
			// is open inside a block): what the code below does for them,
			// and one count for the histogram.
			q := s.cleanTails(p, min(blockEnd, hi), tail)
			tails += q - p
			if p = q; p == hi {
				break
			}
			if p == blockEnd {
				p--
				continue
			}
		} else if q := s.cleanHoles(p, hi); q > p {
			// Likewise a run of frames that are not RAM, in no block:
			// each ends any run of tails and counts in the histogram.
			s.closeRun(run)
			if s.hist != nil {
				s.hist.counts[0] += q - p
			}
			if p = q; p == hi {
				break
			}
		}
		if tails > 0 && s.hist != nil { // before tail changes
			s.hist.addTails(tail, tails)
		}
		tails = 0
		r, _ := s.v.Record(p)
		if s.hist != nil {
			s.hist.add(r)
		}
		if run.takes(p, r) {
			s.tailState(p, r)
			continue
		}
		s.closeRun(run)
		if r.Reserved != 0 {
			s.bad(p, "spec: reserved order bytes set", "order", 0, uint64(r.Reserved))
		}
		if p < blockEnd {
			if r.Flags == tail && r.Order == mm.OrderTail {
				s.tailState(p, r)
				continue
			}
			s.bad(p, "spec: frame inside a block is not one of its tails", "flags", uint64(tail), uint64(r.Flags))
			blockEnd = p
		}
		noLinks := r.Next == mm.LinkNone && r.Prev == mm.LinkNone
		switch {
		case r.Flags == 0 || r.Flags == mm.FlagPoisoned:
			if r.Flags == mm.FlagPoisoned {
				fp.poisoned++
			}
			if r.Order != 0 || r.Refcount != 0 || !noLinks {
				s.bad(p, "spec: not-RAM or poisoned frame carries state", "order", 0, uint64(r.Order)|uint64(r.Refcount)<<8)
			}
			if r.Order != 0 {
				s.startRun(run, p)
			}
			continue
		case r.Flags == mm.FlagPerCPU:
			if r.Order != 0 || r.Refcount != 0 || !cached[p] {
				s.bad(p, "spec: PERCPU frame not an order-0 frame in its cache slot", "pcp", 1, uint64(r.Order)|uint64(r.Refcount)<<8)
			}
			if r.Order != 0 {
				s.startRun(run, p)
			}
			continue
		case r.Flags == mm.FlagFree:
			if r.Refcount != 0 {
				s.bad(p, "spec: FREE frame holds references", "refcount", 0, uint64(r.Refcount))
			}
		case legalAllocated(r.Flags):
			if r.Order != mm.OrderTail && r.Refcount == 0 {
				s.bad(p, "spec: allocated block without references", "refcount", 1, 0)
			}
			if !noLinks {
				s.bad(p, "spec: allocated frame has links", "next", mm.LinkNone, r.Next&r.Prev)
			}
		default:
			s.bad(p, "spec: illegal flag combination", "flags", 0, uint64(r.Flags))
			s.startRun(run, p)
			continue
		}
		if r.Order == mm.OrderTail {
			s.bad(p, "spec: tail outside any block", "order", 0, uint64(r.Order))
			s.startRun(run, p)
			continue
		}
		if r.Order > mm.MaxOrder {
			s.bad(p, "spec: block order above the maximum", "order", mm.MaxOrder, uint64(r.Order))
			s.startRun(run, p)
			continue
		}
		size := uint64(1) << r.Order
		if p%size != 0 {
			s.bad(p, "spec: block head not aligned to its size", "order", size, p%size)
		}
		if p+size > s.n {
			s.bad(p, "spec: block runs past the array", "order", s.n, p+size)
		}
		blockEnd = min(p+size, s.n)
		tail = mm.FlagFree
		if r.Flags != mm.FlagFree {
			tail = mm.FlagAllocated | r.Flags&(mm.FlagKernel|mm.FlagUser)
			if s.own != nil {
				s.own.block(p, blockEnd, r, s.leaks)
			}
			continue
		}
		if on[p] != r.Order+1 {
			s.bad(p, "spec: FREE head not on the free list of its order", "list", uint64(r.Order), uint64(int8(on[p]-1)))
		}
		if r.Order < mm.MaxOrder {
			if b, ok := s.v.Record(p ^ size); ok && p^size > p && b.Flags == mm.FlagFree && b.Order == r.Order && b.Reserved == 0 {
				s.bad(p, "spec: free buddies left unmerged", "order", uint64(r.Order)+1, uint64(r.Order))
			}
		}
	}
	fp.blockEnd, fp.tail = blockEnd, tail
	if run.end <= hi {
		s.closeRun(run)
	}
	if s.hist != nil && tails > 0 {
		s.hist.addTails(tail, tails)
	}
}

// cleanTails returns the first frame in [p, end) that is not a clean tail
// with flags tail (order OrderTail, no reserved bytes, references or
// links), or end.
func (s *specCheck) cleanTails(p, end uint64, tail uint32) uint64 {
	// The flags and the order word side by side as one word, and the two
	// links ANDed (LinkNone is all ones): the per-frame loop of small
	// guests, whose records sit in cache, is bound by these compares.
	return s.cleanRun(p, end, uint64(tail)|uint64(mm.OrderTail)<<32)
}

// The layout cleanRun relies on: the order word follows the flags, and
// LinkNone is all ones.
var (
	_ = [1]int{}[mm.OffOrder-mm.OffFlags-4]
	_ = [1]int{}[^mm.LinkNone]
)

// cleanHoles returns the first frame in [p, end) that is not a clean
// not-RAM frame (no flags, order, reserved bytes, references or links),
// or end.
func (s *specCheck) cleanHoles(p, end uint64) uint64 {
	return s.cleanRun(p, end, 0)
}

// specGroup is the number of frames cleanRun tests at once.
const specGroup = 8

// cleanRun returns the first frame in [p, end) whose flags and order
// word (read as one little-endian word) are not fo, or whose refcount is
// not zero or links not LinkNone, or end. By index into the records (no
// bounds checks, no pointer masking per frame), specGroup frames a test
// while that many remain: their differences ORed, links ANDed. The group
// that fails, and the last frames, go frame by frame, so it stops exactly
// where a per-frame loop would.
func (s *specCheck) cleanRun(p, end, fo uint64) uint64 {
	if p >= end {
		return p
	}
	const fs = mm.FrameMetaSize
	le := binary.LittleEndian
	m := s.meta[p*fs : end*fs]
	// The first frame alone: cleanHoles is called at every block's head,
	// where a group test would be wasted.
	if r := (*[fs]byte)(m); le.Uint64(r[mm.OffFlags:])^fo|uint64(le.Uint32(r[mm.OffRefcount:]))|^(le.Uint64(r[mm.OffNext:])&le.Uint64(r[mm.OffPrev:])) != 0 {
		return p
	}
	i := fs
	for lim := len(m) - specGroup*fs; i <= lim; i += specGroup * fs {
		// Frame by frame, binary's loads written out (an inlined helper,
		// le64 too, left without an instruction of its own costs a NOP),
		// and each link ANDed on its own (an AND from memory).
		g := (*[specGroup * fs]byte)(m[i:])
		d := le.Uint64(g[mm.OffFlags:]) ^ fo
		rc := le.Uint32(g[mm.OffRefcount:])
		l := le.Uint64(g[mm.OffNext:]) & le.Uint64(g[mm.OffPrev:])
		d |= le.Uint64(g[1*fs+mm.OffFlags:]) ^ fo
		rc |= le.Uint32(g[1*fs+mm.OffRefcount:])
		l &= le.Uint64(g[1*fs+mm.OffNext:])
		l &= le.Uint64(g[1*fs+mm.OffPrev:])
		d |= le.Uint64(g[2*fs+mm.OffFlags:]) ^ fo
		rc |= le.Uint32(g[2*fs+mm.OffRefcount:])
		l &= le.Uint64(g[2*fs+mm.OffNext:])
		l &= le.Uint64(g[2*fs+mm.OffPrev:])
		d |= le.Uint64(g[3*fs+mm.OffFlags:]) ^ fo
		rc |= le.Uint32(g[3*fs+mm.OffRefcount:])
		l &= le.Uint64(g[3*fs+mm.OffNext:])
		l &= le.Uint64(g[3*fs+mm.OffPrev:])
		d |= le.Uint64(g[4*fs+mm.OffFlags:]) ^ fo
		rc |= le.Uint32(g[4*fs+mm.OffRefcount:])
		l &= le.Uint64(g[4*fs+mm.OffNext:])
		l &= le.Uint64(g[4*fs+mm.OffPrev:])
		d |= le.Uint64(g[5*fs+mm.OffFlags:]) ^ fo
		rc |= le.Uint32(g[5*fs+mm.OffRefcount:])
		l &= le.Uint64(g[5*fs+mm.OffNext:])
		l &= le.Uint64(g[5*fs+mm.OffPrev:])
		d |= le.Uint64(g[6*fs+mm.OffFlags:]) ^ fo
		rc |= le.Uint32(g[6*fs+mm.OffRefcount:])
		l &= le.Uint64(g[6*fs+mm.OffNext:])
		l &= le.Uint64(g[6*fs+mm.OffPrev:])
		d |= le.Uint64(g[7*fs+mm.OffFlags:]) ^ fo
		rc |= le.Uint32(g[7*fs+mm.OffRefcount:])
		l &= le.Uint64(g[7*fs+mm.OffNext:])
		l &= le.Uint64(g[7*fs+mm.OffPrev:])
		if d|uint64(rc)|^l != 0 {
			break
		}
	}
	for ; i <= len(m)-fs; i += fs {
		r := (*[fs]byte)(m[i:])
		if le.Uint64(r[mm.OffFlags:])^fo|uint64(le.Uint32(r[mm.OffRefcount:]))|^(le.Uint64(r[mm.OffNext:])&le.Uint64(r[mm.OffPrev:])) != 0 {
			break
		}
	}
	return p + uint64(i/fs)
}

// tailState checks what every tail must hold besides its flags and order:
// no references, no links.
func (s *specCheck) tailState(p uint64, r mm.Record) {
	if r.Refcount != 0 {
		s.bad(p, "spec: block tail holds references", "refcount", 0, uint64(r.Refcount))
	}
	if r.Next != mm.LinkNone || r.Prev != mm.LinkNone {
		s.bad(p, "spec: block tail has links", "next", mm.LinkNone, r.Next&r.Prev)
	}
}

// badRun is the run of tails after a bad head: a frame outside any block
// that cannot start one (illegal flags, a tail order, an order above the
// maximum, or any order on a not-RAM, POISONED or PERCPU frame). The
// tail-shaped frames right after it (tail order, the same tail flags, not
// past the top-order block around the head) are the bad head's
// consequence: one violation, the head's, says how many frames it covers.
type badRun struct {
	end    uint64 // frames below end may belong to the run
	flags  uint32 // the run's tail flags (0: none seen yet)
	frames uint64 // tails taken
	idx    int    // the head's violation in out (-1: not listed)
}

// startRun opens a run after the bad head p, whose violation was the last
// one reported.
func (s *specCheck) startRun(run *badRun, p uint64) {
	top := uint64(1) << mm.MaxOrder
	*run = badRun{end: min((p/top+1)*top, s.n), idx: len(s.out) - 1}
	if s.tot > len(s.out) {
		run.idx = -1 // the head's violation was counted but not listed
	}
}

// takes reports whether frame p (record r) continues the run.
func (run *badRun) takes(p uint64, r mm.Record) bool {
	if p >= run.end || r.Order != mm.OrderTail || r.Reserved != 0 {
		return false
	}
	if run.flags == 0 {
		if r.Flags != mm.FlagFree && r.Flags != mm.FlagAllocated|mm.FlagKernel && r.Flags != mm.FlagAllocated|mm.FlagUser {
			return false
		}
		run.flags = r.Flags
	}
	if r.Flags != run.flags {
		return false
	}
	run.frames++
	return true
}

// closeRun ends the run, saying on the head's violation how many frames
// it stands for.
func (s *specCheck) closeRun(run *badRun) {
	if run.frames > 0 && run.idx >= 0 {
		s.out[run.idx].Detail = coversDetail(run.frames)
	}
	*run = badRun{}
}

// coversDetail is the detail of a bad head's violation that stands for
// the tails after it.
func coversDetail(tails uint64) string {
	return fmt.Sprintf("bad block head: covers %d frames; its %d tails are not reported one by one", tails+1, tails)
}
