package mm

import (
	"testing"
	"unsafe"
)

// testArena backs guest physical memory [0, size) with a page-aligned []byte.
type testArena struct {
	buf  []byte // keeps the memory alive
	mem  []byte // page-aligned window: mem[i] is physical address i
	off  uintptr
	size uint64
}

func newArena(tb testing.TB, size uint64) *testArena {
	tb.Helper()
	buf := make([]byte, size+PageSize)
	a := uintptr(unsafe.Pointer(&buf[0]))
	pad := (PageSize - a%PageSize) % PageSize
	mem := buf[pad : pad+uintptr(size)]
	// virtOffset = arenaBase - physBase with physBase = 0.
	return &testArena{buf: buf, mem: mem, off: uintptr(unsafe.Pointer(&mem[0])), size: size}
}

// metaBytes returns the raw bytes of the metadata array of b.
func (a *testArena) metaBytes(b *Buddy) []byte {
	mp, n, _ := b.Registration()
	return a.mem[mp : mp+n*FrameMetaSize]
}

func (a *testArena) stateBytes(b *Buddy) []byte {
	_, _, sp := b.Registration()
	return a.mem[sp : sp+StateSize]
}

// rawMeta returns the 64 raw bytes of record pfn.
func (a *testArena) rawMeta(b *Buddy, pfn uint64) []byte {
	m := a.metaBytes(b)
	return m[pfn*FrameMetaSize : (pfn+1)*FrameMetaSize]
}

func TestArenaOffset(t *testing.T) {
	a := newArena(t, 4*PageSize)
	p := physToPtr(a.off, 3*PageSize+5)
	if p != unsafe.Pointer(&a.mem[3*PageSize+5]) {
		t.Fatal("physToPtr mismatch")
	}
}
