package inspect_test

import (
	"os"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/inspect"
	"github.com/vmm-dev/vmm/vmm/inspect/inspecttest"
	"github.com/vmm-dev/vmm/vmm/verify"
)

func TestMain(m *testing.M) {
	code := m.Run()
	inspecttest.Cleanup()
	os.Exit(code)
}

const testMem = 128 << 20

// mutation damages a copy of a clean dump and says which frame and rule the
// verifier must report; extra are page-table roots to verify besides the
// registered ones.
type mutation struct {
	name        string
	damage      func(t *testing.T, d *inspecttest.Dump) (pfn uint64, extra []uint64)
	kind, field string
}

// kernelHead finds an order-0 KERNEL head with refcount 1 at or above from.
func kernelHead(d *inspecttest.Dump, from uint64) uint64 {
	return d.FindFrame(from, func(_ uint64, f uint32, o uint8, ref uint32) bool {
		return f == mm.FlagAllocated|mm.FlagKernel && o == 0 && ref == 1
	})
}

// listWith returns an order whose free list has at least n blocks.
func listWith(t *testing.T, d *inspecttest.Dump, n, minOrder, maxOrder int) int {
	for k := minOrder; k <= maxOrder; k++ {
		if len(d.List(k)) >= n {
			return k
		}
	}
	t.Fatalf("no free list of order %d..%d with %d blocks", minOrder, maxOrder, n)
	return 0
}

// spareFrames are free frames inside the last top-order block: crafted
// page tables go there (tables 0..3, then the frames mapped).
func spareFrames(t *testing.T, d *inspecttest.Dump) []uint64 {
	l := d.List(mm.MaxOrder)
	if len(l) == 0 {
		t.Fatal("no top-order free block")
	}
	h := l[len(l)-1]
	return []uint64{h + 1, h + 2, h + 3, h + 4, h + 5}
}

// asUser turns an order-0 KERNEL head into a USER head with the given
// modifiers and refcount, and maps it once from a crafted address space.
func asUser(t *testing.T, d *inspecttest.Dump, mods, ref uint32, writable bool) (uint64, []uint64) {
	k := kernelHead(d, 0x200)
	d.PutU32(d.Rec(k, mm.OffFlags), mm.FlagAllocated|mm.FlagUser|mods)
	d.PutU32(d.Rec(k, mm.OffRefcount), ref)
	s := spareFrames(t, d)
	root := d.BuildSpace([4]uint64(s[:4]), []inspecttest.Leaf{{PFN: k, Writable: writable, User: true}})
	return k, []uint64{root}
}

var mutations = []mutation{
	{"flag bits: KERNEL|USER", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		k := kernelHead(d, 0x100)
		d.PutU32(d.Rec(k, mm.OffFlags), mm.FlagAllocated|mm.FlagKernel|mm.FlagUser)
		return k, nil
	}, "illegal-flags", "flags"},
	{"flag bits: reserved PERCPU bit", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		h := d.List(listWith(t, d, 1, 0, mm.MaxOrder))[0]
		d.PutU32(d.Rec(h, mm.OffFlags), mm.FlagFree|mm.FlagPerCPU)
		return h, nil
	}, "illegal-flags", "flags"},
	{"refcount drift: free head holds a reference", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		h := d.List(listWith(t, d, 1, 0, mm.MaxOrder))[0]
		d.PutU32(d.Rec(h, mm.OffRefcount), 1)
		return h, nil
	}, "free-refcount", "refcount"},
	{"refcount drift: allocated head at zero", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		k := kernelHead(d, 0x100)
		d.PutU32(d.Rec(k, mm.OffRefcount), 0)
		return k, nil
	}, "alloc-refcount", "refcount"},
	{"refcount drift: refcount 3, mapped once", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		return asUser(t, d, mm.FlagAnonymous, 3, true)
	}, "refcount differs from the number of mappings", "refcount"},
	{"broken prev link", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		second := d.List(listWith(t, d, 2, 0, mm.MaxOrder))[1]
		d.PutU64(d.Rec(second, mm.OffPrev), second) // points at itself
		return second, nil
	}, "prev-mismatch", "prev"},
	{"broken next link", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		h := d.List(listWith(t, d, 1, 0, mm.MaxOrder))[0]
		d.PutU64(d.Rec(h, mm.OffNext), d.Reg.FrameCount+7) // past the array
		return h, nil
	}, "next-range", "next"},
	{"wrong order", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		k := listWith(t, d, 1, 1, mm.MaxOrder)
		h := d.List(k)[0]
		d.Write(d.Rec(h, mm.OffOrder), []byte{uint8(k - 1)})
		return h, nil
	}, "list-target", "list"},
	{"misaligned free block", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		for k := 0; k < mm.MaxOrder; k++ {
			for _, h := range d.List(k) {
				if h%(1<<(k+1)) != 0 { // one order up, h is not aligned
					d.Write(d.Rec(h, mm.OffOrder), []byte{uint8(k + 1)})
					return h, nil
				}
			}
		}
		t.Fatal("no free head off its upper alignment")
		return 0, nil
	}, "misaligned", "order"},
	{"double membership in two free lists", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		j := listWith(t, d, 1, 0, mm.MaxOrder)
		k := listWith(t, d, 1, j+1, mm.MaxOrder)
		lj, other := d.List(j), d.Head(k)
		d.PutU64(d.Rec(lj[len(lj)-1], mm.OffNext), other) // list j runs on into list k
		return other, nil
	}, "list-target", "list"},
	{"FREE frame still mapped", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		s := spareFrames(t, d)
		root := d.BuildSpace([4]uint64(s[:4]), []inspecttest.Leaf{{PFN: s[4], Writable: true, User: true}})
		return s[4], []uint64{root}
	}, "FREE frame is mapped", "mappings"},
	{"COW frame mapped writable", func(t *testing.T, d *inspecttest.Dump) (uint64, []uint64) {
		return asUser(t, d, mm.FlagCOW, 1, true)
	}, "COW frame mapped writable", "pte"},
}

// TestMutations damages a real dump one way at a time and checks that the
// verifier names the damaged frame and the broken rule.
func TestMutations(t *testing.T) {
	src := inspecttest.Shared(t, testMem)
	clean := verifyPath(t, src, nil)
	if clean.TotalViolations != 0 {
		t.Fatalf("clean dump has violations: %v", clean.Violations)
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			d := inspecttest.Copy(t, src)
			pfn, extra := m.damage(t, d)
			rep := verifyPath(t, d.Path, extra)
			if !hasViolation(rep, pfn, m.kind, m.field) {
				t.Fatalf("no %q/%s violation at frame %#x; report:\n%s", m.kind, m.field, pfn, reportText(rep))
			}
			t.Logf("frame %#x: %s/%s found among %d violations", pfn, m.kind, m.field, rep.TotalViolations)
		})
	}
}

func verifyPath(t *testing.T, path string, extra []uint64) *verify.Report {
	t.Helper()
	in, err := inspect.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.ExtraRoots = extra
	rep, err := in.Verify()
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func hasViolation(r *verify.Report, pfn uint64, kind, field string) bool {
	for _, v := range r.Violations {
		if v.PFN == pfn && v.Kind == kind && v.Field == field {
			return true
		}
	}
	return false
}

func reportText(r *verify.Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}
