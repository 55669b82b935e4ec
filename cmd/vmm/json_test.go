package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/internal/guestbuild"
	"github.com/vmm-dev/vmm/internal/jsonschema"
	"github.com/vmm-dev/vmm/internal/kvmtest"
	"github.com/vmm-dev/vmm/vmm"
)

// validateJSON checks a command's stdout against its definition in
// docs/json.schema.json.
func validateJSON(t *testing.T, out, def string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(guestbuild.RepoRoot(), "docs", "json.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jsonschema.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.Validate([]byte(out), def) {
		t.Errorf("%s output breaks docs/json.schema.json (update it and docs/json.md if the change is meant): %v", def, e)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestJSONOutputsMatchSchema validates the real JSON of boot (a clean run
// with checkpoints, full and incremental, a fault with a crash report and a dump), inspect and
// inspect --frame/--map. bench and bench --floors are validated by
// TestBenchJSON and TestBenchFloorsJSON.
func TestJSONOutputsMatchSchema(t *testing.T) {
	kvmtest.Require(t)
	dir := t.TempDir()
	dump := filepath.Join(dir, "fault.core")
	st, out, errs := runCLI("boot", "--kernel", guestPath(t), "--workload", "paging", "--json")
	if st != 0 {
		t.Fatalf("boot paging: status %d: %s", st, errs)
	}
	validateJSON(t, out, "boot")

	// At 1 GiB --verify auto is incremental: kind, rechecked_frames and
	// full_reason of both kinds of checkpoint.
	st, out, errs = runCLI("boot", "--kernel", guestPath(t), "--workload", "paging", "--mem", "1G", "--json")
	if st != 0 || !strings.Contains(out, `"kind": "incremental"`) || !strings.Contains(out, `"full_reason"`) {
		t.Fatalf("boot paging --mem 1G: status %d, want incremental checkpoints and a full_reason: %s\n%s", st, errs, out)
	}
	validateJSON(t, out, "boot")

	st, out, errs = runCLI("boot", "--kernel", guestPath(t), "--workload", "fault", "--json", "--dump", dump)
	if st != vmm.StatusFault || !strings.Contains(out, `"crash"`) || !strings.Contains(out, `"dump"`) {
		t.Fatalf("boot fault: status %d, want %d with crash and dump: %s\n%s", st, vmm.StatusFault, errs, out)
	}
	validateJSON(t, out, "boot")

	st, out, errs = runCLI("inspect", "--json", dump)
	if st != 0 {
		t.Fatalf("inspect: status %d: %s", st, errs)
	}
	validateJSON(t, out, "inspect")

	st, out, errs = runCLI("inspect", "--json", "--frame", "0x3000000", "--map", filepath.Join(dir, "m.png"), dump)
	if st != 0 {
		t.Fatalf("inspect --frame --map: status %d: %s", st, errs)
	}
	validateJSON(t, out, "inspect_tools")
}

// TestSchemaCatchesDrift: the validation above fails on the drift it is
// there for (a null list, a CamelCase field, a missing schema version).
func TestSchemaCatchesDrift(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(guestbuild.RepoRoot(), "docs", "json.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jsonschema.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	good := `{"schema": "vmm.inspect/1", "path": "d", "reason": "", "vcpus": [], "memory_map": [], "registration": null, "roots": [], "report": null}`
	if errs := s.Validate([]byte(good), "inspect"); len(errs) != 0 {
		t.Fatalf("minimal inspect document refused: %v", errs)
	}
	for _, bad := range []string{
		strings.Replace(good, `"roots": []`, `"roots": null`, 1),
		strings.Replace(good, `"registration": null`, `"registration": {"MetaPhys": 1, "FrameCount": 2, "Version": 2, "StatePhys": 3}`, 1),
		strings.Replace(good, `"schema": "vmm.inspect/1", `, ``, 1),
		strings.Replace(good, `"vcpus": []`, `"vcpus": [{"index": 0, "rip": 1, "rsp": 2, "rbp": 3, "cr3": 4, "cr2": 0, "handler": null}]`, 1),
	} {
		if errs := s.Validate([]byte(bad), "inspect"); len(errs) == 0 {
			t.Errorf("schema accepts %s", bad)
		}
	}
}
