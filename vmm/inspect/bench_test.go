package inspect_test

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vmm-dev/vmm/vmm/inspect"
	"github.com/vmm-dev/vmm/vmm/inspect/inspecttest"
)

// BenchmarkVerifyDump4GiB boots a 4 GiB guest with a dump once, then
// measures Open+Verify of that dump (metadata scan, list walks, page-table
// walk of the registered roots). frames/s counts metadata records.
func BenchmarkVerifyDump4GiB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "4g.core")
	inspecttest.Boot(b, 4<<30, "paging", path)
	var frames uint64
	for b.Loop() {
		in, err := inspect.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := in.Verify()
		if err != nil {
			b.Fatal(err)
		}
		if rep.TotalViolations != 0 {
			b.Fatalf("%d violations", rep.TotalViolations)
		}
		frames = rep.Frames
		in.Close()
	}
	b.ReportMetric(float64(frames), "frames")
	b.ReportMetric(float64(frames)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkVerifyOnly boots a 128 MiB (the default), a 1 and a 16 GiB guest with a dump once
// each, opens it once, and measures Verify alone (what a checkpoint pays),
// with the process's CPU time and page faults per verification.
func BenchmarkVerifyOnly(b *testing.B) {
	for _, mib := range []uint64{128, 1 << 10, 16 << 10} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) { benchVerifyOnly(b, mib<<20) })
	}
}

func benchVerifyOnly(b *testing.B, size uint64) {
	path := filepath.Join(b.TempDir(), "guest.core")
	inspecttest.BootAt(b, size, "paging", "", path)
	in, err := inspect.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		rep, err := in.Verify()
		if err != nil {
			b.Fatal(err)
		}
		if rep.TotalViolations != 0 {
			b.Fatalf("%d violations", rep.TotalViolations)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	b.ReportMetric(float64(ru1.Minflt-ru0.Minflt)/float64(b.N), "faults/op")
	cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
	b.ReportMetric(float64(ru1.Stime.Nano()-ru0.Stime.Nano())/float64(b.N)/1e6, "sys-ms/op")
}
