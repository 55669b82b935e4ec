package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/internal/kvmtest"
	"github.com/vmm-dev/vmm/vmm"
)

// buildProgram builds testdata/run/NAME with the stock toolchain as a
// static linux/amd64 executable.
func buildProgram(t *testing.T, name string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = filepath.Join("..", "..", "testdata", "run", name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

// TestRunRefusesBadProgramsBeforeAnyVM: a file that is not an ELF, an ELF
// for another machine and a dynamically linked one are each refused with
// their own message and StatusUsage, without KVM.
func TestRunRefusesBadProgramsBeforeAnyVM(t *testing.T) {
	k := guestPath(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "script")
	os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755)
	hello := buildProgram(t, "hello")
	img, err := os.ReadFile(hello)
	if err != nil {
		t.Fatal(err)
	}
	arm := filepath.Join(dir, "arm64")
	a := append([]byte(nil), img...)
	binary.LittleEndian.PutUint16(a[18:], 183) // EM_AARCH64
	os.WriteFile(arm, a, 0o755)
	cases := []struct{ prog, want string }{
		{text, "not an ELF file"},
		{arm, "needs a 64-bit x86-64"},
		{filepath.Join(dir, "missing"), "no such file"},
	}
	if dyn, err := exec.LookPath("true"); err == nil {
		if b, err := os.ReadFile(dyn); err == nil && strings.Contains(string(b), "ld-linux") {
			cases = append(cases, struct{ prog, want string }{dyn, "dynamically linked"})
		}
	}
	for _, c := range cases {
		st, out, errs := runCLI("run", "--kernel", k, c.prog)
		if st != vmm.StatusUsage || out != "" || !strings.Contains(errs, c.want) {
			t.Errorf("run %s: status %d, stdout %q, stderr %q; want %d and %q", c.prog, st, out, errs, vmm.StatusUsage, c.want)
		}
	}
	if st, _, errs := runCLI("run", "--kernel", k, "--cpus", "0", hello); st != vmm.StatusUsage || !strings.Contains(errs, "must be between 1 and") {
		t.Errorf("--cpus 0: status %d, stderr %q", st, errs)
	}
}

// TestRunProgramKilledBySignal: a nil dereference with no handler to run
// (sigdefault puts SIGSEGV back to SIG_DFL) ends the program as killed by
// SIGSEGV, reported as a fault with the kernel's account, after its earlier
// output; every frame still comes back. With the Go runtime's own handler
// the fault is delivered: for nilderef Go prints its panic and exits 2, on
// stderr exactly as on the host; for illegal (UD2) Go's SIGILL report
// shows the si_code and the registers of the signal frame as on the host.
func TestRunProgramKilledBySignal(t *testing.T) {
	kvmtest.Require(t)
	prog := buildProgram(t, "sigdefault")
	st, out, errs := runCLI("run", "--kernel", guestPath(t), prog)
	if st != vmm.StatusFault || out != "before\n" || !strings.Contains(errs, "program killed by signal 11 (status 139)") ||
		!strings.Contains(errs, "address 0x0") || !strings.Contains(errs, "main.main+0x") || !strings.Contains(errs, "sigdefault/main.go:23)") || !strings.Contains(errs, "0 violations") || !strings.Contains(errs, "0 frames leaked") {
		t.Errorf("status %d, stdout %q, stderr:\n%s", st, out, errs)
	}

	hostRun := func(prog string) (stdout, stderr string) {
		host := exec.Command(prog)
		var hostErr strings.Builder
		host.Stderr = &hostErr
		hostOut, err := host.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("%s on the host: %v", prog, err)
		}
		return string(hostOut), hostErr.String()
	}
	// progStderr is the program's part of vmm's stderr.
	progStderr := func(errs string) string {
		var b strings.Builder
		for _, l := range strings.SplitAfter(errs, "\n") {
			if !strings.HasPrefix(l, "vmm run:") {
				b.WriteString(l)
			}
		}
		return b.String()
	}

	prog = buildProgram(t, "nilderef")
	hostOut, hostErr := hostRun(prog)
	st, out, errs = runCLI("run", "--kernel", guestPath(t), prog)
	if st != 2 || out != hostOut || progStderr(errs) != hostErr ||
		!strings.Contains(errs, "nilderef/main.go:14 +0x") || !strings.Contains(errs, "0 frames leaked") {
		t.Errorf("nilderef: status %d, stdout %q, stderr:\n%s\nhost stderr:\n%s", st, out, errs, hostErr)
	}

	// Go's SIGILL report: the first three lines (signal, PC and si_code,
	// instruction bytes; not the M, which varies on the host) and the
	// registers that do not depend on scheduling: the return values of the
	// Println before the UD2 (rax, rbx, rcx), rip, rflags and the segments.
	mNum := regexp.MustCompile(` m=[0-9]+ `)
	report := func(s string) string {
		lines := strings.Split(mNum.ReplaceAllString(s, " "), "\n")
		if len(lines) < 3 {
			return s
		}
		keep := lines[:3:3]
		for _, l := range lines[3:] {
			if f := strings.Fields(l); len(f) == 2 && slices.Contains([]string{"rax", "rbx", "rcx", "rip", "rflags", "cs", "fs", "gs"}, f[0]) {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	prog = buildProgram(t, "illegal")
	hostOut, hostErr = hostRun(prog)
	st, out, errs = runCLI("run", "--kernel", guestPath(t), prog)
	if got, want := report(progStderr(errs)), report(hostErr); st != 2 || out != hostOut || got != want ||
		!strings.Contains(want, "sigcode=2") || !strings.Contains(want, "rflags 0x") || !strings.Contains(want, "rax    0x7") {
		t.Errorf("illegal: status %d, stdout %q, report:\n%s\nhost:\n%s", st, out, got, want)
	}
}

// TestRunGoPrograms runs each test program on the host and under vmm run:
// the same stdout and exit status, 0 violations at every checkpoint, and
// every frame the program held back in the allocator.
func TestRunGoPrograms(t *testing.T) {
	kvmtest.Require(t)
	k := guestPath(t)
	for _, tc := range []runCase{
		{"hello", nil, nil, "", ""},
		{"args", []string{"7", "two words", ""}, []string{"VMM_TEST=yes"}, "", ""},
		{"churn", nil, nil, "", ""},
		{"random", nil, nil, "", ""},
		{"recover", nil, nil, "", ""}, // six faults, each through the program's SIGSEGV or SIGFPE handler
		{"readfile", nil, nil, "tree", ""},
		{name: "readfile", args: []string{"../.."}, dir: "tree", cwd: "sub/deeper"},
		{"churn", []string{"--verify-every", "20ms"}, nil, "", ""}, // vmm flags, not the program's
		{"clock", nil, nil, "", ""},                                // time.Now through the vDSO
		{"stdlibmix", nil, nil, "", ""},                            // maps, fmt, encoding/json, reflect
		// os.TempDir: the guest's /tmp, a fresh TMPDIR on the host.
		{"tmpfs", nil, nil, "", ""},
		{"tmpfs", []string{"keep"}, nil, "", ""},                                   // files left in /tmp go back at exit
		{"tmpfs", []string{"--verify-every", "1ms", "--tick", "1ms"}, nil, "", ""}, // checked while /tmp holds pages (ticks often enough for a short run)
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCompared(t, k, tc)
			for _, c := range res.Run.Syscalls {
				// clock reads the clock 200,000 times: through the vDSO,
				// only its 1,000 explicit system calls reach the kernel.
				if tc.name == "clock" && c.Name == "clock_gettime" && c.Count > 1100 {
					t.Errorf("%d clock_gettime system calls: the vDSO was not used", c.Count)
				}
			}
			if wantSignals := map[string]uint64{"recover": 6}[tc.name]; res.Run.Signals != wantSignals {
				t.Errorf("%d signals delivered, want %d", res.Run.Signals, wantSignals)
			}
			// The tmpfs program holds a file of over 5 MiB at once.
			if (tc.name == "tmpfs") != (res.Run.TmpfsPeak > 5<<20/4096) {
				t.Errorf("/tmp held at most %d pages", res.Run.TmpfsPeak)
			}
		})
	}
}

// runCase is one program run on the host and under vmm run.
type runCase struct {
	name string
	args []string // vmm flags first when args[0] starts with "--", else the program's
	env  []string
	dir  string // --dir, under testdata/run/NAME; the host run's working directory
	cwd  string // --cwd inside dir (and the host run's working directory)
}

// runResult is the part of vmm run's --json-out the tests read.
type runResult struct {
	Schema      string
	Checkpoints []struct {
		Label      string
		Verified   bool
		Violations int
	}
	ProgramExitStatus *int `json:"program_exit_status"`
	Reports           []vmm.Report
	Run               struct {
		PeakFrames uint64 `json:"peak_frames"`
		Leaked     uint64 `json:"frames_leaked"`
		Signals    uint64 `json:"signals_delivered"`
		TmpfsPeak  uint64 `json:"tmpfs_peak_pages"`
		Syscalls   []struct {
			Name  string
			Count uint64
		}
	}
}

func (r *runResult) report(key string) uint64 {
	for _, rep := range r.Reports {
		if rep.Key == key {
			return rep.Value
		}
	}
	return 0
}

// runCompared runs tc's program on the host and under vmm run: the same
// stdout and exit status, every checkpoint verified with 0 violations, and
// every frame the program held back in the allocator.
func runCompared(t *testing.T, k string, tc runCase) *runResult {
	t.Helper()
	prog := buildProgram(t, tc.name)
	var vmmFlags []string
	if len(tc.args) > 0 && strings.HasPrefix(tc.args[0], "--") {
		vmmFlags, tc.args = tc.args, nil
	}
	host := exec.Command(prog, tc.args...)
	host.Env = tc.env
	if tc.name == "tmpfs" {
		host.Env = append(host.Env, "TMPDIR="+t.TempDir())
	}
	if tc.dir != "" {
		tc.dir = filepath.Join("..", "..", "testdata", "run", tc.name, tc.dir)
		host.Dir = filepath.Join(tc.dir, tc.cwd)
		vmmFlags = append(vmmFlags, "--dir", tc.dir)
		if tc.cwd != "" {
			vmmFlags = append(vmmFlags, "--cwd", tc.cwd)
		}
	}
	want, err := host.Output()
	wantStatus := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		wantStatus = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	jsonOut := filepath.Join(t.TempDir(), "run.json")
	args := append([]string{"run", "--kernel", k, "--json-out", jsonOut}, vmmFlags...)
	for _, e := range tc.env {
		args = append(args, "--env", e)
	}
	st, out, errs := runCLI(append(append(args, prog), tc.args...)...)
	if st != wantStatus || out != string(want) {
		t.Fatalf("vmm run %s: status %d, stdout %q; host: status %d, stdout %q\nstderr:\n%s", tc.name, st, out, wantStatus, want, errs)
	}
	var res runResult
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	validateJSON(t, string(b), "run")
	labels := ""
	for _, c := range res.Checkpoints {
		if !c.Verified || c.Violations != 0 {
			t.Errorf("checkpoint %q: verified %v, %d violations", c.Label, c.Verified, c.Violations)
		}
		labels += c.Label + " "
	}
	wantLabels := "run-loaded run exit "
	if len(vmmFlags) > 0 && vmmFlags[0] == "--verify-every" {
		// Periodic checks while the program runs (it runs for far
		// longer than one interval of guest time).
		wantLabels = "run-loaded run-periodic "
		labels = strings.Replace(labels, "run-periodic ", "", strings.Count(labels, "run-periodic ")-1)
		wantLabels += "run exit "
	}
	if labels != wantLabels || res.Schema != schemaRun || res.ProgramExitStatus == nil ||
		*res.ProgramExitStatus != wantStatus || res.Run.PeakFrames == 0 || res.Run.Leaked != 0 || len(res.Run.Syscalls) == 0 {
		t.Errorf("summary: checkpoints %q, %+v", labels, res)
	}
	return &res
}

// TestRunSMP runs programs whose threads share memory, locks, channels and
// timers on one vCPU and on two (where they run at the same time, under
// one kernel lock), each compared with the same program on the host.
// tlbstress drops a page with madvise while another thread keeps writing
// it: on two vCPUs that takes TLB shootdowns, and a frame freed before
// the writer's vCPU flushed would show up, written, in a fresh page.
// (tlbstress is not run on one vCPU: without asynchronous preemption its
// spinning writer and the main thread only trade the one vCPU at timer
// ticks, and 3000 rounds take minutes.)
func TestRunSMP(t *testing.T) {
	kvmtest.Require(t)
	k := guestPath(t)
	for _, tc := range []runCase{
		{name: "threads", args: []string{"--cpus", "1"}},
		{name: "threads", args: []string{"--cpus", "2"}},
		{name: "spin", args: []string{"--cpus", "2"}},
		{name: "tlbstress", args: []string{"--cpus", "2"}},
		{name: "churn", args: []string{"--verify-every", "20ms", "--cpus", "2"}},
	} {
		t.Run(tc.name+strings.Join(tc.args, ""), func(t *testing.T) {
			res := runCompared(t, k, tc)
			if n := res.report("run.tlb_shootdowns"); tc.name == "tlbstress" && n == 0 {
				t.Errorf("tlbstress on 2 vCPUs: no shootdown waited for the other vCPU (run.tlb_shootdowns = 0): the threads never ran at once")
			}
		})
	}
	// A fault with no handler, on whichever vCPU the thread ran: the
	// program ends on both, with the symbolized report, and every frame
	// comes back.
	t.Run("sigdefault--cpus2", func(t *testing.T) {
		prog := buildProgram(t, "sigdefault")
		st, out, errs := runCLI("run", "--kernel", k, "--cpus", "2", prog)
		if st != vmm.StatusFault || out != "before\n" || !strings.Contains(errs, "program killed by signal 11 (status 139)") ||
			!strings.Contains(errs, "sigdefault/main.go:23)") || !strings.Contains(errs, "0 violations") || !strings.Contains(errs, "0 frames leaked") {
			t.Errorf("status %d, stdout %q, stderr:\n%s", st, out, errs)
		}
	})
}

// TestRunRefusesHostsWhereSyscallEntersRing0: with the probe saying CPL0
// (a VMX/SVM host) or failing, vmm run refuses before the program's VM
// exists, with StatusVMMError and a message that names the cause; without
// KVM the probe steps aside; at CPL3 the program runs.
func TestRunRefusesHostsWhereSyscallEntersRing0(t *testing.T) {
	k := guestPath(t)
	hello := buildProgram(t, "hello")
	saved := syscallCPL
	t.Cleanup(func() { syscallCPL = saved })
	cases := []struct {
		name  string
		probe func() (int, error)
		want  string
	}{
		{"vmx", func() (int, error) { return 0, nil }, "SYSCALL enters the guest at CPL0"},
		{"probe-fails", func() (int, error) { return 0, errors.New("unexpected exit") }, "cannot tell where SYSCALL lands: unexpected exit"},
	}
	for _, c := range cases {
		syscallCPL = c.probe
		st, out, errs := runCLI("run", "--kernel", k, hello)
		if st != vmm.StatusVMMError || out != "" || !strings.Contains(errs, c.want) || !strings.Contains(errs, "not supported on this KVM") {
			t.Errorf("%s: status %d, stdout %q, stderr %q; want %d and %q", c.name, st, out, errs, vmm.StatusVMMError, c.want)
		}
	}
	if err := checkSyscallPath(func() (int, error) { return 0, vmm.ErrNoKVM }, ""); err != nil {
		t.Errorf("without KVM: %v, want nil (the VM's creation reports it)", err)
	}
	if err := checkSyscallPath(func() (int, error) { return 0, nil }, "kvm_intel"); err == nil || !strings.Contains(err.Error(), "(kvm_intel)") {
		t.Errorf("on kvm_intel: %v, want the module named", err)
	}
	if !kvmtest.Available() {
		return
	}
	syscallCPL = func() (int, error) { return 3, nil }
	if st, out, errs := runCLI("run", "--kernel", k, hello); st != 0 || out == "" {
		t.Errorf("at CPL3: status %d, stdout %q, stderr %q", st, out, errs)
	}
}

// TestRunConfigAdvisesHugePages: vmm run backs guest RAM with transparent
// huge pages (a Go heap's first touches are host faults otherwise).
func TestRunConfigAdvisesHugePages(t *testing.T) {
	f, err := parseRunFlags([]string{"--kernel", guestPath(t), buildProgram(t, "hello")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := f.config(io.Discard, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.HugePages {
		t.Error("vmm run's config does not ask for huge pages")
	}
}

// TestRunTmpfsFull: /tmp fills up with ENOSPC, for data (half the RAM free
// at start) and for nodes, never a kernel fault; space comes back after a
// truncate or a removal, and what is left at exit goes back to the
// allocator (a host run would fill the host's disk: the output is fixed).
func TestRunTmpfsFull(t *testing.T) {
	kvmtest.Require(t)
	prog := buildProgram(t, "tmpfs")
	jsonOut := filepath.Join(t.TempDir(), "run.json")
	st, out, errs := runCLI("run", "--kernel", guestPath(t), "--mem", "64M", "--json-out", jsonOut, prog, "fill")
	want := `fill: errno 28 (no space left on device)
filled: true true
write after truncate: <nil>
files: errno 28 (no space left on device)
made some files: true
a file after one went: <nil>
`
	if st != 0 || out != want {
		t.Fatalf("status %d, stdout:\n%s\nwant:\n%s\nstderr:\n%s", st, out, want, errs)
	}
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Checkpoints []struct{ Violations int }
		Run         struct {
			Leaked    uint64 `json:"frames_leaked"`
			TmpfsPeak uint64 `json:"tmpfs_peak_pages"`
		}
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	// 64 MiB of RAM: /tmp may take about 30 MiB of it.
	if len(res.Checkpoints) != 3 || res.Run.Leaked != 0 || res.Run.TmpfsPeak < 4<<10 || res.Run.TmpfsPeak > 8<<10 {
		t.Errorf("summary %+v", res)
	}
	for _, c := range res.Checkpoints {
		if c.Violations != 0 {
			t.Errorf("checkpoint with %d violations", c.Violations)
		}
	}
}

// TestRunReaderGoesAway: `vmm run prog | head` — when the reader of the
// program's stdout closes its end, the program (not vmm) gets SIGPIPE and
// dies of it as on Linux, and vmm still writes its summary and --json-out.
func TestRunReaderGoesAway(t *testing.T) {
	kvmtest.Require(t)
	prog := buildProgram(t, "sigpipe")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string)
	go func() {
		b := make([]byte, 12)
		n, _ := io.ReadFull(r, b)
		r.Close()
		got <- string(b[:n])
	}()
	jsonOut := filepath.Join(t.TempDir(), "run.json")
	var errb bytes.Buffer
	st := run([]string{"run", "--kernel", guestPath(t), "--json-out", jsonOut, prog}, w, &errb)
	w.Close()
	if head := <-got; head != "line 0\nline " {
		t.Errorf("the reader got %q", head)
	}
	if st != vmm.StatusFault || !strings.Contains(errb.String(), "program killed by signal 13 (status 141)") || !strings.Contains(errb.String(), "0 frames leaked") {
		t.Errorf("status %d, stderr:\n%s", st, errb.String())
	}
	var res struct {
		Killed *struct {
			Signal int `json:"signal"`
		} `json:"program_killed"`
	}
	if b, err := os.ReadFile(jsonOut); err != nil || json.Unmarshal(b, &res) != nil || res.Killed == nil || res.Killed.Signal != 13 {
		t.Errorf("--json-out after the broken pipe: %v %+v", err, res.Killed)
	}
}
