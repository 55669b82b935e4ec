package mm

import "unsafe"

// Compile-time asserts on the BuddyState layout.
var (
	_ [StateSize - unsafe.Sizeof(BuddyState{})]struct{}
	_ [unsafe.Sizeof(BuddyState{}) - StateSize]struct{}
	_ [StateOffCounts - unsafe.Offsetof(BuddyState{}.Counts)]struct{}
	_ [unsafe.Offsetof(BuddyState{}.Counts) - StateOffCounts]struct{}
	_ [StateOffManagedFrames - unsafe.Offsetof(BuddyState{}.ManagedFrames)]struct{}
	_ [unsafe.Offsetof(BuddyState{}.ManagedFrames) - StateOffManagedFrames]struct{}
	_ [StateSize - 256]struct{}
	_ [256 - StateSize]struct{}
)

// stateAt returns the BuddyState at physical address phys.
//
//go:nosplit
func stateAt(virtOffset uintptr, phys uint64) *BuddyState {
	return (*BuddyState)(physToPtr(virtOffset, phys))
}

// state returns the allocator state (nil before Init).
//
//go:nosplit
func (b *Buddy) state() *BuddyState {
	p := b.st
	return *(**BuddyState)(unsafe.Pointer(&p))
}
