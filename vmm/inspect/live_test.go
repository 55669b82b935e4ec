package inspect_test

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/inspect"
	"github.com/vmm-dev/vmm/vmm/inspect/inspecttest"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// cowDump is a dump taken at the cow workload's "cow-forked" checkpoint:
// two live address spaces sharing COW and DLL frames.
func cowDump(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cow.core")
	inspecttest.BootAt(t, 128<<20, "cow", "cow-forked", path)
	return path
}

func verifyFile(t *testing.T, path string) *verify.Report {
	t.Helper()
	in, err := inspect.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, err := in.Verify()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// findLeaf returns the physical address of the first present leaf PTE (a
// 4 KiB mapping) under root whose frame has the wanted flag.
func findLeaf(t *testing.T, d *inspecttest.Dump, root uint64, flag uint32) (pte, pfn uint64) {
	t.Helper()
	var walk func(table uint64, level int) bool
	walk = func(table uint64, level int) bool {
		for i := uint64(0); i < 512; i++ {
			if level == 4 && i == 0 {
				continue // the kernel's identity map
			}
			e := d.U64(table + 8*i)
			if e&1 == 0 {
				continue
			}
			if level == 1 {
				if p := (e & 0x000ffffffffff000) / mm.PageSize; d.Flags(p)&flag != 0 {
					pte, pfn = table+8*i, p
					return true
				}
				continue
			}
			if walk(e&0x000ffffffffff000, level-1) {
				return true
			}
		}
		return false
	}
	if !walk(root, 4) {
		t.Fatalf("no leaf with flag %#x under root %#x", flag, root)
	}
	return pte, pfn
}

func TestLiveCOWDumpVerifiesClean(t *testing.T) {
	r := verifyFile(t, cowDump(t))
	if r.TotalViolations != 0 || r.Roots != 2 || r.Mappings != 2*(32+4) {
		t.Fatalf("violations %d, roots %d, mappings %d:\n%+v", r.TotalViolations, r.Roots, r.Mappings, r.Violations)
	}
}

// TestLiveCOWDumpMutations damages the real page tables and metadata of a
// mid-workload dump and checks the verifier names the frame and the rule.
func TestLiveCOWDumpMutations(t *testing.T) {
	src := cowDump(t)
	for _, tc := range []struct {
		name, kind string
		damage     func(d *inspecttest.Dump) uint64 // returns the PFN to be named
	}{
		{"COW frame mapped writable", "COW frame mapped writable", func(d *inspecttest.Dump) uint64 {
			pte, pfn := findLeaf(t, d, d.Roots[0], mm.FlagCOW)
			d.PutU64(pte, d.U64(pte)|2)
			return pfn
		}},
		{"refcount drift", "refcount differs from the number of mappings", func(d *inspecttest.Dump) uint64 {
			_, pfn := findLeaf(t, d, d.Roots[1], mm.FlagCOW)
			d.PutU32(d.Rec(pfn, mm.OffRefcount), d.Refcount(pfn)+1)
			return pfn
		}},
		{"USER frame mapped without U", "USER frame mapped without the U bit", func(d *inspecttest.Dump) uint64 {
			pte, pfn := findLeaf(t, d, d.Roots[0], mm.FlagDLL)
			d.PutU64(pte, d.U64(pte)&^4)
			return pfn
		}},
		{"FREE frame still mapped", "FREE frame is mapped", func(d *inspecttest.Dump) uint64 {
			pte, _ := findLeaf(t, d, d.Roots[0], mm.FlagCOW)
			var free uint64
			for k := mm.MaxOrder; k >= 0; k-- { // any free block's head
				if l := d.List(k); len(l) > 0 {
					free = l[0]
				}
			}
			d.PutU64(pte, free*mm.PageSize|5) // present, user, read-only
			return free
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := inspecttest.Copy(t, src)
			pfn := tc.damage(d)
			r := verifyFile(t, d.Path)
			for _, v := range r.Violations {
				if v.PFN == pfn && strings.Contains(v.Kind, tc.kind) {
					return
				}
			}
			t.Errorf("no %q violation for frame %#x in %+v", tc.kind, pfn, r.Violations)
		})
	}
}

// TestLiveMapMarksLeakedAndViolatingFrames: in the map of a damaged
// mid-workload dump, a frame with more references than mappings counts as
// leaked and a writable COW mapping as a violation; the clean dump has
// neither, and shows its 32 COW and 4 DLL frames.
func TestLiveMapMarksLeakedAndViolatingFrames(t *testing.T) {
	src := cowDump(t)
	legend := func(path string) map[string]uint64 {
		in, err := inspect.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		info, err := in.Map(io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]uint64{}
		for _, e := range info.Legend {
			m[e.State] = e.Frames
		}
		return m
	}
	if l := legend(src); l["COW"] != 32 || l["DLL"] != 4 || l["leaked"] != 0 || l["violation"] != 0 {
		t.Errorf("clean cow-forked dump: legend %v", l)
	}
	d := inspecttest.Copy(t, src)
	_, leak := findLeaf(t, d, d.Roots[1], mm.FlagCOW)
	d.PutU32(d.Rec(leak, mm.OffRefcount), d.Refcount(leak)+1)
	pte, _ := findLeaf(t, d, d.Roots[0], mm.FlagDLL)
	d.PutU64(pte, d.U64(pte)&^4) // USER frame mapped without the U bit
	if l := legend(d.Path); l["leaked"] != 1 || l["violation"] != 1 {
		t.Errorf("damaged dump: legend %v, want 1 leaked and 1 violation", l)
	}
}
