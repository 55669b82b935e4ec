package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/internal/guestbuild"
	"github.com/vmm-dev/vmm/internal/kvmtest"
	"github.com/vmm-dev/vmm/vmm"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	st := run(args, &out, &errb)
	return st, out.String(), errb.String()
}

func guestPath(t *testing.T) string {
	t.Helper()
	p, err := guestbuild.Path(t)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBootRejectsBadFlagsBeforeAnyVM: StatusUsage and one line, for every kind
// of wrong value. None of these needs KVM: they fail before it is opened.
func TestBootRejectsBadFlagsBeforeAnyVM(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("not an elf at all"), 0o644)
	k := guestPath(t)
	for _, args := range [][]string{
		{"boot", "--bogus"},
		{"boot", "--mem", "12X", "--kernel", k},
		{"boot", "--mem", "3M", "--kernel", k},
		{"boot", "--mem", "65G", "--kernel", k},
		{"boot", "--cpus", "0", "--kernel", k},
		{"boot", "--cpus", "65", "--kernel", k},
		{"boot", "--timeout", "-1s", "--kernel", k},
		{"boot", "--timeout", "soon", "--kernel", k},
		{"boot", "--tick", "1ns", "--kernel", k},
		{"boot", "--bad-frames", "0x10,zz", "--kernel", k},
		{"boot", "--kernel", garbage},
		{"boot", "--kernel", "/nonexistent/guest.elf"},
		{"boot", "--trace", "/nonexistent/trace.csv", "--kernel", k},
		{"boot", "--kernel", k, "extra"},
		{"boot", "--cmdline", "exit=256", "--kernel", k},
		{"boot", "--cmdline", "exit=120", "--kernel", k},
		{"nosuchcommand"},
	} {
		st, out, errs := runCLI(args...)
		if st != vmm.StatusUsage || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 || errs == "" {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want %d and one line", args, st, out, errs, vmm.StatusUsage)
		}
	}
}

func TestBootJSONSummary(t *testing.T) {
	kvmtest.Require(t)
	st, out, _ := runCLI("boot", "--kernel", guestPath(t), "--workload", "paging", "--json", "--cmdline", "exit=9")
	var sum struct {
		Outcome      string `json:"outcome"`
		ExitStatus   int    `json:"exit_status"`
		StartToEntry int64  `json:"start_to_entry_ns"`
		Checkpoints  []struct {
			Label      string `json:"label"`
			Verified   bool   `json:"verified"`
			Violations int    `json:"violations"`
		} `json:"checkpoints"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, out)
	}
	if st != 9 || sum.Outcome != "exit" || sum.ExitStatus != 9 || sum.StartToEntry <= 0 || len(sum.Checkpoints) < 3 {
		t.Errorf("status %d, summary %+v", st, sum)
	}
	for _, c := range sum.Checkpoints {
		if !c.Verified || c.Violations != 0 {
			t.Errorf("checkpoint %+v", c)
		}
	}
}

func TestWorkloadHelpListsWorkloads(t *testing.T) {
	kvmtest.Require(t)
	st, out, _ := runCLI("boot", "--kernel", guestPath(t), "--workload", "help")
	for _, w := range []string{"* stress", "* paging", "* cow", "* demand", "exc-double"} {
		if !strings.Contains(out, w) {
			t.Errorf("--workload help lacks %q:\n%s", w, out)
		}
	}
	if st != 0 {
		t.Errorf("status %d", st)
	}
}

func TestBootDumpThenInspect(t *testing.T) {
	kvmtest.Require(t)
	dump := filepath.Join(t.TempDir(), "guest.core")
	if st, _, errs := runCLI("boot", "--kernel", guestPath(t), "--workload", "stress", "--dump", dump); st != 0 {
		t.Fatalf("boot: status %d: %s", st, errs)
	}
	st, out, errs := runCLI("inspect", dump)
	if st != 0 || !strings.Contains(out, "violations: none") || !strings.Contains(out, "buddyinfo: Node 0, zone   Normal") {
		t.Fatalf("inspect: status %d\n%s\n%s", st, out, errs)
	}
}
