package mm

import "unsafe"

// setSlices stores the slices as (address, length) pairs: no write barrier.
//
//go:nosplit
func (b *BootAllocator) setSlices(ram, inUse []Range, bad []uint64) {
	b.ramP, b.nRAM = uintptr(unsafe.Pointer(unsafe.SliceData(ram))), len(ram)
	b.inUseP, b.nInUse = uintptr(unsafe.Pointer(unsafe.SliceData(inUse))), len(inUse)
	b.badP, b.nBad = uintptr(unsafe.Pointer(unsafe.SliceData(bad))), len(bad)
}

//go:nosplit
func (b *BootAllocator) ram() []Range {
	p := b.ramP
	return unsafe.Slice(*(**Range)(unsafe.Pointer(&p)), b.nRAM)
}

//go:nosplit
func (b *BootAllocator) inUse() []Range {
	p := b.inUseP
	return unsafe.Slice(*(**Range)(unsafe.Pointer(&p)), b.nInUse)
}

//go:nosplit
func (b *BootAllocator) bad() []uint64 {
	p := b.badP
	return unsafe.Slice(*(**uint64)(unsafe.Pointer(&p)), b.nBad)
}
