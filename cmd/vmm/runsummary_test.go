package main

import (
	"debug/elf"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/diag"
)

// A program stopped by a timeout or a signal never reaches the kernel's
// teardown, which sends the run's figures: the summary must say they are
// unknown, not print zeros and "syscalls: none" as if they were measured.
func TestRunSummaryOfAProgramThatDidNotFinish(t *testing.T) {
	stopped := &vmm.Result{Outcome: vmm.OutcomeTimeout, Reason: "guest did not exit within 1s", ExitStatus: vmm.StatusTimeout}
	s := summarizeRun(stopped)
	if s.Reported {
		t.Fatalf("summary of a run without the kernel's reports says Reported")
	}
	var b strings.Builder
	printRunSummary(&b, stopped, s)
	if out := b.String(); !strings.Contains(out, "did not finish") || strings.Contains(out, "syscalls: none") {
		t.Errorf("summary of an unfinished program:\n%s", out)
	}

	done := &vmm.Result{Outcome: vmm.OutcomeExit, Checkpoints: []vmm.Checkpoint{{Violations: 2}, {Violations: 1}}, Reports: []vmm.Report{{Key: "sys.write", Value: 2}, {Key: "run.page_faults", Value: 7}}}
	s = summarizeRun(done)
	if s.Violations != 3 {
		t.Errorf("run.violations %d, want the checkpoints' total 3", s.Violations)
	}
	b.Reset()
	printRunSummary(&b, done, s)
	if out := b.String(); !s.Reported || !strings.Contains(out, "7 page faults") || !strings.Contains(out, "syscalls: write 2") {
		t.Errorf("summary of a finished program (Reported %v):\n%s", s.Reported, out)
	}
}

// A vCPU stopped in the program (a timeout, a signal) is placed from the
// program's own line table; one in the kernel keeps the VMM's account.
func TestPlaceProgramVCPUs(t *testing.T) {
	f, err := elf.Open(buildProgram(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	var mainAt uint64
	for _, s := range syms {
		if s.Name == "main.main" {
			mainAt = s.Value
		}
	}
	sym, err := diag.NewSymbolizer(f)
	if err != nil || mainAt == 0 {
		t.Fatalf("symbolizer %v, main.main at %#x", err, mainAt)
	}
	r := &vmm.Result{Outcome: vmm.OutcomeTimeout, VCPUs: []vmm.VCPUStats{
		{CPU: 0, RIP: mainAt + 4, Where: "unknown"}, {CPU: 1, RIP: firmware.PhysMapBase + 0x1000, Where: "kernel"}}}
	var b strings.Builder
	placeProgramVCPUs(&b, r, sym)
	if !strings.HasPrefix(r.VCPUs[0].Where, "main.main+0x4 (") || r.VCPUs[1].Where != "kernel" {
		t.Errorf("vCPUs placed at %q and %q", r.VCPUs[0].Where, r.VCPUs[1].Where)
	}
	if out := b.String(); !strings.Contains(out, "vCPU 0 was in the program at main.main+0x4") || strings.Contains(out, "vCPU 1") {
		t.Errorf("report:\n%s", out)
	}
}
