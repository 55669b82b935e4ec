package verify

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"unsafe"

	"github.com/vmm-dev/vmm/guest/mm"
)

// Frame ownership: every ALLOCATED block must have an owner the host can
// check, or it is a leak. The owners, in the order they are tried:
//
//   - what the VMM placed before the guest ran (the boot info's in-use
//     ranges: firmware area, identity map, kernel image, per-CPU areas,
//     trace), and the registered metadata array and allocator state: these
//     frames must also be ALLOCATED|KERNEL (or POISONED), never FREE;
//   - a page table reachable from a registered root;
//   - a frame mapped by a registered root;
//   - a block the guest declared in its Holdings.
//
// These rules need the boot info (Input.Boot); without it only the
// registered areas and the bad-frame list are unknown, so they are skipped.

// Owner kinds (index into ownerNames; 0 = none).
const (
	ownNone uint8 = iota
	ownMeta
	ownState
	ownTable
	ownMapped
	ownDeclared
	ownBoot // ownBoot+i: Boot.InUse[i]
)

var ownerNames = [...]string{ownNone: "nothing", ownMeta: "metadata array", ownState: "allocator state",
	ownTable: "page table", ownMapped: "mapping", ownDeclared: "declared holding"}

type owners struct {
	view  *mm.View
	boot  *Boot
	owner []uint8 // the owners marked by range (boot info, registered areas) and declared
	res   *ptResult
	// maps owns the frames the page tables use or map, where owner has
	// none (looked up when needed rather than copied into owner).
	maps *mapCounter
	// marked are the frame spans markRange marked, [first, last].
	marked [][2]uint64
}

// owned reports whether frame p has an owner.
func (o *owners) owned(p uint64) bool { return o.owner[p] != ownNone || o.mapped(p) }

// mapped reports whether a page table uses or maps frame p.
func (o *owners) mapped(p uint64) bool {
	return o.maps.maps != nil && o.maps.maps[p]&(mapIsTable|mapCount) != 0
}

func (o *owners) name(k uint8) string {
	if k >= ownBoot {
		return o.boot.InUse[k-ownBoot].Name
	}
	return ownerNames[k]
}

// markRange gives the frames touched by [base, base+size) owner k where
// they have none yet.
func (o *owners) markRange(base, size uint64, k uint8) {
	if size == 0 {
		return
	}
	end := base + size
	if end < base {
		end = ^uint64(0)
	}
	first, last := base/mm.PageSize, min((end-1)/mm.PageSize, uint64(len(o.owner))-1)
	if first <= last {
		o.marked = append(o.marked, [2]uint64{first, last})
	}
	for p := first; p <= last; p++ {
		if o.owner[p] == ownNone {
			o.owner[p] = k
		}
	}
}

// markOwners finds every frame's owner and applies the rules about the
// owned areas; the host pass then calls block for each allocated block.
func markOwners(mem Memory, v *mm.View, in Input, c *mapCounter, res *ptResult) *owners {
	n := v.FrameCount()
	o := &owners{view: v, boot: in.Boot, owner: bytePool.get(n), res: res, maps: c}
	for i, r := range in.Boot.InUse {
		if i < 255-int(ownBoot) {
			o.markRange(r.Base, r.Size, ownBoot+uint8(i))
		}
	}
	o.markRange(in.MetaPhys, in.FrameCount*mm.FrameMetaSize, ownMeta)
	o.markRange(in.StatePhys, mm.StateSize, ownState)
	o.kernelAreas()
	o.badFrames()
	o.declared(mem, in.Holdings)
	return o
}

// kernelAreas: the frames the VMM placed and the registered areas are
// ALLOCATED|KERNEL, never FREE and never POISONED (the VMM refuses bad
// frames there, and the guest's boot allocator never places its metadata
// on one, so a POISONED frame there is the guest's bug); reported once per
// area, at its first wrong frame, with the count.
func (o *owners) kernelAreas() {
	type area struct {
		first, wrong uint64
		flags        uint32
	}
	seen := map[uint8]*area{}
	var order []uint8
	// Only the flags matter here, read straight from the records (the
	// areas are thousands of frames: decoding whole records was some 6%
	// of a small guest's verification).
	meta := o.view.MetaBytes()
	o.eachMarkedSpan(func(first, last uint64) {
		for p := first; p <= last; p++ {
			f := le32(meta[p*mm.FrameMetaSize+mm.OffFlags:])
			if f == 0 || f == mm.FlagAllocated|mm.FlagKernel {
				continue
			}
			k := o.owner[p]
			a := seen[k]
			if a == nil {
				a = &area{first: p, flags: f}
				seen[k] = a
				order = append(order, k)
			}
			a.wrong++
		}
	})
	for _, k := range order {
		a := seen[k]
		o.res.addDetail(a.first, o.name(k)+" frame not ALLOCATED|KERNEL", "flags",
			uint64(mm.FlagAllocated|mm.FlagKernel), uint64(a.flags),
			fmt.Sprintf("%d frame(s) of the %s are not ALLOCATED|KERNEL; this one is %s", a.wrong, o.name(k), FlagNames(a.flags)))
	}
}

// eachMarkedSpan calls f with the frame spans markRange marked, merged
// where they overlap, in frame order: each marked frame once.
func (o *owners) eachMarkedSpan(f func(first, last uint64)) {
	spans := o.marked
	slices.SortFunc(spans, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	next := uint64(0) // frames below next are done
	for _, s := range spans {
		if first := max(s[0], next); first <= s[1] {
			f(first, s[1])
		}
		next = max(next, s[1]+1)
	}
}

// badFrames: every RAM frame the boot info lists as bad is POISONED.
func (o *owners) badFrames() {
	for _, pfn := range o.boot.Bad {
		r, ok := o.view.Record(pfn)
		if !ok || r.Flags == 0 || r.Flags == mm.FlagPoisoned {
			continue // outside the array, or not RAM: nothing to poison
		}
		o.res.addDetail(pfn, "bad frame from the boot info not POISONED", "flags", uint64(mm.FlagPoisoned), uint64(r.Flags),
			"the boot info lists this frame as bad; it is "+FlagNames(r.Flags))
	}
}

// declared marks the blocks of the guest's Holdings at phys (0: none) and
// checks each names an allocated block of its order.
func (o *owners) declared(mem Memory, phys uint64) {
	if phys == 0 {
		return
	}
	var h mm.Holdings
	raw, err := mem.Slice(phys, mm.HoldingsSize)
	if err != nil {
		o.res.addDetail(phys/mm.PageSize, "holdings table unreadable", "holdings", 0, phys, err.Error())
		return
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), mm.HoldingsSize), raw)
	if h.Magic != mm.HoldingsMagic || h.N > mm.MaxHoldings {
		o.res.addDetail(phys/mm.PageSize, "holdings table corrupt", "holdings", mm.MaxHoldings, h.N,
			fmt.Sprintf("magic %#x, %d declarations", h.Magic, h.N))
		return
	}
	for i := range h.N {
		d := h.Decl[i]
		if d.Block != 0 {
			o.hold(d.Block, i)
		}
		if d.Table == 0 {
			continue
		}
		if d.Stride == 0 || d.Stride > mm.MaxHoldStride || d.Words > mm.MaxHoldWords || d.Table%8 != 0 {
			o.res.addDetail(d.Table/mm.PageSize, "holding declaration out of range", "holdings", mm.MaxHoldWords, d.Words,
				fmt.Sprintf("declaration %d: table %#x, %d words, stride %d", i, d.Table, d.Words, d.Stride))
			continue
		}
		words, err := mem.Slice(d.Table, d.Words*8)
		if err != nil {
			o.res.addDetail(d.Table/mm.PageSize, "holding table outside RAM", "holdings", 0, d.Table,
				fmt.Sprintf("declaration %d: %v", i, err))
			continue
		}
		for w := d.Stride - 1; w < d.Words; w += d.Stride {
			// A table is mostly empty slots (a workload's scratch block
			// of up to 4 MiB): with stride 1, skip its zero lines whole.
			if d.Stride == 1 && w%8 == 0 && w+8 <= d.Words && zeroLine(words[w*8:]) {
				w += 7
				continue
			}
			if e := le64(words[w*8:]); e != 0 {
				o.hold(e, i)
			}
		}
	}
}

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// zeroLine reports whether the first 64 bytes of b are all zero.
func zeroLine(b []byte) bool {
	b = b[:64]
	return le64(b[0:])|le64(b[8:])|le64(b[16:])|le64(b[24:])|le64(b[32:])|le64(b[40:])|le64(b[48:])|le64(b[56:]) == 0
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// hold marks the declared block e (phys | order) as owned; it must be an
// allocated block head of that order.
func (o *owners) hold(e, decl uint64) {
	pfn, order := e/mm.PageSize, e%mm.PageSize
	r, ok := o.view.Record(pfn)
	if !ok || order > mm.MaxOrder || r.Flags&(mm.FlagAllocated|mm.FlagFree|mm.FlagPoisoned|mm.FlagPerCPU) != mm.FlagAllocated || uint64(r.Order) != order {
		o.res.addDetail(pfn, "declared block is not an allocated block of its order", "order", order, uint64(r.Order),
			fmt.Sprintf("declaration %d holds %#x (order %d); the frame is %s", decl, e, order, FlagNames(r.Flags)))
		return
	}
	if o.owner[pfn] == ownDeclared { // (a mapped frame is the mapping's: see owned)
		// Two holders of one block: the allocator handed it out twice
		// (e.g. after accepting a double free).
		o.res.addDetail(pfn, "declared block held twice", "owner", 1, 2,
			fmt.Sprintf("declaration %d holds %#x (order %d), which another entry already holds", decl, e, order))
		return
	}
	for p := pfn; p < pfn+1<<order && p < uint64(len(o.owner)); p++ {
		if !o.owned(p) {
			o.owner[p] = ownDeclared
		}
	}
}

// block reports the allocated block [head, end) (as the host pass parsed
// it) as a leak, at its head, to res, if none of its frames has an owner.
func (o *owners) block(head, end uint64, r mm.Record, res *ptResult) {
	for p := head; p < end; p++ {
		if o.owned(p) {
			return
		}
	}
	res.addDetail(head, "allocated block owned by nothing (leak)", "owner", 1, 0,
		fmt.Sprintf("%s order-%d block: no page table or mapping of a registered root, no declared holding, not metadata, kernel or firmware", FlagNames(r.Flags), r.Order))
}
