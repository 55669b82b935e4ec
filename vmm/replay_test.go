package vmm

import (
	"strings"
	"testing"
)

// TestReplayCraftedTrace hands the guest, past the CLI's own check of the
// trace, lines naming impossible frames and frees of pages never
// allocated: the replay counts and ignores them and frees nothing. (A PFN
// of 2^64-1 once matched an empty slot of the replay's table and freed
// physical frame 0.)
func TestReplayCraftedTrace(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "replay"
	cfg.Trace = []byte("# crafted\n0,0.0,f,18446744073709551615,0\n0,0.0,a,18446744073709551615,0\n" +
		"0,0.0,a,7,11\n0,0.0,f,5,0\n0,0.0,a,9,1\n0,0.0,f,9,1\nnot a line\n")
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "replay-end")
	wantReport(t, res, "replay.invalid", 3)
	wantReport(t, res, "replay.skipped_frees", 1)
	wantReport(t, res, "replay.served", 1)
	wantReport(t, res, "replay.freed", 1)
	wantReport(t, res, "replay.malformed", 1)
}

// TestReplayMismatches: the host's accounting check flags a replay that
// freed a block it was never served (what the replay did with a PFN of
// 2^64-1 before it validated PFNs), and passes an honest one.
func TestReplayMismatches(t *testing.T) {
	trace := []byte("# c\n0,0.0,f,18446744073709551615,0\n0,0.0,a,9,1\n0,0.0,f,9,1\n0,0.0,f,4,0\nbad\n")
	res := func(kv ...any) *Result {
		r := &Result{}
		for i := 0; i < len(kv); i += 2 {
			r.Reports = append(r.Reports, Report{Key: "replay." + kv[i].(string), Value: uint64(kv[i+1].(int))})
		}
		return r
	}
	honest := res("served", 1, "freed", 1, "skipped_frees", 1, "malformed", 1, "invalid", 1)
	if bad := replayMismatches(trace, honest); bad != nil {
		t.Errorf("honest replay: %q", bad)
	}
	if bad := replayMismatches(trace, &Result{}); bad != nil {
		t.Errorf("no replay reports: %q", bad)
	}
	// The old replay took the impossible PFN as a known one and freed frame 0.
	old := res("served", 0, "failed", 1, "freed", 2, "skipped_frees", 0, "malformed", 1)
	bad := replayMismatches(trace, old)
	if len(bad) == 0 || !strings.Contains(strings.Join(bad, ";"), "freed 2 blocks but was served only 0") {
		t.Errorf("old replay: %q", bad)
	}
}
