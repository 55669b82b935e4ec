package mm

import (
	"runtime"
	"testing"
)

func BenchmarkAllocFreeOrder0(b *testing.B) {
	e := simpleEnv(b, 1<<16)
	bd := e.b
	// Warm the order-0 list so the pair does not split/merge a big block.
	tok := bd.Lock()
	keep, _ := bd.Alloc(0, &tok)
	bd.Unlock(&tok)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok := bd.Lock()
		f, err := bd.Alloc(0, &tok)
		if err != ErrNone {
			b.Fatal(err)
		}
		bd.Free(f, 0, &tok)
		bd.Unlock(&tok)
	}
	b.StopTimer()
	_ = keep
	runtime.KeepAlive(e.a.buf)
}

func BenchmarkAllocFreeOrder0SplitMerge(b *testing.B) {
	// Worst case: the only free memory is one max-order block, so each pair
	// splits it down to order 0 (10 splits) and merges it back (10 merges).
	e := newEnv(b, 2048*PageSize, []Range{{0, (48 + StateSize/PageSize + 1) * PageSize}, {1024 * PageSize, 1024 * PageSize}}, []Range{{0, 16 * PageSize}}, nil)
	bd := e.b
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok := bd.Lock()
		f, _ := bd.Alloc(0, &tok)
		bd.Free(f, 0, &tok)
		bd.Unlock(&tok)
	}
}

func BenchmarkAllocMixedOrders(b *testing.B) {
	e := simpleEnv(b, 1<<16) // 256 MiB
	bd := e.b
	const window = 256
	var held [window]PhysFrame
	var orders [window]uint8
	x := uint32(12345)
	tok := bd.Lock()
	for i := range held {
		orders[i] = uint8(i % 4)
		held[i], _ = bd.Alloc(orders[i], &tok)
	}
	bd.Unlock(&tok)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		j := x % window
		// Orders distributed like the Linux trace: mostly 0, some 1..4, rare up to 9.
		o := uint8(0)
		switch r := x >> 8 % 64; {
		case r < 48:
		case r < 56:
			o = 1
		case r < 61:
			o = 2 + uint8(r%3)
		default:
			o = uint8(5 + r%5)
		}
		tok := bd.Lock()
		bd.Free(held[j], orders[j], &tok)
		f, err := bd.Alloc(o, &tok)
		if err != ErrNone {
			b.Fatal(err)
		}
		bd.Unlock(&tok)
		held[j], orders[j] = f, o
	}
}

func BenchmarkInitMetadataPerGiB(b *testing.B) {
	const frames = (1 << 30) / PageSize
	a := newArena(b, frames*FrameMetaSize)
	b.SetBytes(frames * FrameMetaSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		InitMetadata(a.off, 0, frames)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/GiB")
	runtime.KeepAlive(a.buf)
}

func BenchmarkCheckPerMillionFrames(b *testing.B) {
	const frames = 1 << 20 // 4 GiB of RAM, 64 MiB of metadata
	e := simpleEnv(b, frames)
	bd := e.b
	// Fragment it a little: allocate and free a pattern so every list is populated.
	tok := bd.Lock()
	for i := 0; i < 20000; i++ {
		f, _ := bd.Alloc(uint8(i%3), &tok)
		if i%2 == 0 {
			bd.Free(f, uint8(i%3), &tok)
		}
	}
	bd.Unlock(&tok)
	var out [8]Violation
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n := bd.Check(out[:]); n != 0 {
			b.Fatalf("%d violations %v", n, out[0])
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(frames)/sec, "frames/s")
	b.ReportMetric(sec*1e9*(1e6/float64(frames)), "ns/Mframes")
	runtime.KeepAlive(e.a.buf)
}
