package vmm

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// TestSMPWorkload runs the smp workload on 2 vCPUs and on 4 (more than this
// machine's host CPUs: oversubscription must not hang) and checks the host
// saw populated per-CPU caches that match the frames' metadata.
func TestSMPWorkload(t *testing.T) {
	for _, cpus := range []int{2, 4} {
		t.Run(fmt.Sprintf("cpus=%d", cpus), func(t *testing.T) {
			cfg := bootConfig(t)
			cfg.CPUs = cpus
			cfg.Workload = "smp"
			res, out := boot(t, cfg)
			verifiedClean(t, res, out, "smp-caches", "smp")
			wantReport(t, res, "smp.cpus", uint64(cpus))
			wantReport(t, res, "smp.shared_freed", 64) // each shared frame freed by exactly one put
			if n, _ := res.ReportValue("smp.cross_cpu_frees"); n == 0 {
				t.Error("no frame was freed on another vCPU")
			}
			for _, c := range res.Checkpoints {
				if c.Label != "smp-caches" {
					continue
				}
				cached := uint64(0)
				for _, pc := range c.Report.PerCPU {
					cached += uint64(pc.Count)
				}
				percpu := uint64(0)
				for _, f := range c.Report.ByFlags {
					if f.Flags == "PERCPU" {
						percpu = f.Frames
					}
				}
				if len(c.Report.PerCPU) != cpus || cached == 0 || cached != percpu {
					t.Errorf("host saw %d caches holding %d frames, %d PERCPU frames", len(c.Report.PerCPU), cached, percpu)
				}
			}
		})
	}
}

func TestDefaultWorkloadsOnTwoCPUs(t *testing.T) {
	cfg := bootConfig(t)
	cfg.CPUs = 2
	res, out := boot(t, cfg)
	verifiedClean(t, res, out, "stress", "paging", "cow", "demand", "smp-caches", "exit")
}

func TestSMPBenchReportsThroughput(t *testing.T) {
	cfg := bootConfig(t)
	cfg.CPUs = 2
	cfg.Workload = "smpbench"
	res, out := boot(t, cfg)
	verifiedClean(t, res, out)
	wantReport(t, res, "smpbench.cpus", 2)
	wantReport(t, res, "smpbench.pairs", 2*2000000)
	if v, _ := res.ReportValue("smpbench.pairs_per_sec"); v == 0 {
		t.Error("no throughput reported")
	}
}

// TestSMPBootsUnderHostLoad boots the default workloads on several vCPUs
// again and again while goroutines keep every host CPU busy, so kicks land
// in every window of the vCPU loop. A stale exit decoded a second time shows
// up as a phantom crash (exit reason 0) or as a hypercall handled twice.
func TestSMPBootsUnderHostLoad(t *testing.T) {
	requireKVM(t)
	if testing.Short() {
		t.Skip("-short: 20 boots under load")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := uint64(1); ; x = x*6364136223846793005 + 1 {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 20 {
		cfg := bootConfig(t)
		cfg.CPUs = 2 + i%2
		res, out := boot(t, cfg)
		if res.Outcome != OutcomeExit || res.ExitStatus != 0 {
			t.Fatalf("boot %d (%d vCPUs): %s status %d: %s\n%s", i, cfg.CPUs, res.Outcome, res.ExitStatus, res.Reason, out)
		}
		if len(res.VCPUs) != cfg.CPUs {
			t.Fatalf("boot %d: %d vCPU stats for %d vCPUs", i, len(res.VCPUs), cfg.CPUs)
		}
		for _, s := range res.VCPUs {
			if s.HypercallsIssued == 0 || s.HypercallsIssued != s.HypercallsHandled {
				t.Errorf("boot %d vCPU %d: guest issued %d hypercalls, VMM handled %d", i, s.CPU, s.HypercallsIssued, s.HypercallsHandled)
			}
		}
	}
}
