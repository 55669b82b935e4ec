package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/internal/kvmtest"
)

func TestProgressFlag(t *testing.T) {
	var buf bytes.Buffer
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if isTerminal(&buf) || isTerminal(devnull) {
		t.Fatal("a buffer or /dev/null taken for a terminal")
	}
	for _, c := range []struct {
		args []string
		on   bool
	}{
		{nil, false}, // auto, and stderr is not a terminal
		{[]string{"--progress"}, true},
		{[]string{"--progress=true"}, true},
		{[]string{"--progress=false"}, false},
	} {
		f, _, err := parseBootFlags(c.args, &buf)
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if got := f.progress.writer(&buf) != nil; got != c.on {
			t.Errorf("%q: progress %v, want %v", c.args, got, c.on)
		}
	}
	if _, _, err := parseBootFlags([]string{"--progress=maybe"}, &buf); err == nil {
		t.Error("--progress=maybe accepted")
	}
}

// TestBootProgress: with --progress, each checkpoint and the dump are
// reported as they happen, before the outcome line; without it (stderr not
// a terminal) nothing extra is printed.
func TestBootProgress(t *testing.T) {
	kvmtest.Require(t)
	dump := filepath.Join(t.TempDir(), "g.core")
	k := guestPath(t)
	st, _, errs := runCLI("boot", "--kernel", k, "--workload", "paging", "--dump", dump, "--progress")
	if st != 0 {
		t.Fatalf("status %d:\n%s", st, errs)
	}
	outcome := strings.Index(errs, "vmm: exit:")
	for _, want := range []string{`vmm: checkpoint "paging-mapped": 0 violations in `, "vmm: writing dump " + dump, "vmm: dump " + dump + ": "} {
		i := strings.Index(errs, want)
		if i < 0 || outcome < 0 || i > outcome {
			t.Errorf("progress line %q not before the outcome line:\n%s", want, errs)
		}
	}
	st, _, errs = runCLI("boot", "--kernel", k, "--workload", "paging", "--dump", dump)
	if st != 0 || strings.Contains(errs, "writing dump") || strings.Index(errs, "vmm: checkpoint") < strings.Index(errs, "vmm: exit:") {
		t.Errorf("progress without --progress on a non-terminal:\n%s", errs)
	}
}
