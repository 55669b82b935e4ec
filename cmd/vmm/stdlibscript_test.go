package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/internal/guestbuild"
)

// scripts/run-stdlib-tests.sh prints one line a package; a package that does
// not build must not add go test's own FAIL lines around its BUILD-FAIL.
func TestStdlibScriptReportsABuildFailureOnOneLine(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	out, err := exec.Command(filepath.Join(guestbuild.RepoRoot(), "scripts", "run-stdlib-tests.sh"), "nonexistent/pkg").Output()
	if err == nil {
		t.Fatalf("the script passed a package that does not exist:\n%s", out)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "BUILD-FAIL nonexistent/pkg: ") || !strings.Contains(lines[0], "not in std") {
		t.Errorf("want one BUILD-FAIL line naming the reason, got:\n%s", out)
	}
}
