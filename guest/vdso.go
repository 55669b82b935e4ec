package main

// The program's vDSO: one read-only, executable page with a minimal shared
// object whose one symbol, __vdso_clock_gettime (version LINUX_2.6), reads
// the TSC at CPL3 and computes the clock exactly as sysClockGettime does
// (nowNanos), so both paths agree to the nanosecond. The Go runtime finds it
// through AT_SYSINFO_EHDR and then calls it for time.Now and its own
// nanotime instead of making a system call (~7 µs each on the PVM host;
// BENCHMARKS.md). Clocks other than REALTIME and MONOTONIC fall back to the
// real system call from inside it.
//
// Page layout (offsets from vdsoBase):
//
//	0x000 ELF header           0x140 .dynsym (2)      0x1c0 versym
//	0x040 PT_LOAD, PT_DYNAMIC  0x170 .dynstr          0x1c8 verdef (2)
//	0x0b0 dynamic (9)          0x1a0 DT_HASH          0x200 code
//	0xf00 data: TSC at program start, TSC kHz, host wall clock at boot (ns)

const (
	vdsoBase = userMmapTop // one page above everything mmap(NULL) hands out

	vdsoDyn    = 0x0b0
	vdsoSym    = 0x140
	vdsoStr    = 0x170
	vdsoHash   = 0x1a0
	vdsoVersym = 0x1c0
	vdsoVerdef = 0x1c8
	vdsoText   = 0x200
	vdsoData   = 0xf00 // TSC0, kHz, wall: 3 words

	atSysinfoEhdr = 33
)

// vdsoStrings is .dynstr: "", the version, the symbol, the soname.
const (
	vdsoStrings   = "\x00LINUX_2.6\x00__vdso_clock_gettime\x00linux-vdso.so.1\x00"
	vdsoStrVer    = 1
	vdsoStrSym    = 11
	vdsoStrSoname = 32
)

// vdsoCode is __vdso_clock_gettime(clock in DI, *timespec in SI) with the
// three RIP-relative displacements (data words) left zero; vdsoPatches
// says where they go. Assembled from:
//
//	cmp edi, 1; ja slow; rdtsc; shl rdx, 32; or rax, rdx
//	sub rax, [TSC0]; xor edx, edx; mov rcx, [KHZ]; div rcx
//	imul r8, rax, 1000000; imul rax, rdx, 1000000; xor edx, edx; div rcx
//	add rax, r8; test edi, edi; jnz 1f; add rax, [WALL]
//	1: mov ecx, 1000000000; xor edx, edx; div rcx
//	mov [rsi], rax; mov [rsi+8], rdx; xor eax, eax; ret
//	slow: mov eax, 228; syscall; ret
var vdsoCode = [...]byte{
	0x83, 0xff, 0x01, 0x77, 0x51, 0x0f, 0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0,
	0x48, 0x2b, 0x05, 0, 0, 0, 0, 0x31, 0xd2, 0x48, 0x8b, 0x0d, 0, 0, 0, 0, 0x48, 0xf7, 0xf1,
	0x4c, 0x69, 0xc0, 0x40, 0x42, 0x0f, 0x00, 0x48, 0x69, 0xc2, 0x40, 0x42, 0x0f, 0x00,
	0x31, 0xd2, 0x48, 0xf7, 0xf1, 0x4c, 0x01, 0xc0, 0x85, 0xff, 0x75, 0x07,
	0x48, 0x03, 0x05, 0, 0, 0, 0, 0xb9, 0x00, 0xca, 0x9a, 0x3b, 0x31, 0xd2, 0x48, 0xf7, 0xf1,
	0x48, 0x89, 0x06, 0x48, 0x89, 0x56, 0x08, 0x31, 0xc0, 0xc3,
	0xb8, 0xe4, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc3,
}

// vdsoPatches: offset in vdsoCode of each displacement, the offset of the
// instruction's end, and the data word it reads.
var vdsoPatches = [3][3]uint64{{0x11, 0x15, 0}, {0x1a, 0x1e, 1}, {0x3e, 0x42, 2}}

func put16(b []byte, off, v uint64) { b[off], b[off+1] = byte(v), byte(v>>8) }
func put32(b []byte, off, v uint64) { put16(b, off, v); put16(b, off+2, v>>16) }

// elfHash is the System V ABI's symbol hash (DT_HASH, vd_hash).
func elfHash(s string) uint64 {
	h := uint32(0)
	for i := 0; i < len(s) && s[i] != 0; i++ {
		h = h<<4 + uint32(s[i])
		g := h & 0xf0000000
		if g != 0 {
			h ^= g >> 24
		}
		h &^= g
	}
	return uint64(h)
}

// buildVDSO writes the vDSO image into page (zeroed) for a clock that
// started at TSC tsc0, runs at khz, with the host's wall clock wall ns.
func buildVDSO(p *[4096]byte, tsc0, khz, wall uint64) {
	b := p[:]
	// ELF header: ELF64, little endian, ET_DYN, x86-64, two program headers.
	copy(b, "\x7fELF\x02\x01\x01")
	put16(b, 16, 3)
	put16(b, 18, 62)
	put32(b, 20, 1)
	put64(b, 32, 64) // e_phoff
	put16(b, 52, 64) // e_ehsize
	put16(b, 54, 56) // e_phentsize
	put16(b, 56, 2)  // e_phnum
	put16(b, 58, 64) // e_shentsize
	// PT_LOAD of the whole page (R+X), PT_DYNAMIC.
	phdr := func(off, typ, flags, at, size, align uint64) {
		put32(b, off, typ)
		put32(b, off+4, flags)
		put64(b, off+8, at)     // p_offset
		put64(b, off+16, at)    // p_vaddr
		put64(b, off+24, at)    // p_paddr
		put64(b, off+32, size)  // p_filesz
		put64(b, off+40, size)  // p_memsz
		put64(b, off+48, align) // p_align
	}
	phdr(64, 1, 5, 0, 4096, 4096)
	phdr(64+56, 2, 4, vdsoDyn, 9*16, 8)
	dyn := [...][2]uint64{
		{4, vdsoHash}, {5, vdsoStr}, {6, vdsoSym}, {10, uint64(len(vdsoStrings))}, {11, 24},
		{0x6ffffff0, vdsoVersym}, {0x6ffffffc, vdsoVerdef}, {0x6ffffffd, 2}, {0, 0},
	}
	for i, d := range dyn {
		put64(b, vdsoDyn+uint64(i)*16, d[0])
		put64(b, vdsoDyn+uint64(i)*16+8, d[1])
	}
	// Symbol 1: global function in section 1 (any defined index).
	s := uint64(vdsoSym + 24)
	put32(b, s, vdsoStrSym)
	b[s+4] = 0x12 // STB_GLOBAL, STT_FUNC
	put16(b, s+6, 1)
	put64(b, s+8, vdsoText)
	put64(b, s+16, uint64(len(vdsoCode)))
	copy(b[vdsoStr:], vdsoStrings)
	// DT_HASH: one bucket holding symbol 1, chains end at 0.
	put32(b, vdsoHash, 1)
	put32(b, vdsoHash+4, 2)
	put32(b, vdsoHash+8, 1)
	put16(b, vdsoVersym+2, 2) // symbol 1 is LINUX_2.6
	// Verdef: the base (the soname), then LINUX_2.6 with index 2; each
	// entry 20 bytes, its one Verdaux (name, next) right after it.
	verdef := func(off, flags, ndx, name, next uint64) {
		put16(b, off, 1) // vd_version
		put16(b, off+2, flags)
		put16(b, off+4, ndx)
		put16(b, off+6, 1) // vd_cnt
		put32(b, off+8, elfHash(vdsoStrings[name:]))
		put32(b, off+12, 20) // vd_aux
		put32(b, off+16, next)
		put32(b, off+20, name) // vda_name
	}
	verdef(vdsoVerdef, 1, 1, vdsoStrSoname, 28)
	verdef(vdsoVerdef+28, 0, 2, vdsoStrVer, 0)
	copy(b[vdsoText:], vdsoCode[:])
	for _, pt := range vdsoPatches {
		disp := vdsoData + pt[2]*8 - (vdsoText + pt[1])
		put32(b, vdsoText+pt[0], disp)
	}
	put64(b, vdsoData, tsc0)
	put64(b, vdsoData+8, khz)
	put64(b, vdsoData+16, wall)
}

// vdsoFrame is the vDSO page's frame (0: none mapped).
var vdsoFrame uint64

// mapVDSO maps the vDSO page at vdsoBase, read-only and executable, as an
// area of its own; its clock words are filled in by vdsoStart.
func mapVDSO() bool {
	f, ok := userFrame()
	if !ok {
		return false
	}
	if !proc.as.mapPage(vdsoBase, f, false) {
		putFrame(f)
		proc.frames--
		return false
	}
	if !proc.vmas.insert(vdsoBase, vdsoBase+4096, protRead|protExec) {
		return false // the page is freed with the address space
	}
	vdsoFrame = f
	return true
}

// vdsoStart writes the image with the program's clock origin, just before
// the program's first instruction.
func vdsoStart() {
	if vdsoFrame != 0 {
		buildVDSO(physPage(vdsoFrame), proc.tsc0, proc.tscKHz, proc.wallNanos)
	}
}
