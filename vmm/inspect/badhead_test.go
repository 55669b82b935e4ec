package inspect_test

import (
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/inspect/inspecttest"
)

// TestBadHeadReportedOnce: the head of a top-order free block turned
// ALLOCATED with no owner is one violation (its tails are a consequence,
// not 1023 more), so an unrelated bug elsewhere (a FREE head holding
// references) is still listed and the total stays small.
func TestBadHeadReportedOnce(t *testing.T) {
	d := inspecttest.Copy(t, inspecttest.Shared(t, testMem))
	const head, other = 0x3000, 0x5000 // the frames QA damaged; the bug elsewhere comes after the bad block
	for _, p := range []uint64{head, other} {
		if d.Flags(p) != mm.FlagFree || d.Order(p) != mm.MaxOrder {
			t.Fatalf("frame %#x is not a free top-order head in the paging dump (flags %#x order %d)", p, d.Flags(p), d.Order(p))
		}
	}
	d.PutU32(d.Rec(head, mm.OffFlags), mm.FlagAllocated)
	d.PutU32(d.Rec(other, mm.OffRefcount), 0xffffffff)

	rep := verifyPath(t, d.Path, nil)
	text := reportText(rep)
	if !hasViolation(rep, head, "illegal-flags", "flags") {
		t.Fatalf("bad head %#x not reported; report:\n%s", head, text)
	}
	if !hasViolation(rep, other, "free-refcount", "refcount") {
		t.Fatalf("free-refcount at %#x not listed; report:\n%s", other, text)
	}
	for _, v := range rep.Violations {
		if v.PFN > head && v.PFN < head+1<<mm.MaxOrder && v.Scope == "" {
			t.Errorf("tail %#x of the bad head reported: %v", v.PFN, v)
		}
		if v.PFN == head && v.Kind == "illegal-flags" && !strings.Contains(v.Detail, "1024 frames") {
			t.Errorf("head's detail does not say how many frames it covers: %v", v)
		}
	}
	if rep.TotalViolations > 20 {
		t.Fatalf("%d violations for two bad records; report:\n%s", rep.TotalViolations, text)
	}
	t.Logf("%d violations:\n%s", rep.TotalViolations, text)
}
