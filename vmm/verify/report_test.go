package verify

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
)

// TestSummaryViolationsHaveAScope: violations about a free list, a cache
// or the totals say so instead of putting an order or LinkNone in the
// frame slot of the text report.
func TestSummaryViolationsHaveAScope(t *testing.T) {
	mem, b, in := newGuest(t, 1024)
	b.State().Counts[4]++
	b.State().FreeFrames--
	r, err := Verify(mem, in)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	r.WriteText(&text)
	for _, want := range []string{"free list of order 4: block-count", "allocator totals: free-frames"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String(), "frame 0x4 ") || strings.Contains(text.String(), "0xffffffffffffffff (phys") {
		t.Errorf("an order or LinkNone printed as a frame:\n%s", text.String())
	}
}

// TestBadHeadReportedOnce: a head whose order claims frames that are
// blocks of their own is one violation naming the head, not one per
// frame the order covers.
func TestBadHeadReportedOnce(t *testing.T) {
	mem, b, in := newGuest(t, 1024)
	tok := b.Lock()
	var got []mm.PhysFrame
	for i := 0; i < 64; i++ {
		f, err := b.Alloc(0, &tok)
		if err != mm.ErrNone {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	b.Unlock(&tok)
	head := uint64(0)
	for _, f := range got {
		p := f.PFN()
		if p%8 != 0 {
			continue
		}
		all := true
		for q := p; q < p+8; q++ {
			v := b.View()
			r, _ := v.Record(q)
			all = all && r.Flags == mm.FlagAllocated|mm.FlagKernel && r.Order == 0
		}
		if all {
			head = p
			break
		}
	}
	if head == 0 {
		t.Fatal("no 8 consecutive order-0 kernel frames")
	}
	// The order byte of head's record: order 3 claims head..head+7.
	mem[in.MetaPhys+head*mm.FrameMetaSize+mm.OffOrder] = 3
	r, err := Verify(mem, in)
	if err != nil {
		t.Fatal(err)
	}
	if r.TotalViolations > 2 || len(r.Violations) == 0 || !strings.Contains(r.Violations[0].String(), fmt.Sprintf("headed by frame %#x", head)) {
		t.Fatalf("%d violations: %v", r.TotalViolations, r.Violations)
	}
}

// TestCacheEntryOutsideTheArrayHasAScope: a cache entry naming no frame
// is reported against its cache and slot, not as a frame.
func TestCacheEntryOutsideTheArrayHasAScope(t *testing.T) {
	mem, b, in := newGuest(t, 1024)
	if err := b.SetCPUs(1); err != mm.ErrNone {
		t.Fatal(err)
	}
	f, err := b.AllocLocal(0, mm.FlagKernel)
	if err != mm.ErrNone {
		t.Fatal(err)
	}
	b.FreeLocal(0, f) // the cache now holds frames
	pc := &b.State().PCP[0]
	pc.PFN[(pc.Head+pc.Count-1)%mm.PCPCapacity] = mm.LinkNone
	r, verr := Verify(mem, in)
	if verr != nil {
		t.Fatal(verr)
	}
	var text strings.Builder
	r.WriteText(&text)
	if !strings.Contains(text.String(), "per-CPU cache of cpu 0, slot") || strings.Contains(text.String(), "frame 0xffffffffffffffff") {
		t.Fatalf("report:\n%s", text.String())
	}
}
