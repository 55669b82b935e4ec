package vmm

import (
	"syscall"
	"testing"
)

// BenchmarkScanFloorCPU16GiB: the scan floor of a 16 GiB guest's metadata
// (4,456,448 records) on one CPU, with the process's CPU time per scan,
// to set beside BenchmarkVerifyOnly16GiB's (vmm/inspect) on a loaded
// machine, where CPU time is steadier than wall time.
func BenchmarkScanFloorCPU16GiB(b *testing.B) {
	buf, err := NewScanBuffer(4456448 * 64)
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		buf.Scan(1)
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
}
