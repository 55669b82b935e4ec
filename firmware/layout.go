// Package firmware is the contract between the VMM and the guest kernel: the
// one description of guest physical memory (below), the boot-info page, the
// per-CPU blocks, the trap record and the hypercall ABI. The VMM (vmm,
// vmm/memmap), the guest and the host verifier take their addresses and
// page-table bits from here. It holds only constants and fixed-layout types
// so that the runtime-free guest can import it.
//
// Guest physical memory (not to scale; the kernel sees it through the
// physmap, physical address pa at virtual PhysMapBase+pa, see below):
//
//	0x0000_0000_0000 ┌───────────────────────────┐
//	                 │ null page (never mapped)  │  RAM, in use
//	0x0000_0000_1000 ├───────────────────────────┤  GDTBase: GDT + one TSS descriptor per vCPU
//	0x0000_0000_3000 ├───────────────────────────┤  IDTBase: 256 16-byte gates
//	0x0000_0000_4000 ├───────────────────────────┤  TSSBase: MaxCPUs TSSs, TSSStride apart
//	0x0000_0000_6000 ├───────────────────────────┤  BootInfoBase: BootInfo
//	0x0000_0000_8000 ├───────────────────────────┤  MailboxBase: one hypercall Mailbox per vCPU
//	0x0000_0000_9000 ├───────────────────────────┤  ConsoleBase: console ring
//	0x0000_0001_1000 ├───────────────────────────┤  PageTableBase: PML4, PDPT, PDs (physmap)
//	0x0000_0009_F000 ├───────────────────────────┤  LowHoleBase: EBDA / VGA / BIOS ROM window,
//	                 │ legacy hole               │  reserved (backed by host memory in slot 0)
//	0x0000_0010_0000 ├───────────────────────────┤  LowHoleEnd = KernelMinAddr: RAM
//	0x0000_0040_0000 ├───────────────────────────┤  guest kernel ELF (PT_LOAD segments,
//	                 │                           │  linked at PhysMapBase + this)
//	     ...         ├───────────────────────────┤  per-CPU areas (next 2 MiB boundary after the kernel)
//	     ...         ├───────────────────────────┤  trace region (optional), then free RAM
//	     lowEnd      ├───────────────────────────┤  lowEnd = min(ram, LowMemLimit)
//	                 │ (unmapped)                │
//	0x0000_C000_0000 ├───────────────────────────┤  MMIOHoleBase (only if ram > 3 GiB):
//	                 │ MMIO hole                 │  MMIO, the whole [3 GiB, 4 GiB)
//	0x0000_FEB0_0000 │   ┌───────────────────┐   │  DoorbellBase: MMIO, no memory slot
//	                 │   │ VMM doorbells     │   │  (always in the map; inside the hole
//	0x0000_FEB1_0000 │   └───────────────────┘   │  when there is one)
//	0x0001_0000_0000 ├───────────────────────────┤  HighMemBase: RAM beyond LowMemLimit,
//	                 │ RAM (high)                │  ram - 3 GiB bytes
//	4 GiB + ram-3GiB └───────────────────────────┘
//
// vmm/memmap turns this into the E820-style map the guest receives in
// BootInfo.Mem and into the KVM memory slots: slot 0 maps guest [0, lowEnd)
// at host offset 0, slot 1 guest [HighMemBase, ...) at host offset lowEnd.
//
// Kernel virtual memory: the VMM maps guest physical [0, 4 GiB or the end
// of RAM, rounded up to 1 GiB) at PhysMapBase with one PDPT (KernelPDPT)
// hung from PML4 entry PhysMapSlot. Every address space the guest builds
// links the same PDPT there, so the kernel runs unchanged after a CR3
// switch, while PML4 entry 0 and everything below PhysMapBase belong to
// user programs (a static Go program links at 0x400000 and maps from
// 0xc000000000 up). The kernel ELF is linked at PhysMapBase+0x400000 and
// loaded at its link address minus PhysMapBase:
//
//	0x0000_0000_0000_0000 ┌──────────────────────┐
//	                      │ user (PML4 0..251)   │  a program's own mappings
//	0x0000_7e00_0000_0000 ├──────────────────────┤  PhysMapBase (PML4 entry 252)
//	                      │ physmap: all guest   │  PhysMapBase + pa; page 0 and the
//	                      │ physical memory      │  per-CPU guard pages unmapped
//	0x0000_7e80_0000_0000 ├──────────────────────┤
//	                      │ (unmapped)           │
//	0x0000_8000_0000_0000 └──────────────────────┘  end of the lower canonical half
//
// The upper canonical half would be the usual place, but Go's linker
// refuses a text address there (-T takes a signed 64-bit value).
package firmware

// The kernel's view of physical memory.
const (
	// PhysMapBase is the virtual address of guest physical address 0.
	PhysMapBase = 0x0000_7e00_0000_0000
	// PhysMapSlot is the PML4 entry that holds the physmap (KernelPDPT).
	PhysMapSlot = PhysMapBase >> 39
	// PhysMapSize is the most the physmap's one PDPT can map.
	PhysMapSize = 512 << 30
	// KernelLinkBase is the link address of the kernel's first page
	// (scripts/build-guest.sh passes it to the linker).
	KernelLinkBase = PhysMapBase + 0x400000
)

// PhysToVirt is where the kernel sees physical address pa.
func PhysToVirt(pa uint64) uint64 { return PhysMapBase + pa }

// VirtToPhys is the physical address behind a physmap address; ok is false
// for an address outside the physmap.
func VirtToPhys(va uint64) (pa uint64, ok bool) {
	if va < PhysMapBase || va-PhysMapBase >= PhysMapSize {
		return 0, false
	}
	return va - PhysMapBase, true
}

// Guest physical regions outside the firmware area.
const (
	// LowHoleBase..LowHoleEnd is the legacy region below 1 MiB, reported
	// as reserved.
	LowHoleBase = 0x9f000
	LowHoleEnd  = 0x100000

	// LowMemLimit is the top of low RAM: RAM beyond it moves to HighMemBase.
	LowMemLimit = 3 << 30
	// MMIOHoleBase is the start of the 32-bit MMIO hole [3 GiB, 4 GiB).
	MMIOHoleBase = LowMemLimit
	// HighMemBase is where RAM above the MMIO hole starts (4 GiB).
	HighMemBase = 4 << 30

	// DoorbellBase..+DoorbellSize is the VMM's doorbell window (16 pages):
	// no memory slot backs it, so a guest store there exits to the VMM.
	DoorbellBase = 0xfeb00000
	DoorbellSize = 0x10000
	// HypercallDoorbell: an 8-byte store here performs the hypercall whose
	// arguments sit in the storing vCPU's Mailbox (full exit, synchronous).
	HypercallDoorbell = DoorbellBase
	// ConsoleDoorbell: a store here tells the VMM the console ring has data.
	// The VMM registers it as an ioeventfd where it can (no vCPU exit); where
	// it cannot, the store is an ordinary MMIO exit and is handled the same.
	ConsoleDoorbell = DoorbellBase + 0x1000
)

const (
	PageSize = 4096

	// MaxCPUs bounds the per-vCPU tables in the firmware area.
	MaxCPUs = 64

	// GDTBase holds the GDT: the fixed selectors below, then one 16-byte
	// TSS descriptor per vCPU starting at SelTSS0.
	GDTBase = 0x1000
	GDTSize = 0x2000
	// IDTBase holds 256 interrupt gates of 16 bytes.
	IDTBase = 0x3000
	IDTSize = 0x1000
	// TSSBase holds MaxCPUs task-state segments.
	TSSBase   = 0x4000
	TSSStride = 128
	TSSSize   = MaxCPUs * TSSStride
	// BootInfoBase holds the BootInfo the guest reads at entry.
	BootInfoBase = 0x6000
	BootInfoSize = 0x2000
	// MailboxBase holds one hypercall Mailbox per vCPU.
	MailboxBase = 0x8000
	MailboxSize = MaxCPUs * MailboxStride
	// ConsoleBase holds the console ring (ConsoleHeader then data).
	ConsoleBase = 0x9000
	ConsoleSize = 0x8000
	// PageTableBase holds the VMM-built physmap: PML4, PDPT, then PDs
	// of 2 MiB pages; PageTableSize bounds how much can be mapped.
	PageTableBase = 0x11000
	PageTableSize = 0x8e000
	// KernelPDPT is the physmap's PDPT (right after the PML4). Guest
	// address spaces link it from PML4 entry PhysMapSlot to keep the
	// kernel mapped;
	// the host verifier does not count mappings under it.
	KernelPDPT = PageTableBase + PageSize
	// FirmwareEnd is the end of the VMM-owned area that starts at GDTBase.
	FirmwareEnd = PageTableBase + PageTableSize

	// KernelMinAddr is the lowest physical address a guest ELF segment may
	// load at (its link address is PhysMapBase higher).
	KernelMinAddr = LowHoleEnd

	// PerCPUAlign aligns the trace region after the per-CPU areas. The
	// per-CPU areas themselves start on the first 2 MiB boundary after the
	// kernel image (vmm.PerCPUArea): the VMM maps the 2 MiB regions they
	// touch with 4 KiB pages for their guard pages, and the kernel keeps
	// its 2 MiB pages; the frames in between stay free RAM.
	PerCPUAlign = PageSize
)

// Per-CPU area: PerCPUStride bytes per vCPU, starting at BootInfo.PerCPUBase.
//
//	+0x00000 per-CPU block: fake Go g at +0, CPU struct at PerCPUDataOff,
//	         pointer to the g at PerCPUGPtrOff (FS base = block + PageSize,
//	         so FS:-8 reads it, as Go's ABI wrappers expect)
//	+0x01000 ring-0 stack; TSS.RSP0 (and IST1) = PerCPUTrapOff, and the
//	         TrapRecord sits just above it, so the ring-0 stub finds it at a
//	         fixed offset from its stack pointer
//	+0x05000 guard page (not mapped)
//	+0x06000 Go stack (PerCPUStackSize bytes; RSP starts at its top)
//	+0x46000 guard page (not mapped)
//	+0x47000 exception stack: ring-3 Go exception handlers run here
const (
	PerCPUGOff       = 0
	PerCPUDataOff    = 0x800
	PerCPUGPtrOff    = PageSize - 8
	PerCPUFSOff      = PageSize
	PerCPURing0Off   = 0x1000
	PerCPURing0Stack = 0x4000
	PerCPUTrapOff    = PerCPURing0Off + PerCPURing0Stack - TrapRecordSize
	PerCPUGuardOff   = 0x5000
	PerCPUStackOff   = 0x6000
	PerCPUStackSize  = 0x40000
	PerCPUXGuardOff  = PerCPUStackOff + PerCPUStackSize
	PerCPUXStackOff  = PerCPUXGuardOff + PageSize
	PerCPUXStackSize = 0x4000
	PerCPUStride     = PerCPUXStackOff + PerCPUXStackSize
)

// Segment selectors in the GDT at GDTBase.
const (
	SelNull        = 0x00
	SelKernelCode  = 0x10 // 64-bit ring-0 code
	SelKernelData  = 0x18
	SelUserData    = 0x2b // ring-3 data (index 5, RPL 3)
	SelUserCode    = 0x33 // 64-bit ring-3 code (index 6, RPL 3)
	SelTSS0        = 0x40 // first vCPU's TSS; vCPU i uses SelTSS0 + 16*i
	GDTFixedLength = SelTSS0
)

// GDT descriptors seen to work on the PVM host and standard on VMX/SVM.
const (
	DescKernelCode = 0x00af9b000000ffff
	DescKernelData = 0x00cf93000000ffff
	DescUserData   = 0x00cff3000000ffff
	DescUserCode   = 0x00affb000000ffff
)

// x86-64 page-table entry bits, for the VMM's physmap, the guest's
// address spaces and the host verifier's walk.
const (
	PTEPresent  = 1 << 0
	PTEWritable = 1 << 1
	PTEUser     = 1 << 2
	// Accessed and Dirty, set by the guest when it creates an entry: a
	// shadow MMU (kvm_pvm's) then need not write them back on first use,
	// and prefetches neighbouring entries only when Accessed is set.
	PTEAccessed = 1 << 5
	PTEDirty    = 1 << 6
	PTEHuge     = 1 << 7
	PTENX       = 1 << 63
	PTEAddrMask = 0x000ffffffffff000
)

// TSSSelector returns the GDT selector of vCPU cpu's TSS.
func TSSSelector(cpu int) uint16 { return uint16(SelTSS0 + 16*cpu) }
