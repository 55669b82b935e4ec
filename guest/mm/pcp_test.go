package mm

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// smpEnv: simpleEnv with n CPUs.
func smpEnv(t testing.TB, frames uint64, n int) *testEnv {
	e := simpleEnv(t, frames)
	if err := e.b.SetCPUs(n); err != ErrNone {
		t.Fatalf("SetCPUs(%d): %v", n, err)
	}
	return e
}

func (e *testEnv) cache(cpu int) *CPUCache { return &e.b.State().PCP[cpu] }

// cacheEntries returns cpu's live entries, oldest first.
func (e *testEnv) cacheEntries(cpu int) []uint64 {
	c := e.cache(cpu)
	var out []uint64
	for i := uint32(0); i < c.Count; i++ {
		out = append(out, c.PFN[(c.Head+i)%PCPCapacity])
	}
	return out
}

func (e *testEnv) allocLocal(t testing.TB, cpu int) PhysFrame {
	t.Helper()
	f, err := e.b.AllocLocal(cpu, 0)
	if err != ErrNone {
		t.Fatalf("AllocLocal(%d): %v", cpu, err)
	}
	return f
}

// checkCachedTags verifies that every entry of cpu's cache is tagged (cpu, slot).
func (e *testEnv) checkCachedTags(t testing.TB, cpu int) {
	t.Helper()
	c := e.cache(cpu)
	for i := uint32(0); i < c.Count; i++ {
		slot := (c.Head + i) % PCPCapacity
		m := e.b.meta.at(c.PFN[slot])
		if m.Flags() != FlagPerCPU || m.Next() != uint64(cpu) || m.Prev() != uint64(slot) || m.Order() != 0 || m.Refcount() != 0 {
			t.Fatalf("cpu %d slot %d pfn %#x: flags %#x next %d prev %d", cpu, slot, c.PFN[slot], m.Flags(), m.Next(), m.Prev())
		}
	}
}

func TestSetCPUs(t *testing.T) {
	e := simpleEnv(t, 1024)
	b := e.b
	if _, err := b.AllocLocal(0, 0); err != ErrInvalidCPU {
		t.Errorf("AllocLocal before SetCPUs: %v", err)
	}
	for _, n := range []int{0, -1, MaxCPUs + 1} {
		if err := b.SetCPUs(n); err != ErrInvalidCPU {
			t.Errorf("SetCPUs(%d): %v", n, err)
		}
	}
	if err := b.SetCPUs(MaxCPUs); err != ErrNone || b.NumCPUs() != MaxCPUs {
		t.Fatalf("SetCPUs(MaxCPUs): %v", err)
	}
	if err := b.SetCPUs(4); err != ErrNone || b.NumCPUs() != 4 {
		t.Fatalf("SetCPUs(4): %v", err)
	}
	for _, cpu := range []int{-1, 4, MaxCPUs, 1 << 40} {
		before := e.snapshot()
		if _, err := b.AllocLocal(cpu, 0); err != ErrInvalidCPU {
			t.Errorf("AllocLocal(%d): %v", cpu, err)
		}
		if err := b.FreeLocal(cpu, FrameFromPFN(100)); err != ErrInvalidCPU {
			t.Errorf("FreeLocal(%d): %v", cpu, err)
		}
		if _, err := b.PutLocal(cpu, FrameFromPFN(100)); err != ErrInvalidCPU {
			t.Errorf("PutLocal(%d): %v", cpu, err)
		}
		if err := b.Drain(cpu); err != ErrInvalidCPU {
			t.Errorf("Drain(%d): %v", cpu, err)
		}
		if !bytes.Equal(before, e.snapshot()) {
			t.Errorf("cpu %d: state changed", cpu)
		}
	}
	// Shrinking drains the caches of the CPUs that go away.
	e.allocLocal(t, 3)
	if e.cache(3).Count != PCPBatch-1 {
		t.Fatalf("cache 3 count %d", e.cache(3).Count)
	}
	if err := b.SetCPUs(2); err != ErrNone || e.cache(3).Count != 0 || b.State().PCPFrames != 0 {
		t.Errorf("shrink: %v count %d pcp %d", err, e.cache(3).Count, b.State().PCPFrames)
	}
	e.check(t)
	var unset Buddy
	if err := unset.SetCPUs(1); err != ErrUninitialized {
		t.Errorf("SetCPUs on an uninitialised allocator: %v", err)
	}
	if _, err := unset.AllocLocal(0, 0); err != ErrUninitialized {
		t.Errorf("AllocLocal on an uninitialised allocator: %v", err)
	}
}

func TestAllocLocalRefill(t *testing.T) {
	e := smpEnv(t, 4096, 2)
	b := e.b
	free0 := b.FreeFrames()
	seen := map[uint64]bool{}
	for i := 0; i < 3*PCPBatch+1; i++ {
		f, err := b.AllocLocal(0, 0)
		if err != ErrNone {
			t.Fatal(err)
		}
		if seen[f.PFN()] {
			t.Fatalf("frame %#x handed out twice", f.PFN())
		}
		seen[f.PFN()] = true
		m := b.meta.at(f.PFN())
		if m.Flags() != FlagAllocated|FlagKernel || m.Refcount() != 1 || m.Order() != 0 || m.Next() != LinkNone || m.Prev() != LinkNone {
			t.Fatalf("alloc %d: flags %#x rc %d order %d links %d %d", i, m.Flags(), m.Refcount(), m.Order(), m.Next(), m.Prev())
		}
		refills := uint64(i/PCPBatch + 1)
		c := e.cache(0)
		if c.Refills != refills || c.Count != uint32(PCPBatch-1-i%PCPBatch) {
			t.Fatalf("alloc %d: refills %d count %d", i, c.Refills, c.Count)
		}
		if b.FreeFrames() != free0-refills*PCPBatch || b.State().PCPFrames != PCPBatch {
			t.Fatalf("alloc %d: free %d (want %d) pcp %d", i, b.FreeFrames(), free0-refills*PCPBatch, b.State().PCPFrames)
		}
		if b.CachedFrames() != uint64(c.Count) || e.cache(1).Count != 0 {
			t.Fatal("cached frames")
		}
		e.checkCachedTags(t, 0)
		e.check(t)
	}
	// Flags.
	u, err := b.AllocLocal(1, FlagUser|FlagAnonymous)
	if err != ErrNone {
		t.Fatal(err)
	}
	if fl, _ := b.FlagsOf(u); fl != FlagAllocated|FlagUser|FlagAnonymous {
		t.Errorf("user flags %#x", fl)
	}
	for _, fl := range []uint32{FlagPerCPU, FlagFree, FlagKernel | FlagCOW, FlagUser | FlagCOW | FlagDLL, FlagKernel | FlagUser} {
		before := e.snapshot()
		if _, err := b.AllocLocal(1, fl); err != ErrInvalidFlags {
			t.Errorf("AllocLocal flags %#x: %v", fl, err)
		}
		if !bytes.Equal(before, e.snapshot()) {
			t.Errorf("flags %#x: state changed", fl)
		}
	}
	e.check(t)
}

func TestFreeLocalDrainBatch(t *testing.T) {
	e := smpEnv(t, 4096, 2)
	b := e.b
	var frames []PhysFrame
	for i := 0; i < 2*PCPCapacity; i++ {
		frames = append(frames, e.alloc(t, 0))
	}
	free0 := b.FreeFrames()
	c := e.cache(1)
	for i, f := range frames {
		if err := b.FreeLocal(1, f); err != ErrNone {
			t.Fatalf("FreeLocal %d: %v", i, err)
		}
		pushed := uint64(i + 1)
		drains := uint64(0)
		if pushed >= PCPCapacity {
			drains = (pushed-PCPCapacity)/PCPBatch + 1
		}
		if c.Drains != drains || uint64(c.Count) != pushed-drains*PCPBatch {
			t.Fatalf("free %d: drains %d count %d", i, c.Drains, c.Count)
		}
		if b.FreeFrames() != free0+drains*PCPBatch {
			t.Fatalf("free %d: free frames %d want %d", i, b.FreeFrames(), free0+drains*PCPBatch)
		}
		if c.Count > PCPCapacity-1 {
			t.Fatalf("cache above the high watermark: %d", c.Count)
		}
		if drains > 0 && pushed == PCPCapacity { // the oldest batch went back to the buddy
			for _, g := range frames[:PCPBatch] {
				if fl := b.meta.at(g.PFN()).Flags(); fl != FlagFree {
					t.Fatalf("drained frame %#x flags %#x", g.PFN(), fl)
				}
			}
			if got := e.cacheEntries(1); got[0] != frames[PCPBatch].PFN() {
				t.Fatalf("oldest entry after drain %#x want %#x", got[0], frames[PCPBatch].PFN())
			}
		}
		e.checkCachedTags(t, 1)
		e.check(t)
	}
	// LIFO: the next allocation on cpu 1 is the last frame freed there.
	if f := e.allocLocal(t, 1); f != frames[len(frames)-1] {
		t.Errorf("AllocLocal returned %#x, want the hot frame %#x", f.PFN(), frames[len(frames)-1].PFN())
	}
	e.check(t)
}

func TestCrossCPUFreeAndDrain(t *testing.T) {
	e := smpEnv(t, 4096, 3)
	b := e.b
	free0 := b.FreeFrames()
	counts0 := b.State().Counts
	f := e.allocLocal(t, 0)
	if err := b.FreeLocal(2, f); err != ErrNone {
		t.Fatal(err)
	}
	m := b.meta.at(f.PFN())
	c2 := e.cache(2)
	if m.Flags() != FlagPerCPU || m.Next() != 2 || c2.Count != 1 || c2.PFN[m.Prev()] != f.PFN() {
		t.Fatalf("cross-CPU free: flags %#x next %d count %d", m.Flags(), m.Next(), c2.Count)
	}
	e.check(t)
	if g := e.allocLocal(t, 2); g != f {
		t.Errorf("cpu 2 did not reuse the frame: %#x", g.PFN())
	}
	// Frames freed on another CPU through a global Free and a Put too.
	g := e.allocLocal(t, 1)
	if err := e.free(g, 0); err != ErrNone {
		t.Fatalf("global free of a locally allocated frame: %v", err)
	}
	h := e.alloc(t, 0)
	if err := b.FreeLocal(0, h); err != ErrNone {
		t.Fatalf("local free of a globally allocated frame: %v", err)
	}
	b.FreeLocal(1, f)
	e.check(t)
	for cpu := 0; cpu < 3; cpu++ {
		if err := b.Drain(cpu); err != ErrNone {
			t.Fatal(err)
		}
		if e.cache(cpu).Count != 0 || e.cache(cpu).Head != 0 {
			t.Fatalf("cpu %d not drained", cpu)
		}
		e.check(t)
	}
	if b.FreeFrames() != free0 || b.State().PCPFrames != 0 || b.CachedFrames() != 0 || b.State().Counts != counts0 {
		t.Errorf("after Drain: free %d want %d, pcp %d, counts %v want %v", b.FreeFrames(), free0, b.State().PCPFrames, b.State().Counts, counts0)
	}
	if err := b.Drain(0); err != ErrNone { // draining an empty cache is fine
		t.Fatal(err)
	}
	e.check(t)
}

func TestPutLocal(t *testing.T) {
	e := smpEnv(t, 1024, 2)
	b := e.b
	f, _ := b.AllocLocal(0, FlagUser|FlagAnonymous)
	b.Get(f)
	b.Get(f)
	for i, cpu := range []int{1, 0} {
		if freed, err := b.PutLocal(cpu, f); freed || err != ErrNone {
			t.Fatalf("put %d: %v %v", i, freed, err)
		}
		e.check(t)
	}
	if freed, err := b.PutLocal(1, f); !freed || err != ErrNone {
		t.Fatalf("last put: %v %v", freed, err)
	}
	if m := b.meta.at(f.PFN()); m.Flags() != FlagPerCPU || m.Next() != 1 {
		t.Errorf("last put did not cache on cpu 1: flags %#x next %d", m.Flags(), m.Next())
	}
	e.check(t)
	before := e.snapshot()
	if _, err := b.PutLocal(1, f); err != ErrInvalidAddress {
		t.Errorf("put on a cached frame: %v", err)
	}
	if err := b.Get(f); err != ErrInvalidAddress {
		t.Errorf("Get on a cached frame: %v", err)
	}
	if !bytes.Equal(before, e.snapshot()) {
		t.Error("state changed")
	}
	blk := e.alloc(t, 1)
	if _, err := b.PutLocal(0, blk); err != ErrInvalidAddress {
		t.Errorf("PutLocal on an order-1 block: %v", err)
	}
	e.check(t)
}

func TestLocalInvalidChangesNothing(t *testing.T) {
	e := newEnv(t, 4096*PageSize, []Range{{0, 3000 * PageSize}}, []Range{{0, 16 * PageSize}}, []uint64{2000 * PageSize})
	b := e.b
	if err := b.SetCPUs(2); err != ErrNone {
		t.Fatal(err)
	}
	blk := e.alloc(t, 1)
	shared := e.allocLocal(t, 0)
	b.Get(shared)
	cached := e.allocLocal(t, 1)
	b.FreeLocal(1, cached) // in cpu 1's cache
	freeFrame := e.alloc(t, 0)
	e.free(freeFrame, 0) // on a free list
	mp, _, sp := b.Registration()
	for _, c := range []struct {
		name  string
		frame PhysFrame
	}{
		{"double free (cached on this CPU)", cached},
		{"free frame", freeFrame},
		{"shared (refcount 2)", shared},
		{"order-1 head", blk},
		{"tail", FrameFromPFN(blk.PFN() + 1)},
		{"misaligned", PhysFrame{start: shared.start + 8}},
		{"out of range", FrameFromPFN(4096)},
		{"hole", FrameFromPFN(3500)},
		{"poisoned", FrameFromPFN(2000)},
		{"metadata", ContainingAddress(mp)},
		{"state", ContainingAddress(sp)},
	} {
		for cpu := 0; cpu < 2; cpu++ {
			before := e.snapshot()
			if err := b.FreeLocal(cpu, c.frame); err != ErrInvalidAddress {
				t.Errorf("%s on cpu %d: %v", c.name, cpu, err)
			}
			if c.name != "shared (refcount 2)" {
				if _, err := b.PutLocal(cpu, c.frame); err != ErrInvalidAddress {
					t.Errorf("PutLocal %s on cpu %d: %v", c.name, cpu, err)
				}
			}
			if !bytes.Equal(before, e.snapshot()) {
				t.Errorf("%s on cpu %d: state changed", c.name, cpu)
			}
		}
	}
	e.check(t)
	// Global Free of a cached frame is rejected too.
	if err := e.free(cached, 0); err != ErrInvalidAddress {
		t.Errorf("global free of a cached frame: %v", err)
	}
	e.check(t)
}

func TestLocalReentryGuard(t *testing.T) {
	e := smpEnv(t, 1024, 2)
	b := e.b
	f := e.allocLocal(t, 0)
	e.cache(0).Busy = 1 // as if an exception interrupted a *Local call on cpu 0
	before := e.snapshot()
	if _, err := b.AllocLocal(0, 0); err != ErrReentered {
		t.Errorf("AllocLocal: %v", err)
	}
	if err := b.FreeLocal(0, f); err != ErrReentered {
		t.Errorf("FreeLocal: %v", err)
	}
	if _, err := b.PutLocal(0, f); err != ErrReentered {
		t.Errorf("PutLocal: %v", err)
	}
	if err := b.Drain(0); err != ErrReentered {
		t.Errorf("Drain: %v", err)
	}
	if !bytes.Equal(before, e.snapshot()) {
		t.Error("state changed")
	}
	if _, err := b.AllocLocal(1, 0); err != ErrNone { // other CPUs are unaffected
		t.Error(err)
	}
	e.cache(0).Busy = 0
	if err := b.FreeLocal(0, f); err != ErrNone || e.cache(0).Busy != 0 {
		t.Errorf("after the guard: %v busy %d", err, e.cache(0).Busy)
	}
	e.check(t)
}

func TestAllocLocalOutOfMemory(t *testing.T) {
	e := smpEnv(t, 1024, 2)
	b := e.b
	total := b.FreeFrames()
	var got []PhysFrame
	for {
		f, err := b.AllocLocal(0, 0)
		if err == ErrOutOfMemory {
			break
		}
		if err != ErrNone {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if uint64(len(got)) != total || b.FreeFrames() != 0 || b.CachedFrames() != 0 {
		t.Fatalf("got %d of %d frames; free %d cached %d", len(got), total, b.FreeFrames(), b.CachedFrames())
	}
	e.check(t)
	for _, f := range got[:40] {
		b.FreeLocal(1, f) // stays in cpu 1's cache (below the watermark)
	}
	if _, err := b.AllocLocal(0, 0); err != ErrOutOfMemory {
		t.Errorf("cpu 0 should be out of memory while cpu 1 caches 40 frames: %v", err)
	}
	b.Drain(1)
	if _, err := b.AllocLocal(0, 0); err != ErrNone {
		t.Errorf("after Drain(1): %v", err)
	}
	e.check(t)
}

func TestLockRelax(t *testing.T) {
	e := simpleEnv(t, 1024)
	b := e.b
	var relaxed atomic.Int32
	b.Relax = func() { relaxed.Add(1) }
	tok := b.Lock()
	done := make(chan struct{})
	go func() {
		t2 := b.Lock()
		b.Unlock(&t2)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for relaxed.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if relaxed.Load() < 3 {
		t.Fatalf("Relax called %d times while the lock was held", relaxed.Load())
	}
	b.Unlock(&tok)
	<-done
	n := relaxed.Load()
	tok = b.Lock() // uncontended: no Relax
	b.Unlock(&tok)
	if relaxed.Load() != n {
		t.Error("Relax called on an uncontended Lock")
	}
}

// TestConcurrentLocal: goroutines stand in for CPUs (run it with -race).
// Each allocates and frees on its own cache, sends frames to other CPUs to
// free there, takes the global lock for multi-frame blocks next to cached
// frames, and shares frames that every CPU then puts: exactly one put may
// free each shared frame.
func TestConcurrentLocal(t *testing.T) {
	const ncpu = 4
	iters := 20000
	if testing.Short() {
		iters = 4000
	}
	e := smpEnv(t, 1<<14, ncpu)
	b := e.b
	managed := b.FreeFrames()
	type msg struct {
		pfn    uint64
		shared bool
	}
	inbox := make([]chan msg, ncpu)
	for i := range inbox {
		inbox[i] = make(chan msg, 4*iters)
	}
	var sharedMade, sharedFreed, putErrs atomic.Int64
	held := make([][]PhysFrame, ncpu)
	var wg sync.WaitGroup
	handle := func(cpu int, m msg) {
		if m.shared {
			freed, err := b.PutLocal(cpu, FrameFromPFN(m.pfn))
			if err != ErrNone {
				putErrs.Add(1)
			}
			if freed {
				sharedFreed.Add(1)
			}
			return
		}
		if err := b.FreeLocal(cpu, FrameFromPFN(m.pfn)); err != ErrNone {
			t.Errorf("cpu %d: cross-CPU FreeLocal %#x: %v", cpu, m.pfn, err)
		}
	}
	for cpu := 0; cpu < ncpu; cpu++ {
		wg.Add(1)
		go func(cpu int) {
			defer wg.Done()
			x := uint32(cpu*7919 + 1)
			var mine []PhysFrame
			var blocks []PhysFrame
			for i := 0; i < iters; i++ {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				switch r := x % 16; {
				case r < 6 && len(mine) < 300:
					f, err := b.AllocLocal(cpu, 0)
					if err != ErrNone {
						t.Errorf("cpu %d: AllocLocal: %v", cpu, err)
						return
					}
					mine = append(mine, f)
				case r < 9 && len(mine) > 0:
					f := mine[len(mine)-1]
					mine = mine[:len(mine)-1]
					if err := b.FreeLocal(cpu, f); err != ErrNone {
						t.Errorf("cpu %d: FreeLocal: %v", cpu, err)
					}
				case r < 11 && len(mine) > 0: // free it on another CPU
					f := mine[0]
					mine = mine[1:]
					inbox[(cpu+1+int(x>>8)%(ncpu-1))%ncpu] <- msg{pfn: f.PFN()}
				case r < 12: // a frame shared by every CPU
					f, err := b.AllocLocal(cpu, FlagUser|FlagAnonymous)
					if err != ErrNone {
						t.Errorf("cpu %d: AllocLocal shared: %v", cpu, err)
						return
					}
					for j := 0; j < ncpu-1; j++ {
						b.Get(f)
					}
					sharedMade.Add(1)
					for j := 1; j < ncpu; j++ {
						inbox[(cpu+j)%ncpu] <- msg{pfn: f.PFN(), shared: true}
					}
					handle(cpu, msg{pfn: f.PFN(), shared: true})
				case r < 14: // global path next to cached frames
					if len(blocks) < 8 {
						tok := b.Lock()
						f, err := b.Alloc(uint8(x>>4)%3, &tok)
						b.Unlock(&tok)
						if err == ErrNone {
							blocks = append(blocks, f)
						}
					} else {
						f := blocks[0]
						blocks = blocks[1:]
						tok := b.Lock()
						if err := b.Free(f, b.meta.at(f.PFN()).Order(), &tok); err != ErrNone {
							t.Errorf("cpu %d: Free: %v", cpu, err)
						}
						b.Unlock(&tok)
					}
				default: // process the inbox
					for k := 0; k < 4; k++ {
						select {
						case m := <-inbox[cpu]:
							handle(cpu, m)
						default:
						}
					}
				}
			}
			for _, f := range blocks {
				tok := b.Lock()
				b.Free(f, b.meta.at(f.PFN()).Order(), &tok)
				b.Unlock(&tok)
			}
			held[cpu] = mine
		}(cpu)
	}
	wg.Wait()
	// World stopped: every frame is free, cached, held or in flight.
	outstanding := uint64(0)
	for cpu := range held {
		outstanding += uint64(len(held[cpu]))
	}
	inFlight := map[uint64]bool{}
	for cpu := range inbox {
		for i := len(inbox[cpu]); i > 0; i-- {
			m := <-inbox[cpu]
			inFlight[m.pfn] = true
			inbox[cpu] <- m
		}
	}
	outstanding += uint64(len(inFlight))
	e.check(t)
	if got := b.FreeFrames() + b.CachedFrames() + outstanding; got != managed {
		t.Fatalf("conservation: free %d + cached %d + allocated %d = %d, managed %d", b.FreeFrames(), b.CachedFrames(), outstanding, got, managed)
	}
	// Second phase: every CPU frees what it holds and what it was sent, then drains.
	for cpu := 0; cpu < ncpu; cpu++ {
		wg.Add(1)
		go func(cpu int) {
			defer wg.Done()
			for _, f := range held[cpu] {
				if err := b.FreeLocal(cpu, f); err != ErrNone {
					t.Errorf("cpu %d: final FreeLocal: %v", cpu, err)
				}
			}
			for len(inbox[cpu]) > 0 {
				handle(cpu, <-inbox[cpu])
			}
		}(cpu)
	}
	wg.Wait()
	if putErrs.Load() != 0 || sharedFreed.Load() != sharedMade.Load() {
		t.Fatalf("shared frames: made %d, freed %d, put errors %d", sharedMade.Load(), sharedFreed.Load(), putErrs.Load())
	}
	e.check(t)
	if b.FreeFrames()+b.CachedFrames() != managed {
		t.Fatalf("after freeing: free %d + cached %d != managed %d", b.FreeFrames(), b.CachedFrames(), managed)
	}
	for cpu := 0; cpu < ncpu; cpu++ {
		wg.Add(1)
		go func(cpu int) { defer wg.Done(); b.Drain(cpu) }(cpu)
	}
	wg.Wait()
	e.check(t)
	if b.FreeFrames() != managed || b.State().PCPFrames != 0 || b.CachedFrames() != 0 {
		t.Fatalf("after Drain: free %d managed %d pcp %d", b.FreeFrames(), managed, b.State().PCPFrames)
	}
	t.Logf("%d shared frames, each freed exactly once", sharedMade.Load())
}
