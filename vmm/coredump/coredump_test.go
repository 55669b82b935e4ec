package coredump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

func TestABILayout(t *testing.T) {
	sizes := []struct {
		name     string
		v        any
		unsafeSz uintptr
		want     int
	}{
		{"elf_prstatus", elfPrstatus{}, unsafe.Sizeof(elfPrstatus{}), prstatusSize},
		{"user_regs_struct", userRegs{}, unsafe.Sizeof(userRegs{}), 27 * 8},
		{"QEMUCPUSegment", qemuSegment{}, unsafe.Sizeof(qemuSegment{}), 24},
		{"QEMUCPUState", qemuCPUState{}, unsafe.Sizeof(qemuCPUState{}), qemuStateSize},
		{"vmm note header", vmmNoteHeader{}, unsafe.Sizeof(vmmNoteHeader{}), vmmHeaderSize},
		{"vmm note range", vmmNoteRange{}, unsafe.Sizeof(vmmNoteRange{}), vmmRangeSize},
	}
	for _, s := range sizes {
		if got := binary.Size(s.v); got != s.want || int(s.unsafeSz) != s.want {
			t.Errorf("%s: binary.Size %d, unsafe.Sizeof %d, want %d", s.name, got, s.unsafeSz, s.want)
		}
	}
	var p elfPrstatus
	offs := []struct {
		name      string
		got, want uintptr
	}{
		{"pr_cursig", unsafe.Offsetof(p.Cursig), 12},
		{"pr_sigpend", unsafe.Offsetof(p.Sigpend), 16},
		{"pr_sighold", unsafe.Offsetof(p.Sighold), 24},
		{"pr_pid", unsafe.Offsetof(p.Pid), 32},
		{"pr_ppid", unsafe.Offsetof(p.Ppid), 36},
		{"pr_pgrp", unsafe.Offsetof(p.Pgrp), 40},
		{"pr_sid", unsafe.Offsetof(p.Sid), 44},
		{"pr_utime", unsafe.Offsetof(p.Utime), 48},
		{"pr_stime", unsafe.Offsetof(p.Stime), 64},
		{"pr_cutime", unsafe.Offsetof(p.Cutime), 80},
		{"pr_cstime", unsafe.Offsetof(p.Cstime), 96},
		{"pr_reg", unsafe.Offsetof(p.Reg), 112},
		{"pr_reg.rip", unsafe.Offsetof(p.Reg) + unsafe.Offsetof(p.Reg.RIP), 112 + 16*8},
		{"pr_reg.gs", unsafe.Offsetof(p.Reg) + unsafe.Offsetof(p.Reg.GS), 112 + 26*8},
		{"pr_fpvalid", unsafe.Offsetof(p.Fpvalid), 328},
	}
	var q qemuCPUState
	var h vmmNoteHeader
	offs = append(offs, []struct {
		name      string
		got, want uintptr
	}{
		{"QEMU rax", unsafe.Offsetof(q.RAX), 8},
		{"QEMU rip", unsafe.Offsetof(q.RIP), 136},
		{"QEMU cs", unsafe.Offsetof(q.CS), 152},
		{"QEMU idt", unsafe.Offsetof(q.IDT), 152 + 9*24},
		{"QEMU cr", unsafe.Offsetof(q.CR), 392},
		{"QEMU kernel_gs_base", unsafe.Offsetof(q.KernelGSBase), qemuStateMinSize},
		{"VMM nvcpus", unsafe.Offsetof(h.NVCPUs), 16},
		{"VMM reg", unsafe.Offsetof(h.Reg), 24},
	}...)
	for _, o := range offs {
		if o.got != o.want {
			t.Errorf("offset of %s = %d, want %d", o.name, o.got, o.want)
		}
	}
}

// testVCPUs returns two vCPUs with every register distinct.
func testVCPUs() []VCPU {
	var vs []VCPU
	for i := range 2 {
		b := uint64(i+1) << 56
		vs = append(vs, VCPU{
			Index: i,
			RAX:   b | 1, RBX: b | 2, RCX: b | 3, RDX: b | 4, RSI: b | 5, RDI: b | 6, RSP: b | 7, RBP: b | 8,
			R8: b | 9, R9: b | 10, R10: b | 11, R11: b | 12, R12: b | 13, R13: b | 14, R14: b | 15, R15: b | 16,
			RIP: 0xffffffff81000000 + uint64(i)*0x1000, RFLAGS: 0x246,
			CS: 0x10, SS: 0x18, DS: 0x18, ES: 0x18, FS: 0x20 + uint16(i), GS: 0x28,
			FSBase: b | 0x100, GSBase: b | 0x200, CR0: 0x80050033, CR2: b | 0x300, CR3: 0x1000 * uint64(i+1), CR4: 0x6a0,
		})
	}
	return vs
}

func testInfo() Info {
	return Info{
		Reg:      &Registration{MetaPhys: 0x200000, FrameCount: 32768, Version: 3, StatePhys: 0x1ff000},
		Roots:    []uint64{0x1000, 0x2000, 0x7000},
		Holdings: 0x9000,
		Reason:   "KVM_EXIT_SHUTDOWN: triple fault",
	}
}

// testGuest returns a memory map of ramBytes and a host RAM buffer that is
// zero except for patterned pages: the first, middle and last page of each
// RAM range (the very first and last bytes included).
func testGuest(t testing.TB, ramBytes uint64) (memmap.Map, []byte, []uint64) {
	t.Helper()
	m, err := memmap.Build(ramBytes)
	if err != nil {
		t.Fatal(err)
	}
	ram := make([]byte, m.TotalRAM())
	rng := rand.New(rand.NewPCG(1, 2))
	var touched []uint64 // guest physical addresses of patterned pages
	for _, r := range m.Ranges() {
		if r.Kind != memmap.RAM {
			continue
		}
		mid := r.Base + (r.Size/2)&^(pageSize-1)
		for _, gpa := range []uint64{r.Base, mid, r.End() - pageSize} {
			host, ok := m.Translate(gpa, pageSize)
			if !ok {
				t.Fatalf("Translate(%#x) failed", gpa)
			}
			for i := range pageSize {
				ram[host+uint64(i)] = byte(rng.Uint32())
			}
			ram[host] = 0xA5
			ram[host+pageSize-1] = 0x5A
			touched = append(touched, gpa)
		}
	}
	return m, ram, touched
}

// writeTestDump writes a dump of a ramBytes guest and returns its path.
func writeTestDump(t testing.TB, ramBytes uint64) (string, memmap.Map, []byte, []uint64, Stats) {
	t.Helper()
	m, ram, touched := testGuest(t, ramBytes)
	path := filepath.Join(t.TempDir(), "guest.core")
	st, err := Write(path, m, ram, testVCPUs(), testInfo())
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return path, m, ram, touched, st
}

func TestRoundTrip(t *testing.T) {
	path, m, ram, touched, st := writeTestDump(t, 128<<20)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := uint64(fi.Sys().(*syscall.Stat_t).Blocks) * 512
	t.Logf("stats %+v; on disk %d bytes", st, onDisk)
	if uint64(fi.Size()) != st.FileSize {
		t.Errorf("file size %#x, Stats.FileSize %#x", fi.Size(), st.FileSize)
	}
	if onDisk > st.FileSize/20 {
		t.Errorf("file is not sparse: %d bytes on disk for a %d-byte file", onDisk, st.FileSize)
	}
	if st.PagesWritten != uint64(len(touched)) {
		t.Errorf("PagesWritten = %d, want %d", st.PagesWritten, len(touched))
	}

	d, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer d.Close()

	want := testInfo()
	want.Map = m.Ranges()
	if got := d.Info(); !reflect.DeepEqual(got, want) {
		t.Errorf("Info:\n got %+v\nwant %+v", got, want)
	}
	if got := d.VCPUs(); !reflect.DeepEqual(got, testVCPUs()) {
		t.Errorf("VCPUs:\n got %+v\nwant %+v", got, testVCPUs())
	}

	// Every RAM range reads back byte for byte (patterned and zero pages).
	wantRAM(t, "", d, m, ram)
	for _, gpa := range touched {
		got, err := d.Slice(gpa, pageSize)
		host, _ := m.Translate(gpa, pageSize)
		if err != nil || !bytes.Equal(got, ram[host:host+pageSize]) {
			t.Errorf("Slice(%#x, page): err %v or bytes differ", gpa, err)
		}
	}
	zero, err := d.Slice(0x10000, pageSize)
	if err != nil || !isZero(zero) {
		t.Errorf("zero page: err %v, zero %v", err, isZero(zero))
	}

	// Spans not inside one PT_LOAD are errors.
	for _, s := range []struct{ gpa, n uint64 }{
		{firmware.LowHoleBase - 8, 16},    // crosses into the reserved hole
		{firmware.LowHoleBase, 8},         // reserved, not dumped
		{firmware.DoorbellBase, 8},        // MMIO
		{128 << 20, 1},                    // past RAM
		{128<<20 - 8, 16},                 // crosses the end of RAM
		{^uint64(0) - 4, 16},              // wraps
		{firmware.LowHoleEnd, ^uint64(0)}, // huge
	} {
		if b, err := d.Slice(s.gpa, s.n); err == nil {
			t.Errorf("Slice(%#x, %#x) = %d bytes, want error", s.gpa, s.n, len(b))
		}
	}

	spans, err := d.DataRanges()
	if err != nil {
		t.Fatal(err)
	}
	var dataBytes uint64
	for _, s := range spans {
		dataBytes += s.Size
	}
	for _, gpa := range touched {
		found := false
		for _, s := range spans {
			found = found || (memmap.Range{Base: s.PAddr, Size: s.Size}).Contains(gpa, pageSize)
		}
		if !found {
			t.Errorf("DataRanges %+v miss patterned page %#x", spans, gpa)
		}
	}
	if dataBytes > st.FileSize/20 {
		t.Errorf("DataRanges cover %#x bytes of a %#x-byte file: holes not found", dataBytes, st.FileSize)
	}

	segs := d.Segments()
	if len(segs) != 2 || segs[0].PAddr != 0 || segs[1].PAddr != firmware.LowHoleEnd {
		t.Errorf("Segments = %+v", segs)
	}
	for _, s := range segs {
		if s.FileOff%pageSize != 0 {
			t.Errorf("segment %+v: file offset not page aligned", s)
		}
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := d.Slice(0, 1); err == nil {
		t.Error("Slice after Close succeeded")
	}
}

func TestRoundTripHighMemAndNoReg(t *testing.T) {
	// 3 GiB + 2 MiB: a second slot above 4 GiB. The buffer is mostly zero.
	m, err := memmap.Build(3<<30 + 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		t.Skip("3 GiB buffer")
	}
	ram := mapAnon(t, m.TotalRAM())
	ram[len(ram)-1] = 0x77 // last byte of high RAM
	ram[0] = 0x11
	path := filepath.Join(t.TempDir(), "high.core")
	info := Info{Reason: ""}
	if _, err := Write(path, m, ram, nil, info); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.Info(); got.Reg != nil || len(got.Roots) != 0 || len(d.VCPUs()) != 0 || !reflect.DeepEqual(got.Map, m.Ranges()) {
		t.Errorf("Info = %+v, VCPUs = %v", got, d.VCPUs())
	}
	b, err := d.Slice(firmware.HighMemBase+2<<20-1, 1)
	if err != nil || b[0] != 0x77 {
		t.Errorf("last byte of high RAM: %v %v", b, err)
	}
	b, err = d.Slice(0, 1)
	if err != nil || b[0] != 0x11 {
		t.Errorf("first byte: %v %v", b, err)
	}
}

func TestWriteErrors(t *testing.T) {
	m, err := memmap.Build(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name  string
		ram   []byte
		vcpus []VCPU
		info  Info
	}{
		{"short RAM", make([]byte, 2<<20), nil, Info{}},
		{"negative index", make([]byte, 4<<20), []VCPU{{Index: -1}}, Info{}},
		{"too many vCPUs", make([]byte, 4<<20), make([]VCPU, MaxVCPUs+1), Info{}},
		{"too many roots", make([]byte, 4<<20), nil, Info{Roots: make([]uint64, MaxRoots+1)}},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, "x.core")
		if _, err := Write(path, m, tt.ram, tt.vcpus, tt.info); err == nil {
			t.Errorf("%s: Write succeeded", tt.name)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: file left behind (%v)", tt.name, err)
		}
	}
	if _, err := Write(filepath.Join(dir, "no/such/dir"), m, make([]byte, 4<<20), nil, Info{}); err == nil {
		t.Error("Write to a missing directory succeeded")
	}
	// A long reason is truncated, not an error.
	path := filepath.Join(dir, "long.core")
	if _, err := Write(path, m, make([]byte, 4<<20), nil, Info{Reason: string(make([]byte, MaxReasonLen+10))}); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n := len(d.Info().Reason); n != MaxReasonLen {
		t.Errorf("reason is %d bytes, want %d", n, MaxReasonLen)
	}
}

func TestIsZero(t *testing.T) {
	for n := range 200 {
		b := make([]byte, n)
		if !isZero(b) {
			t.Fatalf("isZero(%d zeros) = false", n)
		}
		for i := range n {
			b[i] = 1
			if isZero(b) {
				t.Fatalf("isZero(len %d, b[%d]=1) = true", n, i)
			}
			b[i] = 0
		}
	}
}

// TestHandlerThreads: a vCPU that faulted carries its handler's context as
// a second thread, read back attached to the right vCPU.
func TestHandlerThreads(t *testing.T) {
	m, ram, _ := testGuest(t, 8<<20)
	vs := testVCPUs()
	h := vs[0]
	h.RIP, h.RSP, h.Handler = 0x470000, 0x64af00, nil
	vs[1].Signal = 11
	vs[1].Handler = &h
	h.Index = 1
	vs[0], vs[1] = vs[1], vs[0] // the faulting vCPU's thread comes first
	path := filepath.Join(t.TempDir(), "guest.core")
	if _, err := Write(path, m, ram, vs, testInfo()); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer d.Close()
	// The handler inherits its vCPU's control registers.
	h.CR0, h.CR2, h.CR3, h.CR4 = vs[0].CR0, vs[0].CR2, vs[0].CR3, vs[0].CR4
	if got := d.VCPUs(); !reflect.DeepEqual(got, vs) {
		t.Errorf("VCPUs:\n got %+v\nwant %+v\nhandler got %+v", got, vs, got[0].Handler)
	}
}

// wantRAM: every RAM range of the dump reads back as guest RAM, byte for
// byte (written pages and holes alike); what prefixes the messages.
func wantRAM(t *testing.T, what string, d *Dump, m memmap.Map, ram []byte) {
	t.Helper()
	for _, r := range m.Ranges() {
		if r.Kind != memmap.RAM {
			continue
		}
		host, _ := m.Translate(r.Base, r.Size)
		got, err := d.Slice(r.Base, r.Size)
		if err != nil {
			t.Fatalf("%sSlice(%s): %v", what, r, err)
		}
		if !bytes.Equal(got, ram[host:host+r.Size]) {
			t.Errorf("%sSlice(%s) differs from guest RAM", what, r)
		}
	}
}

// TestWriteWithoutSyncSameFile: a dump that is not synced (Options.Sync
// false, the VMM's default) is the same file, byte for byte, as a synced
// one, and replaces the target whole.
func TestWriteWithoutSyncSameFile(t *testing.T) {
	m, ram, _ := testGuest(t, 64<<20)
	dir := t.TempDir()
	synced, fast := filepath.Join(dir, "synced.core"), filepath.Join(dir, "fast.core")
	os.WriteFile(fast, []byte("an older dump"), 0o644)
	a, err := WriteWith(synced, m, ram, testVCPUs(), testInfo(), Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := WriteWith(fast, m, ram, testVCPUs(), testInfo(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("stats differ: synced %+v, not synced %+v", a, b)
	}
	x, _ := os.ReadFile(synced)
	y, _ := os.ReadFile(fast)
	if !bytes.Equal(x, y) {
		t.Fatalf("the unsynced dump differs from the synced one (%d and %d bytes)", len(y), len(x))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d entries in the directory, want the two dumps only", len(entries))
	}
}
