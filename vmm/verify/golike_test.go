package verify

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
	"golang.org/x/sys/unix"
)

// TestGoLikeCallerCarriesFaultsToTheCaller: a fault in the checker's
// goroutine, reading a mapped file that shrank, must reach the caller as a
// recoverable panic (coredump.Guard turns it into an error), never kill
// the process as a fault on a goroutine without panic-on-fault does.
func TestGoLikeCallerCarriesFaultsToTheCaller(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shrinks")
	if err := os.WriteFile(path, make([]byte, 2*os.Getpagesize()), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := unix.Mmap(int(f.Fd()), 0, 2*os.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(data)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}

	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var sum byte
	recovered := func() (r any) {
		defer func() { r = recover() }()
		goLikeCaller(func() { sum += data[os.Getpagesize()] })()
		return nil
	}()
	if _, ok := recovered.(interface{ Addr() uintptr }); !ok {
		t.Fatalf("recovered %v (%T), want the fault's runtime error", recovered, recovered)
	}
	if r := func() (r any) {
		defer func() { r = recover() }()
		goLikeCaller(func() { panic("boom") })()
		return nil
	}(); r != "boom" {
		t.Errorf("recovered %v, want the goroutine's own panic", r)
	}
}

// TestVerifyFaultInThePassReachesCaller: a fault while the passes over
// the records run on their goroutines (here a page of records made
// unreadable under the verifier) reaches Verify's caller as a recoverable panic.
func TestVerifyFaultInThePassReachesCaller(t *testing.T) {
	const frames = 4096
	raw, err := unix.Mmap(-1, 0, frames*mm.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(raw)
	mem := flatMemory(raw)
	var b mm.Buddy
	var boot mm.BootAllocator
	if err := b.Setup(uintptrOf(mem), &boot, []mm.Range{{Base: mm.PageSize, Size: (frames - 1) * mm.PageSize}}, nil, nil); err != mm.ErrNone {
		t.Fatal(err)
	}
	meta, n, st := b.Registration()
	in := Input{Registration: Registration{MetaPhys: meta, FrameCount: n, Version: uint64(mm.LayoutVersion), StatePhys: st}}
	if r, err := Verify(mem, in); err != nil || r.TotalViolations != 0 {
		t.Fatalf("before: %v, %+v", err, r)
	}
	// The records of frames 2112..2175: tails of the free top-order block
	// at 2048, which no list walk reads.
	page := meta + 2112*mm.FrameMetaSize
	if page%mm.PageSize != 0 {
		t.Fatalf("records of frame 2112 at %#x: not page-aligned", page)
	}
	if err := unix.Mprotect(raw[page:page+mm.PageSize], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	recovered := func() (r any) {
		defer func() { r = recover() }()
		Verify(mem, in)
		return nil
	}()
	if _, ok := recovered.(interface{ Addr() uintptr }); !ok {
		t.Fatalf("recovered %v (%T), want the fault's runtime error", recovered, recovered)
	}
}
