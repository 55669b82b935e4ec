package verify

import (
	"github.com/vmm-dev/vmm/guest/mm"
)

// maxFrameRefs bounds how many frame references the counting follows: a
// walk of 2^26 leaf entries of 1 GiB pages names 2^44 frames.
const maxFrameRefs = 1 << 28

type ptResult struct {
	tableFrames uint64
	mappings    uint64
	violations  []Violation
	total       int
}

// merge appends o's findings, within the cap.
func (p *ptResult) merge(o *ptResult) {
	p.total += o.total
	for _, x := range o.violations {
		if len(p.violations) < MaxListed {
			p.violations = append(p.violations, x)
		}
	}
}

func (p *ptResult) add(pfn uint64, kind, field string, exp, act uint64) {
	p.addDetail(pfn, kind, field, exp, act, "")
}

func (p *ptResult) addDetail(pfn uint64, kind, field string, exp, act uint64, detail string) {
	p.total++
	if len(p.violations) < MaxListed {
		p.violations = append(p.violations, Violation{PFN: pfn, Phys: pfn * mm.PageSize, Source: "pagetable",
			Kind: kind, Field: field, Expected: exp, Actual: act, Detail: detail})
	}
}

// mapCounter counts, per frame, the leaf mappings in the registered
// address spaces and how they are mapped.
type mapCounter struct {
	mem    Memory
	view   *mm.View
	frames uint64
	// maps is per frame the number of leaf mappings (mapCount) and the
	// bits below; nil without roots.
	maps []uint32
	// touched has bit p set when frame p is a table or mapped: judge
	// looks no further at the others (most frames) than their flags.
	touched []uint64
	meta    []byte // the records' bytes
	refs    uint64
	res     ptResult
}

// The bits of mapCounter.maps above the count (which cannot exceed
// maxFrameRefs+1 < 2^29).
const (
	mapNoUser   = 1 << 29 // mapped at least once without U
	mapWritable = 1 << 30 // mapped at least once writable
	mapIsTable  = 1 << 31 // a page table
	mapCount    = 1<<29 - 1
)

// walkTables walks the registered roots and counts the mappings; the
// rules that tie them to the metadata (judge) run in the passes over the
// frames (checkFrames).
func walkTables(mem Memory, view *mm.View, roots, shared []uint64) *mapCounter {
	frames := view.FrameCount()
	c := &mapCounter{mem: mem, view: view, frames: frames, maps: uint32Pool.get(frames),
		touched: uint64Pool.get((frames + 63) / 64), meta: view.MetaBytes()}
	if Walk(mem, roots, shared, Visitor{Table: c.table, Leaf: c.leaf}) || c.refs > maxFrameRefs {
		c.res.add(0, "page tables too large to walk", "pte", maxFrameRefs, c.refs)
	}
	return c
}

func (c *mapCounter) table(root, phys uint64, level int, va uint64) {
	pfn := phys / mm.PageSize
	if pfn >= c.frames {
		c.res.add(pfn, "page table outside RAM", "pte", c.frames, pfn)
		return
	}
	if _, err := c.mem.Slice(phys&pteAddr, mm.PageSize); err != nil {
		c.res.add(pfn, "page table unreadable", "pte", 0, phys)
		return
	}
	if c.maps[pfn]&mapIsTable == 0 {
		c.maps[pfn] |= mapIsTable
		c.touched[pfn/64] |= 1 << (pfn % 64)
		c.res.tableFrames++
	}
}

func (c *mapCounter) leaf(root, va, first, n uint64, writable, user bool) {
	for pfn := first; pfn < first+n && c.refs <= maxFrameRefs; pfn++ {
		c.refs++
		if pfn >= c.frames {
			c.res.add(pfn, "mapping of a frame outside RAM", "pte", c.frames, pfn)
			return
		}
		c.res.mappings++
		c.maps[pfn]++
		c.touched[pfn/64] |= 1 << (pfn % 64)
		if !user {
			c.maps[pfn] |= mapNoUser
		}
		if writable {
			c.maps[pfn] |= mapWritable
		}
	}
}

// judge applies the rules that tie metadata to mappings to frames
// [lo, hi), reporting to res (the walk's findings come first: see
// checkFrames).
func (w *mapCounter) judge(lo, hi uint64, res *ptResult) {
	for pfn := lo; pfn < min(hi, w.frames); pfn++ {
		if w.touched[pfn/64]&(1<<(pfn%64)) == 0 {
			// Not a table, not mapped: only the rule for unmapped USER
			// heads below applies.
			m := w.meta[pfn*mm.FrameMetaSize:][:mm.FrameMetaSize]
			flags := le32(m[mm.OffFlags:])
			if flags&mm.FlagUser == 0 {
				continue
			}
			if ref := le32(m[mm.OffRefcount:]); m[mm.OffOrder] != mm.OrderTail && ref != 0 {
				res.add(pfn, "refcount differs from the number of mappings", "refcount", 0, uint64(ref))
			}
			continue
		}
		rec, _ := w.view.Record(pfn)
		flags, order, ref := rec.Flags, rec.Order, rec.Refcount
		fm := w.maps[pfn]
		maps := uint64(fm & mapCount)
		if fm&mapIsTable != 0 && flags&(mm.FlagKernel|mm.FlagAllocated) != mm.FlagKernel|mm.FlagAllocated {
			res.add(pfn, "page-table frame not KERNEL|ALLOCATED", "flags", uint64(mm.FlagKernel|mm.FlagAllocated), uint64(flags))
		}
		if maps == 0 {
			// USER heads that nothing maps must not hold references either.
			if flags&mm.FlagUser != 0 && order != mm.OrderTail && ref != 0 {
				res.add(pfn, "refcount differs from the number of mappings", "refcount", 0, uint64(ref))
			}
			continue
		}
		switch {
		case flags == 0:
			res.add(pfn, "mapped frame is not RAM", "flags", 0, maps)
		case flags&mm.FlagFree != 0:
			res.add(pfn, "FREE frame is mapped", "mappings", 0, maps)
		case flags&mm.FlagPoisoned != 0:
			res.add(pfn, "POISONED frame is mapped", "mappings", 0, maps)
		case flags&mm.FlagUser == 0:
			res.add(pfn, "frame mapped into user space is not USER", "flags", uint64(flags|mm.FlagUser), uint64(flags))
		}
		if flags&mm.FlagUser != 0 && fm&mapNoUser != 0 {
			res.add(pfn, "USER frame mapped without the U bit", "pte", pteUser, 0)
		}
		if flags&mm.FlagCOW != 0 && fm&mapWritable != 0 {
			res.add(pfn, "COW frame mapped writable", "pte", 0, pteWritable)
		}
		if flags&mm.FlagDLL != 0 && fm&mapWritable != 0 {
			res.add(pfn, "DLL frame mapped writable", "pte", 0, pteWritable)
		}
		if flags&mm.FlagUser != 0 && order != mm.OrderTail && flags&(mm.FlagAnonymous|mm.FlagDLL) == 0 {
			res.addDetail(pfn, "mapped USER frame neither ANONYMOUS nor DLL", "flags", uint64(flags|mm.FlagAnonymous), uint64(flags),
				"user memory here is anonymous or a shared library; anonymous frames must say so")
		}
		if flags&mm.FlagUser != 0 && order != mm.OrderTail && uint64(ref) != maps {
			res.add(pfn, "refcount differs from the number of mappings", "refcount", maps, uint64(ref))
		}
	}
}
