package vmm

import (
	"encoding/binary"
	"fmt"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// layout is where this boot put the variable parts of the firmware layout.
type layout struct {
	cpus         int
	pml4         uint64
	perCPUBase   uint64
	perCPUEnd    uint64
	traceBase    uint64
	traceSize    uint64
	identityTop  uint64 // end of the physmap (physical)
	pageTableEnd uint64
}

// perCPU is the physical address of vCPU cpu's per-CPU block.
func (l *layout) perCPU(cpu int) uint64 { return l.perCPUBase + uint64(cpu)*firmware.PerCPUStride }

// stackTop is where vCPU cpu's RSP starts (a physmap address).
func (l *layout) stackTop(cpu int) uint64 {
	return firmware.PhysToVirt(l.perCPU(cpu) + firmware.PerCPUStackOff + firmware.PerCPUStackSize)
}

// fsBase is vCPU cpu's FS base (a physmap address): FS:-8 then holds the
// pointer to its fake g.
func (l *layout) fsBase(cpu int) uint64 {
	return firmware.PhysToVirt(l.perCPU(cpu) + firmware.PerCPUFSOff)
}

// perCPUChunkBase is the first 2 MiB region the per-CPU area touches;
// perCPUChunks counts the regions it spans (each is mapped with 4 KiB pages
// so the guard pages can fault).
func (l *layout) perCPUChunkBase() uint64 { return l.perCPUBase &^ (2<<20 - 1) }

func (l *layout) perCPUChunks() uint64 {
	return (alignUp(l.perCPUEnd, 2<<20) - l.perCPUChunkBase()) >> 21
}

// isGuard reports whether the 4 KiB page at addr is a per-CPU guard page.
func (l *layout) isGuard(addr uint64) bool {
	if addr < l.perCPUBase || addr >= l.perCPUEnd {
		return false
	}
	off := (addr - l.perCPUBase) % firmware.PerCPUStride
	return off == firmware.PerCPUGuardOff || off == firmware.PerCPUXGuardOff
}

func (l *layout) tss(cpu int) uint64 { return firmware.TSSBase + uint64(cpu)*firmware.TSSStride }

// PerCPUArea is where the per-CPU areas of cpus vCPUs go for a kernel
// image ending at kernelEnd: [base, end), from the first 2 MiB boundary
// after the kernel (the host benchmark arena reserves the same span). The
// per-CPU area's 2 MiB pages are mapped with 4 KiB pages for the guard
// pages; starting on a fresh one keeps the kernel image under 2 MiB
// mappings, so the guest's first touches of its text and data cost one
// KVM page fault per 2 MiB instead of one per page (24 in a hello boot,
// more as a guest runs more of its code). The frames between the kernel
// and this base stay free RAM.
func PerCPUArea(kernelEnd uint64, cpus int) (base, end uint64) {
	base = alignUp(kernelEnd, hugePage)
	return base, base + uint64(cpus)*firmware.PerCPUStride
}

// inUse lists what the VMM fills before the guest runs (the boot info's
// in-use ranges): the guest never allocates these frames, and none of them
// may be declared bad.
func (l *layout) inUse(k *Kernel) []firmware.MemRange {
	inUse := []firmware.MemRange{
		// Page 0 is in use too: the physmap leaves it unmapped.
		{Base: 0, Size: firmware.PageTableBase, Kind: firmware.InUseFirmware},
		{Base: firmware.PageTableBase, Size: l.pageTableEnd - firmware.PageTableBase, Kind: firmware.InUsePageTable},
		{Base: k.Start, Size: k.End - k.Start, Kind: firmware.InUseKernel},
		{Base: l.perCPUBase, Size: l.perCPUEnd - l.perCPUBase, Kind: firmware.InUsePerCPU},
	}
	if l.traceSize > 0 {
		inUse = append(inUse, firmware.MemRange{Base: l.traceBase, Size: alignUp(l.traceSize, firmware.PageSize), Kind: firmware.InUseTrace})
	}
	return inUse
}

// planLayout places the per-CPU areas and the trace after the kernel image.
func planLayout(m memmap.Map, k *Kernel, cpus int, traceSize uint64) (*layout, error) {
	l := &layout{cpus: cpus, pml4: firmware.PageTableBase}
	l.perCPUBase, l.perCPUEnd = PerCPUArea(k.End, cpus)
	if !m.IsRAM(l.perCPUBase, l.perCPUEnd-l.perCPUBase) {
		// A guest too small for the boundary (8 MiB with a kernel past
		// 6 MiB) gets them right after the kernel, as before the
		// alignment: its first touches cost more, but it boots.
		l.perCPUBase = alignUp(k.End, firmware.PerCPUAlign)
		l.perCPUEnd = l.perCPUBase + uint64(cpus)*firmware.PerCPUStride
	}
	l.traceSize = traceSize
	if traceSize > 0 {
		l.traceBase = alignUp(l.perCPUEnd, firmware.PerCPUAlign)
	}
	end := max(l.perCPUEnd, l.traceBase+l.traceSize)
	if !m.IsRAM(l.perCPUBase, end-l.perCPUBase) {
		return nil, fmt.Errorf("guest RAM too small: kernel, %d per-CPU areas and trace need [%#x, %#x) in low RAM", cpus, k.Start, end)
	}
	l.identityTop = alignUp(max(m.RAMTop(), 4<<30), 1<<30)
	if l.identityTop > firmware.PhysMapSize {
		return nil, fmt.Errorf("guest RAM ending at %#x does not fit the %d GiB physmap", m.RAMTop(), firmware.PhysMapSize>>30)
	}
	// PML4, PDPT, the 4 KiB table for the first 2 MiB, one PD per GiB, then
	// 4 KiB tables for the per-CPU area so its guard pages can be unmapped.
	l.pageTableEnd = firmware.PageTableBase + (3+l.identityTop>>30+l.perCPUChunks())*firmware.PageSize
	if l.pageTableEnd > firmware.PageTableBase+firmware.PageTableSize {
		return nil, fmt.Errorf("guest RAM ending at %#x needs more page tables than the firmware area holds", m.RAMTop())
	}
	return l, nil
}

// writeFirmware fills the VMM-owned areas: GDT, TSSs, physmap page tables,
// per-CPU blocks and the boot info bi (from bootInfo).
func writeFirmware(mem *GuestMemory, l *layout, bi *firmware.BootInfo) error {
	if err := writeGDT(mem, l); err != nil {
		return err
	}
	if err := writePageTables(mem, l); err != nil {
		return err
	}
	for cpu := range l.cpus {
		block := l.perCPU(cpu)
		// The fake g sits at the block's start; zero means stackguard0 == 0,
		// so no Go prologue ever calls morestack. Go code dereferences the
		// pointer, so it is a physmap address.
		if err := mem.WriteU64(block+firmware.PerCPUGPtrOff, firmware.PhysToVirt(block+firmware.PerCPUGOff)); err != nil {
			return fmt.Errorf("per-CPU block %d: %w", cpu, err)
		}
		if err := mem.WriteU64(block+firmware.PerCPUDataOff, uint64(cpu)); err != nil {
			return fmt.Errorf("per-CPU block %d: %w", cpu, err)
		}
	}
	return writeGuest(mem, firmware.BootInfoBase, bi)
}

func writeGDT(mem *GuestMemory, l *layout) error {
	gdt, err := mem.Slice(firmware.GDTBase, firmware.GDTSize)
	if err != nil {
		return err
	}
	put := func(sel int, v uint64) { binary.LittleEndian.PutUint64(gdt[sel:], v) }
	put(firmware.SelKernelCode, firmware.DescKernelCode)
	put(firmware.SelKernelData, firmware.DescKernelData)
	put(firmware.SelUserData&^3, firmware.DescUserData)
	put(firmware.SelUserCode&^3, firmware.DescUserCode)
	for cpu := range l.cpus {
		base := l.tss(cpu)
		tss, err := mem.Slice(base, firmware.TSSStride)
		if err != nil {
			return err
		}
		clear(tss)
		// RSP0 is the TrapRecord's address: the stubs find the record just
		// above the frame the CPU pushes. IST1 (double faults) is the same
		// known-good stack. The CPU uses these (and the descriptor's
		// base) as virtual addresses: physmap ones.
		rsp0 := firmware.PhysToVirt(l.perCPU(cpu) + firmware.PerCPUTrapOff)
		binary.LittleEndian.PutUint64(tss[4:], rsp0)
		binary.LittleEndian.PutUint64(tss[36:], rsp0)
		binary.LittleEndian.PutUint16(tss[102:], 104) // I/O bitmap base past the limit: no bitmap
		lo, hi := tssDescriptor(firmware.PhysToVirt(base), 103)
		sel := int(firmware.TSSSelector(cpu))
		put(sel, lo)
		put(sel+8, hi)
	}
	return nil
}

// tssDescriptor encodes a 16-byte busy 64-bit TSS descriptor (type 11).
func tssDescriptor(base uint64, limit uint32) (lo, hi uint64) {
	lo = uint64(limit&0xffff) |
		(base&0xffffff)<<16 |
		uint64(0x8b)<<40 | // present, DPL 0, type 11 (busy TSS)
		uint64(limit>>16&0xf)<<48 |
		(base>>24&0xff)<<56
	hi = base >> 32
	return lo, hi
}

// writePageTables builds the kernel's physmap, guest physical [0,
// identityTop) at firmware.PhysMapBase: 4 KiB pages for the first 2 MiB
// (page 0 left unmapped), 2 MiB pages above. PML4 entry 0 stays empty, so
// a nil dereference faults and low addresses are free for user programs.
// Every level has the U bit because the kernel runs at CPL3.
func writePageTables(mem *GuestMemory, l *layout) error {
	const flags = firmware.PTEPresent | firmware.PTEWritable | firmware.PTEUser
	pt, err := mem.Slice(firmware.PageTableBase, l.pageTableEnd-firmware.PageTableBase)
	if err != nil {
		return err
	}
	clear(pt)
	entry := func(table uint64, i int, v uint64) {
		binary.LittleEndian.PutUint64(pt[table-firmware.PageTableBase+uint64(i)*8:], v)
	}
	pml4 := uint64(firmware.PageTableBase)
	pdpt := pml4 + firmware.PageSize
	pt0 := pdpt + firmware.PageSize
	pds := pt0 + firmware.PageSize
	entry(pml4, firmware.PhysMapSlot, pdpt|flags)
	for i := 1; i < 512; i++ {
		entry(pt0, i, uint64(i)*firmware.PageSize|flags)
	}
	for gib := uint64(0); gib < l.identityTop>>30; gib++ {
		pd := pds + gib*firmware.PageSize
		entry(pdpt, int(gib), pd|flags)
		for i := range 512 {
			entry(pd, i, gib<<30|uint64(i)<<21|flags|firmware.PTEHuge)
		}
	}
	entry(pds, 0, pt0|flags)
	// Split the per-CPU area's 2 MiB pages so that its guard pages fault.
	pts := pds + (l.identityTop>>30)*firmware.PageSize
	for c := uint64(0); c < l.perCPUChunks(); c++ {
		base := l.perCPUChunkBase() + c<<21
		table := pts + c*firmware.PageSize
		for i := range 512 {
			if addr := base + uint64(i)*firmware.PageSize; !l.isGuard(addr) {
				entry(table, i, addr|flags)
			}
		}
		entry(pds+(base>>30)*firmware.PageSize, int(base>>21&511), table|flags)
	}
	return nil
}

// bootInfo is what the guest finds at firmware.BootInfoBase, but for the
// TSC rate, which the caller sets once the first vCPU exists: the VMM
// predicts the guest's metadata placement from it before that (see
// VM.prefaultMeta).
func bootInfo(m memmap.Map, l *layout, k *Kernel, cfg *Config) (*firmware.BootInfo, error) {
	bi := &firmware.BootInfo{}
	bi.Magic = firmware.BootInfoMagic
	bi.Version = firmware.BootInfoVersion
	bi.NumCPUs = uint32(l.cpus)
	bi.RAMBytes = m.TotalRAM()
	bi.RAMTop = m.RAMTop()
	bi.PerCPUBase = l.perCPUBase
	bi.PerCPUStride = firmware.PerCPUStride
	bi.KernelStart, bi.KernelEnd = k.Start, k.End
	bi.TraceBase, bi.TraceSize = l.traceBase, l.traceSize
	bi.TickNanos = uint64(cfg.Tick.Nanoseconds())
	ranges := m.Ranges()
	if len(ranges) > firmware.MaxMemRanges {
		return nil, fmt.Errorf("memory map has %d ranges, boot info holds %d", len(ranges), firmware.MaxMemRanges)
	}
	for i, r := range ranges {
		bi.Mem[i] = firmware.MemRange{Base: r.Base, Size: r.Size, Kind: r.Kind}
	}
	bi.NumMem = uint32(len(ranges))
	bi.NumInUse = uint32(copy(bi.InUse[:], l.inUse(k)))
	if len(cfg.BadFrames) > firmware.MaxBadFrames {
		return nil, fmt.Errorf("%d bad frames given, boot info holds %d", len(cfg.BadFrames), firmware.MaxBadFrames)
	}
	bi.NumBad = uint32(copy(bi.BadFrames[:], cfg.BadFrames))
	if len(cfg.Cmdline) > firmware.CmdlineMax {
		return nil, fmt.Errorf("command line is %d bytes, boot info holds %d", len(cfg.Cmdline), firmware.CmdlineMax)
	}
	bi.CmdlineLen = uint32(copy(bi.Cmdline[:], cfg.Cmdline))
	if len(cfg.Workload) >= firmware.WorkloadMax {
		return nil, fmt.Errorf("workload name %q is longer than %d bytes", cfg.Workload, firmware.WorkloadMax-1)
	}
	copy(bi.Workload[:], cfg.Workload)
	return bi, nil
}
