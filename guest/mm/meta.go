package mm

import "sync/atomic"

// Frame geometry.
const (
	PageShift = 12
	PageSize  = 1 << PageShift // bytes per frame
)

// FrameMeta layout: these offsets are the one definition the host verifier
// decodes; they are pinned by compile-time asserts and TestFrameMetaLayout.
const (
	FrameMetaSize  = 64 // bytes per record, one cache line
	FrameMetaAlign = 64 // the array is placed at (at least) this alignment
	OffNext        = 0  // uint64 next PFN or LinkNone
	OffPrev        = 8  // uint64 prev PFN or LinkNone
	OffFlags       = 16 // uint32 Flag* bits
	OffOrder       = 20 // uint8 order (low byte of the uint32 at 20; bytes 21..23 zero)
	OffRefcount    = 24 // uint32 refcount

	frameMetaShift = 6 // log2(FrameMetaSize)
)

// LinkNone is the "no frame" value of next/prev (all ones).
const LinkNone uint64 = ^uint64(0)

// OrderTail is the order byte of every frame of a block except its head.
const OrderTail uint8 = 0xFF

// Frame flags (values are part of the metadata layout, pinned by
// TestFrameMetaLayout; see the package doc for the legal combinations).
const (
	FlagCOW       uint32 = 1 << 0  // shared copy-on-write (USER heads only)
	FlagDLL       uint32 = 1 << 1  // shared library frame, never COW (USER heads only)
	FlagAnonymous uint32 = 1 << 2  // anonymous memory (USER heads only)
	FlagAllocated uint32 = 1 << 8  // part of an allocated block
	FlagFree      uint32 = 1 << 9  // part of a free block owned by the buddy allocator
	FlagKernel    uint32 = 1 << 10 // allocated to the kernel
	FlagUser      uint32 = 1 << 11 // allocated to user space
	FlagPoisoned  uint32 = 1 << 12 // bad frame: never handed out or merged
	FlagPerCPU    uint32 = 1 << 13 // free order-0 frame held in a per-CPU cache (alone, never with other bits)

	flagOwner     = FlagKernel | FlagUser
	flagModifiers = FlagCOW | FlagDLL | FlagAnonymous
)

// FrameMeta is the metadata record of one physical frame. Its layout is
// fixed (see the package doc and the Off* constants). The zero value is not
// the initial state: fresh records have next == prev == LinkNone.
//
// The exported accessors are atomic. The allocator itself
// mutates next/prev/flags/order with plain accesses while holding its lock;
// refcount is always accessed atomically because Get is lock-free.
type FrameMeta struct {
	next      uint64
	prev      uint64
	flags     uint32
	orderWord uint32 // order in the low byte; bytes 21..23 reserved, zero
	refcount  uint32
	_         [FrameMetaSize - 28]byte
}

// reset writes the initial state of a record (links LinkNone, all else 0).
//
//go:nosplit
func (m *FrameMeta) reset() {
	*m = FrameMeta{next: LinkNone, prev: LinkNone}
}

//go:nosplit
func (m *FrameMeta) Next() uint64 { return atomic.LoadUint64(&m.next) }

//go:nosplit
func (m *FrameMeta) SetNext(pfn uint64) { atomic.StoreUint64(&m.next, pfn) }

//go:nosplit
func (m *FrameMeta) Prev() uint64 { return atomic.LoadUint64(&m.prev) }

//go:nosplit
func (m *FrameMeta) SetPrev(pfn uint64) { atomic.StoreUint64(&m.prev, pfn) }

//go:nosplit
func (m *FrameMeta) Flags() uint32 { return atomic.LoadUint32(&m.flags) }

//go:nosplit
func (m *FrameMeta) SetFlags(f uint32) { atomic.StoreUint32(&m.flags, f) }

// Order returns the order byte (byte 20) via an atomic load of the word at 20.
//
//go:nosplit
func (m *FrameMeta) Order() uint8 { return uint8(atomic.LoadUint32(&m.orderWord)) }

// SetOrder stores the order byte, keeping the reserved bytes 21..23 zero.
//
//go:nosplit
func (m *FrameMeta) SetOrder(o uint8) { atomic.StoreUint32(&m.orderWord, uint32(o)) }

//go:nosplit
func (m *FrameMeta) Refcount() uint32 { return atomic.LoadUint32(&m.refcount) }

// IncRef adds one reference.
//
//go:nosplit
func (m *FrameMeta) IncRef() { atomic.AddUint32(&m.refcount, 1) }

// DecRef drops one reference and returns the previous value (fetch_sub).
//
//go:nosplit
func (m *FrameMeta) DecRef() uint32 { return atomic.AddUint32(&m.refcount, ^uint32(0)) + 1 }

//go:nosplit
func (m *FrameMeta) ResetRefcount() { atomic.StoreUint32(&m.refcount, 0) }

//go:nosplit
func (m *FrameMeta) IsCOW() bool { return m.Flags()&FlagCOW != 0 }

//go:nosplit
func (m *FrameMeta) IsDLL() bool { return m.Flags()&FlagDLL != 0 }

// FrameCountFor returns the number of frames (and metadata records) needed
// to cover ramSize bytes, counting a partial last frame.
//
//go:nosplit
func FrameCountFor(ramSize uint64) uint64 {
	n := ramSize >> PageShift
	if ramSize&(PageSize-1) != 0 {
		n++
	}
	return n
}

// MetadataSizeFor returns the size in bytes of the metadata array covering
// ramSize bytes of physical address space (rounding a partial frame up).
//
//go:nosplit
func MetadataSizeFor(ramSize uint64) uint64 {
	return FrameCountFor(ramSize) * FrameMetaSize
}
