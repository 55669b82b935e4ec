// Package inspecttest makes real guest dumps for tests (booting the guest
// on KVM) and damaged copies of them: record fields, free lists and crafted
// page tables, written at the guest physical addresses the metadata names.
package inspecttest

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/internal/guestbuild"
	"github.com/vmm-dev/vmm/internal/kvmtest"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/coredump"
)

// HaveKVM reports whether KVM tests should run: KVM is usable, or
// VMM_REQUIRE_KVM demands it (then the boot fails with the reason).
func HaveKVM() bool { return kvmtest.Available() || kvmtest.Required() }

// SkipWithoutKVM is kvmtest.Require: it skips tb when /dev/kvm is unusable,
// or fails it when VMM_REQUIRE_KVM=1.
func SkipWithoutKVM(tb testing.TB) {
	tb.Helper()
	kvmtest.Require(tb)
}

// Boot runs the guest with memBytes of RAM and workload, writing a dump to
// path; it skips without KVM.
func Boot(tb testing.TB, memBytes uint64, workload, path string) {
	tb.Helper()
	BootAt(tb, memBytes, workload, "", path)
}

// BootAt is Boot with the dump taken at the checkpoint named at (while the
// workload's address spaces are live) instead of at exit.
func BootAt(tb testing.TB, memBytes uint64, workload, at, path string) {
	tb.Helper()
	SkipWithoutKVM(tb)
	img, err := guestbuild.Image()
	if err != nil {
		tb.Fatal(err)
	}
	vm, err := vmm.New(vmm.Config{MemBytes: memBytes, CPUs: 1, Kernel: img, Timeout: 60 * time.Second,
		Workload: workload, DumpPath: path, DumpAt: at})
	if err != nil {
		tb.Fatal(err)
	}
	defer vm.Close()
	res := vm.Run()
	if res.Dump == nil || res.Dump.Error != "" {
		tb.Fatalf("no dump: %+v", res.Dump)
	}
	if res.ExitStatus != 0 {
		tb.Fatalf("guest: %s: %s (status %d)", res.Outcome, res.Reason, res.ExitStatus)
	}
}

var shared struct {
	sync.Mutex
	paths map[uint64]string
}

// Shared returns a dump of a guest of memBytes that ran the paging
// workload, booted once per test binary and size (callers must not modify
// it: use Copy). It lives in the OS temp dir; Cleanup removes it.
func Shared(tb testing.TB, memBytes uint64) string {
	tb.Helper()
	SkipWithoutKVM(tb)
	shared.Lock()
	defer shared.Unlock()
	if p, ok := shared.paths[memBytes]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "inspecttest-")
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("guest-%dM.core", memBytes>>20))
	Boot(tb, memBytes, "paging", p)
	if shared.paths == nil {
		shared.paths = map[uint64]string{}
	}
	shared.paths[memBytes] = p
	return p
}

// Cleanup removes the shared dumps (call from TestMain).
func Cleanup() {
	shared.Lock()
	defer shared.Unlock()
	for _, p := range shared.paths {
		os.RemoveAll(filepath.Dir(p))
	}
}

// Dump is a writable copy of a dump plus the decoded registration, so tests
// can pick targets by metadata and damage them in place.
type Dump struct {
	tb    testing.TB
	Path  string
	segs  []coredump.Segment
	f     *os.File
	Reg   coredump.Registration
	orig  *coredump.Dump
	Roots []uint64
}

// Copy copies src into a temp dir of tb (sparsely: only the headers and the
// data ranges are written) and opens the copy for writing.
func Copy(tb testing.TB, src string) *Dump {
	tb.Helper()
	d, err := coredump.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	info := d.Info()
	if info.Reg == nil {
		tb.Fatal("source dump has no registration")
	}
	dst := filepath.Join(tb.TempDir(), "copy.core")
	if err := sparseCopy(src, dst, d); err != nil {
		tb.Fatal(err)
	}
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	m := &Dump{tb: tb, Path: dst, segs: d.Segments(), f: f, Reg: *info.Reg, orig: d, Roots: info.Roots}
	tb.Cleanup(func() { f.Close(); d.Close() })
	return m
}

// sparseCopy copies the bytes before the first segment and every data range.
func sparseCopy(src, dst string, d *coredump.Dump) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	ranges, err := d.DataRanges()
	if err != nil {
		return err
	}
	spans := append([]coredump.Segment{{Size: d.Segments()[0].FileOff}}, ranges...)
	for _, s := range spans {
		if _, err := io.Copy(io.NewOffsetWriter(out, int64(s.FileOff)), io.NewSectionReader(in, int64(s.FileOff), int64(s.Size))); err != nil {
			return err
		}
	}
	return nil
}

// off is the file offset of guest physical gpa.
func (m *Dump) off(gpa, n uint64) int64 {
	for _, s := range m.segs {
		if gpa >= s.PAddr && gpa-s.PAddr+n <= s.Size {
			return int64(s.FileOff + gpa - s.PAddr)
		}
	}
	m.tb.Fatalf("gpa %#x+%d is not in the dump", gpa, n)
	return 0
}

// Write writes b at guest physical gpa of the copy.
func (m *Dump) Write(gpa uint64, b []byte) {
	if _, err := m.f.WriteAt(b, m.off(gpa, uint64(len(b)))); err != nil {
		m.tb.Fatal(err)
	}
}

// Read reads n bytes at gpa of the copy.
func (m *Dump) Read(gpa, n uint64) []byte {
	b := make([]byte, n)
	if _, err := m.f.ReadAt(b, m.off(gpa, n)); err != nil {
		m.tb.Fatal(err)
	}
	return b
}

func (m *Dump) U64(gpa uint64) uint64 { return binary.LittleEndian.Uint64(m.Read(gpa, 8)) }
func (m *Dump) U32(gpa uint64) uint32 { return binary.LittleEndian.Uint32(m.Read(gpa, 4)) }

func (m *Dump) PutU64(gpa, v uint64) { m.Write(gpa, binary.LittleEndian.AppendUint64(nil, v)) }
func (m *Dump) PutU32(gpa uint64, v uint32) {
	m.Write(gpa, binary.LittleEndian.AppendUint32(nil, v))
}

// Rec is the physical address of record pfn's field at off (mm.Off*).
func (m *Dump) Rec(pfn, off uint64) uint64 { return m.Reg.MetaPhys + pfn*mm.FrameMetaSize + off }

// View reads the copy's metadata array and allocator state as they are
// now and returns the typed view over them (a snapshot: later writes are
// not seen).
func (m *Dump) View() *mm.View {
	r := m.Reg
	lo := min(r.MetaPhys, r.StatePhys)
	hi := max(r.MetaPhys+r.FrameCount*mm.FrameMetaSize, r.StatePhys+mm.StateSize)
	v, err := mm.NewView(m.Read(lo, hi-lo), lo, r.MetaPhys, r.FrameCount, r.StatePhys)
	if err != mm.ErrNone {
		m.tb.Fatalf("metadata view: %v", err)
	}
	return &v
}

// record is frame pfn's record as the copy holds it now.
func (m *Dump) record(pfn uint64) mm.Record {
	v, err := mm.NewRecordsView(m.Read(m.Rec(pfn, 0), mm.FrameMetaSize), m.Rec(pfn, 0), 1)
	if err != mm.ErrNone {
		m.tb.Fatalf("record %#x: %v", pfn, err)
	}
	r, _ := v.Record(0)
	return r
}

// Record fields of the copy.
func (m *Dump) Flags(pfn uint64) uint32    { return m.record(pfn).Flags }
func (m *Dump) Order(pfn uint64) uint8     { return m.record(pfn).Order }
func (m *Dump) Next(pfn uint64) uint64     { return m.record(pfn).Next }
func (m *Dump) Refcount(pfn uint64) uint32 { return m.record(pfn).Refcount }

// Head is the free-list head of order k (mm.LinkNone if empty).
func (m *Dump) Head(k int) uint64 { return m.View().ListHead(uint8(k)) }

// HeadAddr is the physical address of BuddyState.Heads[k].
func (m *Dump) HeadAddr(k int) uint64 { return m.Reg.StatePhys + mm.StateOffHeads + 8*uint64(k) }

// List returns the PFNs on free list k (bounded by the frame count).
func (m *Dump) List(k int) []uint64 {
	v := m.View()
	var out []uint64
	for p := v.ListHead(uint8(k)); p != mm.LinkNone && uint64(len(out)) < m.Reg.FrameCount; {
		r, ok := v.Record(p)
		if !ok {
			break
		}
		out = append(out, p)
		p = r.Next
	}
	return out
}

// FindFrame returns the first PFN >= from whose record satisfies ok.
func (m *Dump) FindFrame(from uint64, ok func(pfn uint64, flags uint32, order uint8, ref uint32) bool) uint64 {
	v := m.View()
	for p := from; p < m.Reg.FrameCount; p++ {
		if r, _ := v.Record(p); ok(p, r.Flags, r.Order, r.Refcount) {
			return p
		}
	}
	m.tb.Fatal("no frame matches")
	return 0
}

// Leaf is one mapping a crafted address space makes.
type Leaf struct {
	PFN            uint64
	Writable, User bool
}

// BuildSpace writes a four-level page table into the frames tables[0..3]
// (PML4, PDPT, PD, PT; their old contents are zeroed) mapping leaves at
// consecutive 4 KiB pages from virtual address 0x400000, and returns the
// root's physical address. The caller picks frames whose metadata it
// wants the verifier to judge (e.g. free frames to provoke violations).
func (m *Dump) BuildSpace(tables [4]uint64, leaves []Leaf) uint64 {
	const p, w, u = 1, 2, 4
	zero := make([]byte, mm.PageSize)
	for _, t := range tables {
		m.Write(t*mm.PageSize, zero)
	}
	const va = 0x400000 // PML4[0] -> PDPT[0] -> PD[2] -> PT[i]
	m.PutU64(tables[0]*mm.PageSize, tables[1]*mm.PageSize|p|w|u)
	m.PutU64(tables[1]*mm.PageSize, tables[2]*mm.PageSize|p|w|u)
	m.PutU64(tables[2]*mm.PageSize+8*(va>>21&511), tables[3]*mm.PageSize|p|w|u)
	for i, l := range leaves {
		e := l.PFN*mm.PageSize | p
		if l.Writable {
			e |= w
		}
		if l.User {
			e |= u
		}
		m.PutU64(tables[3]*mm.PageSize+8*uint64(i), e)
	}
	return tables[0] * mm.PageSize
}
