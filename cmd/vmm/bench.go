package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/allocbench"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// `vmm bench`: boot the guest with the "bench" workload, which times the
// loops of guest/mm/benchloop.go with the guest TSC, then run the very same
// functions on the host in this process (vmm/allocbench: testing.Benchmark
// over a Go []byte arena laid out like guest RAM) and print both with the
// guest/host ratio. Every figure is the best repetition (see allocbench).

type benchFlags struct {
	mem       string
	kernel    string
	json      bool
	verbose   bool
	progress  progressFlag
	hostRuns  int
	benchtime time.Duration
	timeout   time.Duration
}

// benchMetric is one row of the table.
type benchMetric struct {
	Name     string    `json:"name"`
	Unit     string    `json:"unit"` // what one operation is
	GuestKey string    `json:"guest_key"`
	GuestNS  float64   `json:"guest_ns"`
	HostNS   float64   `json:"host_ns"` // best of HostRuns
	Ratio    float64   `json:"ratio"`   // GuestNS / HostNS
	HostRuns []float64 `json:"host_runs_ns"`
	m        allocbench.Metric
}

// benchResult is what `vmm bench --json` prints.
type benchResult struct {
	MemBytes   uint64        `json:"mem_bytes"`
	TSCKHz     uint64        `json:"tsc_khz"`
	HostCPU    string        `json:"host_cpu"`
	HostCPUs   int           `json:"host_cpus"`
	HostRuns   int           `json:"host_runs"`
	GuestRunNS int64         `json:"guest_run_ns"`
	Metrics    []benchMetric `json:"metrics"`
}

func benchMetrics() []benchMetric {
	var out []benchMetric
	for _, m := range allocbench.Metrics() {
		out = append(out, benchMetric{Name: m.Name, Unit: m.Unit, GuestKey: m.GuestKey, m: m})
	}
	return out
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchFlags, error) {
	f := &benchFlags{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.mem, "mem", "512M", "guest RAM `SIZE` (the host arena is the same size)")
	fs.StringVar(&f.kernel, "kernel", "", "boot this guest ELF `FILE` instead of the embedded one")
	fs.BoolVar(&f.json, "json", false, "print the results as JSON on stdout")
	fs.BoolVar(&f.verbose, "v", false, "show the guest console and VMM events on stderr")
	fs.Var(&f.progress, "progress", progressUsage)
	fs.IntVar(&f.hostRuns, "host-runs", 3, "run each host benchmark `N` times and keep the best")
	fs.DurationVar(&f.benchtime, "benchtime", time.Second, "target `DURATION` of each host benchmark run (go test -benchtime)")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "stop the guest after `DURATION`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: vmm bench [flags]")
			fs.PrintDefaults()
			return nil, err
		}
		return nil, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	if f.hostRuns < 1 || f.hostRuns > 100 {
		return nil, usagef("--host-runs %d: must be between 1 and 100", f.hostRuns)
	}
	if f.benchtime <= 0 {
		return nil, usagef("--benchtime %v: must be positive", f.benchtime)
	}
	return f, nil
}

func cmdBench(args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) > 0 && (args[0] == "--floors" || args[0] == "-floors") {
		return cmdFloors(args[1:], stdout, stderr) // floors.go
	}
	f, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	}
	if err != nil {
		return vmm.StatusUsage, err
	}
	cfg := vmm.Config{CPUs: 1, Workload: "bench", Timeout: f.timeout}
	if cfg.MemBytes, err = parseMem(f.mem); err != nil {
		return vmm.StatusUsage, usagef("--mem: %v", err)
	}
	if f.kernel != "" {
		if cfg.Kernel, err = readKernel(f.kernel, cfg.MemBytes); err != nil {
			return vmm.StatusUsage, usagef("--kernel: %v", err)
		}
	} else if k, ok := embeddedKernel(); ok {
		cfg.Kernel = k
	} else {
		return vmm.StatusUsage, usagef("this vmm was built without an embedded guest (run make) and no --kernel was given")
	}
	if err := cfg.Validate(0); err != nil {
		return vmm.StatusUsage, usagef("%v", err)
	}
	m, _ := memmap.Build(cfg.MemBytes)
	kernel, err := vmm.ParseKernel(cfg.Kernel, m.RAMTop())
	if err != nil {
		return vmm.StatusUsage, usagef("--kernel: %v", err)
	}
	prog := f.progress.writer(stderr)
	if f.verbose {
		cfg.Console, cfg.Log = stderr, stderr
	} else {
		cfg.Progress = prog
	}

	// Guest side.
	vm, err := vmm.New(cfg)
	if errors.Is(err, vmm.ErrConfig) {
		return vmm.StatusUsage, usagef("%v", err)
	}
	if err != nil {
		return vmm.StatusVMMError, err
	}
	progressf(prog, "vmm bench: guest loops in a %d MiB guest...", cfg.MemBytes>>20)
	res := vm.Run()
	vm.Close()
	if res.Outcome != vmm.OutcomeExit || res.ExitStatus != 0 {
		printSummary(stderr, res, 0)
		st := res.ExitStatus
		if st == 0 {
			st = vmm.StatusVMMError
		}
		return st, fmt.Errorf("the bench workload did not complete: %s", res.Reason)
	}
	out := benchResult{MemBytes: cfg.MemBytes, HostCPU: cpuModel(), HostCPUs: runtime.NumCPU(),
		HostRuns: f.hostRuns, GuestRunNS: res.Timing.RunNanos}
	out.TSCKHz, _ = res.ReportValue("bench.tsc_khz")
	out.Metrics = benchMetrics()
	for i := range out.Metrics {
		bm := &out.Metrics[i]
		v, ok := res.ReportValue(bm.GuestKey)
		if !ok {
			return vmm.StatusVMMError, fmt.Errorf("the guest did not report %s (an old --kernel?)", bm.GuestKey)
		}
		bm.GuestNS = float64(v)
		if bm.m.GuestPico {
			bm.GuestNS /= 1000
		}
	}

	// Host side: the same loops over an arena laid out like guest RAM.
	_, kernelAreaEnd := vmm.PerCPUArea(kernel.End, cfg.CPUs)
	h, err := allocbench.NewArena(m, kernel.Start, kernelAreaEnd)
	if err != nil {
		return vmm.StatusVMMError, err
	}
	defer h.Release()
	restore, err := allocbench.Benchtime(f.benchtime)
	if err != nil {
		return vmm.StatusVMMError, err
	}
	defer restore()
	progressf(prog, "vmm bench: guest done in %v; now the host: %d metrics x %d run(s) of about %v",
		time.Duration(res.Timing.RunNanos).Round(time.Millisecond), len(out.Metrics), f.hostRuns, f.benchtime)
	for i := range out.Metrics {
		bm := &out.Metrics[i]
		for run := range f.hostRuns {
			progressf(prog, "vmm bench: host %s, run %d/%d", bm.Name, run+1, f.hostRuns)
			ns, err := h.Run(bm.m)
			if err != nil {
				return vmm.StatusVMMError, err
			}
			bm.HostRuns = append(bm.HostRuns, ns)
		}
		bm.HostNS = slices.Min(bm.HostRuns)
		bm.Ratio = math.Inf(1)
		if bm.HostNS > 0 {
			bm.Ratio = bm.GuestNS / bm.HostNS
		}
	}
	if n := h.Check(); n != 0 {
		return vmm.StatusVMMError, fmt.Errorf("the host arena has %d allocator violations after the benchmarks", n)
	}

	if f.json {
		doc := struct {
			Schema string `json:"schema"`
			benchResult
		}{schemaBench, out}
		if err := writeJSON(stdout, doc); err != nil {
			return vmm.StatusVMMError, err
		}
		return 0, nil
	}
	fmt.Fprintf(stdout, "vmm bench: guest %d MiB, 1 vCPU, TSC %d kHz (from KVM); host %s, %d CPUs, best of %d run(s) of go test -benchtime %v; every figure is the best repetition (see -h)\n",
		cfg.MemBytes>>20, out.TSCKHz, out.HostCPU, out.HostCPUs, f.hostRuns, f.benchtime)
	fmt.Fprintf(stdout, "%-34s %12s %12s %11s\n", "metric", "guest ns", "host ns", "guest/host")
	for _, bm := range out.Metrics {
		fmt.Fprintf(stdout, "%-34s %12s %12s %11.3f\n", bm.Name+" (/"+bm.Unit+")", fmtNS(bm.GuestNS), fmtNS(bm.HostNS), bm.Ratio)
	}
	return 0, nil
}

func fmtNS(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or GOARCH.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}
