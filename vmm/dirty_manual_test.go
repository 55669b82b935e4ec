package vmm

import (
	"testing"
)

// TestManualDirtyLogProbe checks manual dirty-log protection with an
// initially set log on this host: the log starts all set; a page cleared
// and then written by the guest is set again, a cleared page not written
// stays clear, a page never cleared stays set.
func TestManualDirtyLogProbe(t *testing.T) {
	vmFd, _, run := dirtyProbeVM(t, true)
	const pages = floorRAM / pageSize
	bitmap := make([]uint64, bitmapWords(floorRAM))
	if err := getDirtyLog(vmFd, 0, bitmap); err != nil {
		t.Fatal(err)
	}
	if bitmap[0] != 1<<pages-1 {
		t.Fatalf("initial log %#x, want all %d pages set", bitmap[0], pages)
	}
	clear8and9 := func() {
		t.Helper()
		if err := clearDirtyLog(vmFd, 0, pages, []uint64{1<<8 | 1<<9}); err != nil {
			t.Fatal(err)
		}
	}
	clear8and9()
	for round, want := range []uint64{42, 43} {
		run(round, want)
		if err := getDirtyLog(vmFd, 0, bitmap); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: log %#x", round, bitmap[0])
		written, other := uint64(8+round), uint64(9-round)
		if bitmap[0]&(1<<written) == 0 || bitmap[0]&(1<<other) != 0 || bitmap[0]&(1<<10) == 0 {
			t.Errorf("round %d: log %#x: want page %d set, page %d clear, page 10 (never cleared) set", round, bitmap[0], written, other)
		}
		clear8and9()
	}
}
