package mm

import "sync/atomic"

// The typed, read-only view of the frame-metadata bytes. Every decoder of
// FrameMeta records, guest or host, reads them through a View: a record by
// frame number (Record), the block structure (Blocks, BlockOf) and the
// per-CPU caches (Cache, CacheEntry). Each accessor is bounds-checked by
// the record count or by the fixed array sizes and returns ok=false (or a
// zero value) instead of faulting, reads with atomic loads, allocates
// nothing, and never panics, so the runtime-free guest may use it too.

// Record is one FrameMeta record as decoded from memory.
type Record struct {
	Next, Prev uint64 // PFN or LinkNone (a cached frame: CPU and slot)
	Flags      uint32
	Order      uint8  // block order, or OrderTail
	Reserved   uint32 // bytes 21..23 of the record: always zero
	Refcount   uint32
}

// IsTail reports whether the record is the tail frame of a block.
//
//go:nosplit
func (r Record) IsTail() bool { return r.Order == OrderTail }

// rec decodes record pfn without a bounds check (pfn < v.n).
//
//go:nosplit
func (v *View) rec(pfn uint64) Record {
	m := v.at(pfn)
	ow := atomic.LoadUint32(&m.orderWord)
	return Record{
		Next:     atomic.LoadUint64(&m.next),
		Prev:     atomic.LoadUint64(&m.prev),
		Flags:    atomic.LoadUint32(&m.flags),
		Order:    uint8(ow),
		Reserved: ow >> 8,
		Refcount: atomic.LoadUint32(&m.refcount),
	}
}

// Record returns the record of frame pfn; ok is false beyond the array.
//
//go:nosplit
func (v *View) Record(pfn uint64) (r Record, ok bool) {
	if pfn >= v.n {
		return Record{}, false
	}
	return v.rec(pfn), true
}

// tailFlagsOf is the flags every tail of a block whose head has flags f
// carries: FREE for a free block, ALLOCATED plus the head's owner bit for
// an allocated one (the sharing modifiers live in the head only).
//
//go:nosplit
func tailFlagsOf(f uint32) uint32 {
	if f == FlagFree {
		return FlagFree
	}
	return FlagAllocated | f&flagOwner
}

// headsBlock reports whether a frame with flags f and order o starts a
// free or allocated block of 2^o frames. (It says nothing of legality:
// Check judges that; an allocated head with illegal modifiers still
// spans its block.)
//
//go:nosplit
func headsBlock(f uint32, o uint8) bool {
	return o <= MaxOrder && (f == FlagFree || f&(FlagAllocated|FlagFree|FlagPoisoned|FlagPerCPU) == FlagAllocated)
}

// Block is one unit of the array as Blocks reads it: a block head and the
// tails after it that carry the block's tail flags and OrderTail
// (Frames = 1 + those tails, at most 2^Order), or a single frame that
// heads no block (Frames = 1, IsBlock false).
type Block struct {
	PFN     uint64
	Rec     Record // the head's (or the single frame's) record
	Frames  uint64
	IsBlock bool
}

// Blocks iterates a View block by block in PFN order (see Block).
type Blocks struct {
	v *View
	p uint64
}

// Blocks returns an iterator over the whole array.
//
//go:nosplit
func (v *View) Blocks() Blocks { return Blocks{v: v} }

// Next returns the next block and true, or false after the last frame.
// Every frame is in exactly one returned Block.
//
//go:nosplit
func (it *Blocks) Next() (Block, bool) {
	v := it.v
	if it.p >= v.n {
		return Block{}, false
	}
	p := it.p
	r := v.rec(p)
	b := Block{PFN: p, Rec: r, Frames: 1}
	if headsBlock(r.Flags, r.Order) {
		b.IsBlock = true
		end := p + uint64(1)<<r.Order
		if end > v.n || end < p {
			end = v.n
		}
		tf := tailFlagsOf(r.Flags)
		for q := p + 1; q < end; q++ {
			m := v.at(q)
			if atomic.LoadUint32(&m.flags) != tf || uint8(atomic.LoadUint32(&m.orderWord)) != OrderTail {
				break
			}
			b.Frames++
		}
	}
	it.p = p + b.Frames
	return b, true
}

// BlockOf returns the head of the block covering tail frame pfn: the
// nearest frame below pfn aligned to its order whose block reaches pfn and
// that is RAM. ok is false when there is none or pfn is outside the array.
//
//go:nosplit
func (v *View) BlockOf(pfn uint64) (head uint64, order uint8, ok bool) {
	if pfn >= v.n {
		return 0, 0, false
	}
	for k := uint8(1); k <= MaxOrder; k++ {
		h := pfn &^ (uint64(1)<<k - 1)
		if h == pfn {
			continue
		}
		m := v.at(h)
		if uint8(atomic.LoadUint32(&m.orderWord)) == k && atomic.LoadUint32(&m.flags) != 0 {
			return h, k, true
		}
	}
	return 0, 0, false
}

// HasState reports whether the view includes a BuddyState (RecordsView
// makes one without).
//
//go:nosplit
func (v *View) HasState() bool { return v.st != nil }

// NumCPUs returns BuddyState.NumCPUs as stored (unchecked: it may exceed
// MaxCPUs in a damaged state); 0 without a state.
//
//go:nosplit
func (v *View) NumCPUs() uint32 {
	if v.st == nil {
		return 0
	}
	return atomic.LoadUint32(&v.st.NumCPUs)
}

// ListHead returns the head PFN of free list k (LinkNone if empty, or if
// k > MaxOrder or the view has no state).
//
//go:nosplit
func (v *View) ListHead(k uint8) uint64 {
	if v.st == nil || k > MaxOrder {
		return LinkNone
	}
	return atomic.LoadUint64(&v.st.Heads[k%NumOrders])
}

// CacheHeader is one per-CPU cache's header as stored.
type CacheHeader struct {
	Count, Head, Synced uint32
}

// Cache returns CPU cpu's cache header; ok is false for cpu outside
// 0..MaxCPUs-1 or without a state. The values are the guest's: Count may
// exceed PCPCapacity (Check reports it; CacheEntry clamps).
//
//go:nosplit
func (v *View) Cache(cpu uint64) (CacheHeader, bool) {
	if v.st == nil || cpu >= MaxCPUs {
		return CacheHeader{}, false
	}
	pc := &v.st.PCP[cpu%MaxCPUs]
	return CacheHeader{Count: atomic.LoadUint32(&pc.Count), Head: atomic.LoadUint32(&pc.Head),
		Synced: atomic.LoadUint32(&pc.Synced)}, true
}

// CacheEntry returns the PFN in the i-th live entry (oldest first) of CPU
// cpu's cache, i.e. slot (Head+i) % PCPCapacity; ok is false when cpu or i
// is out of range (i >= min(Count, PCPCapacity)).
//
//go:nosplit
func (v *View) CacheEntry(cpu, i uint64) (pfn uint64, ok bool) {
	h, ok := v.Cache(cpu)
	if !ok || i >= uint64(h.Count) || i >= PCPCapacity {
		return 0, false
	}
	slot := (uint64(h.Head) + i) % PCPCapacity
	return atomic.LoadUint64(&v.st.PCP[cpu%MaxCPUs].PFN[slot]), true
}

// StateHeader is the BuddyState header as stored (the guest's values,
// unchecked).
type StateHeader struct {
	Magic                                 uint64
	Version, MaxOrder, NumCPUs            uint32
	MetaPhys, FrameCount, StatePhys       uint64
	FreeFrames, PCPFrames, PoisonedFrames uint64
	Counts                                [NumOrders]uint64
}

// Header returns the state header; ok is false without a state.
//
//go:nosplit
func (v *View) Header() (h StateHeader, ok bool) {
	st := v.st
	if st == nil {
		return StateHeader{}, false
	}
	h = StateHeader{Magic: atomic.LoadUint64(&st.Magic), Version: atomic.LoadUint32(&st.Version),
		MaxOrder: atomic.LoadUint32(&st.MaxOrder), NumCPUs: atomic.LoadUint32(&st.NumCPUs),
		MetaPhys: atomic.LoadUint64(&st.MetaPhys), FrameCount: atomic.LoadUint64(&st.FrameCount),
		StatePhys: atomic.LoadUint64(&st.StatePhys), FreeFrames: atomic.LoadUint64(&st.FreeFrames),
		PCPFrames: atomic.LoadUint64(&st.PCPFrames), PoisonedFrames: atomic.LoadUint64(&st.PoisonedFrames)}
	for k := 0; k < NumOrders; k++ {
		h.Counts[k] = atomic.LoadUint64(&st.Counts[k])
	}
	return h, true
}

// Registered returns the metadata and state addresses the view was built
// with (the registration), to compare with the header's.
//
//go:nosplit
func (v *View) Registered() (metaPhys, statePhys uint64) { return v.metaPhys, v.statePhys }
