package vmm

import (
	"testing"
)

// TestWorkloadPoison boots with bad frames in RAM (above 1 MiB, below RAM
// top, clear of the firmware area, the metadata at 1 MiB, the kernel image
// at 4-6 MiB and the per-CPU area after it): the guest finds them POISONED,
// never gets them from the allocator, poisons two more at run time, and the
// host verifier counts every POISONED frame.
func TestWorkloadPoison(t *testing.T) {
	cfg := bootConfig(t) // 128 MiB: PFNs 0x100..0x7fff are RAM
	bad := []uint64{0x2000, 0x2001, 0x3ff0, 0x7fff}
	cfg.BadFrames = bad
	cfg.Workload = "poison"
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "poison-drained", "poison", "exit")
	wantReport(t, res, "poison.boot_bad", uint64(len(bad)))
	wantReport(t, res, "poison.runtime", 2)
	wantReport(t, res, "poison.handed_out_bad", 0)
	if len(res.Checkpoints) == 0 {
		t.Fatal("no checkpoints")
	}
	for _, c := range res.Checkpoints {
		if c.Report == nil {
			continue
		}
		want := uint64(len(bad))
		if c.Label != "poison-drained" {
			want += 2 // the run-time poisons
		}
		got := uint64(0)
		for _, f := range c.Report.ByFlags {
			if f.Flags == "POISONED" {
				got = f.Frames
			}
		}
		if got != want {
			t.Errorf("checkpoint %q: host counts %d POISONED frames, want %d (%+v)", c.Label, got, want, c.Report.ByFlags)
		}
		if c.Label == "poison-drained" && c.Report.FreeFrames != 0 {
			t.Errorf("poison-drained: %d frames still free", c.Report.FreeFrames)
		}
	}
}

// TestWorkloadPoisonWithoutBadFrames: no --bad-frames, only the two
// run-time poisons.
func TestWorkloadPoisonWithoutBadFrames(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "poison"
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "poison")
	wantReport(t, res, "poison.boot_bad", 0)
	wantReport(t, res, "poison.runtime", 2)
	wantReport(t, res, "poison.handed_out_bad", 0)
}

// TestWorkloadBench runs the benchmark workload and checks every figure is
// reported and plausible (non-zero, below 1 ms per operation).
func TestWorkloadBench(t *testing.T) {
	cfg := bootConfig(t)
	cfg.MemBytes = 256 << 20
	cfg.Workload = "bench"
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "bench")
	for _, k := range []string{"bench.order0_pair_ps", "bench.order0_alloc_ps", "bench.order3_alloc_ps", "bench.order9_alloc_ps"} {
		v, ok := res.ReportValue(k)
		if !ok || v == 0 || v > 1e9 {
			t.Errorf("%s = %d (reported %v)", k, v, ok)
		}
	}
	if v, ok := res.ReportValue("bench.init_gib_ns"); !ok || v == 0 || v > 1e9 {
		t.Errorf("bench.init_gib_ns = %d (reported %v)", v, ok)
	}
	if v, ok := res.ReportValue("bench.tsc_khz"); !ok || v == 0 {
		t.Errorf("bench.tsc_khz = %d (reported %v)", v, ok)
	}
}
