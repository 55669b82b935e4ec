package vmm

import "testing"

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
