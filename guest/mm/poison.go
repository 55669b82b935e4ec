package mm

import "sync/atomic"

// Poison takes frame out of circulation at run time, like Linux's
// memory_failure on a page: afterwards the frame is POISONED (order 0,
// refcount 0, links none), is never handed out again and never merged, and
// BuddyState.PoisonedFrames counts it.
//
//   - If the frame is part of a FREE block, the block is taken off its list
//     and split around the frame: the frames before and after it go back to
//     the free lists as maximal aligned blocks (exactly as setup carves free
//     runs), so FreeFrames drops by one and Check stays clean.
//   - If the frame is an allocated order-0 block with refcount 1 (a block
//     the caller owns), it becomes POISONED instead of being freed: the
//     caller's reference is consumed. The caller must have unmapped it.
//
// Anything else is ErrInvalidAddress and changes nothing: a frame that is
// already poisoned, not RAM, beyond the metadata array, a head or tail of a
// larger allocated block, an allocated frame with refcount other than 1, a
// frame held in a per-CPU cache, and the allocator's own metadata and state
// frames.
//
//go:nosplit
func (b *Buddy) Poison(frame PhysFrame, tok *IrqDisabledToken) AllocError {
	if !b.owns(tok) {
		return ErrNotLocked
	}
	pfn := frame.start >> PageShift
	if pfn >= b.meta.count || b.ownFrame(pfn) {
		return ErrInvalidAddress
	}
	m := b.meta.at(pfn)
	switch {
	case m.flags == FlagFree:
		head, k, ok := b.freeBlockOf(pfn)
		if !ok {
			return ErrInvalidAddress // a FREE tail with no head: corrupt, refuse
		}
		b.unlink(k, head)
		b.carve(head, pfn)
		b.carve(pfn+1, head+1<<k)
	case m.flags&(FlagAllocated|FlagFree|FlagPoisoned|FlagPerCPU) == FlagAllocated && m.orderWord == 0:
		if !atomic.CompareAndSwapUint32(&m.refcount, 1, 0) {
			return ErrInvalidAddress // shared (Put it first) or already dropped
		}
	default:
		return ErrInvalidAddress
	}
	m.flags = FlagPoisoned
	m.orderWord = 0
	m.next, m.prev = LinkNone, LinkNone
	b.state().PoisonedFrames++
	return ErrNone
}

// ownFrame reports whether pfn holds the allocator's metadata array or its
// BuddyState (which may span several frames).
//
//go:nosplit
func (b *Buddy) ownFrame(pfn uint64) bool {
	if pfn >= b.metaFirst && pfn < b.metaEnd || pfn == b.statePFN {
		return true
	}
	sp := b.state().StatePhys
	return pfn >= sp>>PageShift && pfn < FrameCountFor(sp+StateSize)
}

// freeBlockOf returns the head and order of the free block containing the
// FREE frame pfn: the first aligned position at or below pfn that is a FREE
// head of exactly the order of its alignment step (tails carry OrderTail, so
// a head found this way is the block that contains pfn).
//
//go:nosplit
func (b *Buddy) freeBlockOf(pfn uint64) (uint64, uint8, bool) {
	for k := uint8(0); k <= MaxOrder; k++ {
		h := pfn &^ (uint64(1)<<k - 1)
		m := b.meta.at(h)
		if m.flags == FlagFree && m.orderWord == uint32(k) {
			return h, k, true
		}
	}
	return 0, 0, false
}
