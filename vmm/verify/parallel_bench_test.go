package verify

import (
	"fmt"
	"testing"
)

// BenchmarkVerify4GiB: Verify of a freshly set-up 4 GiB allocator (no
// page tables, no boot info) with 1 and all host CPUs; frames/s counts
// records.
func BenchmarkVerify4GiB(b *testing.B) {
	const frames = 1 << 20
	mem, _, in := newGuest(b, frames)
	for _, w := range []int{1, 0} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			for b.Loop() {
				r, err := verifyWith(mem, in, fanout{workers: w})
				if err != nil || r.TotalViolations != 0 {
					b.Fatal(err, r.TotalViolations)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/frames, "ns/frame")
		})
	}
}
