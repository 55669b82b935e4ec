// Package memmap builds the guest physical memory map the way PC firmware
// reports it (E820 style) and the KVM memory slots that back it.
//
// Guest physical layout (QEMU "pc" machine style; not to scale):
//
//	0x0000_0000_0000 +---------------------------+
//	                 | RAM (conventional)        |  usable
//	0x0000_0009_F000 +---------------------------+
//	                 | EBDA / VGA / BIOS ROM     |  reserved (still backed by
//	0x0000_0010_0000 +---------------------------+  host memory in slot 0)
//	                 | RAM (extended)            |  usable
//	   lowEnd        +---------------------------+  lowEnd = min(ram, 3 GiB)
//	                 | (unmapped)                |
//	0x0000_C000_0000 +---------------------------+  only if ram > 3 GiB:
//	                 | MMIO hole                 |  MMIO, whole [3 GiB, 4 GiB)
//	0x0000_FEB0_0000 |   +-------------------+   |
//	                 |   | VMM doorbells     |   |  MMIO (always listed; inside
//	0x0000_FEB1_0000 |   +-------------------+   |  the hole when there is one)
//	0x0001_0000_0000 +---------------------------+
//	                 | RAM (high)                |  usable, ram - 3 GiB bytes
//	4 GiB + ram-3GiB +---------------------------+
//
// Host side: one contiguous mapping of ram bytes. Slot 0 maps guest
// [0, lowEnd) at host offset 0; slot 1 maps guest [4 GiB, 4 GiB+high) at host
// offset lowEnd.
package memmap

// Sizes.
const (
	KiB = uint64(1) << 10
	MiB = uint64(1) << 20
	GiB = uint64(1) << 30
)

// Layout constants (guest physical addresses and sizes).
const (
	// PageSize is the granularity every range in the map is aligned to.
	PageSize = 4 * KiB

	// RAMAlign is the granularity guest RAM sizes must be a multiple of
	// (one 2 MiB large page, what the boot page tables map).
	RAMAlign = 2 * MiB

	// MinRAM is the smallest guest RAM size Build accepts.
	MinRAM = 4 * MiB

	// MaxRAM is the largest guest RAM size Build accepts.
	MaxRAM = 64 * GiB

	// LegacyHoleBase is where the legacy region below 1 MiB starts
	// (EBDA, VGA window, option and BIOS ROMs); reported as reserved.
	LegacyHoleBase = uint64(0x9F000)

	// LegacyHoleEnd is the end of the legacy region: 1 MiB.
	LegacyHoleEnd = uint64(0x100000)

	// LowMemLimit is the top of low RAM: RAM beyond it moves above 4 GiB.
	LowMemLimit = 3 * GiB

	// MMIOHoleBase is the start of the 32-bit MMIO hole (= LowMemLimit).
	MMIOHoleBase = LowMemLimit

	// HighMemBase is where RAM above the MMIO hole starts (4 GiB).
	HighMemBase = 4 * GiB

	// DoorbellBase is the guest physical address of the VMM's doorbell
	// page(s). No memory slot backs it: a guest store exits as KVM_EXIT_MMIO.
	DoorbellBase = uint64(0xFEB0_0000)

	// DoorbellSize is the size of the doorbell window (16 pages).
	DoorbellSize = uint64(0x10000)
)
