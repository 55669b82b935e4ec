package vmm

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"

	"github.com/vmm-dev/vmm/firmware"
)

// ErrBadKernel wraps every reason a guest ELF is refused.
var ErrBadKernel = errors.New("bad guest kernel")

// Kernel is a validated guest ELF: its segments fit in RAM and miss the
// VMM-owned areas. The ELF is linked in the physmap: a segment linked at
// virtual address v loads at physical v - firmware.PhysMapBase.
type Kernel struct {
	File  *elf.File
	Entry uint64 // virtual (physmap) address
	Start uint64 // lowest loaded physical address
	End   uint64 // physical end of the highest segment (page aligned)
	// SyscallEntry is the address of main.syscallEntry (LSTAR), 0 if the
	// kernel has none.
	SyscallEntry uint64
	segs         []elf.ProgHeader // Vaddr holds the physical load address
	image        []byte
}

// ParseKernel checks an ELF image for loading into guest RAM of ramTop bytes
// (seen by the kernel through the physmap). It does no I/O into the guest.
func ParseKernel(image []byte, ramTop uint64) (*Kernel, error) {
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return nil, fmt.Errorf("%w: not an ELF file: %w", ErrBadKernel, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%w: want a 64-bit x86-64 ELF, got %v %v", ErrBadKernel, f.Class, f.Machine)
	}
	if f.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("%w: want an executable (ET_EXEC), got %v", ErrBadKernel, f.Type)
	}
	k := &Kernel{File: f, Entry: f.Entry, Start: ^uint64(0), image: image}
	for i, prog := range f.Progs {
		if prog.Type != elf.PT_LOAD || prog.Memsz == 0 {
			continue
		}
		p := prog.ProgHeader // a copy: Vaddr becomes the physical address
		end := p.Vaddr + p.Memsz
		switch {
		case end < p.Vaddr:
			return nil, fmt.Errorf("%w: segment %d: address %#x + size %#x overflows", ErrBadKernel, i, p.Vaddr, p.Memsz)
		case p.Vaddr < firmware.PhysMapBase || end-firmware.PhysMapBase > firmware.PhysMapSize:
			return nil, fmt.Errorf("%w: segment %d [%#x, %#x) is not linked in the physmap [%#x, %#x)", ErrBadKernel, i, p.Vaddr, end, uint64(firmware.PhysMapBase), uint64(firmware.PhysMapBase+firmware.PhysMapSize))
		}
		p.Vaddr -= firmware.PhysMapBase
		end -= firmware.PhysMapBase
		switch {
		case p.Filesz > p.Memsz:
			return nil, fmt.Errorf("%w: segment %d: file size %#x exceeds memory size %#x", ErrBadKernel, i, p.Filesz, p.Memsz)
		case p.Off+p.Filesz < p.Off || p.Off+p.Filesz > uint64(len(image)):
			return nil, fmt.Errorf("%w: segment %d: file bytes [%#x, +%#x) lie outside the %d-byte file", ErrBadKernel, i, p.Off, p.Filesz, len(image))
		case p.Vaddr < firmware.KernelMinAddr:
			return nil, fmt.Errorf("%w: segment %d at %#x overlaps the VMM-owned area below %#x", ErrBadKernel, i, p.Vaddr, firmware.KernelMinAddr)
		case end > ramTop:
			return nil, fmt.Errorf("%w: segment %d [%#x, %#x) does not fit in guest RAM ending at %#x", ErrBadKernel, i, p.Vaddr, end, ramTop)
		}
		for _, q := range k.segs {
			if p.Vaddr < q.Vaddr+q.Memsz && q.Vaddr < end {
				return nil, fmt.Errorf("%w: segment %d [%#x, %#x) overlaps another segment", ErrBadKernel, i, p.Vaddr, end)
			}
		}
		k.segs = append(k.segs, p)
		k.Start = min(k.Start, p.Vaddr&^(firmware.PageSize-1))
		k.End = max(k.End, alignUp(end, firmware.PageSize))
	}
	if len(k.segs) == 0 {
		return nil, fmt.Errorf("%w: no loadable segment", ErrBadKernel)
	}
	if !k.contains(k.Entry - firmware.PhysMapBase) {
		return nil, fmt.Errorf("%w: entry point %#x is outside every loaded segment", ErrBadKernel, k.Entry)
	}
	if v, ok := findSymbol(f, image, syscallEntrySym); ok && v >= firmware.PhysMapBase && k.contains(v-firmware.PhysMapBase) {
		k.SyscallEntry = v
	}
	return k, nil
}

// findSymbol returns the value of the last symbol called name in the ELF's
// .symtab, reading the table in place: elf.File.Symbols builds a string for
// each of the guest's ~10,000 symbols, which cost 0.3 ms of every boot (and
// a boot parses the kernel twice). A table or name outside the file is
// skipped, as Symbols would refuse it.
func findSymbol(f *elf.File, image []byte, name string) (uint64, bool) {
	const symSize = 24 // Elf64_Sym
	var val uint64
	found := false
	for _, s := range f.Sections {
		if s.Type != elf.SHT_SYMTAB || s.Flags&elf.SHF_COMPRESSED != 0 || int(s.Link) >= len(f.Sections) {
			continue
		}
		str := f.Sections[s.Link]
		syms, ok1 := sectionBytes(image, s.Offset, s.Size)
		strs, ok2 := sectionBytes(image, str.Offset, str.Size)
		if !ok1 || !ok2 || str.Type != elf.SHT_STRTAB {
			continue
		}
		for off := symSize; off+symSize <= len(syms); off += symSize { // entry 0 is the null symbol
			n := uint64(f.ByteOrder.Uint32(syms[off:]))
			if n >= uint64(len(strs)) || !bytes.HasPrefix(strs[n:], []byte(name)) {
				continue
			}
			if end := n + uint64(len(name)); end < uint64(len(strs)) && strs[end] == 0 {
				val, found = f.ByteOrder.Uint64(syms[off+8:]), true
			}
		}
	}
	return val, found
}

// sectionBytes is image[off, off+size) if that lies inside the file.
func sectionBytes(image []byte, off, size uint64) ([]byte, bool) {
	if off > uint64(len(image)) || size > uint64(len(image))-off {
		return nil, false
	}
	return image[off : off+size], true
}

// contains reports whether physical address addr lies in a segment.
func (k *Kernel) contains(addr uint64) bool {
	for _, p := range k.segs {
		if addr >= p.Vaddr && addr-p.Vaddr < p.Memsz {
			return true
		}
	}
	return false
}

// Load copies the segments into guest memory and zeroes their BSS.
func (k *Kernel) Load(mem *GuestMemory) error {
	for _, p := range k.segs {
		dst, err := mem.Slice(p.Vaddr, p.Memsz)
		if err != nil {
			return fmt.Errorf("load segment at %#x: %w", p.Vaddr, err)
		}
		n := copy(dst, k.image[p.Off:p.Off+p.Filesz])
		clear(dst[n:])
	}
	return nil
}

// syscallEntrySym is the kernel's SYSCALL entry (an assembly function).
const syscallEntrySym = "main.syscallEntry.abi0"

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }
