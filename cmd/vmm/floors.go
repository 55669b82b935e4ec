package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmm-dev/vmm/vmm"
)

// `vmm bench --floors`: the VMM's own figures beside the least this machine
// can do for the same work, measured in one run and printed as ratios.
//
//   - boot: whole `vmm boot` processes (hello, default) against a process
//     that only runs vmm.KVMFloor (create a VM, enter long mode at CPL3,
//     take one MMIO exit, exit), interleaved run by run;
//   - per guest size: live verification against a scan of the same number
//     of metadata bytes on 1..all host CPUs, the dump write against writing
//     its data bytes to the page cache, and the time to the first workload.

type floorFlags struct {
	runs     int
	kernel   string
	sizes    string
	cpus     int
	dir      string
	json     bool
	kvmOnce  bool
	noBoot   bool
	noGuests bool
	also     string
}

// floorBoot is one "whole process" row: median wall time over the runs.
type floorBoot struct {
	Name     string  `json:"name"`
	MedianNS int64   `json:"median_ns"`
	RunsNS   []int64 `json:"runs_ns"`
	Ratio    float64 `json:"ratio_to_floor"`
}

// floorGuest is one guest size's row.
type floorGuest struct {
	MemBytes        uint64  `json:"mem_bytes"`
	CPUs            int     `json:"cpus"`
	Frames          uint64  `json:"frames"`
	MetaBytes       uint64  `json:"meta_bytes"`
	FirstWorkloadNS int64   `json:"first_workload_ns"` // vmm.New .. first checkpoint
	VerifyNS        int64   `json:"verify_ns"`         // median of VerifyRuns (the first checkpoint, then the same memory again)
	VerifyRuns      []int64 `json:"verify_runs_ns"`
	ScanNS          []int64 `json:"scan_ns"` // [k] = median scan on k+1 CPUs
	VerifyRatio1    float64 `json:"verify_over_scan_1cpu"`
	VerifyRatioAll  float64 `json:"verify_over_scan_all_cpus"`
	DumpNS          int64   `json:"dump_ns"` // median of DumpRuns (--dump: renamed once in the page cache)
	DumpRuns        []int64 `json:"dump_runs_ns"`
	DumpWritten     uint64  `json:"dump_bytes_written"`
	WriteFloorNS    int64   `json:"write_floor_ns"`
	DumpRatio       float64 `json:"dump_over_write_floor"`
	// --dump-sync dumps, against the same writes made durable the same
	// way (writeback every 16 MiB, fsync): how far the disk, not the copy,
	// sets their pace.
	DumpSyncNS     int64   `json:"dump_sync_ns"`
	DumpSyncRuns   []int64 `json:"dump_sync_runs_ns"`
	DurableFloorNS int64   `json:"durable_write_floor_ns"`
	DumpSyncRatio  float64 `json:"dump_sync_over_durable_write_floor"`
}

type floorResult struct {
	HostCPU      string               `json:"host_cpu"`
	HostCPUs     int                  `json:"host_cpus"`
	Runs         int                  `json:"runs"`
	KVMFloorNS   int64                `json:"kvm_floor_in_process_ns"` // median vmm.KVMFloor
	KVMFloorRuns []vmm.KVMFloorTiming `json:"kvm_floor_in_process"`
	Events       eventFloors          `json:"event_floors"`
	Boot         []floorBoot          `json:"boot"`
	// DefaultBootEvents prices what a default boot must cause at the
	// event floors (absent with --no-boot).
	DefaultBootEvents *bootEvents  `json:"default_boot_events,omitempty"`
	Guests            []floorGuest `json:"guests"`
}

// bootEvents is what one default boot caused that the event floors price,
// counted by the VMM and the guest, and the least that costs: a lower
// bound on the boot, since every one of these events costs at least its
// floor and the boot does more (KVM's shadow-page faults, the checkpoints,
// the workloads' own work, the VMM's setup).
type bootEvents struct {
	Hypercalls    uint64  `json:"hypercalls"`     // MMIO exits through the hypercall doorbell
	DoorbellExits uint64  `json:"doorbell_exits"` // console doorbells taken as MMIO exits
	Exceptions    uint64  `json:"exceptions"`     // the guest's traps.handled
	EventsNS      float64 `json:"events_ns"`      // their cost at the event floors
	BoundNS       float64 `json:"lower_bound_ns"` // EventsNS plus the floor process
	BoundRatio    float64 `json:"lower_bound_ratio_to_floor"`
}

// countBootEvents runs one default boot of bin with --json and prices its
// MMIO exits and exceptions at e, beside the floor process's floorNS.
func countBootEvents(bin string, e eventFloors, floorNS int64) (*bootEvents, error) {
	b, err := exec.Command(bin, "boot", "--json").Output()
	if err != nil {
		return nil, fmt.Errorf("default boot --json: %w", err)
	}
	var res struct {
		VCPUs []struct {
			Handled uint64 `json:"hypercalls_handled"`
		} `json:"vcpus"`
		Console struct {
			DoorbellExits uint64 `json:"doorbell_exits"`
		} `json:"console"`
		Reports []vmm.Report `json:"reports"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("default boot --json: %w", err)
	}
	ev := &bootEvents{DoorbellExits: res.Console.DoorbellExits}
	for _, v := range res.VCPUs {
		ev.Hypercalls += v.Handled
	}
	for _, r := range res.Reports {
		if r.Key == "traps.handled" {
			ev.Exceptions = r.Value
		}
	}
	ev.EventsNS = float64(ev.Hypercalls+ev.DoorbellExits)*e.MMIOExitNS + float64(ev.Exceptions)*e.ExceptionNS
	ev.BoundNS = ev.EventsNS + float64(floorNS)
	ev.BoundRatio = ev.BoundNS / float64(floorNS)
	return ev, nil
}

func parseFloorFlags(args []string, stderr io.Writer) (*floorFlags, error) {
	f := &floorFlags{}
	fs := flag.NewFlagSet("bench --floors", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&f.runs, "runs", 11, "repeat every measurement `N` times and keep the median")
	fs.StringVar(&f.kernel, "kernel", "", "boot this guest ELF `FILE` in the size rows instead of the embedded one")
	fs.StringVar(&f.sizes, "sizes", "1G,4G", "comma-separated guest `SIZES` for the verification and dump rows")
	fs.IntVar(&f.cpus, "cpus", 1, "vCPUs of the guests in the size rows")
	fs.StringVar(&f.dir, "dir", os.TempDir(), "`DIR` for the dumps and the write floor's file")
	fs.BoolVar(&f.json, "json", false, "print the results as JSON on stdout")
	fs.BoolVar(&f.kvmOnce, "kvm-once", false, "run the KVM floor once and exit (the boot rows' floor process)")
	fs.BoolVar(&f.noBoot, "no-boot", false, "skip the whole-process boot rows")
	fs.BoolVar(&f.noGuests, "no-guests", false, "skip the per-size rows")
	fs.StringVar(&f.also, "also", "", "add the boot rows of another vmm `BINARY` to the same farm (a before/after comparison)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: vmm bench --floors [flags]")
			fs.PrintDefaults()
			return nil, err
		}
		return nil, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	if f.runs < 1 || f.runs > 1000 {
		return nil, usagef("--runs %d: must be between 1 and 1000", f.runs)
	}
	return f, nil
}

func cmdFloors(args []string, stdout, stderr io.Writer) (int, error) {
	f, err := parseFloorFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	}
	if err != nil {
		return vmm.StatusUsage, err
	}
	if f.also != "" {
		if st, err := os.Stat(f.also); err != nil || st.IsDir() {
			return vmm.StatusUsage, usagef("--also %q: not a vmm binary (%v)", f.also, err)
		}
	}
	if f.kvmOnce {
		if _, err := vmm.KVMFloor(); err != nil {
			return vmm.StatusVMMError, err
		}
		return 0, nil
	}
	var sizes []uint64
	for _, s := range strings.Split(f.sizes, ",") {
		n, err := parseMem(strings.TrimSpace(s))
		if err != nil {
			return vmm.StatusUsage, usagef("--sizes %q: %v", s, err)
		}
		sizes = append(sizes, n)
	}
	kernel, ok := embeddedKernel()
	if f.kernel != "" {
		if kernel, err = readKernel(f.kernel, slices.Max(sizes)); err != nil {
			return vmm.StatusUsage, usagef("--kernel: %v", err)
		}
	} else if !ok && !f.noGuests {
		return vmm.StatusUsage, usagef("this vmm was built without an embedded guest (run make) and no --kernel was given")
	}
	out := floorResult{HostCPU: cpuModel(), HostCPUs: runtime.NumCPU(), Runs: f.runs}

	var inProc []int64
	for range f.runs {
		t, err := vmm.KVMFloor()
		if err != nil {
			return vmm.StatusVMMError, err
		}
		out.KVMFloorRuns = append(out.KVMFloorRuns, t)
		inProc = append(inProc, t.TotalNanos)
	}
	out.KVMFloorNS = median(inProc)
	if out.Events, err = measureEventFloors(f.runs); err != nil {
		return vmm.StatusVMMError, err
	}

	if !f.noBoot {
		if out.Boot, err = floorBoots(f.runs, f.also); err != nil {
			return vmm.StatusVMMError, err
		}
		self, err := os.Executable()
		if err != nil {
			return vmm.StatusVMMError, err
		}
		if out.DefaultBootEvents, err = countBootEvents(self, out.Events, out.Boot[0].MedianNS); err != nil {
			return vmm.StatusVMMError, err
		}
	}
	if !f.noGuests {
		for _, size := range sizes {
			g, err := floorGuestRow(kernel, size, f)
			if err != nil {
				return vmm.StatusVMMError, fmt.Errorf("%d MiB guest: %w", size>>20, err)
			}
			out.Guests = append(out.Guests, g)
		}
	}

	if f.json {
		return 0, writeJSON(stdout, struct {
			Schema string `json:"schema"`
			*floorResult
		}{schemaBenchFloors, &out})
	}
	printFloors(stdout, &out)
	return 0, nil
}

// floorBoots runs the floor process, the hello boot and the default boot in
// turn (and those of the binary also, if given), runs times, so all of
// them see the same machine.
func floorBoots(runs int, also string) ([]floorBoot, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	type row struct {
		name string
		bin  string
		args []string
	}
	rows := []row{
		{"KVM floor process (bench --floors --kvm-once)", self, []string{"bench", "--floors", "--kvm-once"}},
		{"vmm boot --workload hello", self, []string{"boot", "--workload", "hello"}},
		{"vmm boot (default workloads)", self, []string{"boot"}},
	}
	if also != "" {
		rows = append(rows, row{also + " boot --workload hello", also, []string{"boot", "--workload", "hello"}},
			row{also + " boot", also, []string{"boot"}})
	}
	out := make([]floorBoot, len(rows))
	for range runs {
		for i, r := range rows {
			cmd := exec.Command(r.bin, r.args...)
			t0 := time.Now()
			b, err := cmd.CombinedOutput()
			d := time.Since(t0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w\n%s", r.name, err, b)
			}
			out[i].Name = r.name
			out[i].RunsNS = append(out[i].RunsNS, d.Nanoseconds())
		}
	}
	for i := range out {
		out[i].MedianNS = median(out[i].RunsNS)
		out[i].Ratio = float64(out[i].MedianNS) / float64(out[0].MedianNS)
	}
	return out, nil
}

// floorGuestRow boots a hello guest of size bytes with a dump, then runs
// the scan and write floors over the same byte counts.
func floorGuestRow(kernel []byte, size uint64, f *floorFlags) (floorGuest, error) {
	g := floorGuest{MemBytes: size, CPUs: f.cpus}
	tmpDir, err := os.MkdirTemp(f.dir, "vmm-floor-*") // never a name the user may own
	if err != nil {
		return g, err
	}
	defer os.RemoveAll(tmpDir)
	dumpPath := filepath.Join(tmpDir, "guest.core")
	// On a machine that is itself a VM, page-cache pages never used since
	// it booted cost the outer hypervisor's first touch; write and delete
	// a file of twice the dump's size first (the guest's metadata takes
	// as much again), so the dump and the write floor both run on recycled
	// pages.
	if _, err := vmm.WriteFloor(f.dir, 2*(size/4096*64)+32<<20); err != nil {
		return g, err
	}
	cfg := vmm.Config{MemBytes: size, CPUs: f.cpus, Kernel: kernel, Workload: "hello", Timeout: 5 * time.Minute, DumpPath: dumpPath}
	if err := cfg.Validate(0); err != nil {
		return g, err
	}
	created := time.Now()
	vm, err := vmm.New(cfg)
	if err != nil {
		return g, err
	}
	closeVM := sync.OnceValue(vm.Close) // after the dumps, or on an early return
	defer closeVM()
	res := vm.Run()
	if res.Outcome != vmm.OutcomeExit || res.ExitStatus != 0 || res.Registration == nil || len(res.Checkpoints) == 0 {
		return g, fmt.Errorf("hello boot did not complete cleanly: %s", res.Reason)
	}
	if res.Dump == nil || res.Dump.Error != "" {
		return g, fmt.Errorf("dump failed: %+v", res.Dump)
	}
	cp := res.Checkpoints[0]
	g.Frames = res.Registration.FrameCount
	g.MetaBytes = g.Frames * 64
	// From vmm.New (building the VM and pre-faulting the metadata count)
	// to the first checkpoint, which the guest takes after its first
	// workload.
	g.FirstWorkloadNS = vm.FirstEntry().Sub(created).Nanoseconds() + cp.AtNanos
	g.DumpWritten = res.Dump.Written
	// The verification (the first checkpoint and runs-1 more) and the
	// scan floors, alternated so that both meet the same machine (its
	// vCPUs took several runs to reach full speed after the guest's run),
	// before the dumps, whose page-cache churn a checkpoint never follows.
	buf, err := vmm.NewScanBuffer(g.MetaBytes)
	if err != nil {
		return g, err
	}
	defer buf.Close()
	verifies := []int64{cp.Nanos}
	scans := make([][]int64, runtime.NumCPU())
	for i := range f.runs {
		if i > 0 {
			d, n, err := vm.VerifyAgain()
			if err != nil || n != 0 {
				return g, fmt.Errorf("verification again: %d violations, %v", n, err)
			}
			verifies = append(verifies, d.Nanoseconds())
		}
		for k := range scans {
			d, _ := buf.Scan(k + 1)
			scans[k] = append(scans[k], d.Nanoseconds())
		}
	}
	buf.Close()
	g.VerifyNS, g.VerifyRuns = median(verifies), verifies
	for _, ts := range scans {
		g.ScanNS = append(g.ScanNS, median(ts))
	}
	g.VerifyRatio1 = float64(g.VerifyNS) / float64(g.ScanNS[0])
	g.VerifyRatioAll = float64(g.VerifyNS) / float64(g.ScanNS[len(g.ScanNS)-1])

	// Then the dumps, the exit dump and more of the same guest, each kind
	// beside its floor: a dump, the page-cache write floor, a --dump-sync
	// dump, the durable write floor, in turn.
	dumps := []int64{res.Dump.Nanos}
	var synced, writes, durables []int64
	for i := range min(f.runs, 5) {
		if i > 0 {
			os.Remove(dumpPath)
			d, err := vm.DumpAgain(dumpPath, false)
			if err != nil {
				return g, err
			}
			dumps = append(dumps, d.Nanos)
		}
		w, err := vmm.WriteFloor(f.dir, g.DumpWritten)
		if err != nil {
			return g, err
		}
		os.Remove(dumpPath)
		d, err := vm.DumpAgain(dumpPath, true)
		if err != nil {
			return g, err
		}
		dw, err := vmm.DurableWriteFloor(f.dir, g.DumpWritten)
		if err != nil {
			return g, err
		}
		writes, synced, durables = append(writes, w.Nanoseconds()), append(synced, d.Nanos), append(durables, dw.Nanoseconds())
	}
	closeVM()
	os.Remove(dumpPath)
	g.DumpNS, g.DumpRuns = median(dumps), dumps
	g.DumpSyncNS, g.DumpSyncRuns = median(synced), synced
	g.WriteFloorNS, g.DurableFloorNS = median(writes), median(durables)
	g.DumpRatio = float64(g.DumpNS) / float64(g.WriteFloorNS)
	g.DumpSyncRatio = float64(g.DumpSyncNS) / float64(g.DurableFloorNS)
	return g, nil
}

func printFloors(w io.Writer, r *floorResult) {
	fmt.Fprintf(w, "vmm bench --floors: host %s, %d CPUs, medians of %d runs\n", r.HostCPU, r.HostCPUs, r.Runs)
	fmt.Fprintf(w, "KVM floor in process (create VM .. one MMIO exit .. closed): %s\n", ms(r.KVMFloorNS))
	e := r.Events
	fmt.Fprintf(w, "event floors, one event (%d a run): exception round trip %s, MMIO exit %s, first touch of a page %s\n",
		eventFloorN, us(e.ExceptionNS), us(e.MMIOExitNS), us(e.FirstTouchNS))
	if len(r.Boot) > 0 {
		fmt.Fprintf(w, "\n%-48s %10s %8s\n", "whole process, wall clock", "median", "/floor")
		for _, b := range r.Boot {
			fmt.Fprintf(w, "%-48s %10s %8.2f\n", b.Name, ms(b.MedianNS), b.Ratio)
		}
	}
	if ev := r.DefaultBootEvents; ev != nil {
		fmt.Fprintf(w, "a default boot's MMIO exits (%d hypercalls, %d console doorbells) and %d exceptions cost %s at the event floors;\n"+
			"  with the floor process, %s: at least %.2fx the floor before anything else the boot does\n",
			ev.Hypercalls, ev.DoorbellExits, ev.Exceptions, ms(int64(ev.EventsNS)), ms(int64(ev.BoundNS)), ev.BoundRatio)
	}
	for _, g := range r.Guests {
		fmt.Fprintf(w, "\nguest %d MiB, %d vCPU(s), %d frames (%d MiB of metadata)\n", g.MemBytes>>20, g.CPUs, g.Frames, g.MetaBytes>>20)
		fmt.Fprintf(w, "  time to first workload (vmm.New .. first checkpoint): %s\n", ms(g.FirstWorkloadNS))
		fmt.Fprintf(w, "  live verification %s; scan floor", ms(g.VerifyNS))
		for k, s := range g.ScanNS {
			fmt.Fprintf(w, " %d CPU %s", k+1, ms(s))
		}
		fmt.Fprintf(w, "; ratio %.2f (1 CPU), %.2f (all)\n", g.VerifyRatio1, g.VerifyRatioAll)
		fmt.Fprintf(w, "  dump %s for %d MiB written; page-cache write floor %s; ratio %.2f\n",
			ms(g.DumpNS), g.DumpWritten>>20, ms(g.WriteFloorNS), g.DumpRatio)
		fmt.Fprintf(w, "  dump --dump-sync %s; durable write floor (fsync) %s; ratio %.2f\n",
			ms(g.DumpSyncNS), ms(g.DurableFloorNS), g.DumpSyncRatio)
	}
}

// eventFloorN is how many events of each kind one vmm.EventFloors run times.
const eventFloorN = 256

// eventFloors are the medians of runs vmm.EventFloors runs (ns per event).
type eventFloors struct {
	ExceptionNS  float64                `json:"exception_ns"`
	MMIOExitNS   float64                `json:"mmio_exit_ns"`
	FirstTouchNS float64                `json:"first_touch_ns"`
	Runs         []vmm.EventFloorTiming `json:"runs"`
}

func measureEventFloors(runs int) (eventFloors, error) {
	var e eventFloors
	var exc, mmio, touch []float64
	for range runs {
		t, err := vmm.EventFloors(eventFloorN)
		if err != nil {
			return e, err
		}
		e.Runs = append(e.Runs, t)
		exc, mmio, touch = append(exc, t.ExceptionNanos), append(mmio, t.MMIOExitNanos), append(touch, t.FirstTouchNanos)
	}
	e.ExceptionNS, e.MMIOExitNS, e.FirstTouchNS = median(exc), median(mmio), median(touch)
	return e, nil
}

func us(ns float64) string { return fmt.Sprintf("%.1f us", ns/1e3) }

func ms(ns int64) string { return fmt.Sprintf("%.2f ms", float64(ns)/1e6) }

func median[T cmp.Ordered](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
