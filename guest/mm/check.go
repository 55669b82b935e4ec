package mm

import "sync/atomic"

// The checker: one bounded pass over a View that reports the rules of
// violations.go.

type checker struct {
	out   []Violation
	total int
}

//go:nosplit
func (c *checker) add(pfn uint64, k ViolationKind, exp, act uint64) {
	if c.total < len(c.out) {
		c.out[c.total] = Violation{PFN: pfn, Kind: k, Expected: exp, Actual: act}
	}
	c.total++
}

// anyTail is the tail flags of a run charged to a bad head before its
// first tail is seen: the first tail's flags become the run's.
const anyTail = ^uint32(0)

// runEnd is where the tails charged to the bad head p may reach: the end
// of the top-order block around p (no real block extends past it) or of
// the array.
//
//go:nosplit
func runEnd(p, n uint64) uint64 {
	e := p | (uint64(1)<<MaxOrder - 1) + 1
	if e > n || e < p {
		e = n
	}
	return e
}

// isTailFlags reports whether f is the flags of some block's tails.
//
//go:nosplit
func isTailFlags(f uint32) bool {
	return f == FlagFree || f == FlagAllocated|FlagKernel || f == FlagAllocated|FlagUser
}

// Check verifies every invariant of the allocator seen through v, writes
// the first len(out) violations to out and returns how many it found. It
// allocates nothing, needs no scratch memory and is bounded on garbage: one
// linear pass over the records, then one walk per free list that stops at
// the first structural error and never takes more than FrameCount steps
// (a second linear pass runs only when a FREE head is off its list).
//
// It checks: the state header; for every frame the flags combination, the
// reserved bytes, order, refcount and links of its state; that free and
// allocated blocks are aligned, inside the array, and made of tails with
// the right flags (so a free block never crosses a non-RAM, poisoned or
// allocated frame); that no two free buddies of the same order are left
// unmerged; that every list node is a FREE head of the list's order whose
// prev is the node before it (double membership and cycles show up as a
// prev mismatch); that the lists hold exactly the FREE heads; and that the
// counts in BuddyState match the lists. For the per-CPU caches it checks
// the headers, that every live entry names a FlagPerCPU frame tagged with
// that CPU and slot, that every FlagPerCPU frame sits in the live slot its
// tags name (so a frame is never cached twice, and never both cached and on
// a free list, whose frames are FREE), and the cached-frame totals. The
// caches are read as they are: check while the world is stopped.
//
//go:nosplit
func Check(v *View, out []Violation) int {
	c := checker{out: out}
	if v.st == nil || v.n == 0 {
		c.add(LinkNone, VStateHeader, 1, 0)
		return c.total
	}
	c.checkHeader(v)
	lp := LinearPass{charged: -1}
	c.linear(v, 0, v.n, &lp)
	c.rest(v, &lp)
	return c.total
}

// LinearPass is Check's pass over the records, resumable over consecutive
// ranges: the counts it gathers for the checks after it, and where it is
// in the block structure. Check runs it over the whole array; the host
// runs it over ranges on several CPUs (CheckRange) and sums the counts.
// The zero value is not ready: start with NewLinearPass.
type LinearPass struct {
	Heads    [NumOrders]uint64 // FREE heads per order
	Poisoned uint64            // POISONED frames
	Cached   uint64            // FlagPerCPU frames

	blockEnd  uint64 // frames below blockEnd are tails of the current block or run
	tailFlags uint32 // the flags those tails carry
	inRun     bool   // the tails are a bad head's run
	charged   int    // index in out of the bad head's violation (-1: none)
}

// NewLinearPass returns a pass that starts outside any block.
//
//go:nosplit
func NewLinearPass() LinearPass { return LinearPass{charged: -1} }

// Carries reports whether the pass, stopped at frame at, is inside a block
// that goes on past at: only then does the next range depend on it. A bad
// head's run never crosses a multiple of 2^MaxOrder (see runEnd); a block
// whose head is misaligned or overruns may.
//
//go:nosplit
func (lp *LinearPass) Carries(at uint64) bool { return lp.blockEnd > at }

// Resume is the pass as a range that starts where this one stopped sees
// it when it is checked on its own (CheckRange with its own out): its
// place in the block structure, no counts, and no violation to charge (a
// bad head's run ends at a multiple of 2^MaxOrder, where ranges start).
//
//go:nosplit
func (lp *LinearPass) Resume() LinearPass {
	return LinearPass{blockEnd: lp.blockEnd, tailFlags: lp.tailFlags, inRun: lp.inRun, charged: -1}
}

// CheckRange runs Check's linear pass over records [lo, hi) (clamped to
// the array), continuing lp, and returns the violations found so far: out
// and total are the ones of lp's earlier ranges (the first len(out)
// violations are stored). Over consecutive ranges from 0 to FrameCount it
// finds exactly what Check's pass finds. Ranges checked apart (each with
// its own lp and out, for several CPUs) must start at multiples of
// 2^MaxOrder, from NewLinearPass where the pass before does not carry
// into them (Carries) and from its Resume where it does; their counts
// and violations, concatenated in order, are then Check's.
//
//go:nosplit
func CheckRange(v *View, lo, hi uint64, lp *LinearPass, out []Violation, total int) int {
	c := checker{out: out, total: total}
	if v.st == nil {
		return c.total
	}
	if hi > v.n {
		hi = v.n
	}
	return c.linear(v, lo, hi, lp)
}

// CheckHeader is the first of Check's steps: the state header. It returns
// the violations found, and ok=false (with the missing state reported)
// when the view has no state, where Check stops.
//
//go:nosplit
func CheckHeader(v *View, out []Violation) (total int, ok bool) {
	c := checker{out: out}
	if v.st == nil || v.n == 0 {
		c.add(LinkNone, VStateHeader, 1, 0)
		return c.total, false
	}
	c.checkHeader(v)
	return c.total, true
}

// CheckRest is Check's steps after the linear pass, given the pass's
// counts: the poisoned total, the per-CPU caches, the free lists and
// their counts. It returns the violations found (the first len(out)
// stored in out).
//
//go:nosplit
func CheckRest(v *View, lp *LinearPass, out []Violation) int {
	c := checker{out: out}
	if v.st == nil {
		return 0
	}
	c.rest(v, lp)
	return c.total
}

// rest is Check after the linear pass.
//
//go:nosplit
//go:noinline
func (c *checker) rest(v *View, lp *LinearPass) {
	st := v.st
	if sp := atomic.LoadUint64(&st.PoisonedFrames); sp != lp.Poisoned {
		c.add(LinkNone, VPoisonedFrames, lp.Poisoned, sp)
	}
	c.caches(v, lp.Cached)

	var listFrames uint64
	pinpoint := false
	for k := uint8(0); k < NumOrders; k++ {
		cnt := c.walk(v, k, atomic.LoadUint64(&st.Heads[k]))
		listFrames += cnt << k
		if sc := atomic.LoadUint64(&st.Counts[k]); sc != cnt {
			c.add(uint64(k), VBlockCount, cnt, sc)
		}
		if lp.Heads[k] != cnt {
			c.add(uint64(k), VListHeads, cnt, lp.Heads[k])
			pinpoint = true
		}
	}
	if sf := atomic.LoadUint64(&st.FreeFrames); sf != listFrames {
		c.add(LinkNone, VFreeFrames, listFrames, sf)
	}
	if pinpoint {
		c.pinpoint(v)
	}
}

// linear is the pass over records [lo, hi) (hi <= v.n), continuing lp: it
// counts the FREE heads per order, the POISONED and the FlagPerCPU frames
// into lp and returns c.total.
//
//go:nosplit
//go:noinline
func (c *checker) linear(v *View, lo, hi uint64, lp *LinearPass) int {
	n := v.n
	heads, poisoned := &lp.Heads, &lp.Poisoned
	cached := lp.Cached
	blockEnd, tailFlags := lp.blockEnd, lp.tailFlags
	// A bad head (a frame outside any block that cannot start one, see
	// badHead) makes the tail-shaped frames after it a run charged to it:
	// they are checked as tails but not reported as tails outside a block,
	// and the head's violation counts them in Covers. charged is that
	// violation's index in out (-1: not stored or no run).
	inRun, charged := lp.inRun, lp.charged

	for p := lo; p < hi; p++ {
		if p < blockEnd && !inRun {
			// The common case, clean tails of the current block, which the
			// rules below pass without a word: read only what they would.
			p = cleanTails(v, p, min(blockEnd, hi), tailFlags)
			if p == hi {
				break
			}
			if p == blockEnd {
				p--
				continue
			}
		} else if p >= blockEnd {
			// Likewise a run of frames that are not RAM, in no block.
			q := cleanHoles(v, p, hi)
			if q > p {
				inRun = false
			}
			if p = q; p == hi {
				break
			}
		}
		r := v.rec(p)
		f, rc, nx, pv := r.Flags, r.Refcount, r.Next, r.Prev
		ow := uint32(r.Order) | r.Reserved<<8
		if p < blockEnd && inRun {
			if ow == uint32(OrderTail) && (f == tailFlags || tailFlags == anyTail && isTailFlags(f)) {
				tailFlags = f
				if charged >= 0 {
					c.out[charged].Covers++
				}
				if rc != 0 {
					c.add(p, VTailRefcount, 0, uint64(rc))
				}
				if nx != LinkNone || pv != LinkNone {
					c.stale(p, nx, pv)
				}
				continue
			}
			blockEnd = p // the run ends; this frame is checked on its own
		}
		inRun = false
		if p < blockEnd {
			if f == tailFlags && ow != uint32(OrderTail) {
				// A head inside the block: the block's order is wrong or
				// this frame is. Report it once and end the block here,
				// rather than once for every frame the order claims.
				c.add(p, VTailOrder, uint64(OrderTail), uint64(ow))
				blockEnd = p
			} else if f == tailFlags {
				if rc != 0 {
					c.add(p, VTailRefcount, 0, uint64(rc))
				}
				if nx != LinkNone || pv != LinkNone {
					c.stale(p, nx, pv)
				}
				continue
			} else {
				c.add(p, VTailFlags, uint64(tailFlags), uint64(f))
				blockEnd = p // the block ends here; check this frame on its own
			}
		}
		if ow>>8 != 0 {
			c.add(p, VReservedBits, 0, uint64(ow))
		}
		order := uint8(ow)
		switch {
		case f == 0 || f == FlagPoisoned:
			if f == FlagPoisoned {
				*poisoned++
			}
			if order != 0 {
				c.add(p, VStaleOrder, 0, uint64(order))
				blockEnd, tailFlags, inRun, charged = c.badHead(p, n)
			}
			if rc != 0 {
				c.add(p, VTailRefcount, 0, uint64(rc))
			}
			if nx != LinkNone || pv != LinkNone {
				c.stale(p, nx, pv)
			}
			continue
		case f == FlagFree:
			if rc != 0 {
				c.add(p, VFreeRefcount, 0, uint64(rc))
			}
		case f == FlagPerCPU:
			cached++
			if rc != 0 {
				c.add(p, VFreeRefcount, 0, uint64(rc))
			}
			if order == OrderTail {
				c.add(p, VTailOrder, 0, uint64(order))
			} else if order != 0 {
				c.add(p, VOrderRange, 0, uint64(order))
			}
			if order != 0 {
				blockEnd, tailFlags, inRun, charged = c.badHead(p, n)
			}
			if e, ok := cachedFrame(v, p, nx, pv); !ok {
				c.add(p, VPCPFrame, p, e)
			}
			continue
		case f&(FlagAllocated|FlagFree|FlagPoisoned|FlagPerCPU) == FlagAllocated && validAllocFlags(f&^FlagAllocated):
			if rc == 0 && order != OrderTail {
				c.add(p, VAllocRefcount, 1, 0)
			}
			if nx != LinkNone || pv != LinkNone {
				c.stale(p, nx, pv)
			}
		default:
			c.add(p, VIllegalFlags, 0, uint64(f))
			blockEnd, tailFlags, inRun, charged = c.badHead(p, n)
			continue
		}
		if order == OrderTail {
			c.add(p, VTailOrder, 0, uint64(order))
			blockEnd, tailFlags, inRun, charged = c.badHead(p, n)
			continue
		}
		if order > MaxOrder {
			c.add(p, VOrderRange, MaxOrder, uint64(order))
			blockEnd, tailFlags, inRun, charged = c.badHead(p, n)
			continue
		}
		size := uint64(1) << order
		if p&(size-1) != 0 {
			c.add(p, VMisaligned, size, p&(size-1))
		}
		if n-p < size {
			c.add(p, VBlockOverrun, n, p+size)
			blockEnd = n
		} else {
			blockEnd = p + size
		}
		tailFlags = tailFlagsOf(f)
		if f != FlagFree {
			continue
		}
		heads[order]++
		if pv == LinkNone {
			if h := atomic.LoadUint64(&v.st.Heads[order&MaxOrderMask%NumOrders]); h != p {
				c.add(p, VNotOnList, h, p)
			}
		}
		if order < MaxOrder {
			if bud := p ^ size; bud > p && bud < n {
				mb := v.at(bud)
				if atomic.LoadUint32(&mb.flags) == FlagFree && atomic.LoadUint32(&mb.orderWord) == uint32(order) {
					c.add(p, VUnmergedBuddy, uint64(order)+1, uint64(order))
				}
			}
		}
	}
	lp.Cached = cached
	lp.blockEnd, lp.tailFlags, lp.inRun, lp.charged = blockEnd, tailFlags, inRun, charged
	return c.total
}

// cleanTails returns the first frame in [p, end) that is not a clean
// tail with flags tailFlags (order OrderTail, no references, no links),
// or end. A leaf, like cachedFrame, and not inlined: in linear's body
// the loop's frame number lived on the stack.
//
//go:nosplit
//go:noinline
func cleanTails(v *View, p, end uint64, tailFlags uint32) uint64 {
	return cleanRun(v.base(), p, end, uint64(tailFlags)|uint64(OrderTail)<<32)
}

// cleanHoles returns the first frame in [p, end) that is not a clean
// not-RAM frame (no flags, order, references or links), or end. A leaf,
// not inlined, as cleanTails.
//
//go:nosplit
//go:noinline
func cleanHoles(v *View, p, end uint64) uint64 {
	return cleanRun(v.base(), p, end, 0)
}

// cleanRun returns the first frame in [p, end) whose flags and order word
// (as flagsOrder) are not fo, or that holds references or links, or end:
// the loop that reads most records first, bound by its instructions. It
// tests cleanGroup frames at a time while more than that many remain (so
// the record address, carried from group to group, never steps past frame
// end-1): their flags and order words XORed with fo and ORed, refcounts
// ORed (in 32 bits) and links ANDed, one test a group. The group that
// fails, and the last frames, go frame by frame, so it stops at exactly
// the frame a per-frame loop would.
//
//go:nosplit
func cleanRun(b recBase, p, end, fo uint64) uint64 {
	if p >= end {
		return p
	}
	m := b.at(p)
	// The first frame alone: cleanHoles is called at every block's head,
	// where a group test would be wasted.
	if unclean(m, fo) != 0 {
		return p
	}
	if p++; p == end {
		return p
	}
	m = m.following()
	if end-p > cleanGroup {
		for lim := end - cleanGroup; p < lim; p += cleanGroup {
			// Frame by frame in the source, so that few loads are live.
			d := flagsOrder(m) ^ fo
			rc := atomic.LoadUint32(&m.refcount)
			l := atomic.LoadUint64(&m.next) & atomic.LoadUint64(&m.prev)
			m1 := m.ahead(1)
			d |= flagsOrder(m1) ^ fo
			rc |= atomic.LoadUint32(&m1.refcount)
			l &= atomic.LoadUint64(&m1.next) & atomic.LoadUint64(&m1.prev)
			m2 := m.ahead(2)
			d |= flagsOrder(m2) ^ fo
			rc |= atomic.LoadUint32(&m2.refcount)
			l &= atomic.LoadUint64(&m2.next) & atomic.LoadUint64(&m2.prev)
			m3 := m.ahead(3)
			d |= flagsOrder(m3) ^ fo
			rc |= atomic.LoadUint32(&m3.refcount)
			l &= atomic.LoadUint64(&m3.next) & atomic.LoadUint64(&m3.prev)
			m4 := m.ahead(4)
			d |= flagsOrder(m4) ^ fo
			rc |= atomic.LoadUint32(&m4.refcount)
			l &= atomic.LoadUint64(&m4.next) & atomic.LoadUint64(&m4.prev)
			m5 := m.ahead(5)
			d |= flagsOrder(m5) ^ fo
			rc |= atomic.LoadUint32(&m5.refcount)
			l &= atomic.LoadUint64(&m5.next) & atomic.LoadUint64(&m5.prev)
			m6 := m.ahead(6)
			d |= flagsOrder(m6) ^ fo
			rc |= atomic.LoadUint32(&m6.refcount)
			l &= atomic.LoadUint64(&m6.next) & atomic.LoadUint64(&m6.prev)
			m7 := m.ahead(7)
			d |= flagsOrder(m7) ^ fo
			rc |= atomic.LoadUint32(&m7.refcount)
			l &= atomic.LoadUint64(&m7.next) & atomic.LoadUint64(&m7.prev)
			if d|uint64(rc)|^l != 0 {
				break
			}
			m = m.ahead(cleanGroup)
		}
	}
	for unclean(m, fo) == 0 {
		if p++; p == end {
			break
		}
		m = m.following()
	}
	return p
}

// cleanGroup is the number of frames cleanRun tests at once (m..m7).
const cleanGroup = 8

// unclean is zero when m's flags and order word are fo (as flagsOrder),
// its refcount zero and both links LinkNone (all ones, so ANDed).
//
//go:nosplit
func unclean(m *FrameMeta, fo uint64) uint64 {
	return flagsOrder(m) ^ fo | uint64(atomic.LoadUint32(&m.refcount)) | ^(atomic.LoadUint64(&m.next) & atomic.LoadUint64(&m.prev))
}

// badHead starts the run of tails charged to the bad head p, whose
// violation was the last one added: it returns the run's bound, its tail
// flags (not known yet), that a run is on, and the violation's index in
// out (-1 if it was not stored).
//
//go:nosplit
func (c *checker) badHead(p, n uint64) (end uint64, tail uint32, inRun bool, charged int) {
	charged = c.total - 1
	if charged >= len(c.out) {
		charged = -1
	}
	return runEnd(p, n), anyTail, true, charged
}

// cachedFrame checks that the FlagPerCPU frame p sits in the live slot its
// tags name (cache nx, slot pv); if not it returns false and the entry in
// that slot (LinkNone if the tags are out of range or the slot is not
// live). A leaf with masked indexes: no bounds-check panics, so the nosplit
// chain under Check stays short (also with fuzzing instrumentation).
//
//go:nosplit
func cachedFrame(v *View, p, nx, pv uint64) (uint64, bool) {
	if nx >= MaxCPUs || pv >= PCPCapacity {
		return LinkNone, false
	}
	pc := &v.st.PCP[nx&(MaxCPUs-1)]
	count := uint64(atomic.LoadUint32(&pc.Count))
	head := uint64(atomic.LoadUint32(&pc.Head)) % PCPCapacity
	if (pv-head)%PCPCapacity >= count { // not live (count > capacity is reported by caches)
		return LinkNone, false
	}
	if e := atomic.LoadUint64(&pc.PFN[pv&(PCPCapacity-1)]); e != p {
		return e, false
	}
	return p, true
}

// caches checks the per-CPU cache headers, that every live entry names a
// frame tagged with its CPU and slot, and the totals (cached = FlagPerCPU
// frames found by the linear pass).
//
//go:nosplit
//go:noinline
func (c *checker) caches(v *View, cached uint64) {
	st := v.st
	ncpu := uint64(atomic.LoadUint32(&st.NumCPUs))
	if ncpu > MaxCPUs {
		c.add(LinkNone, VPCPHeader, MaxCPUs, ncpu)
	}
	sumCount, sumSynced := uint64(0), uint64(0)
	for cpu := uint64(0); cpu < MaxCPUs; cpu++ {
		pc := &st.PCP[cpu]
		count := uint64(atomic.LoadUint32(&pc.Count))
		head := uint64(atomic.LoadUint32(&pc.Head))
		synced := uint64(atomic.LoadUint32(&pc.Synced))
		sumCount += count
		sumSynced += synced
		if count > PCPCapacity {
			c.add(cpu, VPCPHeader, PCPCapacity, count)
			count = PCPCapacity
		}
		if head >= PCPCapacity {
			c.add(cpu, VPCPHeader, PCPCapacity-1, head)
			head %= PCPCapacity
		}
		if synced > PCPCapacity {
			c.add(cpu, VPCPHeader, PCPCapacity, synced)
		}
		if cpu >= ncpu && count != 0 {
			c.add(cpu, VPCPHeader, 0, count)
		}
		for i := uint64(0); i < count; i++ {
			slot := (head + i) % PCPCapacity
			pfn := atomic.LoadUint64(&pc.PFN[slot])
			if act, ok := entryActual(v, cpu, slot, pfn); !ok {
				c.add(pfn, VPCPEntry, cpu<<32|slot, act)
			}
		}
	}
	if sumCount != cached {
		c.add(LinkNone, VPCPCount, cached, sumCount)
	}
	if pf := atomic.LoadUint64(&st.PCPFrames); pf != sumSynced {
		c.add(LinkNone, VPCPFrames, sumSynced, pf)
	}
}

// entryActual checks one live cache entry (cpu, slot) holding pfn and
// returns false with the Actual value of a VPCPEntry violation if the
// entry does not name a frame tagged with that CPU and slot. A leaf (see
// cachedFrame).
//
//go:nosplit
func entryActual(v *View, cpu, slot, pfn uint64) (uint64, bool) {
	if pfn >= v.n {
		return LinkNone, false
	}
	m := v.at(pfn)
	if f := atomic.LoadUint32(&m.flags); f != FlagPerCPU {
		return uint64(f), false
	}
	nx, pv := atomic.LoadUint64(&m.next), atomic.LoadUint64(&m.prev)
	if nx != cpu || pv != slot {
		return nx<<32 | pv&0xFFFFFFFF, false
	}
	return 0, true
}

// stale reports next/prev set on a frame that is not a free head.
//
//go:nosplit
func (c *checker) stale(p, nx, pv uint64) {
	if nx != LinkNone {
		c.add(p, VStaleLinks, LinkNone, nx)
	}
	if pv != LinkNone {
		c.add(p, VStaleLinks, LinkNone, pv)
	}
}

//go:nosplit
func (c *checker) checkHeader(v *View) {
	st := v.st
	if x := atomic.LoadUint64(&st.Magic); x != Magic {
		c.add(StateOffMagic, VStateHeader, Magic, x)
	}
	if x := atomic.LoadUint32(&st.Version); x != LayoutVersion {
		c.add(StateOffVersion, VStateHeader, uint64(LayoutVersion), uint64(x))
	}
	if x := atomic.LoadUint32(&st.MaxOrder); x != MaxOrder {
		c.add(StateOffMaxOrder, VStateHeader, MaxOrder, uint64(x))
	}
	if x := atomic.LoadUint64(&st.MetaPhys); x != v.metaPhys {
		c.add(StateOffMetaPhys, VStateHeader, v.metaPhys, x)
	}
	if x := atomic.LoadUint64(&st.FrameCount); x != v.n {
		c.add(StateOffFrameCount, VStateHeader, v.n, x)
	}
	if x := atomic.LoadUint64(&st.StatePhys); x != v.statePhys {
		c.add(StateOffStatePhys, VStateHeader, v.statePhys, x)
	}
}

// walk follows list k from head and returns the number of well-formed
// nodes before the end or the first error.
//
//go:nosplit
//go:noinline
func (c *checker) walk(v *View, k uint8, head uint64) uint64 {
	n := v.n
	prev := LinkNone
	cur := head
	cnt := uint64(0)
	for cur != LinkNone {
		if cur >= n {
			c.add(prev, VNextRange, n, cur)
			break
		}
		if cnt >= n {
			c.add(cur, VListCycle, n, cnt)
			break
		}
		m := v.at(cur)
		f := atomic.LoadUint32(&m.flags)
		ow := atomic.LoadUint32(&m.orderWord)
		if f != FlagFree || ow != uint32(k) {
			c.add(cur, VListTarget, uint64(k), uint64(f)<<8|uint64(ow&0xFF))
			break
		}
		if pv := atomic.LoadUint64(&m.prev); pv != prev {
			c.add(cur, VPrevMismatch, prev, pv)
			break
		}
		cnt++
		prev = cur
		cur = atomic.LoadUint64(&m.next)
	}
	return cnt
}

// pinpoint runs only when some order has FREE heads off its list: it
// reports every FREE head whose prev link does not lead back to it.
// (A separate, self-consistent cycle of FREE heads is only visible in the
// VNotOnList summary.)
//
//go:nosplit
//go:noinline
func (c *checker) pinpoint(v *View) {
	n := v.n
	for p := uint64(0); p < n; p++ {
		m := v.at(p)
		if atomic.LoadUint32(&m.flags) != FlagFree {
			continue
		}
		ow := atomic.LoadUint32(&m.orderWord)
		if ow > MaxOrder {
			continue
		}
		pv := atomic.LoadUint64(&m.prev)
		if pv == LinkNone {
			continue // reported by the linear pass unless it is the list head
		}
		if pv >= n {
			c.add(p, VNotOnList, LinkNone, pv)
			continue
		}
		mp := v.at(pv)
		if atomic.LoadUint64(&mp.next) != p || atomic.LoadUint32(&mp.flags) != FlagFree || atomic.LoadUint32(&mp.orderWord) != ow {
			c.add(p, VNotOnList, pv, atomic.LoadUint64(&mp.next))
		}
	}
}

// Check verifies the live allocator (see the package-level Check). Call it
// with the lock held.
//
//go:nosplit
func (b *Buddy) Check(out []Violation) int {
	v := b.View()
	return Check(&v, out)
}
