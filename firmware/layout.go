// Package firmware is the contract between the VMM and the guest kernel: where
// the VMM puts boot structures in guest physical memory, the boot-info page,
// the per-CPU blocks and the hypercall ABI. It holds only constants and
// fixed-layout types so that the runtime-free guest can import it.
//
// Guest physical layout (the kernel sees it identity mapped):
//
//	0x0000_0000 ┌──────────────────────────┐
//	            │ null page (never used)   │
//	0x0000_1000 ├──────────────────────────┤ GDTBase: GDT + one TSS descriptor per vCPU
//	0x0000_3000 ├──────────────────────────┤ IDTBase: 256 16-byte gates
//	0x0000_4000 ├──────────────────────────┤ TSSBase: MaxCPUs TSSs, TSSStride apart
//	0x0000_6000 ├──────────────────────────┤ BootInfoBase: BootInfo
//	0x0000_8000 ├──────────────────────────┤ MailboxBase: one hypercall Mailbox per vCPU
//	0x0000_9000 ├──────────────────────────┤ ConsoleBase: console ring
//	0x0001_1000 ├──────────────────────────┤ PageTableBase: PML4, PDPT, PDs (identity map)
//	0x0009_f000 ├──────────────────────────┤ hole below 1 MiB (reserved in the memory map)
//	0x0010_0000 ├──────────────────────────┤ free RAM
//	0x0040_0000 ├──────────────────────────┤ guest kernel ELF (PT_LOAD segments)
//	  ...       ├──────────────────────────┤ per-CPU areas (2 MiB aligned, after the kernel)
//	  ...       ├──────────────────────────┤ trace region (optional), then free RAM
//	0xfeb0_0000 ├──────────────────────────┤ doorbells (MMIO, no memory slot)
//	            └──────────────────────────┘
package firmware

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
	// PageTableBase holds the VMM-built identity map: PML4, PDPT, then PDs
	// of 2 MiB pages; PageTableSize bounds how much can be mapped.
	PageTableBase = 0x11000
	PageTableSize = 0x8e000
	// KernelPDPT is the identity map's PDPT (right after the PML4). Guest
	// address spaces link it from PML4 entry 0 to keep the kernel mapped;
	// the host verifier does not count mappings under it.
	KernelPDPT = PageTableBase + PageSize
	// FirmwareEnd is the end of the VMM-owned area that starts at GDTBase.
	FirmwareEnd = PageTableBase + PageTableSize

	// LowHoleBase..0x100000 is the reserved hole below 1 MiB.
	LowHoleBase = 0x9f000

	// KernelMinAddr is the lowest address a guest ELF segment may load at.
	KernelMinAddr = 0x100000

	// DoorbellBase is an MMIO page with no memory slot: a guest store there
	// exits to the VMM.
	DoorbellBase = 0xfeb00000
	// HypercallDoorbell: an 8-byte store here performs the hypercall whose
	// arguments sit in the storing vCPU's Mailbox (full exit, synchronous).
	HypercallDoorbell = DoorbellBase
	// ConsoleDoorbell: a store here tells the VMM the console ring has data.
	// The VMM registers it as an ioeventfd where it can (no vCPU exit); where
	// it cannot, the store is an ordinary MMIO exit and is handled the same.
	ConsoleDoorbell = DoorbellBase + 0x1000

	// PerCPUAlign aligns the per-CPU area that follows the kernel image.
	PerCPUAlign = 2 << 20
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

// Page-table entry bits.
const (
	PTEPresent  = 1 << 0
	PTEWritable = 1 << 1
	PTEUser     = 1 << 2
	PTEHuge     = 1 << 7
	PTENX       = 1 << 63
	PTEAddrMask = 0x000ffffffffff000
)

// TSSSelector returns the GDT selector of vCPU cpu's TSS.
func TSSSelector(cpu int) uint16 { return uint16(SelTSS0 + 16*cpu) }
