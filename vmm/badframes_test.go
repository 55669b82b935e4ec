package vmm

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// TestCheckBadFrames: a bad frame anywhere in an in-use range (first and
// last frame included, a partial last frame too) is refused with the
// range's name; frames just outside pass.
func TestCheckBadFrames(t *testing.T) {
	inUse := []firmware.MemRange{
		{Base: 0, Size: 0x11000, Kind: firmware.InUseFirmware},
		{Base: 0x400000, Size: 0x22f800, Kind: firmware.InUseKernel}, // ends inside frame 0x62f
	}
	for _, tc := range []struct {
		pfn  uint64
		want string // "" = accepted
	}{
		{0x0, "firmware area [0x0, 0x11000)"},
		{0x6, "firmware area"},
		{0x10, "firmware area"},
		{0x11, ""},
		{0x3ff, ""},
		{0x400, "kernel image [0x400000, 0x62f800)"},
		{0x62f, "kernel image"},
		{0x630, ""},
	} {
		err := checkBadFrames([]uint64{0x2000, tc.pfn}, inUse)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("frame %#x: %v", tc.pfn, err)
		case tc.want != "" && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("frame %#x: error %v, want ErrConfig naming %q", tc.pfn, err, tc.want)
		}
	}
}

// TestBadFramesInVMMRangesRefused: New refuses, before any vCPU runs, a
// bad frame in each range the VMM fills (boot info, page tables, kernel
// image, per-CPU areas, trace), naming the range.
func TestBadFramesInVMMRangesRefused(t *testing.T) {
	requireKVM(t)
	cfg := bootConfig(t)
	k, err := ParseKernel(cfg.Kernel, cfg.MemBytes)
	if err != nil {
		t.Fatal(err)
	}
	perCPU, perCPUEnd := PerCPUArea(k.End, cfg.CPUs)
	trace := alignUp(perCPUEnd, firmware.PerCPUAlign) // where planLayout puts a trace
	for _, tc := range []struct {
		pfn   uint64
		trace bool
		name  string
	}{
		{firmware.BootInfoBase / firmware.PageSize, false, "firmware area"},
		{firmware.PageTableBase / firmware.PageSize, false, "physmap page tables"},
		{k.Start / firmware.PageSize, false, "kernel image"},
		{(k.End - 1) / firmware.PageSize, false, "kernel image"},
		{perCPU / firmware.PageSize, false, "per-CPU areas"},
		{(perCPUEnd - 1) / firmware.PageSize, false, "per-CPU areas"},
		{trace / firmware.PageSize, true, "trace"},
	} {
		c := cfg
		c.BadFrames = []uint64{tc.pfn}
		if tc.trace {
			c.Workload, c.Trace = "replay", []byte("0,0.0,a,1,0\n")
		}
		vm, err := New(c)
		if err == nil {
			vm.Close()
			t.Errorf("frame %#x (%s): accepted", tc.pfn, tc.name)
			continue
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("frame %#x: %v, want a configuration error naming the %s", tc.pfn, err, tc.name)
		}
	}
}

// TestBadFrameUnderMetadata: a bad frame where the guest's boot allocator
// would put the metadata array (1 MiB) is skipped: the array goes past it,
// the frame is POISONED, and every checkpoint verifies clean.
func TestBadFrameUnderMetadata(t *testing.T) {
	const bad = 0x100 // where the metadata goes without bad frames
	cfg := bootConfig(t)
	cfg.BadFrames = []uint64{bad}
	cfg.Workload = "hello"
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "hello")
	r := res.Registration
	if r == nil {
		t.Fatal("no registration")
	}
	metaEnd := r.MetaPhys + r.FrameCount*mm.FrameMetaSize
	if r.MetaPhys/mm.PageSize <= bad && bad < (metaEnd+mm.PageSize-1)/mm.PageSize || r.StatePhys/mm.PageSize == bad {
		t.Fatalf("metadata [%#x, %#x) or state %#x on the bad frame %#x", r.MetaPhys, metaEnd, r.StatePhys, bad)
	}
	for _, c := range res.Checkpoints {
		poisoned := uint64(0)
		for _, f := range c.Report.ByFlags {
			if f.Flags == "POISONED" {
				poisoned = f.Frames
			}
		}
		if poisoned != 1 {
			t.Errorf("checkpoint %q: %d POISONED frames, want 1", c.Label, poisoned)
		}
	}
}
