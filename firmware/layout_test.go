package firmware

import (
	"testing"
	"unsafe"
)

func TestABISizes(t *testing.T) {
	if s := unsafe.Sizeof(Mailbox{}); s != MailboxStride {
		t.Errorf("Mailbox is %d bytes, want %d", s, MailboxStride)
	}
	if s := unsafe.Sizeof(FaultFrame{}); s != FaultFrameSize {
		t.Errorf("FaultFrame is %d bytes, want %d", s, FaultFrameSize)
	}
	if off := unsafe.Offsetof(FaultFrame{}.Regs); off != 9*8 {
		t.Errorf("FaultFrame.Regs at %d, want %d (the VMM reads word 9 on)", off, 9*8)
	}
	if s := unsafe.Sizeof(ConsoleHeader{}); s != 64 {
		t.Errorf("ConsoleHeader is %d bytes, want 64", s)
	}
	if s := unsafe.Sizeof(BootInfo{}); s > BootInfoSize {
		t.Errorf("BootInfo is %d bytes, exceeds its %d-byte area", s, BootInfoSize)
	}
	if off := unsafe.Offsetof(BootInfo{}.Mem); off%8 != 0 {
		t.Errorf("BootInfo.Mem at %d is not 8-byte aligned", off)
	}
	if ConsoleDataOff+ConsoleDataSize > ConsoleSize {
		t.Errorf("console data overruns its area")
	}
	if ConsoleDataSize&(ConsoleDataSize-1) != 0 {
		t.Errorf("console data size %#x is not a power of two", ConsoleDataSize)
	}
	if GDTFixedLength+16*MaxCPUs > GDTSize {
		t.Errorf("GDT cannot hold %d TSS descriptors", MaxCPUs)
	}
	if PerCPUDataOff+512 > PerCPUGPtrOff {
		t.Errorf("per-CPU data overlaps the g pointer")
	}
}

// TestFirmwareRegionsDisjoint checks that the fixed areas are page aligned,
// do not overlap and stay below the hole under 1 MiB.
func TestFirmwareRegionsDisjoint(t *testing.T) {
	regions := []struct {
		name       string
		base, size uint64
	}{
		{"GDT", GDTBase, GDTSize},
		{"IDT", IDTBase, IDTSize},
		{"TSS", TSSBase, TSSSize},
		{"BootInfo", BootInfoBase, BootInfoSize},
		{"Mailbox", MailboxBase, MailboxSize},
		{"Console", ConsoleBase, ConsoleSize},
		{"PageTables", PageTableBase, PageTableSize},
	}
	end := uint64(PageSize) // the null page stays unused
	for _, r := range regions {
		if r.base%PageSize != 0 || r.size%PageSize != 0 {
			t.Errorf("%s [%#x,+%#x) not page aligned", r.name, r.base, r.size)
		}
		if r.base < end {
			t.Errorf("%s at %#x overlaps the previous region ending at %#x", r.name, r.base, end)
		}
		end = r.base + r.size
	}
	if end != FirmwareEnd || end > LowHoleBase {
		t.Errorf("firmware ends at %#x; FirmwareEnd %#x, hole at %#x", end, FirmwareEnd, LowHoleBase)
	}
}
