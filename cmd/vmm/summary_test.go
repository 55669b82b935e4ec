package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/internal/kvmtest"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/inspect/inspecttest"
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

// TestViolationJSONMatchesSchema: a report full of violations (frame and
// scope, all three sources, with details) still validates.
func TestViolationJSONMatchesSchema(t *testing.T) {
	kvmtest.Require(t)
	src := filepath.Join(t.TempDir(), "cow.core")
	if st, _, errs := runCLI("boot", "--kernel", guestPath(t), "--workload", "cow", "--dump", src, "--dump-at", "cow-forked"); st != 0 {
		t.Fatalf("boot: status %d: %s", st, errs)
	}
	d := inspecttest.Copy(t, src)
	pfn := d.FindFrame(0x400, func(_ uint64, flags uint32, order uint8, _ uint32) bool {
		return flags == mm.FlagAllocated|mm.FlagKernel && order == 0
	})
	d.PutU32(d.Rec(pfn, mm.OffFlags), mm.FlagFree)         // a kernel frame turned FREE
	d.PutU64(d.Reg.StatePhys+mm.StateOffCounts, 1<<20)     // a count no list has
	d.PutU64(d.Reg.StatePhys+mm.StateOffFreeFrames, 1<<30) // a total no list has
	st, out, errs := runCLI("inspect", "--json", d.Path)
	if st == 0 || !strings.Contains(out, `"scope"`) || !strings.Contains(out, `"detail"`) {
		t.Fatalf("inspect: status %d: %s\n%s", st, errs, out)
	}
	validateJSON(t, out, "inspect")
}
