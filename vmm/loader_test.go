package vmm

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
)

// mutateProg rewrites field off (bytes into the program header) of the
// first PT_LOAD in a copy of img.
func mutateProg(t *testing.T, img []byte, off int, v uint64) []byte {
	t.Helper()
	out := append([]byte(nil), img...)
	phoff := binary.LittleEndian.Uint64(out[0x20:])
	phentsize := int(binary.LittleEndian.Uint16(out[0x36:]))
	phnum := int(binary.LittleEndian.Uint16(out[0x38:]))
	for i := range phnum {
		ph := out[int(phoff)+i*phentsize:]
		if elf.ProgType(binary.LittleEndian.Uint32(ph)) == elf.PT_LOAD {
			binary.LittleEndian.PutUint64(ph[off:], v)
			return out
		}
	}
	t.Fatal("no PT_LOAD")
	return nil
}

func TestParseKernelRejectsMalformedELF(t *testing.T) {
	img := guestImage(t)
	const ramTop = 128 << 20
	if _, err := ParseKernel(img, ramTop); err != nil {
		t.Fatalf("the real guest is refused: %v", err)
	}
	const (
		pOffset = 8
		pVaddr  = 16
		pFilesz = 32
		pMemsz  = 40
	)
	class32 := append([]byte(nil), img...)
	class32[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	wrongMachine := append([]byte(nil), img...)
	binary.LittleEndian.PutUint16(wrongMachine[0x12:], uint16(elf.EM_AARCH64))
	badEntry := append([]byte(nil), img...)
	binary.LittleEndian.PutUint64(badEntry[0x18:], 0x10)
	for _, tc := range []struct {
		name, want string
		img        []byte
	}{
		{"empty", "not an ELF", nil},
		{"text", "not an ELF", []byte("#!/bin/sh\necho hi\n")},
		{"truncated header", "not an ELF", img[:40]},
		{"truncated segments", "not an ELF", img[:len(img)/2]},
		{"32-bit", "not an ELF", class32},
		{"arm64", "x86-64", wrongMachine},
		{"entry outside", "entry point", badEntry},
		{"overlaps firmware", "VMM-owned", mutateProg(t, img, pVaddr, firmware.PhysToVirt(firmware.PageTableBase))},
		{"beyond RAM", "does not fit", mutateProg(t, img, pVaddr, firmware.PhysToVirt(ramTop-0x1000))},
		{"linked low", "not linked in the physmap", mutateProg(t, img, pVaddr, 0x400000)},
		{"address overflow", "overflows", mutateProg(t, img, pVaddr, ^uint64(0)-0x10)},
		{"filesz > memsz", "exceeds memory size", mutateProg(t, img, pFilesz, 1<<40)},
		{"file offset past end", "outside the", mutateProg(t, img, pOffset, uint64(len(img)))},
		{"big memsz", "does not fit", mutateProg(t, img, pMemsz, 1<<32)},
		{"huge memsz", "not linked in the physmap", mutateProg(t, img, pMemsz, 1<<40)},
	} {
		_, err := ParseKernel(tc.img, ramTop)
		if !errors.Is(err, ErrBadKernel) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrBadKernel mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadCopiesSegmentsAndZeroesBSS(t *testing.T) {
	img := guestImage(t)
	mem := testMemory(t, 128<<20)
	k, err := ParseKernel(img, mem.Map.RAMTop())
	if err != nil {
		t.Fatal(err)
	}
	for i := range mem.Host()[k.Start:k.End] {
		mem.Host()[k.Start+uint64(i)] = 0xaa
	}
	if err := k.Load(mem); err != nil {
		t.Fatal(err)
	}
	for _, p := range k.File.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		want := make([]byte, p.Filesz)
		p.ReadAt(want, 0)
		got, _ := mem.Slice(p.Vaddr-firmware.PhysMapBase, p.Memsz)
		if string(got[:p.Filesz]) != string(want) {
			t.Errorf("segment at %#x not copied", p.Vaddr)
		}
		for i, b := range got[p.Filesz:] {
			if b != 0 {
				t.Fatalf("BSS byte %#x of segment %#x is %#x", i, p.Vaddr, b)
			}
		}
	}
}

// findSymbol reads .symtab in place; it must agree with debug/elf's
// Symbols (the last symbol of a name wins) and find no name that is only
// a prefix of a symbol's.
func TestFindSymbolAgreesWithSymbols(t *testing.T) {
	img := guestImage(t)
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	for _, s := range syms {
		want[s.Name] = s.Value
	}
	checked := 0
	for i := 0; i < len(syms); i += 13 {
		name := syms[i].Name
		if name == "" {
			continue
		}
		if v, ok := findSymbol(f, img, name); !ok || v != want[name] {
			t.Errorf("findSymbol(%q) = %#x, %v; want %#x", name, v, ok, want[name])
		}
		checked++
	}
	if checked < 50 {
		t.Fatalf("only %d symbols checked", checked)
	}
	if v, ok := findSymbol(f, img, syscallEntrySym); !ok || v != want[syscallEntrySym] {
		t.Errorf("findSymbol(%q) = %#x, %v; want %#x", syscallEntrySym, v, ok, want[syscallEntrySym])
	}
	for _, name := range []string{"main.syscallEntr", "no.such.symbol"} {
		if _, ok := want[name]; ok {
			continue
		}
		if v, ok := findSymbol(f, img, name); ok {
			t.Errorf("findSymbol(%q) = %#x, want not found", name, v)
		}
	}
}
