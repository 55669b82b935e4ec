package vmm

import (
	"fmt"
	"strings"

	"github.com/vmm-dev/vmm/guest/mm"
)

// replayLabel names the host's check of the replay workload's accounting.
const replayLabel = "replay-accounting"

// traceTally counts a trace's lines the way the guest's replay sorts them.
type traceTally struct{ allocs, frees, malformed, invalid uint64 }

func tallyTrace(b []byte) traceTally {
	var t traceTally
	for len(b) > 0 {
		op, pfn, order, rest, ok := mm.ParseTraceLine(b)
		b = rest
		switch {
		case !ok:
			t.malformed++
		case op == '#':
		case !mm.ValidTraceRecord(pfn, order):
			t.invalid++
		case op == 'a':
			t.allocs++
		default:
			t.frees++
		}
	}
	return t
}

// replayMismatches compares what the replay workload reported with the
// trace the host gave it: every alloc line is served, failed or skipped
// for a full table; every free line frees a block or is skipped as a free
// of an unknown page; no more blocks are freed than were served. A replay
// that freed a frame the trace never gave it (as a PFN of 2^64-1 once made
// it free frame 0) breaks the last rule even when the frame metadata stays
// consistent. It returns nil when the replay reported nothing (it did not
// run, or stopped before reporting: its exit status says so).
func replayMismatches(trace []byte, r *Result) []string {
	served, ok := r.ReportValue("replay.served")
	if !ok {
		return nil
	}
	get := func(k string) uint64 { v, _ := r.ReportValue("replay." + k); return v }
	t := tallyTrace(trace)
	failed, full, freed, skipped := get("failed"), get("table_full"), get("freed"), get("skipped_frees")
	var bad []string
	if served+failed+full != t.allocs {
		bad = append(bad, fmt.Sprintf("served %d + failed %d + table full %d != %d alloc lines", served, failed, full, t.allocs))
	}
	if freed+skipped != t.frees {
		bad = append(bad, fmt.Sprintf("freed %d + skipped %d != %d free lines", freed, skipped, t.frees))
	}
	if freed > served {
		bad = append(bad, fmt.Sprintf("freed %d blocks but was served only %d", freed, served))
	}
	if m, i := get("malformed"), get("invalid"); m != t.malformed || i != t.invalid {
		bad = append(bad, fmt.Sprintf("counted %d malformed and %d impossible lines, the trace has %d and %d", m, i, t.malformed, t.invalid))
	}
	return bad
}

// checkReplay adds a checkpoint of its own when the replay's accounting
// does not match the trace: each mismatch is a violation, named in the
// run's reason (a clean replay adds nothing).
func (vm *VM) checkReplay() {
	if len(vm.cfg.Trace) == 0 {
		return
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	bad := replayMismatches(vm.cfg.Trace, &Result{Reports: vm.hc.reports}) // Run fills Result.Reports later
	if len(bad) == 0 {
		return
	}
	cp := Checkpoint{Label: replayLabel, Final: true, Verified: true, Violations: len(bad),
		Error: "replay accounting: " + strings.Join(bad, "; ")}
	vm.result.Reason += "; " + cp.Error
	vm.result.Checkpoints = append(vm.result.Checkpoints, cp)
}
