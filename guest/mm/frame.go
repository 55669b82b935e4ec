package mm

// maxFrames bounds the metadata array (2^36 frames = 256 TiB of RAM) so that
// size arithmetic never overflows.
const maxFrames = 1 << 36

// PhysFrame is a 4 KiB aligned physical frame. The field is unexported so a
// PhysFrame is always aligned; build one with ContainingAddress,
// FromStartAddress or FrameFromPFN.
type PhysFrame struct {
	start uint64
}

// ContainingAddress returns the frame containing addr.
//
//go:nosplit
func ContainingAddress(addr uint64) PhysFrame {
	return PhysFrame{start: addr &^ (PageSize - 1)}
}

// FromStartAddress returns the frame starting at addr, or ErrInvalidAddress
// if addr is not 4 KiB aligned.
//
//go:nosplit
func FromStartAddress(addr uint64) (PhysFrame, AllocError) {
	if addr&(PageSize-1) != 0 {
		return PhysFrame{}, ErrInvalidAddress
	}
	return PhysFrame{start: addr}, ErrNone
}

// FrameFromPFN returns the frame with frame number pfn (pfn must be below
// 2^52 to be a valid x86-64 physical address; larger values wrap).
//
//go:nosplit
func FrameFromPFN(pfn uint64) PhysFrame { return PhysFrame{start: pfn << PageShift} }

// StartAddress returns the physical address of the first byte of the frame.
//
//go:nosplit
func (f PhysFrame) StartAddress() uint64 { return f.start }

// PFN returns the frame number.
//
//go:nosplit
func (f PhysFrame) PFN() uint64 { return f.start >> PageShift }

// FrameRange is an inclusive range of frames, iterated with Next.
type FrameRange struct {
	start, end PhysFrame
	done       bool
}

// RangeInclusive returns the frames start..end (both included); empty if
// start > end.
//
//go:nosplit
func RangeInclusive(start, end PhysFrame) FrameRange {
	return FrameRange{start: start, end: end, done: start.start > end.start}
}

// Next returns the next frame of the range and true, or false at the end.
// It stops after the last frame even when end is the highest frame.
//
//go:nosplit
func (r *FrameRange) Next() (PhysFrame, bool) {
	if r.done {
		return PhysFrame{}, false
	}
	f := r.start
	if f.start >= r.end.start {
		r.done = true
	} else {
		r.start.start += PageSize
	}
	return f, true
}

// Range is a physical byte range [Base, Base+Size).
type Range struct {
	Base, Size uint64
}

// end returns Base+Size, saturating at 2^64-1.
//
//go:nosplit
func (r Range) end() uint64 {
	e := r.Base + r.Size
	if e < r.Base {
		return ^uint64(0)
	}
	return e
}

// wholeFrames returns the PFNs [first, end) of the frames entirely inside r.
//
//go:nosplit
func (r Range) wholeFrames() (first, end uint64) {
	first = r.Base >> PageShift
	if r.Base&(PageSize-1) != 0 {
		first++
	}
	end = r.end() >> PageShift
	if end < first {
		end = first
	}
	return first, end
}

// touchedFrames returns the PFNs [first, end) of the frames overlapping r.
//
//go:nosplit
func (r Range) touchedFrames() (first, end uint64) {
	if r.Size == 0 {
		return 0, 0
	}
	first = r.Base >> PageShift
	end = FrameCountFor(r.end())
	if r.end() == ^uint64(0) {
		end = 1 << (64 - PageShift)
	}
	return first, end
}

// AllocError is the error kind of a guest-facing allocator call. ErrNone
// (zero) means success. It implements error for host code; guest code
// compares kinds and never converts to the error interface.
type AllocError uint8

const (
	ErrNone           AllocError = iota
	ErrOutOfMemory               // no free block of the requested order
	ErrInvalidOrder              // order > MaxOrder, or a bad size/alignment
	ErrInvalidAddress            // not an allocated block of that order, out of range, misaligned, poisoned, metadata
	ErrUninitialized             // the metadata array or allocator is not set up
	ErrNotLocked                 // the token is zero, forged, stale or from another allocator
	ErrInvalidFlags              // illegal flag combination (e.g. COW on a DLL frame)
	ErrInvalidCPU                // CPU index outside 0..NumCPUs-1 (or SetCPUs outside 1..MaxCPUs)
	ErrReentered                 // a *Local call interrupted another *Local call on the same CPU
)

// Error returns a constant string (no allocation).
//
//go:nosplit
func (e AllocError) Error() string {
	switch e {
	case ErrNone:
		return "mm: no error"
	case ErrOutOfMemory:
		return "mm: out of memory"
	case ErrInvalidOrder:
		return "mm: invalid order"
	case ErrInvalidAddress:
		return "mm: invalid address"
	case ErrUninitialized:
		return "mm: uninitialized"
	case ErrNotLocked:
		return "mm: allocator lock not held (bad token)"
	case ErrInvalidFlags:
		return "mm: invalid frame flags"
	case ErrInvalidCPU:
		return "mm: invalid CPU index"
	case ErrReentered:
		return "mm: per-CPU cache busy (reentered on the same CPU)"
	}
	return "mm: unknown error"
}

// FrameAllocator is the frame allocator's interface. Every call needs
// the token proving the allocator lock is held with interrupts disabled.
type FrameAllocator interface {
	// Alloc allocates 2^order contiguous frames.
	Alloc(order uint8, tok *IrqDisabledToken) (PhysFrame, AllocError)
	// Free frees the 2^order frames starting at frame.
	Free(frame PhysFrame, order uint8, tok *IrqDisabledToken) AllocError
	// AllocFrame allocates a single frame.
	AllocFrame(tok *IrqDisabledToken) (PhysFrame, AllocError)
}
