package coredump

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestReadelf checks binutils accepts the dump: exit 0, no warnings.
func TestReadelf(t *testing.T) {
	readelf, err := exec.LookPath("readelf")
	if err != nil {
		t.Skip("readelf not installed")
	}
	path, _, _, _, _ := writeTestDump(t, 8<<20)
	for _, flag := range []string{"-a", "-n", "-l"} {
		out, err := exec.Command(readelf, "-W", flag, path).CombinedOutput()
		if err != nil {
			t.Fatalf("readelf %s: %v\n%s", flag, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "Warning") || strings.Contains(line, "Error") {
				t.Errorf("readelf %s: %s", flag, line)
			}
		}
		if flag != "-l" && strings.Count(string(out), "NT_PRSTATUS") != 2 {
			t.Errorf("readelf %s does not show 2 NT_PRSTATUS notes:\n%s", flag, out)
		}
		if flag == "-l" && strings.Count(string(out), "LOAD") != 2 {
			t.Errorf("readelf -l does not show 2 LOAD segments:\n%s", out)
		}
	}
}

// TestGDB checks gdb reads the vCPU registers from the NT_PRSTATUS notes.
// It skips, rather than fails, when gdb cannot run here at all.
func TestGDB(t *testing.T) {
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("gdb not installed")
	}
	path, _, _, _, _ := writeTestDump(t, 8<<20)
	out, err := exec.Command(gdb, "-nx", "-batch", "-ex", "info registers rip", "-c", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rip") {
		t.Skipf("gdb did not run usefully here (%v):\n%s", err, out)
	}
	want := fmt.Sprintf("%#x", testVCPUs()[0].RIP)
	if !strings.Contains(string(out), want) {
		t.Errorf("gdb output does not show rip %s:\n%s", want, out)
	}
}
