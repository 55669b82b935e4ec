package main

import (
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// TestSummaryListsViolations: the text summary lists each checkpoint's
// first violations with frame, kind, expected and actual, never shows an
// order or LinkNone as a frame, and says how many it left out.
func TestSummaryListsViolations(t *testing.T) {
	var vs []verify.Violation
	vs = append(vs, verify.Violation{PFN: 0x1234, Phys: 0x1234000, Source: "metadata", Kind: "free-refcount", Field: "refcount", Expected: 0, Actual: 2},
		verify.Violation{PFN: 3, Source: "metadata", Scope: "free list of order 3", Kind: "block-count", Field: "count", Expected: 4, Actual: 5},
		verify.Violation{PFN: mm.LinkNone, Source: "metadata", Scope: "allocator totals", Kind: "free-frames", Field: "count", Expected: 9, Actual: 8})
	for i := 0; i < 10; i++ {
		vs = append(vs, verify.Violation{PFN: 0x2000 + uint64(i), Source: "pagetable", Kind: "allocated block owned by nothing (leak)", Field: "owner", Expected: 1})
	}
	r := &vmm.Result{Outcome: vmm.OutcomeExit, Reason: "guest exited", ExitStatus: vmm.StatusViolation,
		Checkpoints: []vmm.Checkpoint{{Label: "stress", Verified: true, Violations: 40, Report: &verify.Report{Violations: vs, TotalViolations: 40}}}}
	var b strings.Builder
	printSummary(&b, r, 0)
	out := b.String()
	for _, want := range []string{
		"[metadata] frame 0x1234 (phys 0x1234000): free-refcount: refcount: expected 0x0, actual 0x2",
		"[metadata] free list of order 3: block-count: count: expected 0x4, actual 0x5",
		"[metadata] allocator totals: free-frames",
		"[pagetable] frame 0x2000 (phys 0x0): allocated block owned by nothing (leak)",
		"... and 32 more",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "frame 0x3 ") || strings.Contains(out, "0xffffffffffffffff") {
		t.Errorf("a summary-level violation is printed as a frame:\n%s", out)
	}
}
