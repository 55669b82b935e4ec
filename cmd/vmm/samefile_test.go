package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/vmm"
)

// An output naming an input (vmm inspect --map over the dump, vmm run
// --json-out or --dump over PROG, vmm boot --dump over --kernel or --trace) or both of run's outputs naming one file
// is refused before anything is read or run, and the file is left alone.
func TestOutputOverAnInputOrAnotherOutputIsRefused(t *testing.T) {
	dir := t.TempDir()
	dump := filepath.Join(dir, "dump")
	content := bytes.Repeat([]byte("not a dump "), 10)
	os.WriteFile(dump, content, 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(dump, link)
	prog := buildProgram(t, "hello")
	progBefore, _ := os.ReadFile(prog)
	out := filepath.Join(dir, "out")
	trace := filepath.Join(dir, "trace.csv")
	os.WriteFile(trace, []byte("0,1.0,a,4096,0\n0,1.5,f,4096,0\n"), 0o644)
	traceLink := filepath.Join(dir, "trace-link")
	os.Link(trace, traceLink)
	for _, args := range [][]string{
		{"inspect", "--map", dump, dump},
		{"inspect", "--map", link, dump},
		{"run", "--json-out", prog, prog},
		{"run", "--dump", prog, prog},
		{"run", "--dump", out, "--json-out", out, prog},
		{"run", "--dump", link, "--json-out", dump, prog},
		{"boot", "--dump", prog, "--kernel", prog},
		{"boot", "--dump", traceLink, "--trace", trace},
	} {
		st, stdout, errs := runCLI(args...)
		if st != vmm.StatusUsage || stdout != "" || !strings.Contains(errs, "same file") && !strings.Contains(errs, "would replace") {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want %d", args, st, stdout, errs, vmm.StatusUsage)
		}
	}
	if b, _ := os.ReadFile(dump); !bytes.Equal(b, content) {
		t.Errorf("the refused runs changed %s", dump)
	}
	if b, _ := os.ReadFile(prog); !bytes.Equal(b, progBefore) {
		t.Errorf("the refused runs changed the program")
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused run created %s", out)
	}
}
