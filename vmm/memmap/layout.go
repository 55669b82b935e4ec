// Package memmap builds the guest physical memory map the way PC firmware
// reports it (E820 style) and the KVM memory slots that back it, from the
// layout described (with its picture) in package firmware: the legacy hole
// [firmware.LowHoleBase, LowHoleEnd), low RAM up to min(ram,
// firmware.LowMemLimit), the MMIO hole and doorbell window, and RAM above
// firmware.HighMemBase.
//
// Host side: one contiguous mapping of ram bytes. Slot 0 maps guest
// [0, lowEnd) at host offset 0; slot 1 maps guest [4 GiB, 4 GiB+high) at host
// offset lowEnd.
package memmap

import "github.com/vmm-dev/vmm/firmware"

// Sizes.
const (
	KiB = uint64(1) << 10
	MiB = uint64(1) << 20
	GiB = uint64(1) << 30
)

// What Build accepts, and the addresses it uses (typed copies of firmware's).
const (
	// PageSize is the granularity every range in the map is aligned to.
	PageSize = uint64(firmware.PageSize)

	// RAMAlign is the granularity guest RAM sizes must be a multiple of
	// (one 2 MiB large page, what the boot page tables map).
	RAMAlign = 2 * MiB

	// MinRAM is the smallest guest RAM size Build accepts.
	MinRAM = 4 * MiB

	// MaxRAM is the largest guest RAM size Build accepts.
	MaxRAM = 64 * GiB

	lowHoleBase  = uint64(firmware.LowHoleBase)
	lowHoleEnd   = uint64(firmware.LowHoleEnd)
	lowMemLimit  = uint64(firmware.LowMemLimit)
	mmioHoleBase = uint64(firmware.MMIOHoleBase)
	highMemBase  = uint64(firmware.HighMemBase)
	doorbellBase = uint64(firmware.DoorbellBase)
	doorbellSize = uint64(firmware.DoorbellSize)
)
