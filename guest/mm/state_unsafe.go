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
	_ [StateOffPCPFrames - unsafe.Offsetof(BuddyState{}.PCPFrames)]struct{}
	_ [unsafe.Offsetof(BuddyState{}.PCPFrames) - StateOffPCPFrames]struct{}
	_ [StateOffPCP - unsafe.Offsetof(BuddyState{}.PCP)]struct{}
	_ [unsafe.Offsetof(BuddyState{}.PCP) - StateOffPCP]struct{}
	_ [StateOffNumCPUs - unsafe.Offsetof(BuddyState{}.NumCPUs)]struct{}
	_ [unsafe.Offsetof(BuddyState{}.NumCPUs) - StateOffNumCPUs]struct{}
	_ [StateSize - 37184]struct{}
	_ [37184 - StateSize]struct{}
	_ [0 - StateOffPCP%64]struct{} // caches start on a cache line
	_ [0 - CacheSize%64]struct{}   // and each fills whole lines
	_ [CacheSize - unsafe.Sizeof(CPUCache{})]struct{}
	_ [unsafe.Sizeof(CPUCache{}) - CacheSize]struct{}
	_ [CacheOffPFN - unsafe.Offsetof(CPUCache{}.PFN)]struct{}
	_ [unsafe.Offsetof(CPUCache{}.PFN) - CacheOffPFN]struct{}
	_ [CacheOffDrains - unsafe.Offsetof(CPUCache{}.Drains)]struct{}
	_ [unsafe.Offsetof(CPUCache{}.Drains) - CacheOffDrains]struct{}
)

// clearState zeroes the BuddyState at st word by word (no large temporary
// on the fixed guest stack).
//
//go:nosplit
func clearState(st *BuddyState) {
	w := (*[StateSize / 8]uint64)(unsafe.Pointer(st))
	for i := 0; i < len(w); i++ {
		w[i] = 0
	}
}

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

// Compile-time asserts on the Holdings layout.
var (
	_ [HoldingsSize - unsafe.Sizeof(Holdings{})]struct{}
	_ [unsafe.Sizeof(Holdings{}) - HoldingsSize]struct{}
	_ [HoldingsOffDecl - unsafe.Offsetof(Holdings{}.Decl)]struct{}
	_ [unsafe.Offsetof(Holdings{}.Decl) - HoldingsOffDecl]struct{}
	_ [HoldingSize - unsafe.Sizeof(Holding{})]struct{}
	_ [unsafe.Sizeof(Holding{}) - HoldingSize]struct{}
)
