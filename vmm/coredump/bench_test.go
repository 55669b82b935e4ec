package coredump

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vmm-dev/vmm/vmm/memmap"
)

// bigGuest returns a 4 GiB guest backed by a lazily allocated anonymous
// mapping with touchedMiB MiB of non-zero data: the first MiB of low RAM and
// pages spread evenly over the rest.
func bigGuest(b *testing.B, touchedMiB int) (memmap.Map, []byte) {
	b.Helper()
	m, err := memmap.Build(4 * memmap.GiB)
	if err != nil {
		b.Fatal(err)
	}
	ram := mapAnon(b, m.TotalRAM())
	for i := range 1 << 20 {
		ram[i] = byte(i) | 1
	}
	pages := (touchedMiB - 1) << 20 / pageSize
	stride := uint64(len(ram)) / uint64(pages) &^ (pageSize - 1)
	for p := range uint64(pages) {
		ram[p*stride+8] = 0xCC
	}
	return m, ram
}

func onDisk(b *testing.B, path string) uint64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return uint64(fi.Sys().(*syscall.Stat_t).Blocks) * 512
}

// BenchmarkWrite4GiB writes a 4 GiB, mostly zero guest (8 MiB touched).
// MB/s is guest RAM per second.
func BenchmarkWrite4GiB(b *testing.B) {
	m, ram := bigGuest(b, 8)
	path := filepath.Join(b.TempDir(), "big.core")
	b.SetBytes(int64(m.TotalRAM()))
	var st Stats
	for b.Loop() {
		var err error
		if st, err = Write(path, m, ram, testVCPUs(), testInfo()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(onDisk(b, path)), "disk-bytes")
	b.ReportMetric(float64(st.Written), "written-bytes")
	b.ReportMetric(float64(st.FileSize), "file-bytes")
}

// BenchmarkOpenAndScan4GiB opens a 4 GiB dump and reads every byte of
// every segment through Slice (holes included, faulting them in).
func BenchmarkOpenAndScan4GiB(b *testing.B) {
	path, pages := writeBig(b)
	var size uint64
	for b.Loop() {
		size = scan(b, path, false, pages)
	}
	b.SetBytes(int64(size))
}

// BenchmarkOpenAndScanData4GiB is BenchmarkOpenAndScan4GiB reading only
// the spans DataRanges reports (holes skipped via SEEK_DATA/SEEK_HOLE).
func BenchmarkOpenAndScanData4GiB(b *testing.B) {
	path, pages := writeBig(b)
	var size uint64
	for b.Loop() {
		size = scan(b, path, true, pages)
	}
	b.SetBytes(int64(size))
}

// BenchmarkOpen4GiB measures Open and Close alone (header and note checks).
func BenchmarkOpen4GiB(b *testing.B) {
	path, _ := writeBig(b)
	for b.Loop() {
		d, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

func writeBig(b *testing.B) (string, uint64) {
	m, ram := bigGuest(b, 8)
	path := filepath.Join(b.TempDir(), "big.core")
	st, err := Write(path, m, ram, testVCPUs(), testInfo())
	if err != nil {
		b.Fatal(err)
	}
	return path, st.PagesWritten
}

// scan opens path and counts non-zero pages; it returns the guest bytes
// the dump covers.
func scan(b *testing.B, path string, dataOnly bool, wantPages uint64) uint64 {
	d, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	spans := d.Segments()
	var total uint64
	for _, s := range spans {
		total += s.Size
	}
	if dataOnly {
		if spans, err = d.DataRanges(); err != nil {
			b.Fatal(err)
		}
	}
	var nonZero uint64
	for _, s := range spans {
		buf, err := d.Slice(s.PAddr, s.Size)
		if err != nil {
			b.Fatal(err)
		}
		for p := 0; p < len(buf); p += pageSize {
			if !isZero(buf[p:min(p+pageSize, len(buf))]) {
				nonZero++
			}
		}
	}
	if nonZero != wantPages {
		b.Fatalf("%d non-zero pages, want %d", nonZero, wantPages)
	}
	return total
}

// BenchmarkIsZero measures the zero-page test on one cache-hot page.
func BenchmarkIsZero(b *testing.B) {
	page := make([]byte, pageSize)
	b.SetBytes(pageSize)
	for b.Loop() {
		if !isZero(page) {
			b.Fatal("not zero")
		}
	}
}

// BenchmarkWriteDense256MiB writes a 4 GiB guest whose data is one
// contiguous 256 MiB run (a 16 GiB guest's metadata array is 272 MiB):
// the cost is copying that run into the page cache. MB/s is data written.
func BenchmarkWriteDense256MiB(b *testing.B) {
	m, err := memmap.Build(4 * memmap.GiB)
	if err != nil {
		b.Fatal(err)
	}
	ram := mapAnon(b, m.TotalRAM())
	const lo, n = 1 << 30, 256 << 20
	for i := lo; i < lo+n; i += 64 {
		ram[i] = byte(i>>6) | 1
	}
	dir := b.TempDir()
	b.SetBytes(n)
	for b.Loop() {
		path := filepath.Join(dir, "dense.core")
		os.Remove(path)
		if _, err := Write(path, m, ram, testVCPUs(), testInfo()); err != nil {
			b.Fatal(err)
		}
	}
}
