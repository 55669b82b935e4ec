package verify

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// Registration is the guest's frame-metadata registration
// (HCRegisterMeta): the VMM keeps it, the verifier checks through it, the
// dump's VMM note records it and inspect reads it back. It is one type
// everywhere, validated by Validate.
type Registration struct {
	MetaPhys   uint64 `json:"meta_phys"`
	FrameCount uint64 `json:"frame_count"`
	Version    uint64 `json:"layout_version"`
	StatePhys  uint64 `json:"state_phys"`
}

// Registration rules: the Rule of a *RegistrationError.
const (
	RuleVersion    = "layout-version"  // Version is the layout this verifier decodes
	RuleFrameCount = "frame-count"     // 1..MaxFrames frames, and no more than RAM has
	RuleMetaAlign  = "meta-alignment"  // MetaPhys is FrameMetaAlign (64) aligned
	RuleStateAlign = "state-alignment" // StatePhys is StateAlign (64) aligned
	RuleMetaRAM    = "meta-in-ram"     // the array lies in guest RAM
	RuleStateRAM   = "state-in-ram"    // the state lies in guest RAM
	RuleOneSpan    = "one-span"        // array and state lie in one RAM range
	RuleOverlap    = "no-overlap"      // array and state overlap neither each other nor what the VMM placed
)

// MaxFrames bounds a registration's frame count (2^36 frames: 256 TiB).
const MaxFrames = 1 << 36

// StateAlign is the alignment the BuddyState must have: its per-CPU caches
// are laid out on cache lines.
const StateAlign = 64

// RegistrationError says which rule a registration breaks.
type RegistrationError struct {
	Rule string
	Msg  string
	// Frame is the first frame an overlap claims twice (an area laid over
	// the kernel image names a kernel frame); mm.LinkNone for the rules
	// that are not about a place.
	Frame uint64
}

func (e *RegistrationError) Error() string {
	return fmt.Sprintf("frame-metadata registration refused (rule %s): %s", e.Rule, e.Msg)
}

func regErr(rule, format string, args ...any) error {
	return &RegistrationError{Rule: rule, Msg: fmt.Sprintf(format, args...), Frame: mm.LinkNone}
}

// overlapErr is a no-overlap refusal naming the first frame both areas
// claim, [lo1, hi1) and [lo2, hi2) being known to intersect.
func overlapErr(lo1, lo2 uint64, format string, args ...any) error {
	return &RegistrationError{Rule: RuleOverlap, Msg: fmt.Sprintf(format, args...), Frame: max(lo1, lo2) / mm.PageSize}
}

// Violation is the refusal as a verdict: until a registration stands, the
// one refused is what every checkpoint reports, since the guest's
// allocator put its own state where it can never be checked.
func (e *RegistrationError) Violation() Violation {
	v := Violation{Source: "registration", Kind: e.Rule, Detail: e.Msg, PFN: e.Frame, Phys: e.Frame * mm.PageSize}
	if e.Frame == mm.LinkNone {
		v.PFN, v.Phys, v.Scope = 0, 0, "registration"
	}
	return v
}

// RuleOf returns the rule a registration error names ("" if err is not one).
func RuleOf(err error) string {
	var re *RegistrationError
	if errors.As(err, &re) {
		return re.Rule
	}
	return ""
}

// metaEnd and stateEnd are the ends of the two areas (valid after the
// frame-count check, which bounds the product).
func (r Registration) metaEnd() (uint64, bool) {
	end := r.MetaPhys + r.FrameCount*mm.FrameMetaSize
	return end, end >= r.MetaPhys
}

func (r Registration) stateEnd() (uint64, bool) {
	end := r.StatePhys + mm.StateSize
	return end, end >= r.StatePhys
}

// Validate refuses a registration that can never verify. mem bounds the
// areas by guest RAM; boot, if not nil, adds what the VMM placed in RAM
// before the guest ran (boot info, firmware area, kernel image, per-CPU
// areas, trace), which the areas must not overlap. maxFrames > 0 caps the
// frame count (the frames of RAM up to its top).
func (r Registration) Validate(mem Memory, boot *Boot, maxFrames uint64) error {
	if r.Version != uint64(mm.LayoutVersion) {
		return regErr(RuleVersion, "frame metadata layout version %d, this verifier decodes %d", r.Version, mm.LayoutVersion)
	}
	if r.FrameCount == 0 || r.FrameCount > MaxFrames || (maxFrames > 0 && r.FrameCount > maxFrames) {
		limit := uint64(MaxFrames)
		if maxFrames > 0 {
			limit = min(limit, maxFrames)
		}
		return regErr(RuleFrameCount, "frame count %d is outside 1..%d", r.FrameCount, limit)
	}
	if r.MetaPhys%mm.FrameMetaAlign != 0 {
		return regErr(RuleMetaAlign, "metadata array at %#x is not %d-byte aligned", r.MetaPhys, mm.FrameMetaAlign)
	}
	if r.StatePhys%StateAlign != 0 {
		return regErr(RuleStateAlign, "allocator state at %#x is not %d-byte aligned", r.StatePhys, StateAlign)
	}
	mEnd, ok := r.metaEnd()
	if _, err := mem.Slice(r.MetaPhys, r.FrameCount*mm.FrameMetaSize); !ok || err != nil {
		return regErr(RuleMetaRAM, "metadata array [%#x, +%d frames) is not in guest RAM", r.MetaPhys, r.FrameCount)
	}
	sEnd, ok := r.stateEnd()
	if _, err := mem.Slice(r.StatePhys, mm.StateSize); !ok || err != nil {
		return regErr(RuleStateRAM, "allocator state [%#x, +%d) is not in guest RAM", r.StatePhys, mm.StateSize)
	}
	if r.MetaPhys < sEnd && r.StatePhys < mEnd {
		return overlapErr(r.MetaPhys, r.StatePhys, "metadata array [%#x, %#x) and allocator state [%#x, %#x) overlap", r.MetaPhys, mEnd, r.StatePhys, sEnd)
	}
	for _, reg := range boot.reserved() {
		end := reg.Base + reg.Size
		if r.MetaPhys < end && reg.Base < mEnd {
			return overlapErr(r.MetaPhys, reg.Base, "metadata array [%#x, %#x) overlaps the %s [%#x, %#x)", r.MetaPhys, mEnd, reg.Name, reg.Base, end)
		}
		if r.StatePhys < end && reg.Base < sEnd {
			return overlapErr(r.StatePhys, reg.Base, "allocator state [%#x, %#x) overlaps the %s [%#x, %#x)", r.StatePhys, sEnd, reg.Name, reg.Base, end)
		}
	}
	lo, hi := min(r.MetaPhys, r.StatePhys), max(mEnd, sEnd)
	if _, err := mem.Slice(lo, hi-lo); err != nil {
		return regErr(RuleOneSpan, "metadata array and allocator state [%#x, %#x) are not in one RAM range", lo, hi)
	}
	return nil
}

// Region is a named range of guest physical memory.
type Region struct {
	Name       string `json:"name"`
	Base, Size uint64
}

// Boot is what the verifier takes from the boot info the VMM wrote: the
// RAM it filled before the guest ran, and the frames it declared bad.
type Boot struct {
	InUse []Region
	Bad   []uint64 // PFNs
}

// InUseName names a firmware.InUse* kind ("kernel image").
func InUseName(kind firmware.MemKind) string {
	switch kind {
	case firmware.InUseFirmware:
		return "firmware area"
	case firmware.InUsePageTable:
		return "physmap page tables"
	case firmware.InUseKernel:
		return "kernel image"
	case firmware.InUsePerCPU:
		return "per-CPU areas"
	case firmware.InUseTrace:
		return "trace"
	}
	return fmt.Sprintf("in-use range kind %d", kind)
}

// reserved lists what a registration must not overlap: the boot info
// first (the most specific name), then every in-use range.
func (b *Boot) reserved() []Region {
	if b == nil {
		return nil
	}
	return append([]Region{{Name: "boot info", Base: firmware.BootInfoBase, Size: firmware.BootInfoSize}}, b.InUse...)
}

// ReadBoot decodes the boot info at firmware.BootInfoBase in mem, counts
// clamped to the arrays. It fails when the page is missing or its magic or
// version is not the VMM's.
func ReadBoot(mem Memory) (*Boot, error) {
	var bi firmware.BootInfo
	raw, err := mem.Slice(firmware.BootInfoBase, uint64(unsafe.Sizeof(bi)))
	if err != nil {
		return nil, fmt.Errorf("boot info at %#x: %w", firmware.BootInfoBase, err)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&bi)), unsafe.Sizeof(bi)), raw)
	if bi.Magic != firmware.BootInfoMagic || bi.Version != firmware.BootInfoVersion {
		return nil, fmt.Errorf("boot info at %#x: magic %#x version %d, want %#x version %d",
			firmware.BootInfoBase, bi.Magic, bi.Version, uint64(firmware.BootInfoMagic), firmware.BootInfoVersion)
	}
	b := &Boot{}
	for _, r := range bi.InUse[:min(int(bi.NumInUse), len(bi.InUse))] {
		if r.Size != 0 && r.Base+r.Size > r.Base {
			b.InUse = append(b.InUse, Region{Name: InUseName(r.Kind), Base: r.Base, Size: r.Size})
		}
	}
	b.Bad = append(b.Bad, bi.BadFrames[:min(int(bi.NumBad), len(bi.BadFrames))]...)
	return b, nil
}
