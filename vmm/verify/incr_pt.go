package verify

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/vmm-dev/vmm/guest/mm"
)

// Page tables, incrementally. The mapping rules need, per frame, how many
// leaf entries map it, how many of those lack the U bit or are writable,
// and whether it is a page table. ptState keeps those as counts (so they
// can go down as well as up) with a copy of every table page as it was at
// the last checkpoint. At the next one, a written table page is diffed
// against its copy, and for each changed entry the old entry's subtree is
// taken out of the counts (walked through the copies) and the new one's
// put in (walked through memory): the counts become what a walk of the new
// tables gives, and the frames whose counts moved are re-checked. Roots
// that appear or go are walked in or out the same way.
//
// A table reached twice (two roots or two entries sharing it) would have
// to be diffed once per path; the state then gives up on deltas and a
// written table means a full check (never seen in this guest: address
// spaces share only the physmap, which the walk skips).

type ptState struct {
	n                          uint64
	mapCount, noUser, writable []uint32
	visits                     []uint32 // per frame: visits of it as a page table
	// mc holds the counts packed as a walk's mapCounter.maps (count and
	// mapNoUser, mapWritable, mapIsTable), for the owners pass's lookups.
	mc                    *mapCounter
	tableFrames, mappings uint64
	tables, leafs, refs   uint64 // the walk's totals, against its limits
	skip                  []uint64
	roots                 []uint64
	shadow                map[uint64]*ptCopy // by table phys
	shared                bool               // a table was reached twice
	changed               []frameRange       // frames whose counts moved (this delta)
	fail                  string
}

// ptCopy is one table page as last seen, with how the walk reached it.
type ptCopy struct {
	e              [512]uint64
	level          int
	user, writable bool
	parent         uint64 // the table that points at it (noParent: a root)
	index          int    // the entry of parent that does
}

const noParent = ^uint64(0)

// frameRange is the frames [lo, hi].
type frameRange struct{ lo, hi uint64 }

// newPTState makes the state of no tables; the per-frame counts are
// allocated with the first table.
func newPTState(n uint64, skip []uint64) *ptState {
	return &ptState{n: n, skip: slices.Clone(skip), shadow: map[uint64]*ptCopy{}, mc: &mapCounter{frames: n}}
}

// build walks every root into the empty state.
func (s *ptState) build(mem Memory, roots []uint64) string {
	for _, r := range roots {
		s.visit(mem, r&pteAddr, 4, true, true, +1, noParent, 0)
	}
	s.roots = slices.Clone(roots)
	s.changed = nil
	return s.fail
}

func (s *ptState) failf(format string, a ...any) {
	if s.fail == "" {
		s.fail = fmt.Sprintf(format, a...)
	}
}

// visit adds (sign +1, reading mem and copying the table) or takes out
// (sign -1, reading the copy) the table at phys reached at level with the
// permissions of the levels above, as walk.table and mapCounter count it.
func (s *ptState) visit(mem Memory, phys uint64, level int, user, writable bool, sign int64, parent uint64, index int) {
	if s.fail != "" {
		return
	}
	if s.mapCount == nil {
		s.mapCount, s.noUser, s.writable, s.visits = make([]uint32, s.n), make([]uint32, s.n), make([]uint32, s.n), make([]uint32, s.n)
		s.mc.maps = make([]uint32, s.n)
	}
	s.tables += uint64(sign)
	if s.tables >= maxTableVisits {
		s.failf("page tables: %d table visits", s.tables)
		return
	}
	pfn := phys / mm.PageSize
	if pfn >= s.n {
		s.failf("page table %#x outside RAM", phys)
		return
	}
	var entries *[512]uint64
	if sign > 0 {
		b, err := mem.Slice(phys, mm.PageSize)
		if err != nil {
			s.failf("page table %#x unreadable", phys)
			return
		}
		if s.visits[pfn] != 0 {
			s.shared = true
		}
		c := &ptCopy{level: level, user: user, writable: writable, parent: parent, index: index}
		for i := range c.e {
			c.e[i] = binary.LittleEndian.Uint64(b[i*8:])
		}
		s.shadow[phys] = c
		entries = &c.e
	} else {
		c := s.shadow[phys]
		if c == nil {
			s.failf("page table %#x: no copy", phys)
			return
		}
		entries = &c.e
	}
	s.visits[pfn] = uint32(int64(s.visits[pfn]) + sign)
	s.pack(pfn)
	if v := s.visits[pfn]; sign > 0 && v == 1 || sign < 0 && v == 0 {
		s.tableFrames += uint64(sign)
		s.changed = append(s.changed, frameRange{pfn, pfn})
	}
	for i, e := range entries {
		s.entry(mem, e, level, user, writable, sign, phys, i)
	}
	if sign < 0 && s.visits[pfn] == 0 {
		delete(s.shadow, phys)
	}
}

// entry counts one entry of a table at level (see visit).
func (s *ptState) entry(mem Memory, e uint64, level int, user, writable bool, sign int64, table uint64, index int) {
	if e&ptePresent == 0 || slices.Contains(s.skip, e&pteAddr) || s.fail != "" {
		return
	}
	u, wr := user && e&pteUser != 0, writable && e&pteWritable != 0
	if level > 1 && !(e&pteHuge != 0 && (level == 2 || level == 3)) {
		s.visit(mem, e&pteAddr, level-1, u, wr, sign, table, index)
		return
	}
	s.leafs += uint64(sign)
	n := uint64(1) << (9 * (level - 1))
	first := (e & pteAddr) / mm.PageSize &^ (n - 1)
	s.refs += uint64(sign) * n
	if s.leafs > maxLeafEntries || s.refs > maxFrameRefs {
		s.failf("page tables too large")
		return
	}
	if first >= s.n || n > s.n-first {
		s.failf("mapping of frames [%#x, +%#x) outside RAM", first, n)
		return
	}
	s.mappings += uint64(sign) * n
	for p := first; p < first+n; p++ {
		s.mapCount[p] = uint32(int64(s.mapCount[p]) + sign)
		if !u {
			s.noUser[p] = uint32(int64(s.noUser[p]) + sign)
		}
		if wr {
			s.writable[p] = uint32(int64(s.writable[p]) + sign)
		}
		s.pack(p)
	}
	s.changed = append(s.changed, frameRange{first, first + n - 1})
}

// ptChange is one changed entry of a written table.
type ptChange struct {
	table uint64
	index int
	old   uint64
}

// delta brings the counts from the last checkpoint's tables to those in
// mem: roots that went or came, and the changed entries of the written
// tables; s.changed says which frames' counts moved. It returns why it
// cannot, or "".
func (s *ptState) delta(mem Memory, roots []uint64, dirty Dirty) string {
	s.changed, s.fail = nil, ""
	var changes []ptChange
	replaced := map[[2]uint64]bool{}
	for phys, c := range s.shadow {
		written := false
		dirty.Pages(phys, mm.PageSize, func(uint64) { written = true })
		if !written {
			continue
		}
		b, err := mem.Slice(phys, mm.PageSize)
		if err != nil {
			return fmt.Sprintf("page table %#x unreadable", phys)
		}
		for i := range c.e {
			if e := binary.LittleEndian.Uint64(b[i*8:]); e != c.e[i] {
				changes = append(changes, ptChange{phys, i, c.e[i]})
				replaced[[2]uint64{phys, uint64(i)}] = true
			}
		}
	}
	if len(changes) > 0 && s.shared {
		return "a written page table is reached twice"
	}
	gone, came := multisetDiff(s.roots, roots)
	goneRoot := map[uint64]bool{}
	for _, r := range gone {
		goneRoot[r&pteAddr] = true
	}
	// A change below a replaced entry or a root that went is part of the
	// replacement.
	under := func(phys uint64) bool {
		c := s.shadow[phys]
		for steps := 0; c != nil && steps < 8; steps++ {
			if c.parent == noParent {
				return goneRoot[phys]
			}
			if replaced[[2]uint64{c.parent, uint64(c.index)}] {
				return true
			}
			phys, c = c.parent, s.shadow[c.parent]
		}
		return c == nil
	}
	var todo []ptChange
	for _, ch := range changes {
		if !under(ch.table) {
			todo = append(todo, ch)
		}
	}
	// Take out everything old (through the copies), then put in the new.
	for _, r := range gone {
		s.visit(mem, r&pteAddr, 4, true, true, -1, noParent, 0)
	}
	for _, ch := range todo {
		c := s.shadow[ch.table]
		if c == nil {
			return "page table copy lost"
		}
		s.entry(mem, ch.old, c.level, c.user, c.writable, -1, ch.table, ch.index)
	}
	for _, ch := range todo {
		c := s.shadow[ch.table]
		if c == nil {
			return "page table copy lost"
		}
		b, _ := mem.Slice(ch.table, mm.PageSize)
		e := binary.LittleEndian.Uint64(b[ch.index*8:])
		c.e[ch.index] = e
		s.entry(mem, e, c.level, c.user, c.writable, +1, ch.table, ch.index)
	}
	for _, r := range came {
		s.visit(mem, r&pteAddr, 4, true, true, +1, noParent, 0)
	}
	if s.fail == "" && s.shared && (len(todo) > 0 || len(came) > 0 || len(gone) > 0) {
		s.fail = "a page table is reached twice"
	}
	s.roots = slices.Clone(roots)
	return s.fail
}

// multisetDiff returns the elements of a missing from b and those of b
// missing from a, counting repeats.
func multisetDiff(a, b []uint64) (gone, came []uint64) {
	count := map[uint64]int{}
	for _, r := range a {
		count[r]++
	}
	for _, r := range b {
		if count[r] > 0 {
			count[r]--
		} else {
			came = append(came, r)
		}
	}
	for _, r := range a {
		if count[r] > 0 {
			count[r]--
			gone = append(gone, r)
		}
	}
	return gone, came
}

// pack sets frame p's word of mc.maps from the counts (the walk's bounds
// keep the count below mapCount).
func (s *ptState) pack(p uint64) {
	w := s.mapCount[p] & mapCount
	if s.noUser[p] > 0 {
		w |= mapNoUser
	}
	if s.writable[p] > 0 {
		w |= mapWritable
	}
	if s.visits[p] > 0 {
		w |= mapIsTable
	}
	s.mc.maps[p] = w
}
