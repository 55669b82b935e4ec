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
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// `vmm bench`: boot the guest with the "bench" workload, which times the
// loops of guest/mm/benchloop.go with the guest TSC, then run the very same
// functions on the host in this process (testing.Benchmark over a Go []byte
// arena laid out like guest RAM) and print both with the guest/host ratio.
//
// Both sides time repetitions of identical work and keep the best one
// (lowest time per operation): BenchPairChunk pairs, one 64 MiB round of
// allocations, one 1 GiB metadata init. On a small shared machine the mean
// also measures whoever else ran; the best repetition is the allocator.

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
	Name      string    `json:"name"`
	Unit      string    `json:"unit"` // what one operation is
	GuestKey  string    `json:"guest_key"`
	GuestNS   float64   `json:"guest_ns"`
	HostNS    float64   `json:"host_ns"` // best of HostRuns
	Ratio     float64   `json:"ratio"`   // GuestNS / HostNS
	HostRuns  []float64 `json:"host_runs_ns"`
	guestPico bool      // the guest reports picoseconds
	host      func(*hostBench) func(*testing.B)
	hostExtra string // the testing.BenchmarkResult.Extra key of the figure
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
	order := func(k uint8) func(*hostBench) func(*testing.B) {
		return func(h *hostBench) func(*testing.B) { return h.allocOrder(k) }
	}
	return []benchMetric{
		{Name: "order-0 alloc+free pair", Unit: "pair", GuestKey: "bench.order0_pair_ps", guestPico: true,
			host: func(h *hostBench) func(*testing.B) { return h.allocFree }, hostExtra: "ns/pair"},
		{Name: "order-0 alloc", Unit: "alloc", GuestKey: "bench.order0_alloc_ps", guestPico: true, host: order(0), hostExtra: "ns/alloc"},
		{Name: "order-3 alloc", Unit: "alloc", GuestKey: "bench.order3_alloc_ps", guestPico: true, host: order(3), hostExtra: "ns/alloc"},
		{Name: "order-9 alloc", Unit: "alloc", GuestKey: "bench.order9_alloc_ps", guestPico: true, host: order(9), hostExtra: "ns/alloc"},
		{Name: "metadata init, 1 GiB", Unit: "GiB", GuestKey: "bench.init_gib_ns",
			host: func(h *hostBench) func(*testing.B) { return h.initMetadata }, hostExtra: "ns/GiB"},
	}
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
		if cfg.Kernel, err = os.ReadFile(f.kernel); err != nil {
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
		if bm.guestPico {
			bm.GuestNS /= 1000
		}
	}

	// Host side: the same loops over an arena laid out like guest RAM.
	h, err := newHostBench(m, kernel)
	if err != nil {
		return vmm.StatusVMMError, err
	}
	defer h.release()
	testing.Init() // testing.Benchmark outside go test: register -test.benchtime
	oldBenchtime := flag.Lookup("test.benchtime").Value.String()
	if err := flag.Set("test.benchtime", f.benchtime.String()); err != nil {
		return vmm.StatusVMMError, err
	}
	defer flag.Set("test.benchtime", oldBenchtime) // in a test binary, leave -benchtime as it was
	progressf(prog, "vmm bench: guest done in %v; now the host: %d metrics x %d run(s) of about %v",
		time.Duration(res.Timing.RunNanos).Round(time.Millisecond), len(out.Metrics), f.hostRuns, f.benchtime)
	for i := range out.Metrics {
		bm := &out.Metrics[i]
		for run := range f.hostRuns {
			progressf(prog, "vmm bench: host %s, run %d/%d", bm.Name, run+1, f.hostRuns)
			r := testing.Benchmark(bm.host(h))
			if h.err != nil {
				return vmm.StatusVMMError, fmt.Errorf("host %s: %w", bm.Name, h.err)
			}
			bm.HostRuns = append(bm.HostRuns, r.Extra[bm.hostExtra])
		}
		bm.HostNS = slices.Min(bm.HostRuns)
		bm.Ratio = math.Inf(1)
		if bm.HostNS > 0 {
			bm.Ratio = bm.GuestNS / bm.HostNS
		}
	}
	if n := h.check(); n != 0 {
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

// hostBench is a buddy allocator over a Go []byte standing in for guest
// RAM: physical address p is buf[p] (virtOffset = &arena[0]), RAM ranges
// from the guest's memory map, the firmware area, kernel image and per-CPU
// area in use, like the guest's mmInit. The 16 MiB init buffer is separate.
type hostBench struct {
	buf        []byte
	off        uintptr
	b          mm.Buddy
	boot       mm.BootAllocator
	ram, inUse []mm.Range
	slots      []uint64
	initBuf    []byte
	initOff    uintptr
	chunks     [mm.BenchInitChunks]uint64
	err        error
}

// alignedBytes returns a []byte of size bytes whose first byte is 4 KiB
// aligned, and the slice keeping it alive.
func alignedBytes(size uint64) (mem, keep []byte) {
	keep = make([]byte, size+mm.PageSize)
	pad := (mm.PageSize - uintptr(unsafe.Pointer(&keep[0]))%mm.PageSize) % mm.PageSize
	return keep[pad : pad+uintptr(size)], keep
}

// hostIRQMask stands in for the guest's per-CPU interrupt mask.
var hostIRQMask atomic.Uint64

func newHostBench(m memmap.Map, k *vmm.Kernel) (*hostBench, error) {
	h := &hostBench{}
	var mem []byte
	mem, h.buf = alignedBytes(m.RAMTop())
	h.off = uintptr(unsafe.Pointer(&mem[0]))
	for _, r := range m.Ranges() {
		if r.Kind == memmap.RAM {
			h.ram = append(h.ram, mm.Range{Base: r.Base, Size: r.Size})
		}
	}
	perCPUEnd := (k.End+firmware.PerCPUAlign-1)&^(firmware.PerCPUAlign-1) + firmware.PerCPUStride
	h.inUse = []mm.Range{
		{Base: 0, Size: firmware.FirmwareEnd},
		{Base: k.Start, Size: perCPUEnd - k.Start},
	}
	if err := h.b.Setup(h.off, &h.boot, h.ram, h.inUse, nil); err != mm.ErrNone {
		return nil, fmt.Errorf("host arena: allocator setup: %w", err)
	}
	// The guest's Lock masks interrupts through IRQSave/IRQRestore (a flag
	// in its per-CPU trap record); give the host the same kind of work, so
	// both sides run the same code path.
	h.b.IRQSave = func() uintptr {
		old := hostIRQMask.Load()
		hostIRQMask.Store(1)
		return uintptr(old)
	}
	h.b.IRQRestore = func(old uintptr) { hostIRQMask.Store(uint64(old)) }
	h.slots = make([]uint64, mm.BenchOrderBatch(0))
	var initMem []byte
	initMem, h.initBuf = alignedBytes(mm.BenchGiBFrames * mm.FrameMetaSize)
	h.initOff = uintptr(unsafe.Pointer(&initMem[0]))
	for i := range h.chunks {
		h.chunks[i] = uint64(i) * mm.BenchInitChunkFrames * mm.FrameMetaSize
	}
	mm.BenchInitMetadata(h.initOff, h.chunks[:], mm.BenchInitChunkFrames) // first touch, as in the guest
	return h, nil
}

func (h *hostBench) release() {
	runtime.KeepAlive(h.buf)
	runtime.KeepAlive(h.initBuf)
}

func (h *hostBench) check() int {
	var out [8]mm.Violation
	tok := h.b.Lock()
	n := h.b.Check(out[:])
	h.b.Unlock(&tok)
	return n
}

func (h *hostBench) fail(err mm.AllocError, b *testing.B) {
	if h.err == nil {
		h.err = err
	}
	b.SkipNow()
}

// best keeps the lowest per-operation time of the repetitions of a host
// benchmark, the estimator the guest uses too (see guest/wl_bench.go).
type best struct {
	ns   float64
	full bool // ns comes from a full-size repetition
}

func (m *best) add(d time.Duration, ops int, full bool) {
	if ops <= 0 || (m.full && !full) {
		return
	}
	ns := float64(d.Nanoseconds()) / float64(ops)
	if m.ns == 0 || ns < m.ns || (full && !m.full) {
		m.ns, m.full = ns, full
	}
}

// allocFree: repetitions of mm.BenchPairChunk pairs (as in the guest); the
// figure is the "ns/pair" metric, the best full repetition.
func (h *hostBench) allocFree(b *testing.B) {
	var m best
	for done := 0; done < b.N; {
		n := min(mm.BenchPairChunk, b.N-done)
		t0 := time.Now()
		err := mm.BenchAllocFree(&h.b, n)
		m.add(time.Since(t0), n, n == mm.BenchPairChunk)
		if err != mm.ErrNone {
			h.fail(err, b)
			return
		}
		done += n
	}
	b.ReportMetric(m.ns, "ns/pair")
}

// allocOrder is the guest's round loop: BenchOrderBatch blocks allocated
// (timed) then freed (not timed), until b.N blocks; the figure is the
// "ns/alloc" metric, the best full round.
func (h *hostBench) allocOrder(order uint8) func(*testing.B) {
	return func(b *testing.B) {
		slots := h.slots[:mm.BenchOrderBatch(order)]
		var m best
		for total := 0; total < b.N; {
			batch := slots[:min(len(slots), b.N-total)]
			t0 := time.Now()
			done, err := mm.BenchAllocOrder(&h.b, order, batch)
			m.add(time.Since(t0), done, done == len(slots))
			ferr := mm.BenchFreeOrder(&h.b, order, batch[:done])
			if err != mm.ErrNone || ferr != mm.ErrNone {
				h.fail(max(err, ferr), b)
				return
			}
			total += done
		}
		b.ReportMetric(m.ns, "ns/alloc")
	}
}

// initMetadata: the figure is the "ns/GiB" metric, the best repetition.
func (h *hostBench) initMetadata(b *testing.B) {
	var m best
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		mm.BenchInitMetadata(h.initOff, h.chunks[:], mm.BenchInitChunkFrames)
		m.add(time.Since(t0), 1, true)
	}
	b.ReportMetric(m.ns, "ns/GiB")
}
