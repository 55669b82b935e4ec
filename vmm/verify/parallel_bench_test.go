package verify

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkVerify4GiB: Verify of a freshly set-up 4 GiB allocator (no
// page tables, no boot info) with 1 and all host CPUs, per frame record: wall time and CPU
// time (the process's, less disturbed by other load).
func BenchmarkVerify4GiB(b *testing.B) {
	const frames = 1 << 20
	mem, _, in := newGuest(b, frames)
	for _, w := range []int{1, 0} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			for b.Loop() {
				r, err := verifyWith(mem, in, fanout{workers: w})
				if err != nil || r.TotalViolations != 0 {
					b.Fatal(err, r.TotalViolations)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/frames, "ns/frame")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/frames, "cpu-ns/frame")
		})
	}
}

// BenchmarkVerifySmall: Verify of a freshly set-up 128 MiB and 1 GiB
// allocator (as BenchmarkVerify4GiB), whose records stay in the host's
// caches between runs: what the passes' compute and a verification's
// fixed costs come to when memory does not hide them.
func BenchmarkVerifySmall(b *testing.B) {
	for _, frames := range []uint64{1 << 15, 1 << 18} {
		mem, _, in := newGuest(b, frames)
		b.Run(fmt.Sprintf("%dMiB", frames>>8), func(b *testing.B) {
			for b.Loop() {
				r, err := verifyWith(mem, in, fanout{})
				if err != nil || r.TotalViolations != 0 {
					b.Fatal(err, r.TotalViolations)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(frames), "ns/frame")
		})
	}
}
