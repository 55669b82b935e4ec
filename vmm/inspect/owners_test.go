package inspect_test

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/inspect"
	"github.com/vmm-dev/vmm/vmm/inspect/inspecttest"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// namesFrame reports whether r names frame pfn with a kind containing kind.
func namesFrame(r *verify.Report, pfn uint64, kind string) bool {
	for _, v := range r.Violations {
		if v.PFN == pfn && v.Scope == "" && strings.Contains(v.Kind, kind) {
			return true
		}
	}
	return false
}

// anyFree returns the head of a free block of the smallest order that has one.
func anyFree(t *testing.T, d *inspecttest.Dump) uint64 {
	t.Helper()
	for k := 0; k <= mm.MaxOrder; k++ {
		if l := d.List(k); len(l) > 0 {
			return l[0]
		}
	}
	t.Fatal("no free block")
	return 0
}

// inUseFrame returns the first RAM frame of the boot info's in-use range
// called name.
func inUseFrame(t *testing.T, d *inspecttest.Dump, path, name string) uint64 {
	t.Helper()
	in, err := inspect.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	boot, err := verify.ReadBoot(in.Dump)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range boot.InUse {
		if r.Name == name {
			for p := r.Base / mm.PageSize; p < (r.Base+r.Size)/mm.PageSize; p++ {
				if d.Flags(p) == mm.FlagAllocated|mm.FlagKernel {
					return p
				}
			}
		}
	}
	t.Fatalf("no kernel frame in the %s", name)
	return 0
}

// TestLiveDumpOwnershipRules injects, one at a time into a real
// mid-workload dump, the bugs the ownership and boot-info rules exist
// for, and checks each is reported against the right frame.
func TestLiveDumpOwnershipRules(t *testing.T) {
	src := cowDump(t)
	if r := verifyFile(t, src); r.TotalViolations != 0 {
		t.Fatalf("clean dump: %v", r.Violations)
	}
	for _, tc := range []struct {
		name, kind string
		damage     func(t *testing.T, d *inspecttest.Dump) uint64 // returns the PFN to be named
	}{
		{"DLL frame mapped writable", "DLL frame mapped writable", func(t *testing.T, d *inspecttest.Dump) uint64 {
			pte, pfn := findLeaf(t, d, d.Roots[0], mm.FlagDLL)
			d.PutU64(pte, d.U64(pte)|firmware.PTEWritable)
			return pfn
		}},
		{"anonymous frame without ANONYMOUS", "neither ANONYMOUS nor DLL", func(t *testing.T, d *inspecttest.Dump) uint64 {
			_, pfn := findLeaf(t, d, d.Roots[0], mm.FlagAnonymous)
			d.PutU32(d.Rec(pfn, mm.OffFlags), d.Flags(pfn)&^mm.FlagAnonymous)
			return pfn
		}},
		{"kernel image frame FREE", "kernel image frame not ALLOCATED|KERNEL", func(t *testing.T, d *inspecttest.Dump) uint64 {
			pfn := inUseFrame(t, d, src, "kernel image")
			d.PutU32(d.Rec(pfn, mm.OffFlags), mm.FlagFree)
			d.PutU32(d.Rec(pfn, mm.OffRefcount), 0)
			return pfn
		}},
		{"firmware frame FREE", "firmware area frame not ALLOCATED|KERNEL", func(t *testing.T, d *inspecttest.Dump) uint64 {
			pfn := inUseFrame(t, d, src, "firmware area")
			d.PutU32(d.Rec(pfn, mm.OffFlags), mm.FlagFree)
			d.PutU32(d.Rec(pfn, mm.OffRefcount), 0)
			return pfn
		}},
		{"kernel image frame POISONED", "kernel image frame not ALLOCATED|KERNEL", func(t *testing.T, d *inspecttest.Dump) uint64 {
			pfn := inUseFrame(t, d, src, "kernel image") // the VMM refuses it as a bad frame: only the guest can poison it
			d.PutU32(d.Rec(pfn, mm.OffFlags), mm.FlagPoisoned)
			d.PutU32(d.Rec(pfn, mm.OffRefcount), 0)
			return pfn
		}},
		{"metadata frame POISONED", "metadata array frame not ALLOCATED|KERNEL", func(t *testing.T, d *inspecttest.Dump) uint64 {
			pfn := d.Reg.MetaPhys/mm.PageSize + 1 // the boot allocator never places the array on a bad frame
			d.PutU32(d.Rec(pfn, mm.OffFlags), mm.FlagPoisoned)
			d.PutU32(d.Rec(pfn, mm.OffRefcount), 0)
			return pfn
		}},
		{"boot-time bad frame left unpoisoned", "bad frame from the boot info not POISONED", func(t *testing.T, d *inspecttest.Dump) uint64 {
			var bi firmware.BootInfo
			pfn := anyFree(t, d) // a free frame the boot info now calls bad
			d.PutU32(firmware.BootInfoBase+uint64(unsafe.Offsetof(bi.NumBad)), 1)
			d.PutU64(firmware.BootInfoBase+uint64(unsafe.Offsetof(bi.BadFrames)), pfn)
			return pfn
		}},
		{"kernel block leaked", "owned by nothing", func(t *testing.T, d *inspecttest.Dump) uint64 {
			pfn := anyFree(t, d) // a free block's head made allocated, as a forgotten Alloc leaves it
			d.PutU32(d.Rec(pfn, mm.OffFlags), mm.FlagAllocated|mm.FlagKernel)
			d.PutU32(d.Rec(pfn, mm.OffRefcount), 1)
			return pfn
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := inspecttest.Copy(t, src)
			pfn := tc.damage(t, d)
			if r := verifyFile(t, d.Path); !namesFrame(r, pfn, tc.kind) {
				t.Errorf("no %q violation for frame %#x in %+v", tc.kind, pfn, r.Violations)
			}
		})
	}
}

// TestLeakedPageTablesAtTeardown: an address space unregistered while its
// page tables stay allocated (the teardown forgot to free them) leaves
// KERNEL|ALLOCATED frames nothing owns; each is reported as a leak.
func TestLeakedPageTablesAtTeardown(t *testing.T) {
	in, err := inspect.Open(cowDump(t))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if len(in.Info.Roots) != 2 {
		t.Fatalf("roots %#x", in.Info.Roots)
	}
	gone := in.Info.Roots[1]
	in.Info.Roots = in.Info.Roots[:1]
	r, err := in.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !namesFrame(r, gone/mm.PageSize, "owned by nothing") {
		t.Fatalf("the unregistered root's PML4 %#x is not reported as leaked: %+v", gone, r.Violations)
	}
}
