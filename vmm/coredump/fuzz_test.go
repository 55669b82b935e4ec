package coredump

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmm-dev/vmm/vmm/memmap"
)

// tinyDump returns a complete, valid dump of one page of RAM at guest 0
// (plus a reserved page), built with the writer's own layout code: a small
// seed the fuzzer can mutate quickly.
func tinyDump(t testing.TB) []byte {
	t.Helper()
	info := testInfo()
	info.Map = []memmap.Range{{Base: 0, Size: pageSize, Kind: memmap.RAM}, {Base: pageSize, Size: pageSize, Kind: memmap.Reserved}}
	notes, err := buildNotes(testVCPUs()[:1], info)
	if err != nil {
		t.Fatal(err)
	}
	loads := []load{{gpa: 0, size: pageSize}}
	head, size := buildHeaders(loads, notes)
	b := make([]byte, size)
	copy(b, head)
	for i := range pageSize {
		b[loads[0].off+uint64(i)] = byte(i)
	}
	if _, err := parse(b); err != nil {
		t.Fatalf("tiny dump does not parse: %v", err)
	}
	return b
}

// FuzzOpen feeds mutated dumps to the reader: it must return a FormatError
// or a dump whose every accessor works, never panic or read out of bounds.
func FuzzOpen(f *testing.F) {
	tiny := tinyDump(f)
	f.Add(tiny)
	f.Add(tiny[:ehdrSize+phdrSize])
	f.Add(tiny[:len(tiny)-pageSize/2])
	if seed, err := os.ReadFile(filepath.Join("..", "..", "testdata", "coredump", "tiny.core")); err == nil {
		f.Add(seed)
	}
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parse(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FormatError", err)
			}
			return
		}
		info := d.Info()
		_ = d.VCPUs()
		for _, r := range info.Map {
			if r.Size == 0 {
				t.Fatalf("accepted empty range %v", r)
			}
		}
		for _, s := range d.Segments() {
			got, err := d.Slice(s.PAddr, s.Size)
			if err != nil || uint64(len(got)) != s.Size {
				t.Fatalf("Slice(segment %+v) = %d bytes, %v", s, len(got), err)
			}
			if _, err := d.Slice(s.PAddr+s.Size-1, 2); err == nil && s.PAddr+s.Size != 0 {
				// Fine only if the next segment starts exactly here.
				if _, err2 := d.Slice(s.PAddr+s.Size, 1); err2 != nil {
					t.Fatalf("Slice across the end of %+v succeeded", s)
				}
			}
		}
		for _, gpa := range []uint64{0, 1 << 20, ^uint64(0)} {
			d.Slice(gpa, 4096)
		}
	})
}
