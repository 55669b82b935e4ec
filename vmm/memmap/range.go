package memmap

import (
	"fmt"

	"github.com/vmm-dev/vmm/firmware"
)

// Kind is the type of a memory map range: the guest ABI's own kinds
// (firmware.MemKind), so the map the VMM builds is what BootInfo carries.
type Kind = firmware.MemKind

// Range kinds.
const (
	RAM      = firmware.MemRAM
	Reserved = firmware.MemReserved
	ACPI     = firmware.MemACPI
	NVS      = firmware.MemNVS
	MMIO     = firmware.MemMMIO
)

// Range is [Base, Base+Size) of guest physical addresses of one kind.
type Range struct {
	Base, Size uint64
	Kind       Kind
}

// End returns the first address past the range. Ranges built by Build never
// wrap; for a hand-made range whose end is 2^64 or more the result wraps, so
// prefer Contains, which is overflow-safe.
func (r Range) End() uint64 { return r.Base + r.Size }

// Contains reports whether the whole span [gpa, gpa+n) lies inside r. A span
// that wraps past 2^64 is never contained. n == 0 is treated as 1 (is gpa
// itself inside r).
func (r Range) Contains(gpa, n uint64) bool {
	if n == 0 {
		n = 1
	}
	if _, ok := CheckedAdd(gpa, n); !ok {
		return false
	}
	if gpa < r.Base {
		return false
	}
	off := gpa - r.Base
	return off < r.Size && n <= r.Size-off
}

// String formats r like the Linux boot log does (inclusive last address).
func (r Range) String() string {
	last := r.Base
	if r.Size > 0 {
		last = r.Base + (r.Size - 1)
	}
	return fmt.Sprintf("[mem 0x%016x-0x%016x] %s", r.Base, last, r.Kind)
}

// CheckedAdd returns a+b and whether the sum did not overflow.
func CheckedAdd(a, b uint64) (uint64, bool) {
	s := a + b
	return s, s >= a
}
