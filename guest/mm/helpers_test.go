package mm

import (
	"encoding/binary"
	"runtime"
	"testing"
)

type testEnv struct {
	a    *testArena
	b    *Buddy
	boot *BootAllocator
}

// newEnv sets up a buddy allocator over an arena of top bytes with the
// given RAM ranges, in-use ranges and bad frame addresses.
func newEnv(tb testing.TB, top uint64, ram, inUse []Range, bad []uint64) *testEnv {
	tb.Helper()
	e := &testEnv{a: newArena(tb, top), b: new(Buddy), boot: new(BootAllocator)}
	if err := e.b.Setup(e.a.off, e.boot, ram, inUse, bad); err != ErrNone {
		tb.Fatalf("Setup: %v", err)
	}
	tb.Cleanup(func() { runtime.KeepAlive(e.a.buf) })
	return e
}

// simpleEnv: RAM [0, frames*4K) with the first 16 frames "in use" by the kernel image.
func simpleEnv(tb testing.TB, frames uint64) *testEnv {
	return newEnv(tb, frames*PageSize, []Range{{0, frames * PageSize}}, []Range{{0, 16 * PageSize}}, nil)
}

func (e *testEnv) check(tb testing.TB) {
	tb.Helper()
	var out [32]Violation
	n := e.b.Check(out[:])
	if n != 0 {
		for i := 0; i < n && i < len(out); i++ {
			v := out[i]
			tb.Errorf("violation %s (%s) pfn=%#x expected=%#x actual=%#x", v.Kind, v.Kind.Field(), v.PFN, v.Expected, v.Actual)
		}
		tb.Fatalf("%d violations", n)
	}
}

func (e *testEnv) alloc(tb testing.TB, order uint8) PhysFrame {
	tb.Helper()
	tok := e.b.Lock()
	f, err := e.b.Alloc(order, &tok)
	e.b.Unlock(&tok)
	if err != ErrNone {
		tb.Fatalf("Alloc(%d): %v", order, err)
	}
	return f
}

func (e *testEnv) free(frame PhysFrame, order uint8) AllocError {
	tok := e.b.Lock()
	err := e.b.Free(frame, order, &tok)
	e.b.Unlock(&tok)
	return err
}

// snapshot copies the metadata and the state (minus the lock word).
func (e *testEnv) snapshot() []byte {
	s := append([]byte(nil), e.a.metaBytes(e.b)...)
	st := append([]byte(nil), e.a.stateBytes(e.b)...)
	binary.LittleEndian.PutUint32(st[StateOffLock:], 0)
	return append(s, st...)
}

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func hasKind(vs []Violation, n int, k ViolationKind) bool {
	for i := 0; i < n && i < len(vs); i++ {
		if vs[i].Kind == k {
			return true
		}
	}
	return false
}
