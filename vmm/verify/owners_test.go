package verify

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/vmm-dev/vmm/guest/mm"
)

func has(r *Report, pfn uint64, kind string) bool {
	for _, v := range r.Violations {
		if v.PFN == pfn && strings.Contains(v.Kind, kind) {
			return true
		}
	}
	return false
}

// TestDeclaredHoldings: with the boot info known, an allocated block is a
// leak until the guest declares it (directly or in a table); a
// declaration naming something that is not an allocated block of that
// order, or a damaged Holdings, is itself a violation.
func TestDeclaredHoldings(t *testing.T) {
	mem := make(flatMemory, 1024*mm.PageSize)
	var b mm.Buddy
	var boot mm.BootAllocator
	if err := b.Setup(uintptrOf(mem), &boot, []mm.Range{{Base: 0x20000, Size: uint64(len(mem)) - 0x20000}}, nil, nil); err != mm.ErrNone {
		t.Fatal(err)
	}
	meta, n, st := b.Registration()
	in := Input{Registration: Registration{MetaPhys: meta, FrameCount: n, Version: uint64(mm.LayoutVersion), StatePhys: st}, Boot: &Boot{}}
	tok := b.Lock()
	blk, _ := b.Alloc(2, &tok)
	tbl, _ := b.Alloc(0, &tok)
	listed, _ := b.Alloc(1, &tok)
	b.Unlock(&tok)
	hold := mem[0x1000:] // the holdings live in the first frame (not RAM for the allocator)
	h := (*mm.Holdings)(unsafe.Pointer(&hold[0]))
	in.Holdings = 0x1000
	verifyHas := func(pfn uint64, kind string, want bool) {
		t.Helper()
		r, err := Verify(mem, in)
		if err != nil {
			t.Fatal(err)
		}
		if has(r, pfn, kind) != want {
			t.Fatalf("frame %#x %q: want %v, report %v", pfn, kind, want, r.Violations)
		}
	}
	h.Magic = mm.HoldingsMagic
	verifyHas(blk.PFN(), "owned by nothing", true)
	verifyHas(listed.PFN(), "owned by nothing", true)

	h.N = 2
	h.Decl[0] = mm.Holding{Block: mm.HeldBlock(blk, 2)}
	table := mem[tbl.StartAddress():][:mm.PageSize]
	*(*uint64)(unsafe.Pointer(&table[8])) = mm.HeldBlock(listed, 1) // stride 2: the value is the 2nd word
	h.Decl[1] = mm.Holding{Block: mm.HeldBlock(tbl, 0), Table: tbl.StartAddress(), Words: 512, Stride: 2}
	r, err := Verify(mem, in)
	if err != nil || r.TotalViolations != 0 {
		t.Fatalf("declared: %v %v", err, r.Violations)
	}

	h.Decl[0].Block = mm.HeldBlock(blk, 3) // wrong order
	verifyHas(blk.PFN(), "not an allocated block of its order", true)
	h.Decl[0].Block = mm.HeldBlock(blk, 2)
	h.Decl[1].Stride = 0
	verifyHas(tbl.PFN(), "declaration out of range", true)
	h.Decl[1].Stride = 2
	h.Decl[2], h.N = mm.Holding{Block: mm.HeldBlock(listed, 1)}, 3 // a block handed out twice
	verifyHas(listed.PFN(), "held twice", true)
	h.N = 2
	h.Magic = 0
	verifyHas(in.Holdings/mm.PageSize, "holdings table corrupt", true)
}
