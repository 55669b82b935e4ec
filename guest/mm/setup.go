package mm

// Init builds the buddy allocator from the boot allocator: it places the
// metadata array (covering PFN 0 up to the highest RAM frame, a partial
// last frame included) and the BuddyState with the boot allocator, marks
// every whole RAM frame, then marks the in-use ranges and every range the
// boot allocator has handed out (including the metadata and the state)
// KERNEL|ALLOCATED with refcount 1 (one order-0 block per frame), marks the
// bad frames POISONED (this wins over in-use), and gives every other RAM
// frame to the free lists as maximal aligned blocks. Frames that are not
// RAM keep flags 0. The boot allocator is sealed afterwards.
//
// virtOffset turns physical addresses into pointers (0 in the guest). Zero
// RAM is ErrOutOfMemory (there is nowhere to put the state).
//
//go:nosplit
func (b *Buddy) Init(virtOffset uintptr, boot *BootAllocator) AllocError {
	if boot.sealed {
		return ErrUninitialized
	}
	top := uint64(0)
	for i := 0; i < boot.nRAM; i++ {
		if r := boot.ram()[i]; r.Size != 0 && r.end() > top {
			top = r.end()
		}
	}
	frames := FrameCountFor(top)
	if frames == 0 {
		return ErrOutOfMemory
	}
	if frames > maxFrames {
		return ErrInvalidAddress
	}
	metaPhys, err := boot.AllocMeta(frames * FrameMetaSize)
	if err != ErrNone {
		return err
	}
	statePhys, err := boot.Alloc(StateSize, PageSize)
	if err != ErrNone {
		return err
	}
	b.meta = InitMetadata(virtOffset, metaPhys, frames)
	b.st = uintptr(statePhys) + virtOffset
	b.virtOffset = virtOffset
	b.metaFirst = metaPhys >> PageShift
	b.metaEnd = FrameCountFor(metaPhys + frames*FrameMetaSize)
	b.statePFN = statePhys >> PageShift
	b.initState(metaPhys, frames, statePhys)
	b.populate(boot)
	boot.sealed = true
	return ErrNone
}

// initState writes the BuddyState header with empty lists.
//
//go:nosplit
//go:noinline
func (b *Buddy) initState(metaPhys, frames, statePhys uint64) {
	st := b.state()
	clearState(st) // NumCPUs 0, empty caches, PCPFrames 0
	st.Magic = Magic
	st.Version = LayoutVersion
	st.MaxOrder = MaxOrder
	st.MetaPhys = metaPhys
	st.FrameCount = frames
	st.StatePhys = statePhys
	for k := 0; k < NumOrders; k++ {
		st.Heads[k] = LinkNone
	}
}

// populate marks RAM, in-use, boot-allocated and bad frames and gives the
// rest to the free lists (steps 1-4 of Init).
//
//go:nosplit
//go:noinline
func (b *Buddy) populate(boot *BootAllocator) {
	b.markRAM(boot)
	b.markInUse(boot)
	b.markBad(boot)
	b.carveAll()
}

// markRAM: every whole RAM frame becomes a candidate free frame.
//
//go:nosplit
//go:noinline
func (b *Buddy) markRAM(boot *BootAllocator) {
	ram := boot.ram()
	frames := b.meta.count
	for i := 0; i < len(ram); i++ {
		first, end := ram[i].wholeFrames()
		for p := first; p < end && p < frames; p++ {
			m := b.meta.at(p)
			m.flags = FlagFree
			m.orderWord = uint32(OrderTail)
		}
	}
}

// markInUse: in-use ranges and boot allocations become KERNEL|ALLOCATED
// with refcount 1.
//
//go:nosplit
//go:noinline
func (b *Buddy) markInUse(boot *BootAllocator) {
	inUse := boot.inUse()
	for i := 0; i < len(inUse); i++ {
		b.markKernel(inUse[i])
	}
	for i := 0; i < boot.n && i < MaxBootAllocs; i++ {
		b.markKernel(boot.allocs[i])
	}
}

// markBad: bad RAM frames become POISONED (this wins over in-use).
//
//go:nosplit
//go:noinline
func (b *Buddy) markBad(boot *BootAllocator) {
	bad := boot.bad()
	st := b.state()
	for i := 0; i < len(bad); i++ {
		p := bad[i] >> PageShift
		if p >= b.meta.count {
			continue
		}
		m := b.meta.at(p)
		if m.flags == 0 || m.flags == FlagPoisoned {
			continue
		}
		*m = FrameMeta{next: LinkNone, prev: LinkNone, flags: FlagPoisoned}
		st.PoisonedFrames++
	}
}

// carveAll carves runs of free frames into maximal aligned blocks and
// counts the RAM frames.
//
//go:nosplit
//go:noinline
func (b *Buddy) carveAll() {
	st := b.state()
	frames := b.meta.count
	for p := uint64(0); p < frames; {
		if b.meta.at(p).flags != FlagFree {
			p++
			continue
		}
		end := p
		for end < frames && b.meta.at(end).flags == FlagFree {
			end++
		}
		st.ManagedFrames += end - p
		b.carve(p, end)
		p = end
	}
	for p := uint64(0); p < frames; p++ {
		if b.meta.at(p).flags != 0 {
			st.RAMFrames++
		}
	}
}

// markKernel marks the RAM frames touched by r KERNEL|ALLOCATED order 0
// with refcount 1.
//
//go:nosplit
//go:noinline
func (b *Buddy) markKernel(r Range) {
	first, end := r.touchedFrames()
	for p := first; p < end && p < b.meta.count; p++ {
		m := b.meta.at(p)
		if m.flags == 0 {
			continue // not RAM
		}
		*m = FrameMeta{next: LinkNone, prev: LinkNone, flags: FlagAllocated | FlagKernel, refcount: 1}
	}
}

// carve gives the free frames [p, end) to the free lists as maximal
// aligned blocks (no two resulting blocks are mergeable buddies).
//
//go:nosplit
//go:noinline
func (b *Buddy) carve(p, end uint64) {
	for p < end {
		k := uint8(MaxOrder)
		if p != 0 {
			if tz := uint8(trailingZeros64(p)); tz < k {
				k = tz
			}
		}
		for p+1<<k > end {
			k--
		}
		b.push(k, p)
		p += 1 << k
	}
}

// Setup is the one-call setup of the guest kernel: a boot allocator over
// ram minus inUse minus bad (physical addresses of bad frames), then Init.
// For extra boot allocations before the buddy takes over, use
// BootAllocator.Init, BootAllocator.Alloc and Buddy.Init instead.
//
//go:nosplit
func (b *Buddy) Setup(virtOffset uintptr, boot *BootAllocator, ram, inUse []Range, bad []uint64) AllocError {
	boot.Init(ram, inUse, bad)
	return b.Init(virtOffset, boot)
}

// Attach rebuilds a Buddy handle from an existing BuddyState at statePhys
// (e.g. after the kernel changes address space). It validates the header.
//
//go:nosplit
func (b *Buddy) Attach(virtOffset uintptr, statePhys uint64) AllocError {
	st := stateAt(virtOffset, statePhys)
	if st.Magic != Magic || st.Version != LayoutVersion || st.MaxOrder != MaxOrder ||
		st.StatePhys != statePhys || st.FrameCount == 0 || st.FrameCount > maxFrames {
		return ErrUninitialized
	}
	b.meta = MetaArray{base: uintptr(st.MetaPhys) + virtOffset, count: st.FrameCount}
	b.st = uintptr(statePhys) + virtOffset
	b.virtOffset = virtOffset
	b.metaFirst = st.MetaPhys >> PageShift
	b.metaEnd = FrameCountFor(st.MetaPhys + st.FrameCount*FrameMetaSize)
	b.statePFN = statePhys >> PageShift
	return ErrNone
}
