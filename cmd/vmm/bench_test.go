package main

import (
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/internal/kvmtest"
	"github.com/vmm-dev/vmm/vmm"
)

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--bogus"},
		{"bench", "--mem", "3M"},
		{"bench", "--mem", "12X"},
		{"bench", "--host-runs", "0"},
		{"bench", "--benchtime", "-1s"},
		{"bench", "--kernel", "/nonexistent/guest.elf"},
		{"bench", "extra"},
	} {
		st, out, errs := runCLI(args...)
		if st != vmm.StatusUsage || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 || errs == "" {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want %d and one line", args, st, out, errs, vmm.StatusUsage)
		}
	}
}

// TestBenchJSON boots the bench workload and runs the host loops (short
// benchtime: this checks the plumbing, not the numbers).
func TestBenchJSON(t *testing.T) {
	kvmtest.Require(t)
	st, out, errs := runCLI("bench", "--json", "--mem", "256M", "--kernel", guestPath(t), "--host-runs", "1", "--benchtime", "100ms")
	if st != 0 {
		t.Fatalf("status %d\nstderr: %s", st, errs)
	}
	var res benchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	validateJSON(t, out, "bench")
	if res.MemBytes != 256<<20 || res.TSCKHz == 0 || res.HostRuns != 1 {
		t.Errorf("header %+v", res)
	}
	want := map[string]bool{}
	for _, m := range benchMetrics() {
		want[m.GuestKey] = true
	}
	for _, m := range res.Metrics {
		if !want[m.GuestKey] {
			t.Errorf("unexpected metric %+v", m)
		}
		delete(want, m.GuestKey)
		if m.GuestNS <= 0 || m.HostNS <= 0 || len(m.HostRuns) != 1 {
			t.Errorf("%s: guest %v ns, host %v ns (runs %v)", m.Name, m.GuestNS, m.HostNS, m.HostRuns)
		}
		if math.IsInf(m.Ratio, 0) || math.IsNaN(m.Ratio) || m.Ratio <= 0 {
			t.Errorf("%s: ratio %v", m.Name, m.Ratio)
		}
		t.Logf("%-26s guest %10.2f ns  host %10.2f ns  ratio %.3f", m.Name, m.GuestNS, m.HostNS, m.Ratio)
	}
	for k := range want {
		t.Errorf("metric %s missing", k)
	}
}

func TestBenchTable(t *testing.T) {
	kvmtest.Require(t)
	st, out, errs := runCLI("bench", "--mem", "128M", "--kernel", guestPath(t), "--host-runs", "1", "--benchtime", "50ms")
	if st != 0 {
		t.Fatalf("status %d\nstderr: %s", st, errs)
	}
	for _, m := range benchMetrics() {
		if !strings.Contains(out, m.Name) {
			t.Errorf("table lacks %q:\n%s", m.Name, out)
		}
	}
	if !strings.Contains(out, "guest/host") {
		t.Errorf("no header:\n%s", out)
	}
}

func TestBenchFloorsRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--floors", "--bogus"},
		{"bench", "--floors", "--runs", "0"},
		{"bench", "--floors", "--sizes", "1G,12X"},
		{"bench", "--floors", "--kernel", "/nonexistent/guest.elf"},
		{"bench", "--floors", "extra"},
	} {
		st, out, errs := runCLI(args...)
		if st != vmm.StatusUsage || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 || errs == "" {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want %d and one line", args, st, out, errs, vmm.StatusUsage)
		}
	}
}

// TestBenchFloorsJSON runs the in-process floors and one small guest row
// (the whole-process rows re-execute the binary: not from a test binary).
func TestBenchFloorsJSON(t *testing.T) {
	kvmtest.Require(t)
	st, out, errs := runCLI("bench", "--floors", "--json", "--no-boot", "--runs", "1", "--sizes", "64M",
		"--kernel", guestPath(t), "--dir", t.TempDir())
	if st != 0 {
		t.Fatalf("status %d\nstderr: %s", st, errs)
	}
	var res floorResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	validateJSON(t, out, "bench_floors")
	if res.KVMFloorNS <= 0 || len(res.Guests) != 1 {
		t.Fatalf("floors missing: %s", out)
	}
	g := res.Guests[0]
	if g.Frames == 0 || g.MetaBytes != 64*g.Frames || len(g.ScanNS) != res.HostCPUs ||
		g.VerifyNS <= 0 || g.DumpWritten == 0 || g.WriteFloorNS <= 0 || g.DurableFloorNS <= 0 || g.FirstWorkloadNS <= 0 {
		t.Errorf("guest row incomplete: %+v", g)
	}
}

// TestCountBootEvents: the bench's lower bound prices what a real default
// boot reports: its hypercalls (at least its checkpoints and the exit), its
// console doorbell exits (none: the guest rings no doorbell) and the
// guest's handled exceptions, each at its
// event floor, plus the floor process.
func TestCountBootEvents(t *testing.T) {
	kvmtest.Require(t)
	bin := filepath.Join(t.TempDir(), "vmm")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	ev, err := countBootEvents(bin, eventFloors{MMIOExitNS: 1000, ExceptionNS: 10}, 1e6)
	if err != nil {
		t.Fatal(err)
	}
	_, out, _ := runCLI("boot", "--kernel", guestPath(t), "--json")
	var res vmm.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if ev.Hypercalls < uint64(len(res.Checkpoints)) || ev.Exceptions == 0 || ev.DoorbellExits != res.Console.DoorbellExits {
		t.Fatalf("counts %+v for a boot of %d checkpoints", ev, len(res.Checkpoints))
	}
	want := float64(ev.Hypercalls+ev.DoorbellExits)*1000 + float64(ev.Exceptions)*10
	if ev.EventsNS != want || ev.BoundNS != want+1e6 || ev.BoundRatio != (want+1e6)/1e6 {
		t.Errorf("priced %+v, want events %.0f ns", ev, want)
	}
}
