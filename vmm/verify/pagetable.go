package verify

import (
	"encoding/binary"

	"github.com/vmm-dev/vmm/guest/mm"
)

// Page-table entry bits (x86-64).
const (
	ptePresent  = 1 << 0
	pteWritable = 1 << 1
	pteUser     = 1 << 2
	pteHuge     = 1 << 7
	pteAddr     = 0x000ffffffffff000
)

// maxLeaves and maxTables bound a walk: a hostile guest can point every
// entry of every level at the same table and ask for 2^36 leaves, or for
// 512^3 visits of empty tables.
const (
	maxLeaves = 1 << 26
	maxTables = 1 << 20
)

type ptResult struct {
	tableFrames uint64
	mappings    uint64
	violations  []Violation
	total       int
}

func (p *ptResult) add(pfn uint64, kind, field string, exp, act uint64) {
	p.total++
	if len(p.violations) < MaxListed {
		p.violations = append(p.violations, Violation{PFN: pfn, Phys: pfn * mm.PageSize, Source: "pagetable",
			Kind: kind, Field: field, Expected: exp, Actual: act})
	}
}

// walker counts, per frame, the leaf mappings in the registered address
// spaces and how they are mapped.
type walker struct {
	mem        Memory
	meta       []byte
	frames     uint64
	mapCount   []uint32
	noUser     []bool // mapped at least once without U
	writable   []bool // mapped at least once writable
	isTable    []bool
	leaves     uint64
	visits     uint64
	res        ptResult
	overflowed bool
	shared     []uint64
}

func walkPageTables(mem Memory, meta []byte, frames uint64, roots, shared []uint64) ptResult {
	w := &walker{mem: mem, meta: meta, frames: frames, shared: shared, mapCount: make([]uint32, frames),
		noUser: make([]bool, frames), writable: make([]bool, frames), isTable: make([]bool, frames)}
	for _, root := range roots {
		w.table(root, 4, true, true)
	}
	w.judge()
	return w.res
}

// table walks the table at phys, at level 4 (PML4) down to 1 (PT).
func (w *walker) table(phys uint64, level int, user, writable bool) {
	pfn := phys / mm.PageSize
	if w.visits++; w.visits > maxTables {
		if !w.overflowed {
			w.overflowed = true
			w.res.add(pfn, "page tables link too many tables", "pte", maxTables, w.visits)
		}
		return
	}
	if pfn >= w.frames {
		w.res.add(pfn, "page table outside RAM", "pte", w.frames, pfn)
		return
	}
	if !w.isTable[pfn] {
		w.isTable[pfn] = true
		w.res.tableFrames++
	}
	b, err := w.mem.Slice(pfn*mm.PageSize, mm.PageSize)
	if err != nil {
		w.res.add(pfn, "page table unreadable", "pte", 0, phys)
		return
	}
	for i := 0; i < 512; i++ {
		e := binary.LittleEndian.Uint64(b[i*8:])
		if e&ptePresent == 0 {
			continue
		}
		u, wr := user && e&pteUser != 0, writable && e&pteWritable != 0
		next := e & pteAddr
		if w.isShared(next) {
			continue
		}
		switch {
		case level == 1:
			w.leaf(next/mm.PageSize, 1, u, wr)
		case e&pteHuge != 0 && (level == 2 || level == 3):
			n := uint64(1) << (9 * (level - 1))
			w.leaf(next/mm.PageSize, n, u, wr)
		default:
			w.table(next, level-1, u, wr)
		}
		if w.overflowed {
			return
		}
	}
}

func (w *walker) leaf(first, n uint64, user, writable bool) {
	for pfn := first; pfn < first+n; pfn++ {
		w.leaves++
		if w.leaves > maxLeaves {
			if !w.overflowed {
				w.overflowed = true
				w.res.add(pfn, "page tables map too many pages", "pte", maxLeaves, w.leaves)
			}
			return
		}
		if pfn >= w.frames {
			w.res.add(pfn, "mapping of a frame outside RAM", "pte", w.frames, pfn)
			continue
		}
		w.res.mappings++
		w.mapCount[pfn]++
		w.noUser[pfn] = w.noUser[pfn] || !user
		w.writable[pfn] = w.writable[pfn] || writable
	}
}

// judge applies the rules that tie metadata to mappings.
func (w *walker) judge() {
	for pfn := uint64(0); pfn < w.frames; pfn++ {
		flags, order, ref := frame(w.meta, pfn)
		maps := uint64(w.mapCount[pfn])
		if w.isTable[pfn] && flags&(mm.FlagKernel|mm.FlagAllocated) != mm.FlagKernel|mm.FlagAllocated {
			w.res.add(pfn, "page-table frame not KERNEL|ALLOCATED", "flags", uint64(mm.FlagKernel|mm.FlagAllocated), uint64(flags))
		}
		if maps == 0 {
			continue
		}
		switch {
		case flags == 0:
			w.res.add(pfn, "mapped frame is not RAM", "flags", 0, maps)
		case flags&mm.FlagFree != 0:
			w.res.add(pfn, "FREE frame is mapped", "mappings", 0, maps)
		case flags&mm.FlagPoisoned != 0:
			w.res.add(pfn, "POISONED frame is mapped", "mappings", 0, maps)
		case flags&mm.FlagUser == 0:
			w.res.add(pfn, "frame mapped into user space is not USER", "flags", uint64(flags|mm.FlagUser), uint64(flags))
		}
		if flags&mm.FlagUser != 0 && w.noUser[pfn] {
			w.res.add(pfn, "USER frame mapped without the U bit", "pte", pteUser, 0)
		}
		if flags&mm.FlagCOW != 0 && w.writable[pfn] {
			w.res.add(pfn, "COW frame mapped writable", "pte", 0, pteWritable)
		}
		if flags&mm.FlagUser != 0 && order != mm.OrderTail && uint64(ref) != maps {
			w.res.add(pfn, "refcount differs from the number of mappings", "refcount", maps, uint64(ref))
		}
	}
	// USER heads that nothing maps must not hold references either.
	for pfn := uint64(0); pfn < w.frames; pfn++ {
		flags, order, ref := frame(w.meta, pfn)
		if w.mapCount[pfn] == 0 && flags&mm.FlagUser != 0 && order != mm.OrderTail && ref != 0 {
			w.res.add(pfn, "refcount differs from the number of mappings", "refcount", 0, uint64(ref))
		}
	}
}

func (w *walker) isShared(table uint64) bool {
	for _, t := range w.shared {
		if t == table {
			return true
		}
	}
	return false
}
