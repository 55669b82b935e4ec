package memmap

import "fmt"

// Kind is the type of a memory map range. The values below 0x100 are the
// E820 types firmware reports; MMIO is this VMM's own.
type Kind uint32

// Range kinds.
const (
	RAM      Kind = 1 // E820 type 1, "usable"
	Reserved Kind = 2 // E820 type 2, "reserved"
	ACPI     Kind = 3 // E820 type 3, "ACPI data" (reclaimable)
	NVS      Kind = 4 // E820 type 4, "ACPI NVS"

	// MMIO marks guest physical addresses handled by the VMM (no memory
	// slot behind them). It is not an E820 type: firmware tables carry it as
	// Reserved (see Kind.E820).
	MMIO Kind = 0x100
)

// String returns the name Linux prints in its boot log for E820 types, and
// "MMIO" for the VMM's own kind.
func (k Kind) String() string {
	switch k {
	case RAM:
		return "usable"
	case Reserved:
		return "reserved"
	case ACPI:
		return "ACPI data"
	case NVS:
		return "ACPI NVS"
	case MMIO:
		return "MMIO"
	}
	return fmt.Sprintf("type %d", uint32(k))
}

// E820 returns the type to put in a firmware E820 table: MMIO is reported
// as Reserved, the E820 kinds as themselves.
func (k Kind) E820() uint32 {
	if k == MMIO {
		return uint32(Reserved)
	}
	return uint32(k)
}

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
