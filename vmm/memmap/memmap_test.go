package memmap

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	const G, M = GiB, MiB
	tests := []struct {
		name   string
		ram    uint64
		ranges []Range
		slots  []Slot
		top    uint64
	}{
		{
			name: "128MiB", ram: 128 * M,
			ranges: []Range{
				{0, 0x9F000, RAM}, {0x9F000, 0x61000, Reserved}, {0x100000, 127 * M, RAM},
				{doorbellBase, doorbellSize, MMIO},
			},
			slots: []Slot{{0, 128 * M, 0}},
			top:   128 * M,
		},
		{
			name: "4MiB", ram: 4 * M,
			ranges: []Range{
				{0, 0x9F000, RAM}, {0x9F000, 0x61000, Reserved}, {0x100000, 3 * M, RAM},
				{doorbellBase, doorbellSize, MMIO},
			},
			slots: []Slot{{0, 4 * M, 0}},
			top:   4 * M,
		},
		{
			name: "3GiB", ram: 3 * G,
			ranges: []Range{
				{0, 0x9F000, RAM}, {0x9F000, 0x61000, Reserved}, {0x100000, 3*G - M, RAM},
				{doorbellBase, doorbellSize, MMIO},
			},
			slots: []Slot{{0, 3 * G, 0}},
			top:   3 * G,
		},
		{
			name: "3GiB+2MiB", ram: 3*G + 2*M,
			ranges: []Range{
				{0, 0x9F000, RAM}, {0x9F000, 0x61000, Reserved}, {0x100000, 3*G - M, RAM},
				{3 * G, G, MMIO}, {4 * G, 2 * M, RAM},
			},
			slots: []Slot{{0, 3 * G, 0}, {4 * G, 2 * M, 3 * G}},
			top:   4*G + 2*M,
		},
		{
			name: "4GiB", ram: 4 * G,
			ranges: []Range{
				{0, 0x9F000, RAM}, {0x9F000, 0x61000, Reserved}, {0x100000, 3*G - M, RAM},
				{3 * G, G, MMIO}, {4 * G, G, RAM},
			},
			slots: []Slot{{0, 3 * G, 0}, {4 * G, G, 3 * G}},
			top:   5 * G,
		},
		{
			name: "64GiB", ram: 64 * G,
			ranges: []Range{
				{0, 0x9F000, RAM}, {0x9F000, 0x61000, Reserved}, {0x100000, 3*G - M, RAM},
				{3 * G, G, MMIO}, {4 * G, 61 * G, RAM},
			},
			slots: []Slot{{0, 3 * G, 0}, {4 * G, 61 * G, 3 * G}},
			top:   65 * G,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Build(tt.ram)
			if err != nil {
				t.Fatalf("Build(%#x): %v", tt.ram, err)
			}
			if got := m.Ranges(); !equal(got, tt.ranges) {
				t.Errorf("Ranges:\n got %v\nwant %v", got, tt.ranges)
			}
			if got := m.Slots(); !equal(got, tt.slots) {
				t.Errorf("Slots:\n got %v\nwant %v", got, tt.slots)
			}
			if got := m.RAMTop(); got != tt.top {
				t.Errorf("RAMTop = %#x, want %#x", got, tt.top)
			}
			if got := m.TotalRAM(); got != tt.ram {
				t.Errorf("TotalRAM = %#x, want %#x", got, tt.ram)
			}
			checkInvariants(t, m)
		})
	}
}

// checkInvariants checks what must hold for every map: ranges sorted,
// disjoint, page aligned, non-empty; RAM plus the legacy hole adds up to the
// RAM size; slots tile one host mapping; the doorbell is MMIO and unbacked.
func checkInvariants(t *testing.T, m Map) {
	t.Helper()
	var ram, hole uint64
	var prevEnd uint64
	for i, r := range m.Ranges() {
		if r.Size == 0 || r.Base%PageSize != 0 || r.Size%PageSize != 0 {
			t.Errorf("range %d %v: empty or not 4 KiB aligned", i, r)
		}
		if _, ok := CheckedAdd(r.Base, r.Size); !ok {
			t.Errorf("range %d %v wraps", i, r)
		}
		if i > 0 && r.Base < prevEnd {
			t.Errorf("range %d %v overlaps or is out of order (previous end %#x)", i, r, prevEnd)
		}
		prevEnd = r.End()
		switch r.Kind {
		case RAM:
			ram += r.Size
		case Reserved:
			hole += r.Size
		}
	}
	if ram+hole != m.TotalRAM() {
		t.Errorf("RAM %#x + reserved %#x != TotalRAM %#x", ram, hole, m.TotalRAM())
	}
	var host uint64
	for i, s := range m.Slots() {
		if s.HostOffset != host {
			t.Errorf("slot %d host offset %#x, want %#x", i, s.HostOffset, host)
		}
		if s.GPA%RAMAlign != 0 || s.Size%RAMAlign != 0 {
			t.Errorf("slot %d %+v not 2 MiB aligned", i, s)
		}
		host += s.Size
	}
	if host != m.TotalRAM() {
		t.Errorf("slots cover %#x host bytes, want %#x", host, m.TotalRAM())
	}
	if r, ok := m.Find(doorbellBase); !ok || r.Kind != MMIO || !r.Contains(doorbellBase, doorbellSize) {
		t.Errorf("doorbell window not inside one MMIO range: %v %v", r, ok)
	}
	if _, ok := m.Translate(doorbellBase, 1); ok {
		t.Errorf("doorbell is backed by a slot")
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBuildInvalid(t *testing.T) {
	for _, ram := range []uint64{0, 1, 2 * MiB, 4*MiB - 2*MiB, 4*MiB + 4096, 5 * MiB, MaxRAM + 2*MiB, math.MaxUint64, math.MaxUint64 - (2*MiB - 1)} {
		m, err := Build(ram)
		if !errors.Is(err, ErrRAMSize) {
			t.Errorf("Build(%#x) err = %v, want ErrRAMSize", ram, err)
		}
		if len(m.Ranges()) != 0 || len(m.Slots()) != 0 {
			t.Errorf("Build(%#x) returned a non-empty map with an error", ram)
		}
	}
	for _, ram := range []uint64{MinRAM, MaxRAM} {
		if _, err := Build(ram); err != nil {
			t.Errorf("Build(%#x): %v", ram, err)
		}
	}
}

func TestTranslate(t *testing.T) {
	low, _ := Build(128 * MiB)
	high, _ := Build(4 * GiB)
	tests := []struct {
		name    string
		m       Map
		gpa, n  uint64
		host    uint64
		ok      bool
		wantRAM bool
	}{
		{"first byte", low, 0, 1, 0, true, true},
		{"zero length", low, 0x1000, 0, 0x1000, true, true},
		{"legacy hole is backed", low, 0xA0000, 0x1000, 0xA0000, true, false},
		{"span into legacy hole", low, 0x9E000, 0x2000, 0x9E000, true, false},
		{"last byte of slot", low, 128*MiB - 1, 1, 128*MiB - 1, true, true},
		{"last 8 bytes", low, 128*MiB - 8, 8, 128*MiB - 8, true, true},
		{"crosses slot end", low, 128*MiB - 4, 8, 0, false, false},
		{"past slot end", low, 128 * MiB, 1, 0, false, false},
		{"doorbell", low, doorbellBase, 4, 0, false, false},
		{"whole slot", low, 0, 128 * MiB, 0, true, false},
		{"low slot last byte", high, 3*GiB - 1, 1, 3*GiB - 1, true, true},
		{"crosses into hole", high, 3*GiB - 1, 2, 0, false, false},
		{"in hole", high, 3*GiB + 5, 1, 0, false, false},
		{"high first byte", high, 4 * GiB, 1, 3 * GiB, true, true},
		{"high last byte", high, 5*GiB - 1, 1, 4*GiB - 1, true, true},
		{"high crosses end", high, 5*GiB - 1, 2, 0, false, false},
		{"overflow near 2^64", high, math.MaxUint64 - 3, 8, 0, false, false},
		{"overflow huge n", high, 4 * GiB, math.MaxUint64, 0, false, false},
		{"max address", high, math.MaxUint64, 1, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, ok := tt.m.Translate(tt.gpa, tt.n)
			if ok != tt.ok || (ok && host != tt.host) {
				t.Errorf("Translate(%#x, %#x) = %#x, %v; want %#x, %v", tt.gpa, tt.n, host, ok, tt.host, tt.ok)
			}
			if got := tt.m.IsRAM(tt.gpa, tt.n); got != tt.wantRAM {
				t.Errorf("IsRAM(%#x, %#x) = %v, want %v", tt.gpa, tt.n, got, tt.wantRAM)
			}
		})
	}
}

func TestRangeContains(t *testing.T) {
	top := Range{Base: math.MaxUint64 - 0xFFF, Size: 0x1000, Kind: RAM} // ends exactly at 2^64
	tests := []struct {
		r      Range
		gpa, n uint64
		want   bool
	}{
		{Range{0x1000, 0x1000, RAM}, 0x1000, 0x1000, true},
		{Range{0x1000, 0x1000, RAM}, 0x1FFF, 1, true},
		{Range{0x1000, 0x1000, RAM}, 0x1FFF, 2, false},
		{Range{0x1000, 0x1000, RAM}, 0x2000, 0, false},
		{Range{0x1000, 0x1000, RAM}, 0xFFF, 1, false},
		{Range{0x1000, 0, RAM}, 0x1000, 0, false},
		{top, math.MaxUint64 - 1, 1, true},
		{top, math.MaxUint64, 1, false}, // gpa+n == 2^64 wraps: refused
		{top, math.MaxUint64 - 0xFFF, math.MaxUint64, false},
	}
	for _, tt := range tests {
		if got := tt.r.Contains(tt.gpa, tt.n); got != tt.want {
			t.Errorf("%v.Contains(%#x, %#x) = %v, want %v", tt.r, tt.gpa, tt.n, got, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	m, err := Build(3*GiB + 2*MiB)
	if err != nil {
		t.Fatal(err)
	}
	want := `BIOS-e820: [mem 0x0000000000000000-0x000000000009efff] usable
BIOS-e820: [mem 0x000000000009f000-0x00000000000fffff] reserved
BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable
BIOS-e820: [mem 0x00000000c0000000-0x00000000ffffffff] MMIO
BIOS-e820: [mem 0x0000000100000000-0x00000001001fffff] usable
`
	if got := m.String(); got != want {
		t.Errorf("String:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(mustBuild(t, 128*MiB).String(), "[mem 0x00000000feb00000-0x00000000feb0ffff] MMIO") {
		t.Errorf("128 MiB map lacks the doorbell line")
	}
}

func TestKind(t *testing.T) {
	for k, want := range map[Kind]string{RAM: "usable", Reserved: "reserved", ACPI: "ACPI data", NVS: "ACPI NVS", MMIO: "MMIO", 7: "type 7"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
	if MMIO.E820() != 2 || RAM.E820() != 1 {
		t.Errorf("E820: MMIO=%d RAM=%d", MMIO.E820(), RAM.E820())
	}
}

// TestLayout checks the layout constants themselves: aligned and ordered.
func TestLayout(t *testing.T) {
	for name, v := range map[string]uint64{
		"lowHoleBase": lowHoleBase, "lowHoleEnd": lowHoleEnd, "lowMemLimit": lowMemLimit,
		"highMemBase": highMemBase, "doorbellBase": doorbellBase, "doorbellSize": doorbellSize,
	} {
		if v%PageSize != 0 {
			t.Errorf("%s = %#x not page aligned", name, v)
		}
	}
	if !(lowHoleBase < lowHoleEnd && lowHoleEnd < MinRAM && lowMemLimit <= doorbellBase &&
		doorbellBase+doorbellSize <= highMemBase && MinRAM%RAMAlign == 0 && MaxRAM%RAMAlign == 0 &&
		lowMemLimit%RAMAlign == 0) {
		t.Errorf("layout constants out of order")
	}
}

func TestZeroMap(t *testing.T) {
	var m Map
	if _, ok := m.Translate(0, 1); ok || m.IsRAM(0, 1) || m.RAMTop() != 0 || m.String() != "" {
		t.Errorf("zero Map is not empty")
	}
}

func mustBuild(t *testing.T, ram uint64) Map {
	t.Helper()
	m, err := Build(ram)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func FuzzTranslate(f *testing.F) {
	f.Add(uint64(128*MiB), uint64(0), uint64(1))
	f.Add(uint64(4*GiB), uint64(math.MaxUint64-3), uint64(8))
	f.Fuzz(func(t *testing.T, ram, gpa, n uint64) {
		m, err := Build(ram)
		if err != nil {
			return
		}
		host, ok := m.Translate(gpa, n)
		if !ok {
			return
		}
		if n == 0 {
			n = 1
		}
		if end, ok := CheckedAdd(host, n); !ok || end > m.TotalRAM() {
			t.Fatalf("Translate(%#x, %#x) = %#x outside host mapping of %#x", gpa, n, host, m.TotalRAM())
		}
	})
}
