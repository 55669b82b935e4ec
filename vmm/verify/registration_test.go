package verify

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// flatMem is guest RAM [0, len) with one hole.
type flatMem struct {
	b          []byte
	hole, hEnd uint64
}

func (m flatMem) Slice(gpa, n uint64) ([]byte, error) {
	end := gpa + n
	if end < gpa || end > uint64(len(m.b)) || (gpa < m.hEnd && m.hole < end) {
		return nil, errOutside
	}
	return m.b[gpa:end], nil
}

type errString string

func (e errString) Error() string { return string(e) }

const errOutside = errString("outside RAM")

// TestRegistrationRules: each registration that can never verify is
// refused with the rule it breaks named; a good one passes.
func TestRegistrationRules(t *testing.T) {
	mem := flatMem{b: make([]byte, 16<<20), hole: firmware.LowHoleBase, hEnd: 0x100000}
	boot := &Boot{InUse: []Region{
		{Name: "firmware area", Base: 0, Size: firmware.PageTableBase},
		{Name: "kernel image", Base: 0x400000, Size: 0x200000},
	}}
	const ver = uint64(mm.LayoutVersion)
	good := Registration{MetaPhys: 0x800000, FrameCount: 4096, Version: ver, StatePhys: 0x800000 + 4096*64}
	if err := good.Validate(mem, boot, 4096); err != nil {
		t.Fatalf("good registration refused: %v", err)
	}
	for _, tc := range []struct {
		name, rule, says string
		r                Registration
	}{
		{"wrong version", RuleVersion, "version 3", Registration{0x800000, 4096, ver + 1, 0x900000}},
		{"no frames", RuleFrameCount, "frame count 0", Registration{0x800000, 0, ver, 0x900000}},
		{"more frames than RAM", RuleFrameCount, "frame count 4097", Registration{0x800000, 4097, ver, 0x900000}},
		{"huge frame count", RuleFrameCount, "outside", Registration{0x800000, 1 << 60, ver, 0x900000}},
		{"meta unaligned", RuleMetaAlign, "not 64-byte aligned", Registration{0x800020, 16, ver, 0x900000}},
		{"state unaligned", RuleStateAlign, "allocator state at 0x900008", Registration{0x800000, 16, ver, 0x900008}},
		{"meta past RAM", RuleMetaRAM, "not in guest RAM", Registration{16<<20 - 64, 16, ver, 0x900000}},
		{"state in the hole", RuleStateRAM, "not in guest RAM", Registration{0x800000, 16, ver, firmware.LowHoleBase}},
		{"meta over state", RuleOverlap, "overlap", Registration{0x800000, 16, ver, 0x800000}},
		{"meta over boot info", RuleOverlap, "boot info", Registration{firmware.BootInfoBase, 16, ver, 0x900000}},
		{"meta over firmware", RuleOverlap, "firmware area", Registration{firmware.GDTBase, 16, ver, 0x900000}},
		{"state over kernel", RuleOverlap, "allocator state [0x500000, 0x509140) overlaps the kernel image", Registration{0x800000, 16, ver, 0x500000}},
		{"across the hole", RuleOneSpan, "one RAM range", Registration{0x100000, 16, ver, 0x20000}},
	} {
		err := tc.r.Validate(mem, boot, 4096)
		if RuleOf(err) != tc.rule || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want rule %s saying %q", tc.name, err, tc.rule, tc.says)
		}
	}
}

// TestRefusalNamesTheFrame: an overlap refusal, as a violation, names the
// first frame claimed twice (the mutation test's kernel-image frames); the
// rules that are not about a place get a scope instead.
func TestRefusalNamesTheFrame(t *testing.T) {
	mem := flatMem{b: make([]byte, 16<<20), hole: firmware.LowHoleBase, hEnd: 0x100000}
	boot := &Boot{InUse: []Region{{Name: "kernel image", Base: 0x400000, Size: 0x200000}}}
	ver := uint64(mm.LayoutVersion)
	for _, tc := range []struct {
		r     Registration
		pfn   uint64
		scope string
	}{
		{Registration{0x800000, 16, ver, 0x500000}, 0x500, ""},  // state inside the kernel
		{Registration{0x3ff000, 128, ver, 0x900000}, 0x400, ""}, // array running into it
		{Registration{0x800000, 16, ver, 0x800000}, 0x800, ""},  // array over state
		{Registration{0x800000, 16, ver + 1, 0x900000}, 0, "registration"},
	} {
		var re *RegistrationError
		if err := tc.r.Validate(mem, boot, 4096); !errors.As(err, &re) {
			t.Fatalf("%+v: not refused as a registration error: %v", tc.r, err)
		}
		v := re.Violation()
		if v.PFN != tc.pfn || v.Scope != tc.scope || v.Kind != re.Rule || v.Detail != re.Msg {
			t.Errorf("%+v: violation %+v, want frame %#x scope %q", tc.r, v, tc.pfn, tc.scope)
		}
	}
}
