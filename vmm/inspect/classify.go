package inspect

import (
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// Frame classification for the map: what each frame's pixel shows.

// class is what a frame's pixel shows; it doubles as the palette index.
type class uint8

const (
	cNotRAM class = iota
	cFree         // cFree+k: free block of order k, k = 0..MaxOrder
	cKernel = cFree + mm.NumOrders + iota - 2
	cUser
	cAnonymous
	cCOW
	cDLL
	cPoisoned
	cPageTable
	cIllegal    // a flag combination or orphan tail the allocator never makes
	cBackground // outside the frames: title, legend, last row's padding
	cText
	numClasses
)

// classes classifies every frame of the dump, page tables included.
func (in *Inspection) classes() ([]class, error) {
	v, err := in.view()
	if err != nil {
		return nil, err
	}
	cls := classify(&v)
	in.markTables(cls)
	return cls, nil
}

// classify gives every frame its class, block by block as the view reads
// them: a block head decides the class of its tails (modifiers live in the
// head); a tail outside any block is illegal.
func classify(v *mm.View) []class {
	out := make([]class, v.FrameCount())
	it := v.Blocks()
	for {
		b, ok := it.Next()
		if !ok {
			return out
		}
		c := headClass(b.Rec.Flags, b.Rec.Order)
		for p := b.PFN; p < b.PFN+b.Frames; p++ {
			out[p] = c
		}
	}
}

// headClass classifies a frame that is not the tail of a block seen so far.
func headClass(f uint32, order uint8) class {
	switch {
	case f == 0:
		return cNotRAM
	case f == mm.FlagPoisoned:
		return cPoisoned
	case f == mm.FlagFree && order <= mm.MaxOrder:
		return cFree + class(order)
	case f == mm.FlagPerCPU && order == 0:
		return cFree // a per-CPU cached frame is a free order-0 frame
	case f&(mm.FlagAllocated|mm.FlagFree|mm.FlagPoisoned) != mm.FlagAllocated || order == mm.OrderTail:
		return cIllegal
	case f&mm.FlagCOW != 0:
		return cCOW
	case f&mm.FlagDLL != 0:
		return cDLL
	case f&mm.FlagAnonymous != 0:
		return cAnonymous
	case f&mm.FlagUser != 0:
		return cUser
	case f&mm.FlagKernel != 0:
		return cKernel
	}
	return cIllegal
}

// markTables colours the frames that hold page tables of any root.
func (in *Inspection) markTables(cls []class) {
	roots, _ := in.spaces()
	verify.Walk(in.mem, roots, nil, verify.Visitor{Table: func(_, phys uint64, _ int, _ uint64) {
		if pfn := phys / mm.PageSize; pfn < uint64(len(cls)) {
			cls[pfn] = cPageTable
		}
	}})
}
