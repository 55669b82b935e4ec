package memmap

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRAMSize is returned (wrapped) by Build for an unusable RAM size.
var ErrRAMSize = errors.New("memmap: invalid guest RAM size")

// Slot is one KVM memory slot: guest physical [GPA, GPA+Size) backed by
// host mapping bytes [HostOffset, HostOffset+Size).
type Slot struct {
	GPA, Size, HostOffset uint64
}

// Map is a guest physical memory map. The zero Map is empty; use Build.
type Map struct {
	ram    uint64
	ranges []Range // sorted by Base, disjoint
	slots  []Slot  // sorted by GPA, disjoint
}

// Build returns the memory map of a guest with ramBytes of RAM, laid out
// like QEMU's pc machine (see the package comment). ramBytes must be a
// multiple of RAMAlign in [MinRAM, MaxRAM].
func Build(ramBytes uint64) (Map, error) {
	switch {
	case ramBytes%RAMAlign != 0:
		return Map{}, fmt.Errorf("%w: %#x bytes is not a multiple of 2 MiB", ErrRAMSize, ramBytes)
	case ramBytes < MinRAM:
		return Map{}, fmt.Errorf("%w: %#x bytes is below the minimum %#x (4 MiB)", ErrRAMSize, ramBytes, MinRAM)
	case ramBytes > MaxRAM:
		return Map{}, fmt.Errorf("%w: %#x bytes is above the maximum %#x (64 GiB)", ErrRAMSize, ramBytes, MaxRAM)
	}
	lowEnd := min(ramBytes, lowMemLimit)
	high := ramBytes - lowEnd

	m := Map{ram: ramBytes}
	m.ranges = []Range{
		{Base: 0, Size: lowHoleBase, Kind: RAM},
		{Base: lowHoleBase, Size: lowHoleEnd - lowHoleBase, Kind: Reserved},
		{Base: lowHoleEnd, Size: lowEnd - lowHoleEnd, Kind: RAM},
	}
	m.slots = []Slot{{GPA: 0, Size: lowEnd, HostOffset: 0}}
	if high == 0 {
		m.ranges = append(m.ranges, Range{Base: doorbellBase, Size: doorbellSize, Kind: MMIO})
		return m, nil
	}
	// The doorbell window lies inside the hole: one MMIO range covers both.
	m.ranges = append(m.ranges,
		Range{Base: mmioHoleBase, Size: highMemBase - mmioHoleBase, Kind: MMIO},
		Range{Base: highMemBase, Size: high, Kind: RAM},
	)
	m.slots = append(m.slots, Slot{GPA: highMemBase, Size: high, HostOffset: lowEnd})
	return m, nil
}

// Ranges returns a copy of the map's ranges, sorted by Base and disjoint.
func (m Map) Ranges() []Range { return append([]Range(nil), m.ranges...) }

// Slots returns a copy of the KVM memory slots, sorted by GPA. Together they
// cover one contiguous host mapping of TotalRAM bytes.
func (m Map) Slots() []Slot { return append([]Slot(nil), m.slots...) }

// TotalRAM returns the guest RAM size the map was built for (the size of the
// host mapping). It includes the reserved legacy hole, which is backed.
func (m Map) TotalRAM() uint64 { return m.ram }

// RAMTop returns the end of the highest RAM range (0 for an empty map).
func (m Map) RAMTop() uint64 {
	var top uint64
	for _, r := range m.ranges {
		if r.Kind == RAM {
			top = max(top, r.End())
		}
	}
	return top
}

// Find returns the range containing gpa.
func (m Map) Find(gpa uint64) (Range, bool) {
	for _, r := range m.ranges {
		if r.Contains(gpa, 1) {
			return r, true
		}
	}
	return Range{}, false
}

// IsRAM reports whether [gpa, gpa+n) lies inside one usable RAM range.
// The reserved legacy hole is not RAM here, although Translate maps it.
func (m Map) IsRAM(gpa, n uint64) bool {
	for _, r := range m.ranges {
		if r.Kind == RAM && r.Contains(gpa, n) {
			return true
		}
	}
	return false
}

// Translate returns where guest physical bytes [gpa, gpa+n) live in the
// host mapping, if the whole span is inside one memory slot. n == 0 is
// treated as 1. Spans that cross a slot end or wrap past 2^64 are not ok.
func (m Map) Translate(gpa, n uint64) (hostOffset uint64, ok bool) {
	for _, s := range m.slots {
		if (Range{Base: s.GPA, Size: s.Size}).Contains(gpa, n) {
			return s.HostOffset + (gpa - s.GPA), true
		}
	}
	return 0, false
}

// String prints the map like the Linux boot log, one range a line:
//
//	BIOS-e820: [mem 0x0000000000000000-0x000000000009efff] usable
func (m Map) String() string {
	var b strings.Builder
	for _, r := range m.ranges {
		fmt.Fprintf(&b, "BIOS-e820: %s\n", r)
	}
	return b.String()
}
