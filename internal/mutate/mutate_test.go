package mutate

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/internal/guestbuild"
	"github.com/vmm-dev/vmm/internal/kvmtest"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/verify"
)

var (
	runMutants = flag.Bool("mutate", false, "build and boot every mutant (slow; make mutate)")
	only       = flag.String("mutate.only", "", "comma-separated mutant names to run (default all)")
	tableOut   = flag.String("mutate.out", "", "write the results table (markdown) to this file")
)

// TestCatalogueApplies is the drift check of the default test run: every
// mutant's every edit finds its search text exactly once in the current
// source, in a copy; the working tree is not touched.
func TestCatalogueApplies(t *testing.T) {
	if len(Catalogue) < 20 {
		t.Fatalf("%d mutants, the issue asks for at least 20", len(Catalogue))
	}
	root := guestbuild.RepoRoot()
	src := t.TempDir()
	if err := CopyTree(root, src); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for i := range Catalogue {
		m := &Catalogue[i]
		if names[m.Name] {
			t.Errorf("mutant name %q used twice", m.Name)
		}
		names[m.Name] = true
		if m.Workload == "" || m.Bug == "" || len(m.Edits) == 0 {
			t.Errorf("mutant %s: needs a workload, a bug description and edits", m.Name)
		}
		if m.Frames == BadFrames && len(m.BadFrames) == 0 {
			t.Errorf("mutant %s: frame rule bad-frames without bad frames", m.Name)
		}
		dst := t.TempDir()
		if err := CopyTree(src, dst); err != nil {
			t.Fatal(err)
		}
		if err := Apply(dst, m); err != nil {
			t.Error(err)
		}
	}
	// The working tree is as it was: no probe file appeared in it.
	if _, err := os.Stat(filepath.Join(root, "guest", "mm", "zz_mutant_probe.go")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("probe file in the working tree: %v", err)
	}
}

func TestApplyFailsLoudly(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "guest", "mm"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "guest", "a.go")
	const text = "x := 1\ny := 1\nz := 2\n"
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, want string
	}{
		{"missing", "w := 3", "not found"},
		{"ambiguous", ":= 1", "found 2 times"},
	} {
		m := &Mutant{Name: tc.name, Edits: []Edit{{File: "guest/a.go", Old: "z := 2", New: "z := 3"}, {File: "guest/a.go", Old: tc.old, New: "q"}}}
		err := Apply(root, m)
		if !errors.Is(err, ErrDrift) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Apply = %v, want ErrDrift saying %q", tc.name, err, tc.want)
		}
		// Nothing was written: the first edit applied in memory only.
		if b, _ := os.ReadFile(file); string(b) != text {
			t.Errorf("%s: file changed to %q after a failed Apply", tc.name, b)
		}
	}
	m := &Mutant{Name: "ok", Edits: []Edit{{File: "guest/a.go", Old: "z := 2", New: "z := 3"}, {File: "guest/a.go", Old: "y := 1", New: "y := 4"}}}
	if err := Apply(root, m); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x := 1\ny := 4\nz := 3\n" {
		t.Errorf("after Apply: %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "guest", "mm", "zz_mutant_probe.go")); err != nil {
		t.Errorf("probe file not written: %v", err)
	}
}

func TestProbeSlotsMatch(t *testing.T) {
	if !strings.Contains(probeFile, fmt.Sprintf("const ProbeSlots = %d\n", ProbeSlots)) {
		t.Error("ProbeSlots differs between the harness and the probe file")
	}
}

func hostCheckpoint(label string, vs ...verify.Violation) vmm.Checkpoint {
	return vmm.Checkpoint{Label: label, Verified: true, Violations: len(vs), Report: &verify.Report{Violations: vs, TotalViolations: len(vs)}}
}

func TestClassify(t *testing.T) {
	exit := func(st int, cps ...vmm.Checkpoint) *vmm.Result {
		return &vmm.Result{Outcome: vmm.OutcomeExit, ExitStatus: st, Checkpoints: cps}
	}
	probe := &Mutant{Name: "p", Frames: ProbeFrames}
	for _, tc := range []struct {
		name  string
		m     *Mutant
		o     Observation
		want  Status
		check string // Caught.Checker when killed
	}{
		{"host names a probed frame", probe, Observation{Probe: []uint64{7, 9},
			Result: exit(vmm.StatusViolation, hostCheckpoint("a", verify.Violation{PFN: 3, Kind: "x"}), hostCheckpoint("exit", verify.Violation{PFN: 9, Kind: "y"}))}, Killed, "host"},
		{"guest line names a probed frame", probe, Observation{Probe: []uint64{0x1a2},
			Result: exit(firmware.GuestExitViolations), Console: "noise\nmm check: frame 0x1a2: alloc-refcount expected 0x1 actual 0x0\n"}, Killed, "guest"},
		{"violations elsewhere", probe, Observation{Probe: []uint64{7},
			Result: exit(vmm.StatusViolation, hostCheckpoint("a", verify.Violation{PFN: 3}))}, WrongFrame, ""},
		{"workload noticed only", probe, Observation{Probe: []uint64{7}, Result: exit(firmware.GuestExitWorkloadFail, hostCheckpoint("exit"))}, WorkloadOnly, ""},
		{"nothing noticed", probe, Observation{Probe: []uint64{7}, Result: exit(0, hostCheckpoint("exit"))}, Survived, ""},
		{"crash", probe, Observation{Probe: []uint64{7}, Result: &vmm.Result{Outcome: vmm.OutcomeFault, ExitStatus: vmm.StatusFault}}, Crashed, ""},
		{"right frame, wrong exit", probe, Observation{Probe: []uint64{7},
			Result: exit(firmware.GuestExitWorkloadFail, hostCheckpoint("exit", verify.Violation{PFN: 7}))}, WrongExit, "host"},
		{"any frame", &Mutant{Frames: AnyFrame}, Observation{Result: exit(vmm.StatusViolation, hostCheckpoint("a", verify.Violation{PFN: ^uint64(0)}))}, Killed, "host"},
		{"bad frames", &Mutant{Frames: BadFrames}, Observation{BadFrames: []uint64{0x3001},
			Result: exit(vmm.StatusViolation, hostCheckpoint("a", verify.Violation{PFN: 0x3000}, verify.Violation{PFN: 0x3001}))}, Killed, "host"},
		{"kernel range", &Mutant{Frames: KernelFrames}, Observation{Kernel: [2]uint64{0x100, 0x200},
			Result: exit(vmm.StatusViolation, hostCheckpoint("a", verify.Violation{PFN: 0x200}))}, WrongFrame, ""},
		{"firmware", &Mutant{Frames: FirmwareFrames}, Observation{Result: exit(vmm.StatusViolation, hostCheckpoint("a", verify.Violation{PFN: 1}))}, Killed, "host"},
		{"unreadable registration", &Mutant{Frames: AnyFrame}, Observation{Result: exit(vmm.StatusViolation, vmm.Checkpoint{Label: "exit", Error: "bad", Violations: 1})}, Killed, "host"},
	} {
		v := Classify(tc.m, &tc.o)
		if v.Status != tc.want || (v.Status == Killed || v.Status == WrongExit) && v.Caught.Checker != tc.check {
			t.Errorf("%s: %+v, want %s by %q", tc.name, v, tc.want, tc.check)
		}
	}
}

// TestMutants is the mutation test itself (go test ./internal/mutate
// -mutate, or make mutate): each mutant is built and booted once, one at a
// time; it fails if any mutant is not killed.
func TestMutants(t *testing.T) {
	if !*runMutants {
		t.Skip("mutation test: run with -mutate (make mutate)")
	}
	kvmtest.Require(t)
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	opt := Options{Root: guestbuild.RepoRoot(), Timeout: 60 * time.Second}
	var verdicts []Verdict
	var ms []*Mutant
	for i := range Catalogue {
		m := &Catalogue[i]
		if len(want) > 0 && !want[m.Name] {
			continue
		}
		start := time.Now()
		v := Run(m, opt)
		t.Logf("%-22s %-13s exit=%d findings=%d %s (%v)", m.Name, v.Status, v.ExitStatus, v.Findings, describe(m, v), time.Since(start).Round(time.Millisecond))
		if v.Status != Killed {
			t.Logf("    probed %#x", v.Probed)
			for _, f := range v.Sample {
				t.Logf("    %s %s: %s frame %s", f.Checker, f.Checkpoint, f.Kind, pfnString(f.PFN))
			}
		}
		verdicts = append(verdicts, v)
		ms = append(ms, m)
	}
	table := Table(ms, verdicts)
	t.Logf("\n%s", table)
	if *tableOut != "" {
		if err := os.WriteFile(*tableOut, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range verdicts {
		if v.Status != Killed {
			t.Errorf("mutant %s %s: %s", ms[i].Name, v.Status, describe(ms[i], v))
		}
	}
}
