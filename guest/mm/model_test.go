package mm

import (
	"math/rand"
	"testing"
)

// model is the reference: which frames are managed (can ever be free),
// which are allocated, and each live block's order and refcount.
type model struct {
	managed []bool
	used    []bool
	blocks  map[uint64]*mblock // head PFN -> block
	heads   []uint64           // live heads, for random picks
	free    uint64
}

type mblock struct {
	order uint8
	ref   uint32
}

func newModel(e *testEnv) *model {
	n := e.b.meta.count
	m := &model{managed: make([]bool, n), used: make([]bool, n), blocks: map[uint64]*mblock{}}
	for p := uint64(0); p < n; p++ {
		if e.b.meta.at(p).Flags() == FlagFree {
			m.managed[p] = true
			m.free++
		}
	}
	return m
}

// canFit reports whether an aligned run of 2^order free managed frames exists:
// with eager merging, the buddy allocator must then have a block of that order.
func (m *model) canFit(order uint8) bool {
	size := uint64(1) << order
	for p := uint64(0); p+size <= uint64(len(m.used)); p += size {
		ok := true
		for i := p; i < p+size; i++ {
			if !m.managed[i] || m.used[i] {
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

func (m *model) removeHead(p uint64) {
	for i, h := range m.heads {
		if h == p {
			m.heads[i] = m.heads[len(m.heads)-1]
			m.heads = m.heads[:len(m.heads)-1]
			return
		}
	}
}

// runModel interprets ops as a sequence of operations on e and checks the
// allocator against the model (and Check) after each one.
func runModel(t testing.TB, e *testEnv, ops []byte, checkEvery int) {
	m := newModel(e)
	b := e.b
	var out [8]Violation
	for i := 0; i+1 < len(ops); i += 2 {
		op, arg := ops[i], ops[i+1]
		tok := b.Lock()
		switch op % 8 {
		case 0, 1, 2: // alloc, mostly small orders
			order := arg % 16
			if order > MaxOrder {
				order = arg % 3
			}
			flags := FlagKernel
			if arg&0x80 != 0 {
				flags = FlagUser | FlagAnonymous
			}
			f, err := b.AllocFlags(order, &tok, flags)
			if err == ErrOutOfMemory {
				if m.canFit(order) {
					t.Fatalf("op %d: OOM for order %d but an aligned free run exists", i/2, order)
				}
				break
			}
			if err != ErrNone {
				t.Fatalf("op %d: alloc: %v", i/2, err)
			}
			p, size := f.PFN(), uint64(1)<<order
			if p%size != 0 || p+size > uint64(len(m.used)) {
				t.Fatalf("op %d: block %#x order %d misplaced", i/2, p, order)
			}
			for q := p; q < p+size; q++ {
				if !m.managed[q] || m.used[q] {
					t.Fatalf("op %d: frame %#x handed out twice or not managed", i/2, q)
				}
				m.used[q] = true
			}
			m.blocks[p] = &mblock{order: order, ref: 1}
			m.heads = append(m.heads, p)
			m.free -= size
		case 3, 4, 5: // free or put a random block
			if len(m.heads) == 0 {
				break
			}
			p := m.heads[int(arg)%len(m.heads)]
			blk := m.blocks[p]
			if op%8 == 5 && arg&1 == 1 { // wrong order must fail
				if err := b.Free(FrameFromPFN(p), (blk.order+1)%NumOrders, &tok); err == ErrNone {
					t.Fatalf("op %d: free with wrong order succeeded", i/2)
				}
				break
			}
			freed, err := b.Put(FrameFromPFN(p), blk.order, &tok)
			if err != ErrNone {
				t.Fatalf("op %d: put: %v", i/2, err)
			}
			blk.ref--
			if freed != (blk.ref == 0) {
				t.Fatalf("op %d: freed=%v ref=%d", i/2, freed, blk.ref)
			}
			if freed {
				size := uint64(1) << blk.order
				for q := p; q < p+size; q++ {
					m.used[q] = false
				}
				delete(m.blocks, p)
				m.removeHead(p)
				m.free += size
				// Double free must fail and change nothing.
				if err := b.Free(FrameFromPFN(p), blk.order, &tok); err != ErrInvalidAddress {
					t.Fatalf("op %d: double free: %v", i/2, err)
				}
			}
		case 6: // get
			if len(m.heads) == 0 {
				break
			}
			p := m.heads[int(arg)%len(m.heads)]
			if err := b.Get(FrameFromPFN(p)); err != ErrNone {
				t.Fatalf("op %d: get: %v", i/2, err)
			}
			m.blocks[p].ref++
		case 7: // invalid frees: random frame, random order
			p := uint64(arg) * 37 % uint64(len(m.used))
			order := arg % NumOrders
			blk := m.blocks[p]
			if blk != nil && blk.order == order && blk.ref == 1 {
				break // would be valid
			}
			if !m.managed[p] && b.meta.at(p).Flags()&FlagAllocated != 0 {
				break // a boot/kernel frame: freeing it is legal
			}
			if err := b.Free(FrameFromPFN(p), order, &tok); err != ErrInvalidAddress {
				t.Fatalf("op %d: invalid free of %#x order %d: %v", i/2, p, order, err)
			}
		}
		if b.FreeFrames() != m.free {
			t.Fatalf("op %d: free frames %d, model %d", i/2, b.FreeFrames(), m.free)
		}
		if checkEvery > 0 && (i/2)%checkEvery == 0 {
			if n := b.Check(out[:]); n != 0 {
				t.Fatalf("op %d: %d violations: %v", i/2, n, out[:min(n, len(out))])
			}
		}
		b.Unlock(&tok)
	}
	if n := b.Check(out[:]); n != 0 {
		t.Fatalf("end: %d violations: %v", n, out[:min(n, len(out))])
	}
}

// modelEnv: 2048 frames with a hole, kernel frames and two bad frames.
func modelEnv(t testing.TB) *testEnv {
	ram := []Range{{0, 900 * PageSize}, {903 * PageSize, (2048 - 903) * PageSize}}
	return newEnv(t, 2048*PageSize, ram, []Range{{0, 8 * PageSize}, {1500 * PageSize, 3 * PageSize}}, []uint64{64 * PageSize, 1027 * PageSize})
}

func TestModelRandom(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		rng := rand.New(rand.NewSource(seed))
		ops := make([]byte, 2*5000)
		rng.Read(ops)
		runModel(t, modelEnv(t), ops, 1)
	}
}

func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 2, 3, 0, 3, 0, 3, 0})
	f.Add([]byte{0, 10, 0, 10, 6, 0, 3, 0, 3, 1, 7, 5})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 4000 {
			ops = ops[:4000]
		}
		runModel(t, modelEnv(t), ops, 1)
	})
}
