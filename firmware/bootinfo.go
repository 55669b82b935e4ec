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

// Memory range kinds (E820 values, plus MMIO).
const (
	MemRAM      = 1
	MemReserved = 2
	MemMMIO     = 0x100
)

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
	Kind uint32
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
