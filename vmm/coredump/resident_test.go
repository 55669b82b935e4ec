package coredump

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vmm-dev/vmm/vmm/memmap"
	"golang.org/x/sys/unix"
)

// TestWriteSkipsPagesWithoutHostPages: on a MAP_NORESERVE mapping, the
// pages never touched are holes without being read, pages read but never
// written (the shared zero page) and pages written back to zero are holes
// too, and every page with data is in the dump: with mincore and with
// pagemap.
func TestWriteSkipsPagesWithoutHostPages(t *testing.T) {
	m, err := memmap.Build(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	ram := mapAnon(t, m.TotalRAM())
	var inRAM []int // host pages behind RAM ranges: the ones a dump holds
	for _, r := range m.Ranges() {
		if host, ok := m.Translate(r.Base, r.Size); ok && r.Kind == memmap.RAM {
			for p := host / pageSize; p < (host+r.Size)/pageSize; p++ {
				inRAM = append(inRAM, int(p))
			}
		}
	}
	pages := len(inRAM)
	rng := rand.New(rand.NewPCG(3, 4))
	data := map[int]bool{}
	var sink byte
	for range 300 {
		p := inRAM[rng.IntN(pages)]
		switch rng.IntN(3) {
		case 0:
			ram[p*pageSize+rng.IntN(pageSize)] = byte(rng.Uint32()) | 1
			data[p] = true
		case 1:
			sink ^= ram[p*pageSize] // maps the zero page
		case 2:
			if !data[p] {
				ram[p*pageSize+7] = 1
				ram[p*pageSize+7] = 0
			}
		}
	}
	_ = sink
	for _, pm := range []bool{false, true} {
		forcePagemap = pm
		res := residency(ram)
		if res == nil {
			t.Fatalf("pagemap=%v: residency unknown for a page-aligned mapping", pm)
		}
		for p := range data {
			if res[p] == 0 {
				t.Errorf("pagemap=%v: page %d holds data but reads as not resident", pm, p)
			}
		}
		path := filepath.Join(t.TempDir(), "guest.core")
		st, err := Write(path, m, ram, testVCPUs(), testInfo())
		if err != nil {
			t.Fatal(err)
		}
		if st.PagesWritten != uint64(len(data)) || st.PagesWritten+st.PagesSkipped != uint64(pages) {
			t.Errorf("pagemap=%v: %d pages written, %d skipped; want %d of %d", pm, st.PagesWritten, st.PagesSkipped, len(data), pages)
		}
		d, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		wantRAM(t, fmt.Sprintf("pagemap=%v: ", pm), d, m, ram)
		d.Close()
	}
	forcePagemap = false
}

func TestResidencyUnalignedIsUnknown(t *testing.T) {
	ram := mapAnon(t, 4*pageSize)
	if residency(ram[8:]) != nil || residency(nil) != nil {
		t.Error("residency of an unaligned or empty slice should be unknown (nil)")
	}
}

func TestNextResident(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 31, 64} {
		for set := -1; set < n; set++ {
			res := make([]byte, n)
			if set >= 0 {
				res[set] = 1
			}
			for i := 0; i <= n; i++ {
				want := n
				if set >= i {
					want = set
				}
				if got := nextResident(res, i); got != want {
					t.Fatalf("len %d, set %d, from %d: got %d, want %d", n, set, i, got, want)
				}
			}
		}
	}
}

// TestLongRunReadsBack: a long run of data pages (not a multiple of 1 MiB)
// is in the dump byte for byte.
func TestLongRunReadsBack(t *testing.T) {
	m, err := memmap.Build(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	ram := mapAnon(t, m.TotalRAM())
	const lo, n = 8 << 20, 9<<20 + 3*pageSize
	for i := lo; i < lo+n; i++ {
		ram[i] = byte(i*7>>3) | 1
	}
	path := filepath.Join(t.TempDir(), "long.core")
	if _, err := Write(path, m, ram, testVCPUs(), testInfo()); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	wantRAM(t, "", d, m, ram)
}

// TestWriteAcrossResidencyWindows: the dump asks residency one window of
// RAM at a time; runs of data that end, start or continue at a window's
// edge are written whole, and the pages between are holes, with mincore
// and with pagemap (whose reused vector must be rewritten per window).
func TestWriteAcrossResidencyWindows(t *testing.T) {
	m, err := memmap.Build(4 * residencyWindow)
	if err != nil {
		t.Fatal(err)
	}
	ram := mapAnon(t, m.TotalRAM())
	want := 0
	put := func(host uint64) {
		ram[host+pageSize/2] = byte(host/pageSize) | 1
		want++
	}
	for k := uint64(1); k < 4; k++ {
		edge := k * residencyWindow
		for p := edge - 2*pageSize; p < edge+2*pageSize; p += pageSize {
			put(p) // one run across the edge
		}
		put(edge - 8*pageSize) // and one page either side
		put(edge + 8*pageSize)
	}
	for _, pm := range []bool{false, true} {
		forcePagemap = pm
		path := filepath.Join(t.TempDir(), "guest.core")
		st, err := Write(path, m, ram, testVCPUs(), testInfo())
		if err != nil {
			t.Fatal(err)
		}
		if st.PagesWritten != uint64(want) {
			t.Errorf("pagemap=%v: %d pages written, want %d", pm, st.PagesWritten, want)
		}
		d, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for k := uint64(1); k < 4; k++ {
			// Below 4 GiB, guest RAM is one slot at host offset 0.
			host := k*residencyWindow - 16*pageSize
			gpa := host
			if h, ok := m.Translate(gpa, 32*pageSize); !ok || h != host {
				t.Fatalf("guest %#x is not RAM at host %#x", gpa, host)
			}
			got, err := d.Slice(gpa, 32*pageSize)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, ram[host:host+32*pageSize]) {
				t.Errorf("pagemap=%v: the dump differs from RAM around host %#x", pm, host+16*pageSize)
			}
		}
		d.Close()
	}
	forcePagemap = false
}

// TestResidencyIntoRewritesVector: a reused vector's old bytes do not leak
// into the answer for an untouched window, with mincore and with pagemap.
func TestResidencyIntoRewritesVector(t *testing.T) {
	ram := mapAnon(t, 64*pageSize)
	ram[5*pageSize] = 1
	for _, pm := range []bool{false, true} {
		forcePagemap = pm
		vec := bytes.Repeat([]byte{1}, 64)
		res := residencyInto(ram, &vec)
		for p, r := range res {
			if (r != 0) != (p == 5) {
				t.Errorf("pagemap=%v: page %d reads as resident=%v", pm, p, r != 0)
			}
		}
	}
	forcePagemap = false
}

// TestDumpAllocatesOnlyWrittenPages: the file's data (SEEK_DATA/SEEK_HOLE)
// is exactly the headers' pages and the pages written, and no more blocks
// are allocated than that (the writer allocates each run before writing
// it: an unwritten extent would read as a hole yet take the disk).
func TestDumpAllocatesOnlyWrittenPages(t *testing.T) {
	path, _, _, _, st := writeTestDump(t, 128<<20)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var data, extents int64
	for off := int64(0); off < fi.Size(); {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: no data after off
		}
		h, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		data += h - d
		extents++
		off = h
	}
	head := st.Written - st.PagesWritten*pageSize
	want := int64(alignPage(head) + st.PagesWritten*pageSize)
	if data != want {
		t.Errorf("%d bytes of data in the file, want %d (headers %d bytes, %d pages)", data, want, head, st.PagesWritten)
	}
	// Beyond the data, only the file system's own blocks: at most one
	// extent-tree page per 128 extents (ext4 holds 340 in a page). Fewer
	// is fine (a compressing file system).
	slack := (extents/128 + 1) * pageSize
	if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks > want+slack {
		t.Errorf("%d bytes allocated for %d bytes of data in %d extents", blocks, want, extents)
	}
}
