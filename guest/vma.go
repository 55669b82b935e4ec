package main

// Virtual memory areas of the user program: one ordered set, separate
// from the page tables that cache it. Invariants: areas are sorted by
// start, page aligned, non-empty and disjoint, and neighbours that touch
// have different protections (they are merged otherwise). A page-table
// entry exists only inside an area that allows access; a fault looks the
// area up first.

// Protections (PROT_* values).
const (
	protRead  = 1
	protWrite = 2
	protExec  = 4
)

type vmArea struct {
	start, end uint64
	prot       uint64 // 0: a PROT_NONE reservation
}

// maxAreas bounds the set (the Go runtime uses a few dozen).
const maxAreas = 1024

type vmaSet struct {
	a [maxAreas]vmArea
	n int
}

// find returns the index of the area containing va, or -1.
func (s *vmaSet) find(va uint64) int {
	lo, hi := 0, s.n
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case va < s.a[m].start:
			hi = m
		case va >= s.a[m].end:
			lo = m + 1
		default:
			return m
		}
	}
	return -1
}

// firstEnding returns the index of the first area that ends after va.
func (s *vmaSet) firstEnding(va uint64) int {
	lo, hi := 0, s.n
	for lo < hi {
		m := (lo + hi) / 2
		if s.a[m].end <= va {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// overlaps reports whether any area meets [start, end).
func (s *vmaSet) overlaps(start, end uint64) bool {
	i := s.firstEnding(start)
	return i < s.n && s.a[i].start < end
}

// covered reports whether areas cover all of [start, end) without a gap.
func (s *vmaSet) covered(start, end uint64) bool {
	for i := s.firstEnding(start); start < end; i++ {
		if i >= s.n || s.a[i].start > start {
			return false
		}
		start = s.a[i].end
	}
	return true
}

// insert adds [start, end) with prot; the range must be free.
func (s *vmaSet) insert(start, end, prot uint64) bool {
	if start >= end || s.overlaps(start, end) {
		return false
	}
	i := s.firstEnding(start)
	if i > 0 && s.a[i-1].end == start && s.a[i-1].prot == prot {
		s.a[i-1].end = end
		if i < s.n && s.a[i].start == end && s.a[i].prot == prot {
			s.a[i-1].end = s.a[i].end
			s.del(i)
		}
		return true
	}
	if i < s.n && s.a[i].start == end && s.a[i].prot == prot {
		s.a[i].start = start
		return true
	}
	if s.n == maxAreas {
		return false
	}
	copy(s.a[i+1:s.n+1], s.a[i:s.n])
	s.a[i] = vmArea{start: start, end: end, prot: prot}
	s.n++
	return true
}

func (s *vmaSet) del(i int) {
	copy(s.a[i:s.n-1], s.a[i+1:s.n])
	s.n--
}

// remove takes [start, end) out of the set, splitting areas it cuts. It
// fails (changing nothing) only when a split needs a slot the set lacks.
func (s *vmaSet) remove(start, end uint64) bool {
	i := s.firstEnding(start)
	if i < s.n && s.a[i].start < start && s.a[i].end > end {
		if s.n == maxAreas {
			return false
		}
		right := vmArea{start: end, end: s.a[i].end, prot: s.a[i].prot}
		s.a[i].end = start
		copy(s.a[i+2:s.n+1], s.a[i+1:s.n])
		s.a[i+1] = right
		s.n++
		return true
	}
	for i < s.n && s.a[i].start < end {
		a := &s.a[i]
		switch {
		case a.start < start:
			a.end = start
			i++
		case a.end > end:
			a.start = end
			i++
		default:
			s.del(i)
		}
	}
	return true
}

// gap finds the highest free range of size bytes that ends at or below
// top and starts at or above bottom; 0 when there is none.
func (s *vmaSet) gap(size, bottom, top uint64) uint64 {
	hi := top
	for i := s.n - 1; i >= -1; i-- {
		lo := bottom
		if i >= 0 {
			if s.a[i].start >= hi {
				continue
			}
			lo = max(s.a[i].end, bottom)
		}
		if hi >= lo+size && hi-size >= lo {
			return hi - size
		}
		if i >= 0 {
			hi = min(hi, s.a[i].start)
		}
		if hi <= bottom {
			return 0
		}
	}
	return 0
}

// Fault-around: a demand fault in an area maps the whole aligned block of
// faultAroundPages (256 KiB) around the faulting page, within the area,
// because on the PVM host each fault costs tens of µs of emulated ring 0
// and a Go heap touches its pages in order (BENCHMARKS.md: 64 pages cost
// 2.7 µs a page refaulted, 16 pages 4.7, one page 53). It applies only
// while at least 1/faultAroundFreeShare of RAM is free, so that a program
// near the limit gets one page a fault, as without it.
const (
	faultAroundPages     = 64
	faultAroundFreeShare = 8
)

// faultAround returns the pages [lo, hi) to map for a fault at page in
// area i: the aligned faultAroundPages block containing page, clipped to
// the area. The block never crosses a 2 MiB boundary, so it shares the
// faulting page's last-level page table.
func (s *vmaSet) faultAround(i int, page uint64) (lo, hi uint64) {
	const block = faultAroundPages * 4096
	a := &s.a[i]
	lo = max(page&^(block-1), a.start)
	hi = min(page&^(block-1)+block, a.end)
	return lo, hi
}
