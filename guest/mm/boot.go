package mm

// MaxBootAllocs is the number of distinct (non-adjacent) boot allocations
// the boot allocator records; adjacent allocations are coalesced.
const MaxBootAllocs = 64

// BootAllocator is a bump allocator over the RAM ranges of the memory map.
// It hands out page-aligned, page-granular ranges that avoid the in-use
// ranges (kernel image, boot info, page tables...) and the bad frames, and
// records every range it hands out so that the buddy allocator marks them
// KERNEL|ALLOCATED. Once the buddy allocator is initialised from it the boot
// allocator is sealed and fails every request.
//
// The zero value is empty; call Init. The slices passed to Init are kept
// (not copied) and must stay valid until the buddy allocator is set up.
//
// The slices are kept as (address, length) pairs so that storing them
// needs no GC write barrier (the guest has no GC); see boot_unsafe.go.
type BootAllocator struct {
	ramP, inUseP, badP uintptr
	nRAM, nInUse, nBad int
	cur                int    // index of the RAM range being bumped
	cursor             uint64 // next candidate address in ram[cur]
	allocs             [MaxBootAllocs]Range
	n                  int
	sealed             bool
}

// Init resets the allocator over ram minus inUse minus the bad frames
// (given as physical addresses; the whole containing frame is bad).
//
//go:nosplit
func (b *BootAllocator) Init(ram, inUse []Range, bad []uint64) {
	b.setSlices(ram, inUse, bad)
	b.cur, b.cursor, b.n, b.sealed = 0, 0, 0, false
	b.allocs = [MaxBootAllocs]Range{}
}

// Alloc returns the physical address of size bytes aligned to align. size
// is rounded up to whole frames and align to at least PageSize; align must
// be a power of two and size non-zero (else ErrInvalidOrder). Returns
// ErrOutOfMemory when no RAM range has room, when MaxBootAllocs
// non-adjacent allocations exist, or once sealed.
//
//go:nosplit
//go:noinline
func (b *BootAllocator) Alloc(size, align uint64) (uint64, AllocError) {
	if size == 0 || align&(align-1) != 0 || size > 1<<62 || align > 1<<62 {
		return 0, ErrInvalidOrder
	}
	if b.sealed {
		return 0, ErrOutOfMemory
	}
	if align < PageSize {
		align = PageSize
	}
	size = (size + PageSize - 1) &^ (PageSize - 1)
	ram := b.ram()
	for b.cur < len(ram) {
		r := ram[b.cur]
		first, endPFN := r.wholeFrames()
		start, end := first<<PageShift, endPFN<<PageShift
		if b.cursor < start {
			b.cursor = start
		}
		cand := (b.cursor + align - 1) &^ (align - 1)
		if cand < b.cursor || cand >= end || end-cand < size {
			b.cur++
			b.cursor = 0
			continue
		}
		if skip := b.conflict(cand, cand+size); skip != 0 {
			b.cursor = skip
			continue
		}
		if !b.record(cand, size) {
			return 0, ErrOutOfMemory
		}
		b.cursor = cand + size
		return cand, ErrNone
	}
	return 0, ErrOutOfMemory
}

// MetaAlign is the alignment the metadata array gets when it is at least
// that large. The guest reaches it through 2 MiB physmap pages; on a
// shadow-paging host (this project's KVM) a 2 MiB page backed by a host
// huge page is one KVM page fault where a page-aligned array straddling
// two of them costs one per 4 KiB (300 in a 128 MiB boot, ~3 ms).
const MetaAlign = 2 << 20

// AllocMeta places the metadata array of size bytes: MetaAlign aligned
// when it is at least MetaAlign long and such a place exists, else page
// aligned. The frames the alignment skips stay free RAM (the buddy
// allocator frees every frame the boot allocator did not hand out).
//
//go:nosplit
func (b *BootAllocator) AllocMeta(size uint64) (uint64, AllocError) {
	if size >= MetaAlign {
		cur, cursor := b.cur, b.cursor
		if p, err := b.Alloc(size, MetaAlign); err == ErrNone {
			return p, ErrNone
		}
		b.cur, b.cursor = cur, cursor // a failed Alloc only moved the cursor
	}
	return b.Alloc(size, PageSize)
}

// conflict returns 0 if [lo, hi) avoids the in-use ranges and bad frames,
// else the address just past the furthest conflicting range.
//
//go:nosplit
func (b *BootAllocator) conflict(lo, hi uint64) uint64 {
	skip := uint64(0)
	inUse, bad := b.inUse(), b.bad()
	for i := 0; i < len(inUse); i++ {
		u := inUse[i]
		if u.Size != 0 && u.Base < hi && u.end() > lo && u.end() > skip {
			skip = u.end()
		}
	}
	for i := 0; i < len(bad); i++ {
		f := bad[i] &^ (PageSize - 1)
		if f < hi && f+PageSize > lo && f+PageSize > skip {
			skip = f + PageSize
		}
	}
	return skip
}

//go:nosplit
func (b *BootAllocator) record(base, size uint64) bool {
	if b.n > 0 && b.allocs[b.n-1].end() == base {
		b.allocs[b.n-1].Size += size
		return true
	}
	if b.n >= MaxBootAllocs {
		return false
	}
	b.allocs[b.n] = Range{Base: base, Size: size}
	b.n++
	return true
}

// Allocations returns the ranges handed out so far (coalesced).
//
//go:nosplit
func (b *BootAllocator) Allocations() []Range { return b.allocs[:b.n] }
