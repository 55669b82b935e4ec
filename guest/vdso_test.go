package main

import (
	"encoding/binary"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestVDSOImage reads the vDSO page the way the Go runtime's
// vdsoInitFromSysinfoEhdr, vdsoFindVersion and vdsoParseSymbols do, and
// requires __vdso_clock_gettime at version LINUX_2.6 to resolve to the code.
func TestVDSOImage(t *testing.T) {
	var page [4096]byte
	buildVDSO(&page, 111, 2_000_000, 333)
	b := page[:]
	u16 := func(o uint64) uint64 { return uint64(binary.LittleEndian.Uint16(b[o:])) }
	u32 := func(o uint64) uint64 { return uint64(binary.LittleEndian.Uint32(b[o:])) }
	u64 := func(o uint64) uint64 { return binary.LittleEndian.Uint64(b[o:]) }
	cstr := func(o uint64) string {
		e := o
		for b[e] != 0 {
			e++
		}
		return string(b[o:e])
	}
	if string(b[:4]) != "\x7fELF" || b[4] != 2 || u16(18) != 62 {
		t.Fatalf("ELF header: % x", b[:20])
	}
	var loadOff, dyn uint64
	foundLoad := false
	for i := uint64(0); i < u16(56); i++ {
		ph := u64(32) + i*u16(54)
		switch u32(ph) {
		case 1:
			if !foundLoad {
				foundLoad, loadOff = true, u64(ph+8)-u64(ph+16)
			}
		case 2:
			dyn = u64(ph + 8)
		}
	}
	if !foundLoad || dyn == 0 {
		t.Fatal("no PT_LOAD or PT_DYNAMIC")
	}
	var strtab, symtab, hash, versym, verdef uint64
	for d := dyn; u64(d) != 0; d += 16 {
		v := loadOff + u64(d+8)
		switch u64(d) {
		case 5:
			strtab = v
		case 6:
			symtab = v
		case 4:
			hash = v
		case 0x6ffffff0:
			versym = v
		case 0x6ffffffc:
			verdef = v
		}
	}
	if strtab == 0 || symtab == 0 || hash == 0 || versym == 0 || verdef == 0 {
		t.Fatalf("dynamic table incomplete: str %#x sym %#x hash %#x versym %#x verdef %#x", strtab, symtab, hash, versym, verdef)
	}
	// Go's keys (runtime/vdso_linux_amd64.go).
	const verHash, symHash = 0x3ae75f6, 0xd35ec75
	if h := elfHash("LINUX_2.6"); h != verHash {
		t.Errorf("elfHash(LINUX_2.6) = %#x, want %#x", h, verHash)
	}
	if h := elfHash("__vdso_clock_gettime"); h != symHash {
		t.Errorf("elfHash(__vdso_clock_gettime) = %#x, want %#x", h, symHash)
	}
	version := uint64(0)
	for def := verdef; ; {
		if u16(def+2)&1 == 0 && u32(def+8) == verHash && cstr(strtab+u32(def+u32(def+12))) == "LINUX_2.6" {
			version = u16(def+4) & 0x7fff
			break
		}
		if u32(def+16) == 0 {
			break
		}
		def += u32(def + 16)
	}
	if version == 0 {
		t.Fatal("no LINUX_2.6 in verdef")
	}
	nbucket := u32(hash)
	addr := uint64(0)
	for c := u32(hash + 8 + 4*(symHash%nbucket)); c != 0; c = u32(hash + 8 + 4*nbucket + 4*c) {
		sym := symtab + 24*c
		info, shndx := b[sym+4], u16(sym+6)
		if info&0xf == 2 && info>>4 == 1 && shndx != 0 && cstr(strtab+u32(sym)) == "__vdso_clock_gettime" &&
			u16(versym+2*c)&0x7fff == version {
			addr = loadOff + u64(sym+8)
			break
		}
	}
	if addr != vdsoText {
		t.Fatalf("__vdso_clock_gettime at %#x, want %#x", addr, vdsoText)
	}
	for i, want := range []uint64{111, 2_000_000, 333} {
		if got := u64(vdsoData + 8*uint64(i)); got != want {
			t.Errorf("data word %d = %d, want %d", i, got, want)
		}
	}
}

// TestVDSOCode decodes the code and checks that each RIP-relative operand
// reads the data word it should (TSC0, kHz, wall) and that the slow path
// is clock_gettime's system call.
func TestVDSOCode(t *testing.T) {
	var page [4096]byte
	buildVDSO(&page, 0, 1, 0)
	code := page[vdsoText : vdsoText+uint64(len(vdsoCode))]
	var reads []uint64
	sawSyscall := false
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			t.Fatalf("offset %#x: %v", pc, err)
		}
		next := vdsoText + uint64(pc+inst.Len)
		for _, a := range inst.Args {
			if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.RIP {
				reads = append(reads, next+uint64(m.Disp))
			}
		}
		if inst.Op == x86asm.SYSCALL {
			sawSyscall = true
		}
		pc += inst.Len
	}
	want := []uint64{vdsoData, vdsoData + 8, vdsoData + 16}
	if len(reads) != len(want) {
		t.Fatalf("RIP-relative reads %#x, want %#x", reads, want)
	}
	for i := range want {
		if reads[i] != want[i] {
			t.Errorf("read %d at %#x, want %#x", i, reads[i], want[i])
		}
	}
	if !sawSyscall || code[len(code)-1] != 0xc3 || len(vdsoCode) > vdsoData-vdsoText {
		t.Errorf("slow path: syscall %v, last byte %#x, code %d bytes", sawSyscall, code[len(code)-1], len(vdsoCode))
	}
}
