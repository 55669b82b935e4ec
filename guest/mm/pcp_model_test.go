package mm

import (
	"bytes"
	"math/rand"
	"testing"
)

// smpModel is the reference for the per-CPU caches: where every managed
// frame is (buddy free list, a CPU's cache, or allocated), each cache's
// entries oldest first, and each live block's order and refcount.
type smpModel struct {
	where  []int8 // -1 not managed, 0 buddy-free, 1 allocated, 2+cpu cached on cpu
	blocks map[uint64]*mblock
	heads  []uint64
	cache  [][]uint64
	free   uint64
}

const (
	whereNone  = -1
	whereFree  = 0
	whereAlloc = 1
	whereCache = 2
)

func newSMPModel(e *testEnv, ncpu int) *smpModel {
	n := e.b.meta.count
	m := &smpModel{where: make([]int8, n), blocks: map[uint64]*mblock{}, cache: make([][]uint64, ncpu)}
	for p := uint64(0); p < n; p++ {
		m.where[p] = whereNone
		if e.b.meta.at(p).Flags() == FlagFree {
			m.where[p] = whereFree
			m.free++
		}
	}
	return m
}

func (m *smpModel) canFit(order uint8) bool {
	size := uint64(1) << order
	for p := uint64(0); p+size <= uint64(len(m.where)); p += size {
		ok := true
		for i := p; i < p+size; i++ {
			if m.where[i] != whereFree {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (m *smpModel) removeHead(p uint64) {
	for i, h := range m.heads {
		if h == p {
			m.heads[i] = m.heads[len(m.heads)-1]
			m.heads = m.heads[:len(m.heads)-1]
			return
		}
	}
}

// cacheFree is the model of a frame (refcount now 0) freed into cpu's cache.
func (m *smpModel) cacheFree(cpu int, p uint64) {
	delete(m.blocks, p)
	m.removeHead(p)
	m.cache[cpu] = append(m.cache[cpu], p)
	m.where[p] = int8(whereCache + cpu)
	if len(m.cache[cpu]) >= PCPCapacity {
		m.drain(cpu, PCPBatch)
	}
}

func (m *smpModel) drain(cpu, n int) {
	for _, q := range m.cache[cpu][:n] {
		m.where[q] = whereFree
		m.free++
	}
	m.cache[cpu] = append([]uint64(nil), m.cache[cpu][n:]...)
}

// runSMPModel interprets ops as operations of ncpu CPUs, interleaved in
// the order given, and compares the allocator with the model (and runs
// Check) after every step.
func runSMPModel(t testing.TB, e *testEnv, ncpu int, ops []byte) {
	b := e.b
	if err := b.SetCPUs(ncpu); err != ErrNone {
		t.Fatal(err)
	}
	m := newSMPModel(e, ncpu)
	var out [8]Violation
	for i := 0; i+2 < len(ops); i += 3 {
		op, cpu, arg := ops[i]%10, int(ops[i+1])%ncpu, ops[i+2]
		step := i / 3
		var pick uint64 = LinkNone
		if len(m.heads) > 0 {
			pick = m.heads[int(arg)%len(m.heads)]
		}
		switch op {
		case 0, 1, 2: // AllocLocal
			flags := FlagKernel
			if arg&1 != 0 {
				flags = FlagUser | FlagAnonymous
			}
			wasEmpty := len(m.cache[cpu]) == 0
			f, err := b.AllocLocal(cpu, flags)
			if wasEmpty && m.free == 0 {
				if err != ErrOutOfMemory {
					t.Fatalf("step %d: AllocLocal with nothing free: %v", step, err)
				}
				break
			}
			if err != ErrNone {
				t.Fatalf("step %d: AllocLocal: %v", step, err)
			}
			p := f.PFN()
			if wasEmpty { // refilled: the cache now holds the batch minus the frame returned
				got := append(e.cacheEntries(cpu), p)
				want := min(uint64(PCPBatch), m.free)
				if uint64(len(got)) != want {
					t.Fatalf("step %d: refill of %d frames, want %d", step, len(got), want)
				}
				for _, q := range got {
					if m.where[q] != whereFree {
						t.Fatalf("step %d: refill took frame %#x that is not free (%d)", step, q, m.where[q])
					}
					m.where[q] = int8(whereCache + cpu)
					m.free--
				}
				m.cache[cpu] = got
			}
			c := m.cache[cpu]
			if top := c[len(c)-1]; top != p {
				t.Fatalf("step %d: AllocLocal returned %#x, want the youngest cached frame %#x", step, p, top)
			}
			m.cache[cpu] = c[:len(c)-1]
			m.where[p] = whereAlloc
			m.blocks[p] = &mblock{order: 0, ref: 1}
			m.heads = append(m.heads, p)
		case 3: // FreeLocal of a live block, possibly allocated on another CPU
			if pick == LinkNone {
				break
			}
			blk := m.blocks[pick]
			ok := blk.order == 0 && blk.ref == 1
			before := e.snapshot()
			err := b.FreeLocal(cpu, FrameFromPFN(pick))
			if !ok {
				if err != ErrInvalidAddress || !bytes.Equal(before, e.snapshot()) {
					t.Fatalf("step %d: invalid FreeLocal (order %d ref %d): %v", step, blk.order, blk.ref, err)
				}
				break
			}
			if err != ErrNone {
				t.Fatalf("step %d: FreeLocal: %v", step, err)
			}
			m.cacheFree(cpu, pick)
		case 4: // PutLocal
			if pick == LinkNone {
				break
			}
			blk := m.blocks[pick]
			freed, err := b.PutLocal(cpu, FrameFromPFN(pick))
			if blk.order != 0 {
				if err != ErrInvalidAddress {
					t.Fatalf("step %d: PutLocal of order %d: %v", step, blk.order, err)
				}
				break
			}
			if err != ErrNone {
				t.Fatalf("step %d: PutLocal: %v", step, err)
			}
			blk.ref--
			if freed != (blk.ref == 0) {
				t.Fatalf("step %d: freed %v ref %d", step, freed, blk.ref)
			}
			if freed {
				m.cacheFree(cpu, pick)
			}
		case 5: // Get
			if pick == LinkNone {
				break
			}
			if err := b.Get(FrameFromPFN(pick)); err != ErrNone {
				t.Fatalf("step %d: Get: %v", step, err)
			}
			m.blocks[pick].ref++
		case 6: // Drain
			if arg%4 != 0 {
				break
			}
			if err := b.Drain(cpu); err != ErrNone {
				t.Fatal(err)
			}
			m.drain(cpu, len(m.cache[cpu]))
		case 7: // global Alloc of a small block
			order := arg % 3
			tok := b.Lock()
			f, err := b.Alloc(order, &tok)
			b.Unlock(&tok)
			if err == ErrOutOfMemory {
				if m.canFit(order) {
					t.Fatalf("step %d: OOM for order %d but an aligned free run exists", step, order)
				}
				break
			}
			if err != ErrNone {
				t.Fatalf("step %d: Alloc: %v", step, err)
			}
			p, size := f.PFN(), uint64(1)<<order
			for q := p; q < p+size; q++ {
				if m.where[q] != whereFree {
					t.Fatalf("step %d: Alloc handed out %#x (%d)", step, q, m.where[q])
				}
				m.where[q] = whereAlloc
			}
			m.free -= size
			m.blocks[p] = &mblock{order: order, ref: 1}
			m.heads = append(m.heads, p)
		case 8: // global Put (a block allocated on any CPU)
			if pick == LinkNone {
				break
			}
			blk := m.blocks[pick]
			tok := b.Lock()
			freed, err := b.Put(FrameFromPFN(pick), blk.order, &tok)
			b.Unlock(&tok)
			if err != ErrNone {
				t.Fatalf("step %d: Put: %v", step, err)
			}
			blk.ref--
			if freed != (blk.ref == 0) {
				t.Fatalf("step %d: Put freed %v ref %d", step, freed, blk.ref)
			}
			if freed {
				for q := pick; q < pick+1<<blk.order; q++ {
					m.where[q] = whereFree
				}
				m.free += 1 << blk.order
				delete(m.blocks, pick)
				m.removeHead(pick)
			}
		case 9: // invalid frees of cached or free frames change nothing
			p := uint64(arg) * 37 % uint64(len(m.where))
			if w := m.where[p]; w != whereFree && w < whereCache {
				break
			}
			before := e.snapshot()
			if err := b.FreeLocal(cpu, FrameFromPFN(p)); err != ErrInvalidAddress {
				t.Fatalf("step %d: FreeLocal of a %d frame: %v", step, m.where[p], err)
			}
			if _, err := b.PutLocal(cpu, FrameFromPFN(p)); err != ErrInvalidAddress {
				t.Fatalf("step %d: PutLocal of a %d frame: %v", step, m.where[p], err)
			}
			if !bytes.Equal(before, e.snapshot()) {
				t.Fatalf("step %d: invalid free changed the state", step)
			}
		}
		// Compare everything.
		if b.FreeFrames() != m.free {
			t.Fatalf("step %d (op %d): free frames %d, model %d", step, op, b.FreeFrames(), m.free)
		}
		for c := 0; c < ncpu; c++ {
			got := e.cacheEntries(c)
			if len(got) != len(m.cache[c]) {
				t.Fatalf("step %d: cpu %d caches %d frames, model %d", step, c, len(got), len(m.cache[c]))
			}
			for j := range got {
				if got[j] != m.cache[c][j] {
					t.Fatalf("step %d: cpu %d entry %d = %#x, model %#x", step, c, j, got[j], m.cache[c][j])
				}
			}
		}
		for p, w := range m.where {
			fl := b.meta.at(uint64(p)).Flags()
			switch {
			case w == whereFree && fl != FlagFree,
				w == whereAlloc && fl&FlagAllocated == 0,
				w >= whereCache && fl != FlagPerCPU:
				t.Fatalf("step %d: frame %#x flags %#x, model %d", step, p, fl, w)
			}
		}
		for p, blk := range m.blocks {
			if rc := b.meta.at(p).Refcount(); rc != blk.ref {
				t.Fatalf("step %d: frame %#x refcount %d, model %d", step, p, rc, blk.ref)
			}
		}
		if n := b.Check(out[:]); n != 0 {
			t.Fatalf("step %d (op %d): %d violations: %v", step, op, n, out[:min(n, len(out))])
		}
	}
}

func TestModelSMP(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		rng := rand.New(rand.NewSource(seed))
		ops := make([]byte, 3*4000)
		rng.Read(ops)
		runSMPModel(t, modelEnv(t), 4, ops)
	}
	// Memory pressure: a 3-CPU run on a tiny allocator that keeps hitting OOM.
	rng := rand.New(rand.NewSource(7))
	ops := make([]byte, 3*3000)
	rng.Read(ops)
	for i := 0; i < len(ops); i += 3 {
		if ops[i]%10 >= 3 && ops[i]%10 <= 4 && rng.Intn(3) == 0 {
			ops[i] = 0 // more allocations than frees
		}
	}
	small := newEnv(t, 256*PageSize, []Range{{0, 256 * PageSize}}, []Range{{0, 4 * PageSize}}, []uint64{77 * PageSize})
	runSMPModel(t, small, 3, ops)
}

func FuzzSMPOps(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 3, 1, 0, 4, 0, 0, 6, 1, 0})
	f.Add([]byte{7, 0, 2, 0, 2, 1, 5, 0, 0, 4, 1, 0, 4, 2, 0, 9, 0, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 3000 {
			ops = ops[:3000]
		}
		runSMPModel(t, modelEnv(t), 3, ops)
	})
}
