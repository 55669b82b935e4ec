package mm

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// traceFile is the Linux page-allocation trace, relative to this package
// (testdata/README.md says how it was made).
const traceFile = "../../testdata/linux-pagealloc-gobuild-400k.csv.gz"

// replayArena is the RAM the trace is replayed into: 256 MiB of frames.
const replayArena = 256 << 20

func TestParseTraceLine(t *testing.T) {
	in := []byte("# comment\n\n001,4295.1,a,1158632,0\r\n000,1.5,f,7,10\nbad line\n1,2,x,3,4\n1,2,a,,4\n1,2,a,5,300\n1,2,a,5,1")
	type rec struct {
		op    byte
		pfn   uint64
		order uint8
		ok    bool
	}
	want := []rec{{'#', 0, 0, true}, {'#', 0, 0, true}, {'a', 1158632, 0, true}, {'f', 7, 10, true}, {0, 0, 0, false}, {0, 0, 0, false}, {0, 0, 0, false}, {0, 0, 0, false}, {'a', 5, 1, true}}
	var got []rec
	for b := in; len(b) > 0; {
		var r rec
		r.op, r.pfn, r.order, b, r.ok = ParseTraceLine(b)
		got = append(got, r)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records: %v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %+v want %+v", i, got[i], want[i])
		}
	}
	if _, _, _, _, ok := ParseTraceLine([]byte("1,2,a,99999999999999999999999,0")); ok {
		t.Error("overflow accepted")
	}
}

func FuzzParseTraceLine(f *testing.F) {
	f.Add([]byte("001,4295.108630,a,1158632,0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for n := 0; len(b) > 0; n++ {
			var rest []byte
			_, _, _, rest, _ = ParseTraceLine(b)
			if len(rest) >= len(b) {
				t.Fatal("no progress")
			}
			b = rest
		}
	})
}

type replayStats struct {
	allocs, frees, served, failed, fragFailed uint64
	unknownFrees, orderMismatch, realloc      uint64
	failedByOrder                             [NumOrders]uint64
}

func TestTraceReplay(t *testing.T) {
	path := filepath.FromSlash(traceFile)
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the trace is part of the repository: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, replayArena, []Range{{0, replayArena}}, []Range{{0, 2 << 20}}, nil)
	b := e.b
	type live struct {
		frame PhysFrame
		order uint8
	}
	m := map[uint64]live{}
	var s replayStats
	var out [16]Violation
	lineNo := 0
	for rest := data; len(rest) > 0; {
		op, pfn, order, r, ok := ParseTraceLine(rest)
		rest = r
		lineNo++
		if !ok {
			t.Fatalf("line %d: malformed %q", lineNo, bytes.SplitN(rest, []byte("\n"), 2)[0])
		}
		if op == '#' {
			continue
		}
		tok := b.Lock()
		switch op {
		case 'a':
			s.allocs++
			fr, err := b.Alloc(order, &tok)
			if err != ErrNone {
				if err != ErrOutOfMemory {
					t.Fatalf("line %d: alloc order %d: %v", lineNo, order, err)
				}
				s.failed++
				s.failedByOrder[order]++
				if b.FreeFrames() >= 1<<order {
					s.fragFailed++
				}
				break
			}
			s.served++
			if old, dup := m[pfn]; dup {
				// Linux freed the page without a traced event (e.g. a
				// batched per-CPU drain): free our block implicitly.
				s.realloc++
				if err := b.Free(old.frame, old.order, &tok); err != ErrNone {
					t.Fatalf("line %d: implicit free: %v", lineNo, err)
				}
			}
			m[pfn] = live{fr, order}
		case 'f':
			s.frees++
			l, known := m[pfn]
			if !known {
				s.unknownFrees++
				break
			}
			if l.order != order {
				s.orderMismatch++
				break
			}
			if err := b.Free(l.frame, l.order, &tok); err != ErrNone {
				t.Fatalf("line %d: free: %v", lineNo, err)
			}
			delete(m, pfn)
		}
		if (s.allocs+s.frees)%50000 == 0 {
			if n := b.Check(out[:]); n != 0 {
				t.Fatalf("line %d: %d violations: %v", lineNo, n, out[:min(n, len(out))])
			}
		}
		b.Unlock(&tok)
	}
	tok := b.Lock()
	n := b.Check(out[:])
	st := b.State()
	counts := st.Counts
	free := st.FreeFrames
	b.Unlock(&tok)
	if n != 0 {
		t.Fatalf("end: %d violations: %v", n, out[:min(n, len(out))])
	}
	t.Logf("replayed %d allocs and %d frees into %d MiB (%d free frames at start)", s.allocs, s.frees, replayArena>>20, st.ManagedFrames)
	t.Logf("served %d, failed %d (of which %d for lack of contiguous memory: enough free frames, no block), failed by order %v",
		s.served, s.failed, s.fragFailed, s.failedByOrder)
	t.Logf("skipped: %d frees of pages the trace never allocated, %d frees with a different order; %d re-allocations of a live pfn (the old block freed implicitly)", s.unknownFrees, s.orderMismatch, s.realloc)
	t.Logf("end: %d live blocks, %d free frames, free blocks per order %v, 0 violations", len(m), free, counts)
}
