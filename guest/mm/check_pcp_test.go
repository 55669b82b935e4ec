package mm

import (
	"math/rand"
	"testing"
)

// pcpCorruptEnv: corruptEnv plus two CPUs with populated caches (cpu 0 has
// wrapped its ring after a drain).
func pcpCorruptEnv(t testing.TB) (*testEnv, []PhysFrame) {
	e, held := corruptEnv(t)
	b := e.b
	if err := b.SetCPUs(2); err != ErrNone {
		t.Fatal(err)
	}
	var fs []PhysFrame
	for i := 0; i < PCPCapacity; i++ {
		fs = append(fs, e.alloc(t, 0))
	}
	for _, f := range fs {
		b.FreeLocal(0, f) // drains once: Head = PCPBatch
	}
	for i := 0; i < 5; i++ {
		e.allocLocal(t, 1)
	}
	e.check(t)
	if e.cache(0).Head == 0 || e.cache(1).Count == 0 {
		t.Fatal("setup")
	}
	return e, held
}

func TestCheckDetectsPCPCorruption(t *testing.T) {
	top := func(e *testEnv, cpu int) (uint32, uint64) {
		c := e.cache(cpu)
		slot := (c.Head + c.Count - 1) % PCPCapacity
		return slot, c.PFN[slot]
	}
	cases := []struct {
		name    string
		corrupt func(e *testEnv)
		want    ViolationKind
	}{
		{"entry out of range", func(e *testEnv) { s, _ := top(e, 0); e.cache(0).PFN[s] = 1 << 40 }, VPCPEntry},
		{"duplicate entry", func(e *testEnv) {
			c := e.cache(0)
			c.PFN[(c.Head+1)%PCPCapacity] = c.PFN[c.Head]
		}, VPCPEntry},
		{"same frame in two caches", func(e *testEnv) {
			_, p := top(e, 0)
			s1, _ := top(e, 1)
			e.cache(1).PFN[s1] = p
		}, VPCPEntry},
		{"entry names an allocated frame", func(e *testEnv) { s, _ := top(e, 1); e.cache(1).PFN[s] = 20 }, VPCPEntry},
		{"wrong slot tag", func(e *testEnv) { _, p := top(e, 0); e.b.meta.at(p).prev = 3 }, VPCPFrame},
		{"wrong cpu tag", func(e *testEnv) { _, p := top(e, 0); e.b.meta.at(p).next = 1 }, VPCPEntry},
		{"tag out of range", func(e *testEnv) { _, p := top(e, 0); e.b.meta.at(p).next = MaxCPUs }, VPCPFrame},
		{"cached frame not in any cache", func(e *testEnv) { e.cache(1).Count-- }, VPCPFrame},
		{"cached frame count", func(e *testEnv) { e.cache(1).Count-- }, VPCPCount},
		{"cached frame also on a free list", func(e *testEnv) {
			_, p := top(e, 0)
			e.b.push(0, p) // links it like a free head; flags stay PerCPU
		}, VListTarget},
		{"free frame in a cache", func(e *testEnv) {
			s, p := top(e, 0)
			e.cache(0).Count-- // drop p from the cache, put a free frame there instead
			e.b.meta.at(p).flags = FlagFree
			e.cache(0).Count++
			e.cache(0).PFN[s] = e.b.State().Heads[0]
		}, VPCPEntry},
		{"count above capacity", func(e *testEnv) { e.cache(1).Count = PCPCapacity + 1 }, VPCPHeader},
		{"head out of range", func(e *testEnv) { e.cache(0).Head += PCPCapacity }, VPCPHeader},
		{"synced above capacity", func(e *testEnv) { e.cache(0).Synced = 1000 }, VPCPHeader},
		{"cache of an absent CPU", func(e *testEnv) { e.b.State().NumCPUs = 1 }, VPCPHeader},
		{"NumCPUs too big", func(e *testEnv) { e.b.State().NumCPUs = MaxCPUs + 1 }, VPCPHeader},
		{"PCPFrames", func(e *testEnv) { e.b.State().PCPFrames++ }, VPCPFrames},
		{"cached frame with refcount", func(e *testEnv) { _, p := top(e, 1); e.b.meta.at(p).refcount = 1 }, VFreeRefcount},
		{"cached frame with an order", func(e *testEnv) { _, p := top(e, 1); e.b.meta.at(p).orderWord = 1 }, VOrderRange},
		{"PerCPU with other flags", func(e *testEnv) { _, p := top(e, 1); e.b.meta.at(p).flags |= FlagFree }, VIllegalFlags},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, _ := pcpCorruptEnv(t)
			mp, fc, sp := e.b.Registration()
			c.corrupt(e)
			var out [64]Violation
			n := e.b.Check(out[:])
			if !hasKind(out[:], n, c.want) {
				t.Errorf("want %s, got %d violations: %v", c.want, n, out[:min(n, len(out))])
			}
			mem := append([]byte(nil), e.a.mem...)
			v, err := NewView(mem, 0, mp, fc, sp)
			if err != ErrNone {
				t.Fatal(err)
			}
			var out2 [64]Violation
			if n2 := Check(&v, out2[:]); n2 != n || out2 != out {
				t.Errorf("copy: %d violations, live %d", n2, n)
			}
		})
	}
}

// TestCheckPCPGarbage: random bytes over the caches and cached frames
// never crash Check.
func TestCheckPCPGarbage(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		e, _ := pcpCorruptEnv(t)
		_, _, sp := e.b.Registration()
		mem := e.a.mem
		for j := 0; j < 1+i%50; j++ {
			off := StateOffPCP + uint64(rng.Intn(2*CacheSize))
			if j%3 == 0 {
				off = uint64(rng.Intn(StateSize))
			}
			mem[sp+off] = byte(rng.Intn(256))
		}
		e.b.Check(nil)
	}
}
