package vmm

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmm-dev/vmm/vmm/memmap"
)

func TestBootHelloExitsZero(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "hello"
	res, out := boot(t, cfg)
	if res.Outcome != OutcomeExit || res.ExitStatus != 0 {
		t.Fatalf("outcome %s status %d (%s), want exit 0\n%s", res.Outcome, res.ExitStatus, res.Reason, out)
	}
	for _, c := range res.Checkpoints {
		if !c.SafePoint {
			t.Errorf("checkpoint %q of a guest that exited is not a safe point", c.Label)
		}
	}
	for _, want := range []string{"vmm guest kernel: Go, runtime-free, CPL3; 1 vCPU(s), 128 MiB RAM", "hello from the guest", "guest: exiting with status 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
}

func TestExitStatusAndCmdlineReachVMM(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "hello"
	cfg.Cmdline = "quiet exit=7 other=1"
	res, out := boot(t, cfg)
	if res.Outcome != OutcomeExit || res.ExitStatus != 7 {
		t.Fatalf("outcome %s status %d, want exit 7", res.Outcome, res.ExitStatus)
	}
	if !strings.Contains(out, "command line: quiet exit=7 other=1\n") {
		t.Errorf("guest did not echo its command line:\n%s", out)
	}
}

// TestGuestSeesMemoryMap boots with RAM below and above the 3 GiB hole and
// checks the guest printed exactly the VMM's memory map.
func TestGuestSeesMemoryMap(t *testing.T) {
	for _, mem := range []uint64{128 << 20, 4 << 30} {
		t.Run(fmt.Sprintf("%dMiB", mem>>20), func(t *testing.T) {
			cfg := bootConfig(t)
			cfg.MemBytes = mem
			cfg.Workload = "hello"
			res, out := boot(t, cfg)
			if res.Outcome != OutcomeExit {
				t.Fatalf("outcome %s: %s", res.Outcome, res.Reason)
			}
			m, err := memmap.Build(mem)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "BIOS-e820: ") {
					got = append(got, line)
				}
			}
			if len(got) != len(m.Ranges()) {
				t.Fatalf("guest printed %d ranges, VMM map has %d:\n%s\n%s", len(got), len(m.Ranges()), out, m)
			}
			for i, r := range m.Ranges() {
				want := fmt.Sprintf("BIOS-e820: [mem %#016x-%#016x] ", r.Base, r.End()-1)
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("range %d: guest printed %q, want prefix %q", i, got[i], want)
				}
			}
		})
	}
}

func TestFaultReportIsSymbolized(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "fault"
	res, _ := boot(t, cfg)
	if res.Outcome != OutcomeFault || res.ExitStatus != StatusFault {
		t.Fatalf("outcome %s status %d, want fault %d", res.Outcome, res.ExitStatus, StatusFault)
	}
	c := res.Crash
	if c == nil {
		t.Fatal("no crash report")
	}
	if !strings.HasPrefix(c.Symbol, "main.faultNilWrite+0x") || !strings.Contains(c.Symbol, "entry_amd64.s:") {
		t.Errorf("RIP symbol %q, want main.faultNilWrite+off (entry_amd64.s:line)", c.Symbol)
	}
	if !strings.HasPrefix(c.Instruction, "mov") {
		t.Errorf("faulting instruction %q, want the store", c.Instruction)
	}
	if !c.HasCR2 || c.CR2 != 0 {
		t.Errorf("CR2 = %#x (has %v), want 0", c.CR2, c.HasCR2)
	}
	bt := btText(c)
	for _, fn := range []string{"main.runOne", "main.bootMain", "main.kmain"} {
		if !strings.Contains(bt, fn) {
			t.Errorf("backtrace lacks %s:\n%s", fn, bt)
		}
	}
	// The structured backtrace is the text's, line for line.
	for i, f := range c.Backtrace {
		line := fmt.Sprintf("  #%d %#x %s\n", i, f.PC, f)
		if !strings.Contains(c.Text, line) {
			t.Errorf("frame %d %+v: text lacks %q:\n%s", i, f, line, c.Text)
		}
		if i > 0 && (f.Function == "" || f.File == "" || f.Line == 0 || !f.ReturnAddress) {
			t.Errorf("frame %d not fully symbolized: %+v", i, f)
		}
	}
	if r := c.Registers; r == nil || r.RIP != c.RIP || r.RSP == 0 {
		t.Errorf("registers %+v do not describe the faulting context (rip %#x)", r, c.RIP)
	}
}

// btText is a crash report's backtrace as one line per frame.
func btText(c *CrashReport) string {
	var b strings.Builder
	for _, f := range c.Backtrace {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

func TestSpinningGuestTimesOut(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "spin"
	cfg.Timeout = time.Second // long enough to reach the spin on a loaded machine
	res, _ := boot(t, cfg)
	if res.Outcome != OutcomeTimeout || res.ExitStatus != StatusTimeout {
		t.Fatalf("outcome %s status %d, want timeout", res.Outcome, res.ExitStatus)
	}
	if res.Crash == nil || !strings.Contains(res.Crash.Symbol+btText(res.Crash), "main.runSpin") {
		t.Errorf("timeout report does not show the spinning function: %+v", res.Crash)
	}
}

func TestBadHypercallsAreRefused(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "badcall"
	res, out := boot(t, cfg)
	if res.Outcome != OutcomeExit || res.ExitStatus != 0 {
		t.Fatalf("outcome %s status %d:\n%s", res.Outcome, res.ExitStatus, out)
	}
	// 14 hostile calls (2 of them checkpoints with unknown flag bits),
	// plus 5 registrations that could never verify.
	if n, ok := res.ReportValue("badcall.refused"); !ok || n != 19 {
		t.Errorf("badcall.refused = %d (%v), want 19", n, ok)
	}
	if len(res.Checkpoints) != 2 { // the workload's own and the exit's: no refused one ran
		t.Errorf("checkpoints %+v, want badcall and exit", res.Checkpoints)
	}
	if res.Registration == nil || res.RegistrationError != "" {
		t.Errorf("the good registration should stand, unexplained: %+v %q", res.Registration, res.RegistrationError)
	}
}

func TestUnknownWorkloadFails(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "nosuch"
	res, out := boot(t, cfg)
	if res.Outcome != OutcomeExit || res.ExitStatus == 0 || !strings.Contains(out, `unknown workload "nosuch"`) {
		t.Fatalf("outcome %s status %d:\n%s", res.Outcome, res.ExitStatus, out)
	}
}

func TestNewRejectsBadConfigBeforeBooting(t *testing.T) {
	requireKVM(t)
	for _, c := range []Config{
		{MemBytes: 3 << 20, CPUs: 1, Timeout: time.Second},
		{MemBytes: 128 << 20, CPUs: 0, Timeout: time.Second},
		{MemBytes: 128 << 20, CPUs: 1, Timeout: 0},
		{MemBytes: 128 << 20, CPUs: 1, Timeout: time.Second, Kernel: []byte("not an elf")},
	} {
		if c.Kernel == nil {
			c.Kernel = guestImage(t)
		}
		if vm, err := New(c); err == nil {
			vm.Close()
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}

func TestInvalidExitRequestEndsTheRunAtOnce(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "badexit"
	res, out := boot(t, cfg)
	if res.Outcome != OutcomeFault || res.ExitStatus != StatusFault || !strings.Contains(res.Reason, "exit status 256") {
		t.Fatalf("outcome %s status %d (%s), want a fault naming status 256\n%s", res.Outcome, res.ExitStatus, res.Reason, out)
	}
	if res.Crash == nil || !strings.Contains(res.Crash.Text, "main.runBadExit") {
		t.Errorf("report does not show the guest code that asked: %+v", res.Crash)
	}
}

func TestConfigRefusesExitRequestsOutsideTheGuestRange(t *testing.T) {
	for cmdline, ok := range map[string]bool{
		"exit=0": true, "exit=119": true, "quiet exit=7": true, "": true,
		"exit=120": false, "exit=256": false, "exit=": false, "exit=-1": false, "exit=0x10": false,
		"exit=99999999999999999999": false,
	} {
		cfg := Config{MemBytes: 128 << 20, CPUs: 1, Timeout: time.Second, Kernel: []byte{1}, Cmdline: cmdline}
		err := cfg.Validate(0)
		if (err == nil) != ok {
			t.Errorf("cmdline %q: Validate = %v, want ok=%v", cmdline, err, ok)
		}
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Errorf("cmdline %q: %v is not ErrConfig", cmdline, err)
		}
	}
}

func TestViolationsOutrankTheGuestsStatus(t *testing.T) {
	for _, c := range []struct {
		outcome            string
		status, violations int
		want               int
	}{
		{OutcomeExit, 0, 0, 0},
		{OutcomeExit, 13, 0, 13},
		{OutcomeExit, 0, 2, StatusViolation},
		{OutcomeExit, 13, 1, StatusViolation},
		{OutcomeFault, StatusFault, 1, StatusFault},
		{OutcomeTimeout, StatusTimeout, 1, StatusTimeout},
		{OutcomeSignal, StatusSIGINT, 1, StatusSIGINT},
	} {
		if got, _ := finalStatus(c.outcome, c.status, c.violations); got != c.want {
			t.Errorf("finalStatus(%s, %d, %d) = %d, want %d", c.outcome, c.status, c.violations, got, c.want)
		}
	}
}

// TestInterruptStopsLikeATimeout is what SIGINT and SIGTERM do in the CLI:
// every vCPU stops and reports, the final checkpoint runs and the dump is
// written, with the signal's status.
func TestInterruptStopsLikeATimeout(t *testing.T) {
	requireKVM(t)
	cfg := bootConfig(t)
	cfg.Workload = "spin"
	cfg.CPUs = 2
	cfg.DumpPath = filepath.Join(t.TempDir(), "core")
	spinning := make(chan struct{})
	cfg.Console = &watchWriter{want: "workload spin: start", seen: spinning}
	vm, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	go func() {
		<-spinning
		vm.Interrupt("interrupted by SIGTERM", StatusSIGTERM)
	}()
	res := vm.Run()
	if res.Outcome != OutcomeSignal || res.ExitStatus != StatusSIGTERM || res.Reason != "interrupted by SIGTERM" {
		t.Fatalf("outcome %s status %d (%s), want signal %d", res.Outcome, res.ExitStatus, res.Reason, StatusSIGTERM)
	}
	if res.Crash == nil || res.Crash.Symbol == "" {
		t.Errorf("no report of where the guest was: %+v", res.Crash)
	}
	if len(res.VCPUs) != 2 || res.VCPUs[0].Where == "" || res.VCPUs[1].Where == "" {
		t.Errorf("vCPU locations missing: %+v", res.VCPUs)
	}
	if n := len(res.Checkpoints); n == 0 || !res.Checkpoints[n-1].Final || res.Checkpoints[n-1].SafePoint {
		t.Errorf("no final checkpoint, or one called a safe point after a signal: %+v", res.Checkpoints)
	}
	if res.Dump == nil || res.Dump.Error != "" {
		t.Errorf("dump not written: %+v", res.Dump)
	}
}

// watchWriter closes seen once the console output contains want.
type watchWriter struct {
	buf  []byte
	want string
	seen chan struct{}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if w.seen != nil && strings.Contains(string(w.buf), w.want) {
		close(w.seen)
		w.seen = nil
	}
	return len(p), nil
}
