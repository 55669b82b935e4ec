package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/vmm-dev/vmm/internal/safefile"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// verifyUsage documents --verify (vmm boot and vmm run).
const verifyUsage = "how checkpoints are verified: `MODE` auto (incremental for guests of 1 GiB of RAM or more, full below), full (every frame, every time) or incremental (re-check what the guest wrote since the last one, from KVM's dirty log; a checkpoint whose interval the guest said rewrites the metadata is a full check); the check at exit is always full"

// verifyMode is --verify's value, refused at parse time unless auto, full
// or incremental: an empty one would otherwise pass as Config's default.
type verifyMode string

func (m *verifyMode) String() string { return string(*m) }

func (m *verifyMode) Set(s string) error {
	if s != vmm.VerifyAuto && s != vmm.VerifyFull && s != vmm.VerifyIncremental {
		return fmt.Errorf("want %s, %s or %s", vmm.VerifyAuto, vmm.VerifyFull, vmm.VerifyIncremental)
	}
	*m = verifyMode(s)
	return nil
}

// bootFlags are `vmm boot`'s flags; keep the names stable (scripts use them).
type bootFlags struct {
	mem       string
	cpus      int
	kernel    string
	workload  string
	cmdline   string
	timeout   time.Duration
	tick      time.Duration
	badFrames string
	trace     string
	dump      string
	dumpAt    string
	dumpSync  bool
	gdb       string
	verify    verifyMode
	json      bool
	verbose   bool
	progress  progressFlag
}

func parseBootFlags(args []string, stderr io.Writer) (*bootFlags, *flag.FlagSet, error) {
	f := &bootFlags{}
	fs := flag.NewFlagSet("boot", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.mem, "mem", "128M", "guest RAM `SIZE`: "+memSyntax)
	fs.IntVar(&f.cpus, "cpus", 1, "number of vCPUs")
	fs.StringVar(&f.kernel, "kernel", "", "boot this guest ELF `FILE` instead of the embedded one")
	fs.StringVar(&f.workload, "workload", "", "guest workload `NAME` (\"help\" lists them; default: all)")
	fs.StringVar(&f.cmdline, "cmdline", "", "command line `STRING` handed to the guest")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "stop the guest after `DURATION`")
	fs.DurationVar(&f.tick, "tick", 0, "inject a timer interrupt every `DURATION` (0: no timer)")
	fs.StringVar(&f.badFrames, "bad-frames", "", "comma-separated `PFNs` the guest must treat as bad")
	fs.StringVar(&f.trace, "trace", "", "page-allocation trace `FILE` (CSV, gzip or not) for --workload replay")
	fs.StringVar(&f.dump, "dump", "", "write guest memory as an ELF core `FILE` when the guest stops")
	fs.StringVar(&f.dumpAt, "dump-at", "", "write the --dump at the checkpoint named `LABEL` instead (e.g. paging-mapped)")
	fs.BoolVar(&f.dumpSync, "dump-sync", false, "make the --dump durable (fsync) before it replaces FILE")
	fs.StringVar(&f.gdb, "gdb", "", "wait for gdb on `ADDR` (PORT or HOST:PORT; loopback unless a host is named) before the first instruction")
	f.verify = vmm.VerifyAuto
	fs.Var(&f.verify, "verify", verifyUsage)
	fs.BoolVar(&f.json, "json", false, "print a machine-readable summary on stdout")
	fs.BoolVar(&f.verbose, "v", false, "log VMM events on stderr")
	fs.Var(&f.progress, "progress", progressUsage)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: vmm boot [flags]")
			fs.PrintDefaults()
			fmt.Fprint(stderr, "\nexit statuses:\n"+vmm.StatusHelp("  "))
			return nil, fs, err
		}
		return nil, fs, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return nil, fs, usagef("unexpected argument %q", fs.Arg(0))
	}
	return f, fs, nil
}

// config turns flags into a vmm.Config, reading files; it creates no VM.
func (f *bootFlags) config(stdout, stderr io.Writer) (vmm.Config, error) {
	cfg := vmm.Config{CPUs: f.cpus, Workload: f.workload, Cmdline: f.cmdline,
		Timeout: f.timeout, Tick: f.tick, DumpPath: f.dump, DumpAt: f.dumpAt, DumpSync: f.dumpSync, GDB: f.gdb, Verify: string(f.verify)}
	var err error
	if cfg.MemBytes, err = parseMem(f.mem); err != nil {
		return cfg, usagef("--mem: %v", err)
	}
	if cfg.BadFrames, err = parseFrames(f.badFrames); err != nil {
		return cfg, usagef("--bad-frames: %v", err)
	}
	if f.kernel != "" {
		if cfg.Kernel, err = readKernel(f.kernel, cfg.MemBytes); err != nil {
			return cfg, usagef("--kernel: %v", err)
		}
	} else if k, ok := embeddedKernel(); ok {
		cfg.Kernel = k
	} else {
		return cfg, usagef("this vmm was built without an embedded guest (run make) and no --kernel was given")
	}
	if f.trace != "" {
		if cfg.Trace, err = readTrace(f.trace, int64(cfg.MemBytes)); err != nil {
			return cfg, usagef("--trace: %v", err)
		}
	}
	if f.dump != "" { // refuse a device, FIFO or directory before any VM runs
		if err := safefile.CheckTarget(f.dump); err != nil {
			return cfg, usagef("--dump: %v", err)
		}
		for _, in := range []string{f.kernel, f.trace} {
			if in != "" && sameFile(f.dump, in) {
				return cfg, usagef("--dump %s is an input of this boot: writing it would replace %s", f.dump, in)
			}
		}
	}
	cfg.Console = stdout
	if f.json {
		cfg.Console = stderr // stdout carries only the JSON summary
	}
	if f.verbose {
		cfg.Log = stderr
	} else {
		cfg.Progress = f.progress.writer(stderr) // -v logs the same events
	}
	if err := cfg.Validate(0); err != nil {
		return cfg, usagef("%v", err)
	}
	// A kernel that cannot load is a wrong --kernel value: refuse it
	// before any VM exists, like every other bad flag.
	big, _ := memmap.Build(memmap.MaxRAM)
	k, err := vmm.ParseKernel(cfg.Kernel, big.RAMTop())
	if err != nil {
		return cfg, usagef("--kernel: %v", err)
	}
	if m, _ := memmap.Build(cfg.MemBytes); k.End > m.RAMTop() {
		return cfg, usagef("--mem %s is too small for this guest kernel, which loads up to %#x", f.mem, k.End)
	}
	if n := runtime.NumCPU(); cfg.CPUs > n {
		fmt.Fprintf(stderr, "vmm: warning: %d vCPUs on %d host CPUs: vCPUs that wait for each other will be slow\n", cfg.CPUs, n)
	}
	return cfg, nil
}

func cmdBoot(args []string, stdout, stderr io.Writer) (int, error) {
	f, _, err := parseBootFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	}
	if err != nil {
		return vmm.StatusUsage, err
	}
	cfg, err := f.config(stdout, stderr)
	if err != nil {
		return vmm.StatusUsage, err
	}
	vm, res, st, err := runVM(cfg)
	if err != nil {
		return st, err
	}
	defer vm.Close()
	startToEntry := time.Duration(0)
	if t := vm.FirstEntry(); !t.IsZero() {
		startToEntry = t.Sub(processStart)
	}
	if f.json {
		out := struct {
			Schema string `json:"schema"`
			*vmm.Result
			StartToEntryNanos int64 `json:"start_to_entry_ns"`
			ProcessNanos      int64 `json:"process_ns"`
		}{schemaBoot, res, startToEntry.Nanoseconds(), time.Since(processStart).Nanoseconds()}
		if err := writeJSON(stdout, out); err != nil {
			return vmm.StatusVMMError, err
		}
	} else {
		printSummary(stderr, res, startToEntry)
	}
	return res.ExitStatus, nil
}

// runVM builds the VM and runs it to its end. SIGINT and SIGTERM, from
// before the VM exists on, end the run like a timeout: report, final
// check, dump, summary; a second signal of either kind gets the default
// action (the user insists). On success the caller closes vm.
func runVM(cfg vmm.Config) (*vmm.VM, *vmm.Result, int, error) {
	sigs := catchSignals()
	defer sigs.stop()
	vm, err := vmm.New(cfg)
	if errors.Is(err, vmm.ErrConfig) {
		return nil, nil, vmm.StatusUsage, usagef("%v", err)
	}
	if err != nil {
		return nil, nil, vmm.StatusVMMError, err
	}
	sigs.deliverTo(vm)
	return vm, vm.Run(), 0, nil
}

// signalCatcher holds SIGINT and SIGTERM from before the VM exists: a
// signal during setup (a large guest takes a while to build) is delivered
// as soon as there is a VM to interrupt, which then stops at its first
// instruction with the usual report and summary.
type signalCatcher struct {
	ch   chan os.Signal
	done chan struct{}
	once sync.Once
}

func catchSignals() *signalCatcher {
	c := &signalCatcher{ch: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(c.ch, syscall.SIGINT, syscall.SIGTERM)
	return c
}

// interrupter is what a signal stops (a *vmm.VM).
type interrupter interface {
	Interrupt(reason string, status int)
}

// deliverTo interrupts vm on the first signal, one caught earlier included.
func (c *signalCatcher) deliverTo(vm interrupter) {
	go func() {
		select {
		case sig := <-c.ch:
			signal.Reset(syscall.SIGINT, syscall.SIGTERM)
			if sig == syscall.SIGTERM {
				vm.Interrupt("terminated by SIGTERM", vmm.StatusSIGTERM)
			} else {
				vm.Interrupt("interrupted by SIGINT", vmm.StatusSIGINT)
			}
		case <-c.done:
		}
	}()
}

func (c *signalCatcher) stop() {
	c.once.Do(func() { signal.Stop(c.ch); close(c.done) })
}

// maxPrinted bounds the violations printed per checkpoint (--json and
// --dump have them all).
const maxPrinted = 8

// printViolations lists a checkpoint's first violations the way inspect
// prints them: frame (or scope), kind, field, expected, actual.
func printViolations(w io.Writer, c vmm.Checkpoint) {
	if c.Error != "" {
		fmt.Fprintf(w, "vmm:   %s\n", c.Error)
	}
	if c.Report == nil {
		return
	}
	for i, v := range c.Report.Violations {
		if i == maxPrinted {
			fmt.Fprintf(w, "vmm:   ... and %d more (--json lists them)\n", c.Report.TotalViolations-maxPrinted)
			break
		}
		fmt.Fprintf(w, "vmm:   [%s] %s\n", v.Source, v)
	}
}

func printSummary(w io.Writer, r *vmm.Result, startToEntry time.Duration) {
	if r.Crash != nil {
		fmt.Fprint(w, r.Crash.Text)
	}
	fmt.Fprintf(w, "vmm: %s: %s (exit status %d)\n", r.Outcome, r.Reason, r.ExitStatus)
	if r.RegistrationError != "" {
		fmt.Fprintf(w, "vmm: %s\n", r.RegistrationError)
	}
	for _, s := range r.VCPUs {
		if r.Outcome == vmm.OutcomeTimeout || r.Outcome == vmm.OutcomeSignal {
			fmt.Fprintf(w, "vmm: vCPU %d was at %s\n", s.CPU, s.Where)
		}
		if s.HypercallsIssued != s.HypercallsHandled {
			fmt.Fprintf(w, "vmm: warning: vCPU %d issued %d hypercalls, the VMM handled %d\n", s.CPU, s.HypercallsIssued, s.HypercallsHandled)
		}
	}
	if c := r.Console; c.Lost > 0 || c.Corruptions > 0 {
		fmt.Fprintf(w, "vmm: console ring corrupted %d times, %d bytes lost\n", c.Corruptions, c.Lost)
	}
	if r.ReportsDropped > 0 {
		fmt.Fprintf(w, "vmm: %d guest reports dropped (more than the distinct keys a run keeps)\n", r.ReportsDropped)
	}
	for _, c := range r.Checkpoints {
		state := c.State()
		if !c.SafePoint && c.Violations > 0 {
			state += " (not at a safe point: the guest was stopped wherever it was, so an operation may be caught half done)"
		}
		fmt.Fprintf(w, "vmm: checkpoint %q: %s in %v\n", c.Label, state, time.Duration(c.Nanos))
		printViolations(w, c)
	}
	if d := r.Dump; d != nil {
		if d.Error != "" {
			fmt.Fprintf(w, "vmm: dump %s failed: %s\n", d.Path, d.Error)
		} else {
			fmt.Fprintf(w, "vmm: dump %s: %d MiB file, %d KiB of data, in %v\n", d.Path, d.FileSize>>20, d.Written>>10, time.Duration(d.Nanos).Round(time.Microsecond))
		}
	}
	for _, rep := range r.Reports {
		fmt.Fprintf(w, "vmm: guest reports %s = %d\n", rep.Key, rep.Value)
	}
	fmt.Fprintf(w, "vmm: %d vCPU(s), %d MiB; process start to guest entry %v, run %v\n",
		r.CPUs, r.MemBytes>>20, startToEntry.Round(time.Microsecond), time.Duration(r.Timing.RunNanos).Round(time.Microsecond))
}
