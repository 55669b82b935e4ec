package vmm

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/internal/guestbuild"
)

// TestDumpAfterFaultUnwindsInGDB: the dump of a guest that faulted shows,
// in the real gdb, the signal that ended it (as for a Linux core), the
// faulting code as thread 1 and the handler that reported it as thread 2.
func TestDumpAfterFaultUnwindsInGDB(t *testing.T) {
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("gdb not installed")
	}
	elf, err := guestbuild.Path(t)
	if err != nil {
		t.Fatal(err)
	}
	cfg := bootConfig(t)
	cfg.Workload = "fault"
	cfg.DumpPath = filepath.Join(t.TempDir(), "fault.core")
	res, _ := boot(t, cfg)
	if res.Outcome != OutcomeFault || res.Dump == nil || res.Dump.Error != "" {
		t.Fatalf("outcome %s, dump %+v: want a fault with a dump", res.Outcome, res.Dump)
	}
	out, err := exec.Command(gdb, "-nx", "-batch", "-ex", "bt", "-ex", "thread 2", "-ex", "bt", elf, cfg.DumpPath).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	text := string(out)
	if !strings.Contains(text, "Program terminated with signal SIGSEGV") {
		t.Errorf("gdb does not say which signal ended the guest:\n%s", text)
	}
	fault, handler, ok := strings.Cut(text, "[Switching to thread 2")
	if !ok {
		t.Fatalf("gdb shows no second thread:\n%s", text)
	}
	if !regexp.MustCompile(`(?m)^#0 .*main\.faultNilWrite`).MatchString(fault) ||
		!strings.Contains(fault, "main.runFault") || !strings.Contains(fault, "main.kmain") {
		t.Errorf("thread 1's bt is not the faulting code:\n%s", fault)
	}
	if strings.Contains(fault, "trapEntry") || strings.Contains(fault, "??") {
		t.Errorf("thread 1's bt runs into the trap path:\n%s", fault)
	}
	if !strings.Contains(handler, "main.reportFault") || !strings.Contains(handler, "main.handleTrap") {
		t.Errorf("thread 2's bt is not the handler:\n%s", handler)
	}
	// gdb and the crash report name the same frames.
	for _, f := range res.Crash.Backtrace[:3] {
		if !strings.Contains(fault, f.Function) {
			t.Errorf("gdb's bt lacks %s of the crash report:\n%s", f.Function, fault)
		}
	}
}
