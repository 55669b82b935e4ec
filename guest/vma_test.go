package main

import "testing"

// check verifies the set's invariants: sorted, disjoint, non-empty, page
// aligned, touching neighbours differ in protection.
func (s *vmaSet) check(t *testing.T) {
	t.Helper()
	for i := 0; i < s.n; i++ {
		a := s.a[i]
		if a.start >= a.end || a.start%4096 != 0 || a.end%4096 != 0 {
			t.Fatalf("area %d [%#x, %#x) is empty or unaligned", i, a.start, a.end)
		}
		if i > 0 {
			p := s.a[i-1]
			if p.end > a.start || (p.end == a.start && p.prot == a.prot) {
				t.Fatalf("areas %d and %d overlap or should have merged: %+v %+v", i-1, i, p, a)
			}
		}
	}
}

func (s *vmaSet) dump() [][3]uint64 {
	var out [][3]uint64
	for i := 0; i < s.n; i++ {
		out = append(out, [3]uint64{s.a[i].start, s.a[i].end, s.a[i].prot})
	}
	return out
}

func TestVMASet(t *testing.T) {
	const p = 4096
	var s vmaSet
	rw := uint64(protRead | protWrite)
	steps := []struct {
		op         string
		start, end uint64
		prot       uint64
		ok         bool
		want       [][3]uint64
	}{
		{"insert", 10 * p, 20 * p, 0, true, [][3]uint64{{10 * p, 20 * p, 0}}},
		{"insert", 15 * p, 25 * p, rw, false, [][3]uint64{{10 * p, 20 * p, 0}}},                   // overlap refused
		{"insert", 20 * p, 30 * p, 0, true, [][3]uint64{{10 * p, 30 * p, 0}}},                     // merged right
		{"insert", 5 * p, 10 * p, 0, true, [][3]uint64{{5 * p, 30 * p, 0}}},                       // merged left
		{"remove", 12 * p, 14 * p, 0, true, [][3]uint64{{5 * p, 12 * p, 0}, {14 * p, 30 * p, 0}}}, // split
		{"insert", 12 * p, 14 * p, rw, true, [][3]uint64{{5 * p, 12 * p, 0}, {12 * p, 14 * p, rw}, {14 * p, 30 * p, 0}}},
		{"remove", 13 * p, 29 * p, 0, true, [][3]uint64{{5 * p, 12 * p, 0}, {12 * p, 13 * p, rw}, {29 * p, 30 * p, 0}}},
		{"insert", 13 * p, 29 * p, 0, true, [][3]uint64{{5 * p, 12 * p, 0}, {12 * p, 13 * p, rw}, {13 * p, 30 * p, 0}}},
		{"remove", 0, 100 * p, 0, true, nil},
	}
	for i, st := range steps {
		var ok bool
		if st.op == "insert" {
			ok = s.insert(st.start, st.end, st.prot)
		} else {
			ok = s.remove(st.start, st.end)
		}
		s.check(t)
		got := s.dump()
		if ok != st.ok || len(got) != len(st.want) {
			t.Fatalf("step %d %s [%#x, %#x): ok %v, areas %#x; want %v, %#x", i, st.op, st.start, st.end, ok, got, st.ok, st.want)
		}
		for j := range got {
			if got[j] != st.want[j] {
				t.Fatalf("step %d: areas %#x, want %#x", i, got, st.want)
			}
		}
	}
}

func TestVMAFindCoveredGap(t *testing.T) {
	const p = 4096
	var s vmaSet
	s.insert(10*p, 20*p, protRead)
	s.insert(20*p, 30*p, protRead|protWrite)
	s.insert(40*p, 50*p, 0)
	for va, want := range map[uint64]int{9 * p: -1, 10 * p: 0, 20*p - 1: 0, 20 * p: 1, 35 * p: -1, 49 * p: 2, 50 * p: -1} {
		if got := s.find(va); got != want {
			t.Errorf("find(%#x) = %d, want %d", va, got, want)
		}
	}
	if !s.covered(12*p, 28*p) || s.covered(25*p, 45*p) || s.covered(5*p, 15*p) {
		t.Error("covered is wrong")
	}
	if got := s.gap(5*p, 0, 60*p); got != 55*p {
		t.Errorf("gap below the top = %#x, want %#x", got, 55*p)
	}
	if got := s.gap(10*p, 0, 50*p); got != 30*p {
		t.Errorf("gap between areas = %#x, want %#x", got, 30*p)
	}
	if got := s.gap(11*p, 0, 50*p); got != 0 {
		t.Errorf("gap of 11 pages below page 50 = %#x, want 0 (the free ranges hold 10)", got)
	}
	if got := s.gap(11*p, 11*p, 50*p); got != 0 {
		t.Errorf("gap with a floor = %#x, want 0", got)
	}
}

// TestFaultAround: the block is the aligned faultAroundPages around the
// page, clipped to the area, and never leaves the page's 2 MiB (one page
// table).
func TestFaultAround(t *testing.T) {
	const p = 4096
	const block = faultAroundPages * p
	var s vmaSet
	base := uint64(0x4000_0000)
	if !s.insert(base+3*p, base+3*p+2*block, protRead|protWrite) {
		t.Fatal("insert")
	}
	cases := []struct{ page, lo, hi uint64 }{
		{base + 3*p, base + 3*p, base + block},                       // clipped below
		{base + block + 5*p, base + block, base + 2*block},           // a whole block
		{base + 2*block + p, base + 2*block, base + 3*p + 2*block},   // clipped above
		{base + 2*block + 2*p, base + 2*block, base + 3*p + 2*block}, // same block
		{base + block - p, base + 3*p, base + block},                 // last page of the first block
	}
	for _, c := range cases {
		i := s.find(c.page)
		lo, hi := s.faultAround(i, c.page)
		if lo != c.lo || hi != c.hi || lo > c.page || c.page >= hi {
			t.Errorf("page %#x: [%#x, %#x), want [%#x, %#x)", c.page, lo, hi, c.lo, c.hi)
		}
		if lo>>21 != (hi-1)>>21 {
			t.Errorf("page %#x: [%#x, %#x) crosses a 2 MiB boundary", c.page, lo, hi)
		}
	}
	if (1<<21)%block != 0 {
		t.Errorf("faultAroundPages %d does not divide 2 MiB", faultAroundPages)
	}
}
