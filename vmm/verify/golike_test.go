package verify

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

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
