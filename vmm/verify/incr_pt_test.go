package verify

import (
	"encoding/binary"
	"math/rand"
	"slices"

	"github.com/vmm-dev/vmm/guest/mm"
)

// Address spaces for the equivalence test: 4-level page tables built from
// the allocator's KERNEL frames, mapping USER frames (refcount = number of
// mappings), registered as roots. Every write the test makes outside the
// metadata and state is recorded in wrote (the simulated dirty log's share
// of what the allocator does not write itself).

type mapping struct {
	root, va uint64
	frame    uint64 // phys
	order    uint8  // 0, or 9 for a 2 MiB page
}

type spaces struct {
	g     *heldGuest
	wrote pageDiff
	maps  []mapping
}

func (s *spaces) write64(gpa, v uint64) {
	binary.LittleEndian.PutUint64(s.g.mem[gpa:], v)
	s.wrote.set(gpa &^ (mm.PageSize - 1))
}

func (s *spaces) read64(gpa uint64) uint64 { return binary.LittleEndian.Uint64(s.g.mem[gpa:]) }

// table allocates a zeroed KERNEL frame for a page table.
func (s *spaces) table() (uint64, bool) {
	tok := s.g.b.Lock()
	f, err := s.g.b.AllocFlags(0, &tok, mm.FlagKernel)
	s.g.b.Unlock(&tok)
	if err != mm.ErrNone {
		return 0, false
	}
	for i := uint64(0); i < 512; i++ {
		s.write64(f.StartAddress()+8*i, 0)
	}
	return f.StartAddress(), true
}

// slot returns the address of the entry mapping va at level (1: PTE, 2:
// PDE) under root, making the tables above it.
func (s *spaces) slot(root, va uint64, level int) (uint64, bool) {
	t := root
	for l := 4; l > level; l-- {
		e := t + 8*(va>>(12+9*(l-1))&511)
		if s.read64(e)&ptePresent == 0 {
			nt, ok := s.table()
			if !ok {
				return 0, false
			}
			s.write64(e, nt|ptePresent|pteWritable|pteUser)
		}
		t = s.read64(e) & pteAddr
	}
	return t + 8*(va>>(12+9*(level-1))&511), true
}

// step changes the address spaces: a new space, a new mapping (a fresh
// USER frame, a 2 MiB block, or another mapping of a mapped frame), an
// unmapping, or a space dropped whole.
func (s *spaces) step(r *rand.Rand) {
	g := s.g
	switch n := r.Intn(10); {
	case len(g.in.Roots) == 0 && n < 5 || n == 0 && len(g.in.Roots) < 4:
		if root, ok := s.table(); ok {
			g.in.Roots = append(g.in.Roots, root)
		}
	case n == 1 && len(g.in.Roots) > 0: // the last one too: no roots, then a first one again
		s.drop(g.in.Roots[r.Intn(len(g.in.Roots))])
	case len(g.in.Roots) == 0:
	case n <= 5 || len(s.maps) == 0:
		root := g.in.Roots[r.Intn(len(g.in.Roots))]
		m := mapping{root: root, va: uint64(r.Intn(1<<20)) << 12}
		if len(s.maps) > 0 && r.Intn(3) == 0 {
			old := s.maps[r.Intn(len(s.maps))]
			if old.order != 0 || g.b.Get(mm.FrameFromPFN(old.frame/mm.PageSize)) != mm.ErrNone {
				return
			}
			m.frame = old.frame
		} else {
			if r.Intn(8) == 0 {
				m.order, m.va = 9, m.va&^(1<<21-1)
			}
			tok := g.b.Lock()
			f, err := g.b.AllocFlags(m.order, &tok, mm.FlagUser|mm.FlagAnonymous)
			g.b.Unlock(&tok)
			if err != mm.ErrNone {
				return
			}
			m.frame = f.StartAddress()
		}
		level := 1
		if m.order == 9 {
			level = 2
		}
		e, ok := s.slot(root, m.va, level)
		if !ok || s.read64(e)&ptePresent != 0 {
			s.put(m) // the slot is taken: give the reference back
			return
		}
		flags := uint64(ptePresent | pteWritable | pteUser)
		if level == 2 {
			flags |= pteHuge
		}
		s.write64(e, m.frame|flags)
		s.maps = append(s.maps, m)
	default:
		i := r.Intn(len(s.maps))
		s.unmap(s.maps[i])
		s.maps = slices.Delete(s.maps, i, i+1)
	}
}

func (s *spaces) put(m mapping) {
	tok := s.g.b.Lock()
	s.g.b.Put(mm.FrameFromPFN(m.frame/mm.PageSize), m.order, &tok)
	s.g.b.Unlock(&tok)
}

func (s *spaces) unmap(m mapping) {
	level := 1
	if m.order == 9 {
		level = 2
	}
	e, _ := s.slot(m.root, m.va, level)
	s.write64(e, 0)
	s.put(m)
}

// drop unmaps everything root maps, frees its tables and unregisters it.
func (s *spaces) drop(root uint64) {
	g := s.g
	s.maps = slices.DeleteFunc(s.maps, func(m mapping) bool {
		if m.root == root {
			s.unmap(m)
		}
		return m.root == root
	})
	var free func(t uint64, level int)
	free = func(t uint64, level int) {
		for i := uint64(0); i < 512 && level > 1; i++ {
			if e := s.read64(t + 8*i); e&ptePresent != 0 && e&pteHuge == 0 {
				free(e&pteAddr, level-1)
			}
		}
		tok := g.b.Lock()
		g.b.Free(mm.FrameFromPFN(t/mm.PageSize), 0, &tok)
		g.b.Unlock(&tok)
	}
	free(root, 4)
	i := slices.Index(g.in.Roots, root)
	g.in.Roots = slices.Delete(slices.Clone(g.in.Roots), i, i+1)
}

// corrupt damages one page-table entry: a mapping without the U bit, a
// writable mapping of a DLL frame (made DLL), a mapping of a FREE frame, a
// mapping taken away without its reference, or a table pointer at a
// frame that is not a table. It returns what it did and the undo.
func (s *spaces) corrupt(r *rand.Rand) (string, func()) {
	m := s.maps[r.Intn(len(s.maps))]
	level := 1
	if m.order == 9 {
		level = 2
	}
	e, _ := s.slot(m.root, m.va, level)
	old := s.read64(e)
	undo := func() { s.write64(e, old) }
	switch r.Intn(4) {
	case 0:
		s.write64(e, old&^pteUser)
		return "mapping without U", undo
	case 1:
		s.write64(e, 0)
		return "mapping dropped, reference kept", undo
	case 2:
		s.write64(e, uint64(s.g.in.FrameCount-1)*mm.PageSize|old&0xfff&^pteHuge) // the last frame: FREE
		return "mapping of a free frame", undo
	}
	pde, _ := s.slot(m.root, m.va, 2)
	was := s.read64(pde)
	s.write64(pde, uint64(s.g.in.FrameCount-2)*mm.PageSize|ptePresent|pteWritable|pteUser)
	return "table pointer at a free frame", func() { s.write64(pde, was) }
}
