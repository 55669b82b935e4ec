package mm

import "unsafe"

// View is a read-only view of an allocator's metadata array and state,
// either live (Buddy.View) or over a byte copy of guest RAM (NewView). Check
// only reads through it, with atomic loads, and bounds every index by the
// record count, so it is safe on garbage.
type View struct {
	meta      unsafe.Pointer // record 0
	n         uint64         // records
	st        *BuddyState
	metaPhys  uint64
	statePhys uint64
}

// View returns a view of the live allocator. Check it with the lock held
// (or while nothing else runs).
//
//go:nosplit
func (b *Buddy) View() View {
	if b.st == 0 {
		return View{}
	}
	st := b.state()
	base := b.meta.base
	return View{meta: *(*unsafe.Pointer)(unsafe.Pointer(&base)), n: b.meta.count, st: st, metaPhys: st.MetaPhys, statePhys: st.StatePhys}
}

// NewView builds a view over mem, a copy of guest physical memory starting
// at physical address memPhysBase, using the registration (metaPhys,
// frameCount, statePhys) the guest reported. It returns ErrInvalidAddress
// when the metadata array or the BuddyState do not lie entirely inside mem
// or are misaligned (metaPhys and statePhys must be 8-byte aligned, and so
// must mem's first byte), and ErrUninitialized for frameCount == 0. All
// arithmetic is overflow-checked; mem must outlive the view.
//
//go:nosplit
func NewView(mem []byte, memPhysBase, metaPhys, frameCount, statePhys uint64) (View, AllocError) {
	size := uint64(len(mem))
	if frameCount == 0 {
		return View{}, ErrUninitialized
	}
	if size == 0 || uintptr(unsafe.Pointer(&mem[0]))&7 != 0 {
		return View{}, ErrInvalidAddress
	}
	if metaPhys < memPhysBase || statePhys < memPhysBase || metaPhys&7 != 0 || statePhys&7 != 0 {
		return View{}, ErrInvalidAddress
	}
	mOff, sOff := metaPhys-memPhysBase, statePhys-memPhysBase
	if mOff > size || frameCount > (size-mOff)/FrameMetaSize {
		return View{}, ErrInvalidAddress
	}
	if sOff > size || size-sOff < StateSize {
		return View{}, ErrInvalidAddress
	}
	base := unsafe.Pointer(unsafe.SliceData(mem))
	return View{
		meta:      unsafe.Add(base, uintptr(mOff)),
		n:         frameCount,
		st:        (*BuddyState)(unsafe.Add(base, uintptr(sOff))),
		metaPhys:  metaPhys,
		statePhys: statePhys,
	}, ErrNone
}

// at returns record pfn (pfn < v.n).
//
//go:nosplit
func (v *View) at(pfn uint64) *FrameMeta {
	return (*FrameMeta)(unsafe.Add(v.meta, uintptr(pfn)<<frameMetaShift))
}

// recBase is the address of record 0, for the per-frame loops: they keep
// it in a register, while v.at reloads v.meta after every atomic load.
type recBase struct{ p unsafe.Pointer }

// base returns the address of record 0.
//
//go:nosplit
func (v *View) base() recBase { return recBase{v.meta} }

// at returns record pfn (pfn < the view's record count).
//
//go:nosplit
func (b recBase) at(pfn uint64) *FrameMeta {
	return (*FrameMeta)(unsafe.Add(b.p, uintptr(pfn)<<frameMetaShift))
}

// following returns the record after m (which must exist).
//
//go:nosplit
func (m *FrameMeta) following() *FrameMeta {
	return (*FrameMeta)(unsafe.Add(unsafe.Pointer(m), FrameMetaSize))
}

// ahead returns the record k after m (which must exist).
//
//go:nosplit
func (m *FrameMeta) ahead(k uintptr) *FrameMeta {
	return (*FrameMeta)(unsafe.Add(unsafe.Pointer(m), k*FrameMetaSize))
}

// FrameCount returns the number of records in the view.
//
//go:nosplit
func (v *View) FrameCount() uint64 { return v.n }

// NewRecordsView is a view of a bare metadata array (frameCount records
// at meta[0], which must be 8-byte aligned) with no BuddyState: records
// and blocks only. Check on it reports the missing state.
//
//go:nosplit
func NewRecordsView(meta []byte, metaPhys, frameCount uint64) (View, AllocError) {
	if frameCount == 0 {
		return View{}, ErrUninitialized
	}
	if len(meta) == 0 || uintptr(unsafe.Pointer(&meta[0]))&7 != 0 || metaPhys&7 != 0 || frameCount > uint64(len(meta))/FrameMetaSize {
		return View{}, ErrInvalidAddress
	}
	return View{meta: unsafe.Pointer(unsafe.SliceData(meta)), n: frameCount, metaPhys: metaPhys}, ErrNone
}

// RecordBytes returns the 64 bytes of record pfn (aliasing the viewed
// memory: copy them to keep them), or nil beyond the array.
//
//go:nosplit
func (v *View) RecordBytes(pfn uint64) []byte {
	if pfn >= v.n {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(v.at(pfn))), FrameMetaSize)
}

// MetaBytes returns the records' bytes, FrameCount*FrameMetaSize of them
// (aliasing the viewed memory), for readers that decode many records in a
// row; nil for an empty view.
//
//go:nosplit
func (v *View) MetaBytes() []byte {
	if v.n == 0 || v.meta == nil {
		return nil
	}
	return unsafe.Slice((*byte)(v.meta), v.n*FrameMetaSize)
}
