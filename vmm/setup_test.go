package vmm

import (
	"testing"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// The kernel image keeps 2 MiB physmap pages (one KVM page fault each on a
// shadow-paging host): the per-CPU areas, whose guard pages need 4 KiB
// pages, start on the next 2 MiB page, and only their chunks are split.
func TestKernelKeepsHugePhysmapPages(t *testing.T) {
	m, err := memmap.Build(128 << 20)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKernel(guestImage(t), m.RAMTop())
	if err != nil {
		t.Fatal(err)
	}
	for _, cpus := range []int{1, 2, 8} {
		l, err := planLayout(m, k, cpus, 0)
		if err != nil {
			t.Fatal(err)
		}
		if l.perCPUBase%hugePage != 0 || l.perCPUBase < k.End || l.perCPUBase-k.End >= hugePage {
			t.Fatalf("%d vCPUs: per-CPU area at %#x, want the first 2 MiB boundary at or after the kernel's end %#x", cpus, l.perCPUBase, k.End)
		}
		mem, err := NewGuestMemory(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := writePageTables(mem, l); err != nil {
			t.Fatal(err)
		}
		pde := func(pa uint64) uint64 { // the physmap's PD entry for pa (< 1 GiB)
			v, err := mem.ReadU64(firmware.PageTableBase + 3*firmware.PageSize + (pa>>21)*8)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		for pa := k.Start &^ (hugePage - 1); pa < k.End; pa += hugePage {
			if e := pde(pa); e&firmware.PTEHuge == 0 {
				t.Errorf("%d vCPUs: kernel 2 MiB page at %#x is split (PDE %#x)", cpus, pa, e)
			}
		}
		for pa := l.perCPUChunkBase(); pa < l.perCPUEnd; pa += hugePage {
			if e := pde(pa); e&firmware.PTEHuge != 0 {
				t.Errorf("%d vCPUs: per-CPU 2 MiB page at %#x is not split for its guard pages (PDE %#x)", cpus, pa, e)
			}
		}
		mem.Close()
	}
}

// TestSmallestGuestFitsTheLayout: in the smallest guest the 2 MiB boundary
// after a kernel past 6 MiB is out of RAM; the per-CPU areas then go right
// after the kernel instead of the guest being refused.
func TestSmallestGuestFitsTheLayout(t *testing.T) {
	m, err := memmap.Build(8 << 20)
	if err != nil {
		t.Fatal(err)
	}
	k := &Kernel{Start: 0x400000, End: 0x6011e0}
	l, err := planLayout(m, k, 1, 0)
	if err != nil {
		t.Fatalf("8 MiB guest, kernel ending at %#x: %v", k.End, err)
	}
	if l.perCPUBase < k.End || l.perCPUBase%firmware.PageSize != 0 || !m.IsRAM(l.perCPUBase, l.perCPUEnd-l.perCPUBase) {
		t.Errorf("per-CPU area [%#x, %#x) after a kernel ending at %#x", l.perCPUBase, l.perCPUEnd, k.End)
	}
}
