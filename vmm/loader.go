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
// VMM-owned areas.
type Kernel struct {
	File  *elf.File
	Entry uint64
	Start uint64 // lowest loaded address
	End   uint64 // end of the highest segment (page aligned)
	segs  []elf.ProgHeader
	image []byte
}

// ParseKernel checks an ELF image for loading into guest RAM of ramTop bytes
// (identity mapped: physical == virtual). It does no I/O into the guest.
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
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		end := p.Vaddr + p.Memsz
		switch {
		case end < p.Vaddr:
			return nil, fmt.Errorf("%w: segment %d: address %#x + size %#x overflows", ErrBadKernel, i, p.Vaddr, p.Memsz)
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
		k.segs = append(k.segs, p.ProgHeader)
		k.Start = min(k.Start, p.Vaddr&^(firmware.PageSize-1))
		k.End = max(k.End, alignUp(end, firmware.PageSize))
	}
	if len(k.segs) == 0 {
		return nil, fmt.Errorf("%w: no loadable segment", ErrBadKernel)
	}
	if !k.contains(k.Entry) {
		return nil, fmt.Errorf("%w: entry point %#x is outside every loaded segment", ErrBadKernel, k.Entry)
	}
	return k, nil
}

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

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }
