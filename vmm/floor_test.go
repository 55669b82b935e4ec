package vmm

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmm-dev/vmm/vmm/coredump"
)

func TestKVMFloor(t *testing.T) {
	requireKVM(t)
	tm, err := KVMFloor()
	if err != nil {
		t.Fatal(err)
	}
	if tm.TotalNanos <= 0 || tm.RunNanos <= 0 {
		t.Fatalf("timings not filled: %+v", tm)
	}
}

func TestScanFloorWorkersAgree(t *testing.T) {
	s, err := NewScanBuffer(1<<20 + 24)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, want := s.Scan(1)
	for _, w := range []int{2, 3, 7} {
		if _, got := s.Scan(w); got != want {
			t.Errorf("%d workers: xor %#x, one worker %#x", w, got, want)
		}
	}
	if _, err := NewScanBuffer(12); err == nil {
		t.Error("a 12-byte buffer was accepted")
	}
}

func TestWriteFloor(t *testing.T) {
	for _, floor := range []func(string, uint64) (time.Duration, error){WriteFloor, DurableWriteFloor} {
		dir := t.TempDir()
		if _, err := floor(dir, 3*coredump.WritebackStep+5); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("write floor left %d files behind", len(ents))
		}
		if _, err := floor(filepath.Join(dir, "absent"), 1); err == nil {
			t.Error("a floor in a missing directory succeeded")
		}
	}
}
