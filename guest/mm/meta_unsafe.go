package mm

import (
	"sync/atomic"
	"unsafe"
)

// Compile-time layout asserts: each array length must be a non-negative
// constant, so both directions together pin equality.
var (
	_ [FrameMetaSize - unsafe.Sizeof(FrameMeta{})]struct{}
	_ [unsafe.Sizeof(FrameMeta{}) - FrameMetaSize]struct{}
	_ [OffNext - unsafe.Offsetof(FrameMeta{}.next)]struct{}
	_ [unsafe.Offsetof(FrameMeta{}.next) - OffNext]struct{}
	_ [OffPrev - unsafe.Offsetof(FrameMeta{}.prev)]struct{}
	_ [unsafe.Offsetof(FrameMeta{}.prev) - OffPrev]struct{}
	_ [OffFlags - unsafe.Offsetof(FrameMeta{}.flags)]struct{}
	_ [unsafe.Offsetof(FrameMeta{}.flags) - OffFlags]struct{}
	_ [OffOrder - unsafe.Offsetof(FrameMeta{}.orderWord)]struct{}
	_ [unsafe.Offsetof(FrameMeta{}.orderWord) - OffOrder]struct{}
	_ [OffRefcount - unsafe.Offsetof(FrameMeta{}.refcount)]struct{}
	_ [unsafe.Offsetof(FrameMeta{}.refcount) - OffRefcount]struct{}
	_ [1<<frameMetaShift - FrameMetaSize]struct{}
	_ [FrameMetaSize - 1<<frameMetaShift]struct{}
	// flagsOrder: the order word right after the flags, the pair 8-aligned.
	_ [OffOrder - OffFlags - 4]struct{}
	_ [OffFlags - OffOrder + 4]struct{}
	_ [-(OffFlags % 8)]struct{}
)

// flagsOrder loads m's flags (low half) and order word (high half) as one
// little-endian word, one atomic load as aligned as the links': the
// clean-tail and clean-hole loops compare both in one go.
//
//go:nosplit
func flagsOrder(m *FrameMeta) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&m.flags)))
}

// physToPtr turns a physical address into a pointer: host pointer =
// physical address + virtOffset (firmware.PhysMapBase in the guest). The conversion goes through memory so that it is not an
// unsafe.Pointer(uintptr) expression; callers guarantee the address is
// inside memory they own (the arena on the host).
//
//go:nosplit
func physToPtr(virtOffset uintptr, phys uint64) unsafe.Pointer {
	// Not an unsafe.Pointer(uintptr) expression (go vet), and not checkptr-instrumented.
	p := uintptr(phys) + virtOffset
	return *(*unsafe.Pointer)(unsafe.Pointer(&p))
}

// MetaArray is the metadata array: frameCount records starting at a
// 64-byte aligned address. The zero value is the uninitialised array.
//
// The base is kept as a uintptr so that storing a MetaArray (or a Buddy) in
// a global needs no GC write barrier; on the host the caller keeps the
// arena alive (the Go heap does not move objects).
type MetaArray struct {
	base  uintptr
	count uint64
}

// InitMetadata writes fresh records (flags 0, links LinkNone, order 0,
// refcount 0) for frameCount frames at physical address metaPhys and returns
// the array. frameCount == 0 (zero RAM) returns the empty, uninitialised
// array. The caller guarantees metaPhys..+frameCount*64 is memory it owns.
//
//go:nosplit
//go:noinline
func InitMetadata(virtOffset uintptr, metaPhys, frameCount uint64) MetaArray {
	if frameCount == 0 {
		return MetaArray{}
	}
	a := MetaArray{base: uintptr(metaPhys) + virtOffset, count: frameCount}
	for i := uint64(0); i < frameCount; i++ {
		a.at(i).reset()
	}
	return a
}

// at returns the record of pfn without a bounds check (pfn < count).
//
//go:nosplit
func (a *MetaArray) at(pfn uint64) *FrameMeta {
	p := a.base + uintptr(pfn)<<frameMetaShift
	return *(**FrameMeta)(unsafe.Pointer(&p))
}

// FrameCount returns the number of records (0 if uninitialised).
//
//go:nosplit
func (a *MetaArray) FrameCount() uint64 { return a.count }

// Get returns the record of the frame containing phys. An uninitialised
// array is ErrUninitialized; an address beyond the array is
// ErrInvalidAddress. The check cannot be skipped: there is no unchecked
// exported accessor.
//
//go:nosplit
func (a *MetaArray) Get(phys uint64) (*FrameMeta, AllocError) {
	if a.base == 0 {
		return nil, ErrUninitialized
	}
	pfn := phys >> PageShift
	if pfn >= a.count {
		return nil, ErrInvalidAddress
	}
	return a.at(pfn), ErrNone
}

// InitMetadataArray sizes the metadata array
// for totalRAM bytes of physical address space, places it with the boot
// allocator and initialises it. Zero RAM leaves the array empty.
//
//go:nosplit
func InitMetadataArray(virtOffset uintptr, totalRAM uint64, boot *BootAllocator) (MetaArray, uint64, AllocError) {
	n := FrameCountFor(totalRAM)
	if n == 0 {
		return MetaArray{}, 0, ErrNone
	}
	if n > maxFrames {
		return MetaArray{}, 0, ErrOutOfMemory
	}
	phys, err := boot.Alloc(n*FrameMetaSize, PageSize)
	if err != ErrNone {
		return MetaArray{}, 0, err
	}
	return InitMetadata(virtOffset, phys, n), phys, ErrNone
}
