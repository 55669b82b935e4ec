package mm

import "sync/atomic"

// Per-CPU caches of order-0 frames (Linux's per_cpu_pages).
//
// Each CPU allocates and frees order-0 frames through its own CPUCache in
// BuddyState.PCP without taking the buddy lock; only an empty cache
// (refill PCPBatch frames) or a full one (drain the PCPBatch oldest) takes
// the lock, once per batch. A cache is touched only by its own CPU, so its
// push and pop need no lock and no atomic read-modify-write: like Linux's
// pcp lists they rely on the caller running on that CPU with nothing else
// using the same cpu index. The guest must therefore not call a *Local
// function on a CPU from an exception or interrupt handler that may have
// interrupted another *Local call on the same CPU (CPUCache.Busy catches
// it: the nested call returns ErrReentered and changes nothing), and two
// CPUs must never pass the same cpu index.
//
// A cached frame is accounted for: flags == FlagPerCPU, order 0, refcount
// 0, next = the CPU index, prev = its slot in CPUCache.PFN. It is not on a
// free list (FreeFrames does not count it) and it is in exactly one slot of
// one cache. Freeing on another CPU than the one that allocated is fine:
// the frame goes to the freeing CPU's cache. Check and the host verifier
// read the caches only while the world is stopped.

// SetCPUs sets the number of CPUs with a cache (1..MaxCPUs, else
// ErrInvalidCPU); the kernel calls it after setup, before other CPUs use
// the allocator. Shrinking drains the caches of the CPUs that go away
// (they must be offline).
//
//go:nosplit
func (b *Buddy) SetCPUs(n int) AllocError {
	if b.st == 0 {
		return ErrUninitialized
	}
	if n < 1 || n > MaxCPUs {
		return ErrInvalidCPU
	}
	st := b.state()
	tok := b.Lock()
	for cpu := uint32(n); cpu < atomic.LoadUint32(&st.NumCPUs) && cpu < MaxCPUs; cpu++ {
		c := &st.PCP[cpu]
		b.drainLocked(c, cpu, c.Count)
	}
	atomic.StoreUint32(&st.NumCPUs, uint32(n))
	b.Unlock(&tok)
	return ErrNone
}

// NumCPUs returns the number of CPUs with a cache.
//
//go:nosplit
func (b *Buddy) NumCPUs() int {
	if b.st == 0 {
		return 0
	}
	return int(atomic.LoadUint32(&b.state().NumCPUs))
}

// CachedFrames returns the number of frames in all per-CPU caches (the sum
// of their Count; exact only while the world is stopped).
//
//go:nosplit
func (b *Buddy) CachedFrames() uint64 {
	if b.st == 0 {
		return 0
	}
	st := b.state()
	n := uint64(0)
	for i := 0; i < MaxCPUs; i++ {
		n += uint64(st.PCP[i].Count)
	}
	return n
}

// enter validates cpu and marks its cache busy.
//
//go:nosplit
func (b *Buddy) enter(cpu int) (*CPUCache, AllocError) {
	if b.st == 0 {
		return nil, ErrUninitialized
	}
	st := b.state()
	if cpu < 0 || cpu >= MaxCPUs || uint32(cpu) >= atomic.LoadUint32(&st.NumCPUs) {
		return nil, ErrInvalidCPU
	}
	c := &st.PCP[cpu]
	if c.Busy != 0 {
		return nil, ErrReentered
	}
	c.Busy = 1
	return c, ErrNone
}

// AllocLocal allocates one frame (order 0) from cpu's cache, refilling the
// cache with PCPBatch frames from the buddy lists (under the lock) when it
// is empty. flags are as for AllocFlags (0 means FlagKernel). The frame
// gets ALLOCATED|flags, refcount 1 and no links. ErrOutOfMemory means the
// buddy lists are empty (other CPUs' caches may still hold frames: Drain
// them on their CPUs).
//
//go:nosplit
func (b *Buddy) AllocLocal(cpu int, flags uint32) (PhysFrame, AllocError) {
	if flags == 0 {
		flags = FlagKernel
	}
	if !validAllocFlags(flags) {
		return PhysFrame{}, ErrInvalidFlags
	}
	c, err := b.enter(cpu)
	if err != ErrNone {
		return PhysFrame{}, err
	}
	if c.Count == 0 {
		b.refill(c, uint32(cpu))
	}
	pfn := LinkNone
	if c.Count != 0 {
		pfn = b.pcpPop(c, uint32(cpu))
	}
	if pfn == LinkNone {
		c.Busy = 0
		return PhysFrame{}, ErrOutOfMemory
	}
	m := b.meta.at(pfn)
	atomic.StoreUint32(&m.flags, FlagAllocated|flags)
	atomic.StoreUint32(&m.refcount, 1)
	c.Busy = 0
	return FrameFromPFN(pfn), ErrNone
}

// FreeLocal frees the order-0 frame into cpu's cache (whichever CPU
// allocated it). frame must be an allocated order-0 block with refcount 1,
// exactly as for Free; anything else is ErrInvalidAddress and changes
// nothing. When the cache reaches PCPCapacity its PCPBatch oldest frames go
// back to the buddy lists (under the lock).
//
//go:nosplit
func (b *Buddy) FreeLocal(cpu int, frame PhysFrame) AllocError {
	c, err := b.enter(cpu)
	if err != ErrNone {
		return err
	}
	pfn, m, err := b.checkAllocatedHead(frame, 0)
	if err == ErrNone && !atomic.CompareAndSwapUint32(&m.refcount, 1, 0) {
		err = ErrInvalidAddress
	}
	if err == ErrNone {
		b.cacheFree(c, uint32(cpu), pfn)
	}
	c.Busy = 0
	return err
}

// PutLocal drops a reference to the allocated order-0 frame; the last put
// (exactly one caller, even when CPUs race: the count moves by CAS) frees
// it into cpu's cache and returns freed == true. A frame that is not an
// allocated order-0 head is ErrInvalidAddress.
//
//go:nosplit
func (b *Buddy) PutLocal(cpu int, frame PhysFrame) (bool, AllocError) {
	c, err := b.enter(cpu)
	if err != ErrNone {
		return false, err
	}
	freed := false
	pfn, m, err := b.checkAllocatedHead(frame, 0)
	for err == ErrNone {
		r := atomic.LoadUint32(&m.refcount)
		if r == 0 {
			err = ErrInvalidAddress
			break
		}
		if atomic.CompareAndSwapUint32(&m.refcount, r, r-1) {
			if r == 1 {
				b.cacheFree(c, uint32(cpu), pfn)
				freed = true
			}
			break
		}
	}
	c.Busy = 0
	return freed, err
}

// Drain returns every frame of cpu's cache to the buddy lists (under the
// lock). Call it on that CPU (e.g. before it goes idle or offline, or when
// another CPU is out of memory).
//
//go:nosplit
func (b *Buddy) Drain(cpu int) AllocError {
	c, err := b.enter(cpu)
	if err != ErrNone {
		return err
	}
	tok := b.Lock()
	b.drainLocked(c, uint32(cpu), c.Count)
	b.Unlock(&tok)
	c.Busy = 0
	return ErrNone
}

// cacheFree pushes the frame (refcount already 0) onto the cache and
// drains a batch when the cache is full.
//
//go:nosplit
func (b *Buddy) cacheFree(c *CPUCache, cpu uint32, pfn uint64) {
	if c.Count >= PCPCapacity { // only after corruption: make room first
		b.drain(c, cpu, c.Count-(PCPCapacity-1))
	}
	b.pcpPush(c, cpu, pfn)
	if c.Count >= PCPCapacity {
		b.drain(c, cpu, PCPBatch)
	}
}

// pcpPush appends pfn at the young end of the ring and tags its record.
//
//go:nosplit
func (b *Buddy) pcpPush(c *CPUCache, cpu uint32, pfn uint64) {
	slot := (c.Head + c.Count) % PCPCapacity
	c.PFN[slot] = pfn
	m := b.meta.at(pfn)
	m.next = uint64(cpu)
	m.prev = uint64(slot)
	atomic.StoreUint32(&m.flags, FlagPerCPU) // atomic: other CPUs' merges read it
	c.Count++
}

// pcpPop removes the youngest entry (Count > 0) and returns its PFN with
// the links cleared, or LinkNone if the entry is corrupt (out of range or
// not tagged for this slot: it is dropped, not trusted; Check reports it).
//
//go:nosplit
func (b *Buddy) pcpPop(c *CPUCache, cpu uint32) uint64 {
	slot := (c.Head + c.Count - 1) % PCPCapacity
	pfn := c.PFN[slot]
	c.Count--
	if pfn >= b.meta.count {
		return LinkNone
	}
	m := b.meta.at(pfn)
	if atomic.LoadUint32(&m.flags) != FlagPerCPU || m.next != uint64(cpu) || m.prev != uint64(slot) {
		return LinkNone
	}
	m.next, m.prev = LinkNone, LinkNone
	return pfn
}

// refill moves up to PCPBatch frames from the buddy lists into the empty
// cache.
//
//go:nosplit
//go:noinline
func (b *Buddy) refill(c *CPUCache, cpu uint32) {
	tok := b.Lock()
	c.Head = 0
	for i := 0; i < PCPBatch; i++ {
		pfn := b.take(0)
		if pfn == LinkNone {
			break
		}
		b.meta.at(pfn).orderWord = 0
		b.pcpPush(c, cpu, pfn)
	}
	b.sync(c)
	c.Refills++
	b.Unlock(&tok)
}

// drain returns the n oldest frames of the cache to the buddy lists.
//
//go:nosplit
//go:noinline
func (b *Buddy) drain(c *CPUCache, cpu uint32, n uint32) {
	tok := b.Lock()
	b.drainLocked(c, cpu, n)
	b.Unlock(&tok)
}

// drainLocked returns the n oldest frames of the cache to the buddy lists
// (lock held) and syncs PCPFrames. Corrupt entries are dropped without
// touching the frame they name.
//
//go:nosplit
func (b *Buddy) drainLocked(c *CPUCache, cpu uint32, n uint32) {
	for ; n > 0 && c.Count > 0; n-- {
		slot := c.Head % PCPCapacity
		pfn := c.PFN[slot]
		c.Head = (slot + 1) % PCPCapacity
		c.Count--
		if pfn >= b.meta.count {
			continue
		}
		m := b.meta.at(pfn)
		if atomic.LoadUint32(&m.flags) != FlagPerCPU || m.next != uint64(cpu) || m.prev != uint64(slot) {
			continue
		}
		m.next, m.prev = LinkNone, LinkNone
		b.release(pfn, 0)
	}
	if c.Count == 0 {
		c.Head = 0
	}
	b.sync(c)
	c.Drains++
}

// sync folds the cache's change since its last sync into PCPFrames (lock
// held).
//
//go:nosplit
func (b *Buddy) sync(c *CPUCache) {
	st := b.state()
	st.PCPFrames += uint64(c.Count) - uint64(c.Synced)
	c.Synced = c.Count
}
