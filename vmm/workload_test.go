package vmm

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmm-dev/vmm/internal/guestbuild"
)

// verifiedClean fails unless every checkpoint was verified by the host and
// found no violation, and the guest exited 0.
func verifiedClean(t *testing.T, res *Result, out string, wantCheckpoints ...string) {
	t.Helper()
	if res.Outcome != OutcomeExit || res.ExitStatus != 0 {
		t.Fatalf("outcome %s status %d (%s)\n%s", res.Outcome, res.ExitStatus, res.Reason, out)
	}
	seen := map[string]bool{}
	for _, c := range res.Checkpoints {
		if !c.Verified || c.Violations != 0 || c.Report == nil {
			t.Errorf("checkpoint %q: verified %v, violations %d, error %q", c.Label, c.Verified, c.Violations, c.Error)
		}
		seen[c.Label] = true
	}
	for _, l := range wantCheckpoints {
		if !seen[l] {
			t.Errorf("no checkpoint %q (have %+v)", l, res.Checkpoints)
		}
	}
}

func wantReport(t *testing.T, res *Result, key string, want uint64) {
	t.Helper()
	if v, ok := res.ReportValue(key); !ok || v != want {
		t.Errorf("%s = %d (reported %v), want %d", key, v, ok, want)
	}
}

func TestWorkloadStress(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "stress"
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "stress-full", "stress", "exit")
	allocs, _ := res.ReportValue("stress.allocs")
	wantReport(t, res, "stress.frees", allocs)
	wantReport(t, res, "stress.oom", 256)
	// At the full checkpoint nearly every frame was allocated.
	for _, c := range res.Checkpoints {
		if c.Label == "stress-full" && c.Report.FreeFrames > c.Report.Frames/100 {
			t.Errorf("stress-full: %d of %d frames still free", c.Report.FreeFrames, c.Report.Frames)
		}
	}
}

func TestWorkloadPaging(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "paging"
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "paging-mapped", "paging-unmapped")
	wantReport(t, res, "paging.spaces", 4)
	wantReport(t, res, "paging.mapped", 4*96)
	wantReport(t, res, "paging.shared", 3*16)
	for _, c := range res.Checkpoints {
		if c.Label == "paging-mapped" {
			// 4 spaces x (96 private + 16 shared-in for 3 of them).
			if c.Report.Roots != 4 || c.Report.Mappings != 4*96+3*16 {
				t.Errorf("paging-mapped: host saw %d roots, %d mappings", c.Report.Roots, c.Report.Mappings)
			}
		}
	}
}

func TestWorkloadCOW(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "cow"
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "cow-forked", "cow-written")
	wantReport(t, res, "cow.child_faults", 16) // one fault per page the child wrote
	wantReport(t, res, "cow.copies", 16)
	wantReport(t, res, "cow.takeovers", 8) // the parent held the last reference
	for _, c := range res.Checkpoints {
		if c.Label == "cow-forked" && c.Report.Mappings != 2*(32+4) {
			t.Errorf("cow-forked: host saw %d mappings, want %d", c.Report.Mappings, 2*(32+4))
		}
	}
}

func TestWorkloadReplay(t *testing.T) {
	path := filepath.Join(guestbuild.RepoRoot(), "testdata", "linux-pagealloc-gobuild-400k.csv.gz")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the trace is part of the repository: %v", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	trace, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := bootConfig(t)
	cfg.MemBytes = 512 << 20
	cfg.Workload = "replay"
	cfg.Trace = trace
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "replay-end")
	served, _ := res.ReportValue("replay.served")
	failed, _ := res.ReportValue("replay.failed")
	freed, _ := res.ReportValue("replay.freed")
	skipped, _ := res.ReportValue("replay.skipped_frees")
	allocs := uint64(bytes.Count(trace, []byte(",a,")))
	frees := uint64(bytes.Count(trace, []byte(",f,")))
	if served+failed != allocs || freed+skipped != frees {
		t.Errorf("served %d + failed %d != %d allocs, or freed %d + skipped %d != %d frees", served, failed, allocs, freed, skipped, frees)
	}
	if served == 0 {
		t.Error("nothing served")
	}
	t.Logf("replay in 512 MiB: served %d, failed %d, freed %d, skipped %d", served, failed, freed, skipped)
}

func TestDefaultWorkloadsAllVerified(t *testing.T) {
	cfg := bootConfig(t)
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "hello", "stress", "paging", "cow", "replay", "exit")
}
