package allocbench

import (
	"testing"
	"time"

	"github.com/vmm-dev/vmm/vmm/memmap"
)

// TestArenaRunsEveryMetric runs each host benchmark briefly over a small
// arena: every figure is positive and the allocator is intact afterwards.
func TestArenaRunsEveryMetric(t *testing.T) {
	m, err := memmap.Build(256 * memmap.MiB)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewArena(m, 0x400000, 0x800000)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	restore, err := Benchtime(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	seen := map[string]bool{}
	for _, metric := range Metrics() {
		if seen[metric.GuestKey] || metric.host == nil || metric.extra == "" {
			t.Errorf("metric %+v: duplicate key or no host side", metric)
		}
		seen[metric.GuestKey] = true
		ns, err := a.Run(metric)
		if err != nil || ns <= 0 {
			t.Errorf("%s: %v ns, %v", metric.Name, ns, err)
		}
	}
	if n := a.Check(); n != 0 {
		t.Errorf("%d allocator violations after the benchmarks", n)
	}
}

func TestArenaRejectsImpossibleLayout(t *testing.T) {
	m, err := memmap.Build(8 * memmap.MiB)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel area covers all of RAM: the metadata array has nowhere to go.
	if _, err := NewArena(m, 0x100000, 8*memmap.MiB); err == nil {
		t.Error("an arena with no free RAM was set up")
	}
}
