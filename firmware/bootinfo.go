package firmware

// BootInfoMagic is "VMMBOOT1" little-endian.
const BootInfoMagic = 0x31544f4f424d4d56

// BootInfoVersion changes whenever BootInfo's layout does.
const BootInfoVersion = 1

const (
	MaxMemRanges = 32
	MaxInUse     = 32
	MaxBadFrames = 256
	CmdlineMax   = 512
	WorkloadMax  = 32
)

// MemKind is the type of a memory map range (BootInfo.Mem). The values
// below 0x100 are the E820 types PC firmware reports; MemMMIO is this VMM's
// own (guest physical addresses the VMM handles, no memory slot behind them).
type MemKind uint32

// Memory range kinds.
const (
	MemRAM      MemKind = 1 // E820 type 1, "usable"
	MemReserved MemKind = 2 // E820 type 2, "reserved"
	MemACPI     MemKind = 3 // E820 type 3, "ACPI data" (reclaimable)
	MemNVS      MemKind = 4 // E820 type 4, "ACPI NVS"
	MemMMIO     MemKind = 0x100
)

// String returns the name Linux prints in its boot log for E820 types, and
// "MMIO" for the VMM's own kind. (Host side only: it allocates.)
func (k MemKind) String() string {
	switch k {
	case MemRAM:
		return "usable"
	case MemReserved:
		return "reserved"
	case MemACPI:
		return "ACPI data"
	case MemNVS:
		return "ACPI NVS"
	case MemMMIO:
		return "MMIO"
	}
	var d [10]byte
	i := len(d)
	for v := uint32(k); ; v /= 10 {
		i--
		d[i] = byte('0' + v%10)
		if v < 10 {
			break
		}
	}
	return "type " + string(d[i:])
}

// E820 returns the type to put in a firmware E820 table: MMIO is reported
// as reserved, the E820 kinds as themselves.
func (k MemKind) E820() uint32 {
	if k == MemMMIO {
		return uint32(MemReserved)
	}
	return uint32(k)
}

// In-use kinds: RAM the VMM filled before the guest ran. The guest's boot
// allocator never hands these out and marks them KERNEL|ALLOCATED.
const (
	InUseFirmware = iota + 1 // GDT, IDT, TSS, boot info, mailboxes, console ring
	InUsePageTable
	InUseKernel
	InUsePerCPU
	InUseTrace
)

// MemRange is one entry of the memory map or the in-use list.
type MemRange struct {
	Base uint64
	Size uint64
	Kind MemKind // in the in-use list: one of the InUse kinds
	_    uint32
}

// BootInfo is written by the VMM at BootInfoBase before any vCPU runs and
// is read-only for the guest. Every count is bounded by its array's length.
type BootInfo struct {
	Magic        uint64
	Version      uint32
	NumCPUs      uint32
	RAMBytes     uint64 // total RAM
	RAMTop       uint64 // end of the highest RAM range
	TSCKHz       uint64 // guest TSC frequency from KVM, 0 if unknown
	PerCPUBase   uint64
	PerCPUStride uint64
	KernelStart  uint64
	KernelEnd    uint64
	TraceBase    uint64 // trace for the replay workload (0 if none)
	TraceSize    uint64
	TickNanos    uint64 // timer period when the VMM injects ticks (0: none)
	NumMem       uint32
	NumInUse     uint32
	NumBad       uint32
	CmdlineLen   uint32
	Workload     [WorkloadMax]byte // NUL-padded workload name ("" = default set)
	Mem          [MaxMemRanges]MemRange
	InUse        [MaxInUse]MemRange
	Cmdline      [CmdlineMax]byte
	BadFrames    [MaxBadFrames]uint64 // PFNs of frames the guest must never use
}
