package mm

import "sync/atomic"

// Get adds a reference to the allocated block whose head is frame. It is
// lock-free: the increment only happens from a non-zero count (like Linux's
// get_page_unless_zero), so it can never resurrect a free block or touch a
// tail frame (refcount 0). Returns ErrInvalidAddress for anything that is
// not an allocated head, or when the count would overflow.
//
//go:nosplit
func (b *Buddy) Get(frame PhysFrame) AllocError {
	pfn := frame.start >> PageShift
	if frame.start&(PageSize-1) != 0 || pfn >= b.meta.count {
		return ErrInvalidAddress
	}
	m := b.meta.at(pfn)
	for {
		r := atomic.LoadUint32(&m.refcount)
		if r == 0 || r == ^uint32(0) {
			return ErrInvalidAddress
		}
		if atomic.CompareAndSwapUint32(&m.refcount, r, r+1) {
			return ErrNone
		}
	}
}

// Put drops a reference to the allocated block of the given order at frame
// and frees it when this was the last reference (freed == true). A block
// that is not an allocated head of that order is ErrInvalidAddress.
//
//go:nosplit
func (b *Buddy) Put(frame PhysFrame, order uint8, tok *IrqDisabledToken) (bool, AllocError) {
	if !b.owns(tok) {
		return false, ErrNotLocked
	}
	pfn, m, err := b.checkAllocatedHead(frame, order)
	if err != ErrNone {
		return false, err
	}
	for {
		r := atomic.LoadUint32(&m.refcount)
		if r == 0 {
			return false, ErrInvalidAddress
		}
		if atomic.CompareAndSwapUint32(&m.refcount, r, r-1) {
			if r == 1 {
				b.release(pfn, order)
				return true, ErrNone
			}
			return false, ErrNone
		}
	}
}

// Refcount returns the reference count of frame's record (0 for free
// frames and tails).
//
//go:nosplit
func (b *Buddy) Refcount(frame PhysFrame) (uint32, AllocError) {
	m, err := b.meta.Get(frame.start)
	if err != ErrNone {
		return 0, err
	}
	return m.Refcount(), ErrNone
}

// FlagsOf returns the flags of frame's record.
//
//go:nosplit
func (b *Buddy) FlagsOf(frame PhysFrame) (uint32, AllocError) {
	m, err := b.meta.Get(frame.start)
	if err != ErrNone {
		return 0, err
	}
	return m.Flags(), ErrNone
}

// MarkShared sets sharing modifiers (any of FlagCOW, FlagDLL,
// FlagAnonymous) on the head of an allocated USER block of the given order.
// The result must stay legal: COW and DLL are exclusive (a DLL frame is never
// COW), DLL and ANONYMOUS are exclusive; otherwise ErrInvalidFlags and no
// change. Kernel blocks carry no modifiers (ErrInvalidFlags).
//
//go:nosplit
func (b *Buddy) MarkShared(frame PhysFrame, order uint8, flags uint32, tok *IrqDisabledToken) AllocError {
	m, err := b.modifierTarget(frame, order, flags, tok)
	if err != ErrNone {
		return err
	}
	nf := m.flags | flags
	if !validAllocFlags(nf &^ FlagAllocated) {
		return ErrInvalidFlags
	}
	atomic.StoreUint32(&m.flags, nf)
	return ErrNone
}

// ClearShared clears sharing modifiers (e.g. COW once the last other
// reference is gone) on the head of an allocated block of the given order.
//
//go:nosplit
func (b *Buddy) ClearShared(frame PhysFrame, order uint8, flags uint32, tok *IrqDisabledToken) AllocError {
	m, err := b.modifierTarget(frame, order, flags, tok)
	if err != ErrNone {
		return err
	}
	atomic.StoreUint32(&m.flags, m.flags&^flags)
	return ErrNone
}

// modifierTarget checks what MarkShared and ClearShared share: the token
// holds the lock, flags are only sharing modifiers, and frame is the head
// of an allocated block of that order.
//
//go:nosplit
func (b *Buddy) modifierTarget(frame PhysFrame, order uint8, flags uint32, tok *IrqDisabledToken) (*FrameMeta, AllocError) {
	if !b.owns(tok) {
		return nil, ErrNotLocked
	}
	if flags&^flagModifiers != 0 {
		return nil, ErrInvalidFlags
	}
	_, m, err := b.checkAllocatedHead(frame, order)
	return m, err
}
