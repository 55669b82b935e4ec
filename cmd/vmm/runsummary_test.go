package main

import (
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/vmm"
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
