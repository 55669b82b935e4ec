package mm

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// runThreads splits b.N operations over g goroutines (goroutine i = CPU i)
// and reports the aggregate rate as pairs/s.
func runThreads(b *testing.B, g int, body func(cpu, n int)) {
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for cpu := 0; cpu < g; cpu++ {
		n := b.N / g
		if cpu < b.N%g {
			n++
		}
		wg.Add(1)
		go func(cpu, n int) {
			defer wg.Done()
			body(cpu, n)
		}(cpu, n)
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

// BenchmarkAllocFreeLocal: order-0 AllocLocal+FreeLocal pairs, each
// goroutine on its own CPU cache (steady state: no lock).
func BenchmarkAllocFreeLocal(b *testing.B) {
	for _, g := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("threads=%d", g), func(b *testing.B) {
			e := smpEnv(b, 1<<16, g)
			bd := e.b
			runThreads(b, g, func(cpu, n int) {
				for i := 0; i < n; i++ {
					f, err := bd.AllocLocal(cpu, 0)
					if err != ErrNone {
						b.Error(err)
						return
					}
					bd.FreeLocal(cpu, f)
				}
			})
			runtime.KeepAlive(e.a.buf)
		})
	}
}

// BenchmarkAllocFreeLocalBurst: each goroutine allocates 256 frames then
// frees them (per pair cost including the refill/drain batches under the
// lock).
func BenchmarkAllocFreeLocalBurst(b *testing.B) {
	for _, g := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("threads=%d", g), func(b *testing.B) {
			e := smpEnv(b, 1<<16, g)
			bd := e.b
			runThreads(b, g, func(cpu, n int) {
				var held [256]PhysFrame
				for n > 0 {
					k := min(n, len(held))
					for i := 0; i < k; i++ {
						f, err := bd.AllocLocal(cpu, 0)
						if err != ErrNone {
							b.Error(err)
							return
						}
						held[i] = f
					}
					for i := 0; i < k; i++ {
						bd.FreeLocal(cpu, held[i])
					}
					n -= k
				}
			})
			runtime.KeepAlive(e.a.buf)
		})
	}
}

// BenchmarkAllocFreeGlobal: the same pairs through the global lock
// (Lock, Alloc(0), Free, Unlock), for comparison.
func BenchmarkAllocFreeGlobal(b *testing.B) {
	for _, g := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("threads=%d", g), func(b *testing.B) {
			e := simpleEnv(b, 1<<16)
			bd := e.b
			tok := bd.Lock()
			keep, _ := bd.Alloc(0, &tok) // warm the order-0 list
			bd.Unlock(&tok)
			runThreads(b, g, func(cpu, n int) {
				for i := 0; i < n; i++ {
					tok := bd.Lock()
					f, err := bd.Alloc(0, &tok)
					if err != ErrNone {
						bd.Unlock(&tok)
						b.Error(err)
						return
					}
					bd.Free(f, 0, &tok)
					bd.Unlock(&tok)
				}
			})
			_ = keep
			runtime.KeepAlive(e.a.buf)
		})
	}
}
