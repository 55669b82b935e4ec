package memmap

import (
	"testing"

	"github.com/vmm-dev/vmm/firmware"
)

// TestMapFollowsFirmwareLayout ties the E820 map Build produces (what the
// guest receives in BootInfo.Mem) to the one layout in package firmware:
// every region the VMM, the guest and the verifier rely on has the kind the
// layout's picture gives it, for small, 3 GiB-boundary and large guests.
func TestMapFollowsFirmwareLayout(t *testing.T) {
	for _, ram := range []uint64{MinRAM, 128 * MiB, 3 * GiB, 3*GiB + 2*MiB, 5 * GiB, MaxRAM} {
		m, err := Build(ram)
		if err != nil {
			t.Fatal(err)
		}
		kindAt := func(name string, gpa, n uint64, want Kind) {
			t.Helper()
			r, ok := m.Find(gpa)
			if !ok || r.Kind != want || !r.Contains(gpa, n) {
				t.Errorf("ram %#x: %s [%#x,+%#x) lies in %v (found %v), want one %v range", ram, name, gpa, n, r, ok, want)
			}
		}
		kindAt("firmware area", firmware.GDTBase, firmware.FirmwareEnd-firmware.GDTBase, RAM)
		kindAt("legacy hole", firmware.LowHoleBase, firmware.LowHoleEnd-firmware.LowHoleBase, Reserved)
		if r, _ := m.Find(firmware.LowHoleBase); r.Base != firmware.LowHoleBase || r.End() != firmware.LowHoleEnd {
			t.Errorf("ram %#x: legacy hole is %v, want exactly [%#x, %#x)", ram, r, firmware.LowHoleBase, firmware.LowHoleEnd)
		}
		kindAt("kernel load address", firmware.KernelMinAddr, firmware.PageSize, RAM)
		kindAt("doorbell window", firmware.DoorbellBase, firmware.DoorbellSize, MMIO)
		kindAt("hypercall doorbell", firmware.HypercallDoorbell, 8, MMIO)
		kindAt("console doorbell", firmware.ConsoleDoorbell, 8, MMIO)
		low := min(ram, uint64(firmware.LowMemLimit))
		kindAt("low RAM", firmware.LowHoleEnd, low-firmware.LowHoleEnd, RAM)
		if ram > firmware.LowMemLimit {
			kindAt("MMIO hole", firmware.MMIOHoleBase, firmware.HighMemBase-firmware.MMIOHoleBase, MMIO)
			kindAt("high RAM", firmware.HighMemBase, ram-firmware.LowMemLimit, RAM)
			if top := m.RAMTop(); top != firmware.HighMemBase+ram-firmware.LowMemLimit {
				t.Errorf("ram %#x: RAMTop %#x", ram, top)
			}
		} else if m.RAMTop() != ram {
			t.Errorf("ram %#x: RAMTop %#x", ram, m.RAMTop())
		}
		if n := len(m.Ranges()); n > firmware.MaxMemRanges {
			t.Errorf("ram %#x: %d ranges do not fit BootInfo.Mem (%d)", ram, n, firmware.MaxMemRanges)
		}
		for _, r := range m.Ranges() {
			if e := r.Kind.E820(); e != 1 && e != 2 {
				t.Errorf("ram %#x: %v reports E820 type %d", ram, r, e)
			}
		}
	}
}

// TestFirmwareLayoutOrder checks the fixed points of the picture against
// each other: firmware area below the hole, doorbells inside the 32-bit
// MMIO hole, high RAM above it.
func TestFirmwareLayoutOrder(t *testing.T) {
	if firmware.FirmwareEnd > firmware.LowHoleBase || firmware.LowHoleEnd != firmware.KernelMinAddr {
		t.Errorf("firmware area ends at %#x, hole [%#x,%#x), kernel from %#x",
			firmware.FirmwareEnd, firmware.LowHoleBase, firmware.LowHoleEnd, firmware.KernelMinAddr)
	}
	if firmware.DoorbellBase < firmware.MMIOHoleBase || firmware.DoorbellBase+firmware.DoorbellSize > firmware.HighMemBase {
		t.Errorf("doorbell window [%#x,+%#x) outside the MMIO hole", firmware.DoorbellBase, firmware.DoorbellSize)
	}
	if firmware.ConsoleDoorbell+8 > firmware.DoorbellBase+firmware.DoorbellSize {
		t.Errorf("console doorbell outside the doorbell window")
	}
	for _, a := range []uint64{firmware.LowHoleBase, firmware.LowHoleEnd, firmware.LowMemLimit, firmware.HighMemBase, firmware.DoorbellBase, firmware.DoorbellSize} {
		if a%PageSize != 0 {
			t.Errorf("%#x is not page aligned", a)
		}
	}
}
