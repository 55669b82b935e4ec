package mm

import "sync/atomic"

// Buddy is the buddy allocator. It is a small handle (no heap state): the
// metadata array and the BuddyState it points to live in the arena (guest
// physical memory). The guest keeps it in a zero-initialised global and
// fills it with Init, Setup or Attach.
type Buddy struct {
	meta       MetaArray
	st         uintptr // *BuddyState in the arena (uintptr: no write barriers)
	virtOffset uintptr
	metaFirst  uint64 // PFNs [metaFirst, metaEnd) hold the metadata array
	metaEnd    uint64
	statePFN   uint64

	// IRQSave, if set by the guest kernel, disables interrupts and returns
	// the previous interrupt state; IRQRestore restores it. Both are nil on
	// the host.
	IRQSave    func() uintptr
	IRQRestore func(uintptr)

	// Relax, if set, is called by Lock after every RelaxSpins failed
	// attempts to take the lock. The guest sets it to a function that
	// yields the vCPU briefly (a hypercall): with more vCPUs than host CPUs
	// a spinning vCPU can otherwise burn whole host time slices while the
	// holder's vCPU is descheduled. nil (the host) means keep spinning.
	// It runs with interrupts disabled (after IRQSave).
	Relax func()
}

// RelaxSpins is the number of failed lock attempts between Relax calls.
const RelaxSpins = 128

var _ FrameAllocator = (*Buddy)(nil)

// IrqDisabledToken proves that the allocator lock is held (and, in the
// guest, that interrupts are disabled). It can only be obtained from
// (*Buddy).Lock; the zero value, a copy kept after Unlock, or a token of
// another allocator is rejected with ErrNotLocked.
type IrqDisabledToken struct {
	lock *uint32
	gen  uint32
	irq  uintptr
}

// Lock disables interrupts (through IRQSave, if set), takes the allocator
// spinlock and returns the token for Alloc/Free/Put. The lock word is a
// generation counter: even when free, odd while held; the token remembers
// its odd value, so a stale token (after Unlock) is rejected.
//
//go:nosplit
func (b *Buddy) Lock() IrqDisabledToken {
	var irq uintptr
	if b.IRQSave != nil {
		irq = b.IRQSave()
	}
	lock := &b.state().lock
	for {
		if gen := spinAcquire(lock, RelaxSpins); gen != 0 {
			return IrqDisabledToken{lock: lock, gen: gen, irq: irq}
		}
		if relax := b.Relax; relax != nil {
			relax()
		}
	}
}

// spinAcquire tries up to spins times to move the lock word from even v to
// odd v+1 and returns v+1, or 0 (never a held generation) if it did not
// get the lock. Between attempts it only reads the word (test and
// test-and-set: waiters do not bounce the line with failed CASes) and
// backs off with a short empty loop (a runtime-free stand-in for PAUSE),
// longer after each failure up to a cap. It is deliberately not
// //go:nosplit: it is a small leaf function, so the compiler emits no
// stack check (no morestack call), and on the host it stays
// asynchronously preemptible, so spinning goroutines cannot starve the
// lock holder of its P.
//
//go:noinline
func spinAcquire(lock *uint32, spins int) uint32 {
	backoff := 1
	for i := 0; i < spins; i++ {
		v := atomic.LoadUint32(lock)
		if v&1 == 0 && atomic.CompareAndSwapUint32(lock, v, v+1) {
			return v + 1
		}
		for j := 0; j < backoff; j++ {
			if atomic.LoadUint32(lock)&1 == 0 {
				break
			}
		}
		if backoff < 64 {
			backoff <<= 1
		}
	}
	return 0
}

// Unlock releases the lock taken by Lock and restores interrupts. A token
// that does not hold the lock is ignored (ErrNotLocked).
//
//go:nosplit
func (b *Buddy) Unlock(tok *IrqDisabledToken) AllocError {
	if !b.owns(tok) {
		return ErrNotLocked
	}
	held := tok.gen
	tok.gen = 0 // even: never matches a held lock (and no write barrier, unlike tok.lock = nil)
	atomic.StoreUint32(&b.state().lock, held+1)
	if b.IRQRestore != nil {
		b.IRQRestore(tok.irq)
	}
	return ErrNone
}

// owns reports whether tok holds this allocator's lock right now.
//
//go:nosplit
func (b *Buddy) owns(tok *IrqDisabledToken) bool {
	return tok != nil && b.st != 0 && tok.lock == &b.state().lock && atomic.LoadUint32(tok.lock) == tok.gen
}

// State returns the allocator state (in the arena). Read it with the lock
// held.
//
//go:nosplit
func (b *Buddy) State() *BuddyState { return b.state() }

// Registration returns what the VMM needs to verify the allocator from
// guest memory: the metadata array's physical address and record count and
// the BuddyState's physical address.
//
//go:nosplit
func (b *Buddy) Registration() (metaPhys, frameCount, statePhys uint64) {
	if b.st == 0 {
		return 0, 0, 0
	}
	st := b.state()
	return st.MetaPhys, st.FrameCount, st.StatePhys
}

// FreeFrames returns the number of free frames (read without the lock: a
// snapshot).
//
//go:nosplit
func (b *Buddy) FreeFrames() uint64 {
	if b.st == 0 {
		return 0
	}
	return atomic.LoadUint64(&b.state().FreeFrames)
}

// ---- free lists (lock held) ----

// push puts the free head pfn (flags FREE already set) on list k.
//
//go:nosplit
func (b *Buddy) push(k uint8, pfn uint64) {
	st := b.state()
	m := b.meta.at(pfn)
	h := st.Heads[k&MaxOrderMask]
	m.orderWord = uint32(k)
	m.prev = LinkNone
	m.next = h
	if h < b.meta.count {
		b.meta.at(h).prev = pfn
	}
	st.Heads[k&MaxOrderMask] = pfn
	st.Counts[k&MaxOrderMask]++
	st.FreeFrames += 1 << k
}

// unlink removes the free head pfn from list k.
//
//go:nosplit
func (b *Buddy) unlink(k uint8, pfn uint64) {
	st := b.state()
	m := b.meta.at(pfn)
	n, p := m.next, m.prev
	if p < b.meta.count {
		b.meta.at(p).next = n
	} else {
		st.Heads[k&MaxOrderMask] = n
	}
	if n < b.meta.count {
		b.meta.at(n).prev = p
	}
	m.next, m.prev = LinkNone, LinkNone
	st.Counts[k&MaxOrderMask]--
	st.FreeFrames -= 1 << k
}

// MaxOrderMask bounds an order used as an index (lets the compiler drop
// bounds checks; callers have already checked order <= MaxOrder).
const MaxOrderMask = 15

var _ [MaxOrderMask - MaxOrder]struct{} // MaxOrder must fit the mask

// ---- allocation ----

// Alloc allocates 2^order contiguous frames for the kernel
// (ALLOCATED|KERNEL, refcount 1).
//
//go:nosplit
func (b *Buddy) Alloc(order uint8, tok *IrqDisabledToken) (PhysFrame, AllocError) {
	return b.AllocFlags(order, tok, FlagKernel)
}

// AllocFrame allocates one frame for the kernel.
//
//go:nosplit
func (b *Buddy) AllocFrame(tok *IrqDisabledToken) (PhysFrame, AllocError) {
	return b.AllocFlags(0, tok, FlagKernel)
}

// validAllocFlags reports whether flags is a legal owner+modifier set for
// an allocated head: exactly one of KERNEL/USER, modifiers only with USER,
// not COW|DLL, not DLL|ANONYMOUS, nothing else.
//
//go:nosplit
func validAllocFlags(flags uint32) bool {
	if flags&^(flagOwner|flagModifiers) != 0 {
		return false
	}
	switch flags & flagOwner {
	case FlagKernel:
		return flags&flagModifiers == 0
	case FlagUser:
		return flags&(FlagCOW|FlagDLL) != FlagCOW|FlagDLL && flags&(FlagDLL|FlagAnonymous) != FlagDLL|FlagAnonymous
	}
	return false
}

// AllocFlags allocates 2^order contiguous frames with the given ownership
// and modifiers: FlagKernel, or FlagUser optionally with FlagAnonymous and
// one of FlagCOW/FlagDLL (0 means FlagKernel). The head gets
// ALLOCATED|flags, the order and refcount 1; the tails ALLOCATED|owner.
//
//go:nosplit
func (b *Buddy) AllocFlags(order uint8, tok *IrqDisabledToken, flags uint32) (PhysFrame, AllocError) {
	if !b.owns(tok) {
		return PhysFrame{}, ErrNotLocked
	}
	if order > MaxOrder {
		return PhysFrame{}, ErrInvalidOrder
	}
	if flags == 0 {
		flags = FlagKernel
	}
	if !validAllocFlags(flags) {
		return PhysFrame{}, ErrInvalidFlags
	}
	pfn := b.take(order)
	if pfn == LinkNone {
		return PhysFrame{}, ErrOutOfMemory
	}
	m := b.meta.at(pfn)
	m.flags = FlagAllocated | flags
	m.orderWord = uint32(order)
	atomic.StoreUint32(&m.refcount, 1)
	if order > 0 {
		tail := FlagAllocated | flags&flagOwner
		for i := uint64(1); i < 1<<order; i++ {
			t := b.meta.at(pfn + i)
			t.flags = tail
			t.orderWord = uint32(OrderTail)
		}
	}
	return FrameFromPFN(pfn), ErrNone
}

// take removes a free block of the given order from the lists (lock held),
// splitting the smallest larger block if needed, and returns its head PFN
// (flags still FREE, order byte stale), or LinkNone if there is none.
//
//go:nosplit
func (b *Buddy) take(order uint8) uint64 {
	st := b.state()
	k := order
	for k <= MaxOrder && st.Heads[k&MaxOrderMask] == LinkNone {
		k++
	}
	if k > MaxOrder {
		return LinkNone
	}
	pfn := st.Heads[k&MaxOrderMask]
	if pfn >= b.meta.count || pfn+1<<k > b.meta.count {
		return LinkNone // corrupt list head: refuse rather than write wild
	}
	b.unlink(k, pfn)
	for k > order { // split: the upper half goes back on the list below
		k--
		b.push(k, pfn+1<<k)
	}
	return pfn
}

// checkAllocatedHead validates that frame is the head of an allocated
// block of the given order that may be freed or shared; it returns the PFN.
//
//go:nosplit
func (b *Buddy) checkAllocatedHead(frame PhysFrame, order uint8) (uint64, *FrameMeta, AllocError) {
	if order > MaxOrder {
		return 0, nil, ErrInvalidOrder
	}
	pfn := frame.start >> PageShift
	n := uint64(1) << order
	if frame.start&(PageSize-1) != 0 || pfn&(n-1) != 0 || pfn >= b.meta.count || b.meta.count-pfn < n {
		return 0, nil, ErrInvalidAddress
	}
	if pfn < b.metaEnd && pfn+n > b.metaFirst || pfn <= b.statePFN && pfn+n > b.statePFN {
		return 0, nil, ErrInvalidAddress // the allocator's own memory
	}
	m := b.meta.at(pfn)
	// Atomic loads: FreeLocal/PutLocal call this without the lock while
	// MarkShared or another CPU's cache may write the record.
	if atomic.LoadUint32(&m.flags)&(FlagAllocated|FlagFree|FlagPoisoned|FlagPerCPU) != FlagAllocated || atomic.LoadUint32(&m.orderWord) != uint32(order) {
		return 0, nil, ErrInvalidAddress
	}
	return pfn, m, ErrNone
}

// Free returns the 2^order frames at frame to the allocator. frame must be
// the head of an allocated block of exactly that order with refcount 1
// (shared blocks are released with Put); anything else (double free, wrong
// order, misaligned, out of range, poisoned, the allocator's own metadata)
// is ErrInvalidAddress and changes nothing. The block is merged with its
// buddy (pfn ^ 1<<order) while the buddy is a free block of the same order.
//
//go:nosplit
func (b *Buddy) Free(frame PhysFrame, order uint8, tok *IrqDisabledToken) AllocError {
	if !b.owns(tok) {
		return ErrNotLocked
	}
	pfn, m, err := b.checkAllocatedHead(frame, order)
	if err != ErrNone {
		return err
	}
	if !atomic.CompareAndSwapUint32(&m.refcount, 1, 0) {
		return ErrInvalidAddress
	}
	b.release(pfn, order)
	return ErrNone
}

// release turns the allocated block (refcount already 0) into a free block
// and merges it.
//
//go:nosplit
func (b *Buddy) release(pfn uint64, order uint8) {
	m := b.meta.at(pfn)
	m.flags = FlagFree
	for i := uint64(1); i < 1<<order; i++ {
		t := b.meta.at(pfn + i)
		t.flags = FlagFree // order byte is already OrderTail
	}
	k := order
	for k < MaxOrder {
		bud := buddyOf(pfn, k)
		if !b.isFreeHead(bud, k) {
			break
		}
		b.unlink(k, bud)
		if bud < pfn {
			pfn, bud = bud, pfn
		}
		b.meta.at(bud).orderWord = uint32(OrderTail) // the upper half becomes a tail
		k++
	}
	b.push(k, pfn)
}

// buddyOf returns the buddy of the order-k block at pfn: the other half of
// the aligned order-(k+1) block containing it. Two blocks merge only when
// (page_is_buddy in Linux): the buddy is inside the array, its head is FREE
// (so it is RAM: holes, reserved and poisoned frames are never FREE) and it
// has the same order (a FREE frame at an aligned buddy position is always a
// head, never a tail, because a free block containing it would also contain
// the block being freed). Blocks therefore never cross holes.
//
//go:nosplit
func buddyOf(pfn uint64, k uint8) uint64 { return pfn ^ 1<<k }

//go:nosplit
func (b *Buddy) isFreeHead(pfn uint64, k uint8) bool {
	if pfn >= b.meta.count {
		return false
	}
	m := b.meta.at(pfn)
	// Atomic load: the buddy may be a frame in another CPU's cache, whose
	// owner changes its flags without the lock (FlagPerCPU <-> ALLOCATED,
	// never FREE). The order of a FREE frame changes only under the lock.
	return atomic.LoadUint32(&m.flags) == FlagFree && m.orderWord == uint32(k)
}
