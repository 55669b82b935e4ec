package coredump

import (
	"testing"

	"golang.org/x/sys/unix"
)

// mapAnon returns size bytes of zero memory that cost nothing until touched
// (a private anonymous MAP_NORESERVE mapping), unmapped at test end.
func mapAnon(t testing.TB, size uint64) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatalf("mmap %#x bytes: %v", size, err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}
