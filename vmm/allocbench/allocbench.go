// Package allocbench runs guest/mm's benchmark loops (guest/mm/benchloop.go)
// on the host, over a Go []byte arena laid out like guest RAM, so that
// `vmm bench` can print each guest figure beside the host's for the very
// same code. It is host code: it allocates, and lives outside guest/.
//
// Both sides time repetitions of identical work and keep the best one
// (lowest time per operation): mm.BenchPairChunk pairs, one round of
// allocations, one 1 GiB metadata init. On a small shared machine the mean
// also measures whoever else ran; the best repetition is the allocator.
package allocbench

import (
	"flag"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// Metric is one benchmark the guest's bench workload reports and the host
// repeats.
type Metric struct {
	Name      string
	Unit      string // what one operation is
	GuestKey  string // the HCReport key of the guest's figure
	GuestPico bool   // the guest reports picoseconds
	host      func(*Arena) func(*testing.B)
	extra     string // the testing.BenchmarkResult.Extra key of the figure
}

// Metrics lists the benchmarks, in the order `vmm bench` prints them.
func Metrics() []Metric {
	order := func(k uint8) func(*Arena) func(*testing.B) {
		return func(a *Arena) func(*testing.B) { return a.allocOrder(k) }
	}
	return []Metric{
		{Name: "order-0 alloc+free pair", Unit: "pair", GuestKey: "bench.order0_pair_ps", GuestPico: true,
			host: func(a *Arena) func(*testing.B) { return a.allocFree }, extra: "ns/pair"},
		{Name: "order-0 alloc", Unit: "alloc", GuestKey: "bench.order0_alloc_ps", GuestPico: true, host: order(0), extra: "ns/alloc"},
		{Name: "order-3 alloc", Unit: "alloc", GuestKey: "bench.order3_alloc_ps", GuestPico: true, host: order(3), extra: "ns/alloc"},
		{Name: "order-9 alloc", Unit: "alloc", GuestKey: "bench.order9_alloc_ps", GuestPico: true, host: order(9), extra: "ns/alloc"},
		{Name: "metadata init, 1 GiB", Unit: "GiB", GuestKey: "bench.init_gib_ns",
			host: func(a *Arena) func(*testing.B) { return a.initMetadata }, extra: "ns/GiB"},
	}
}

// Benchtime sets the target duration of each testing.Benchmark run (go
// test -benchtime) and returns a function that restores the old value, so a
// test binary's own -benchtime is left as it was.
func Benchtime(d time.Duration) (restore func(), err error) {
	testing.Init() // testing.Benchmark outside go test: register -test.benchtime
	old := flag.Lookup("test.benchtime").Value.String()
	if err := flag.Set("test.benchtime", d.String()); err != nil {
		return nil, err
	}
	return func() { flag.Set("test.benchtime", old) }, nil
}

// Arena is a buddy allocator over a Go []byte standing in for guest RAM:
// physical address p is buf[p] (virtOffset = &arena[0]), RAM ranges from the
// guest's memory map, the firmware area and the kernel image with its
// per-CPU areas in use, like the guest's mmInit. The buffer the metadata-init
// benchmark fills (1 GiB's worth of records, 16 MiB) is separate.
type Arena struct {
	buf        []byte
	off        uintptr
	b          mm.Buddy
	boot       mm.BootAllocator
	ram, inUse []mm.Range
	slots      []uint64
	initBuf    []byte
	initOff    uintptr
	chunks     [mm.BenchInitChunks]uint64
	err        error
}

// alignedBytes returns a []byte of size bytes whose first byte is 4 KiB
// aligned, and the slice keeping it alive.
func alignedBytes(size uint64) (mem, keep []byte) {
	keep = make([]byte, size+mm.PageSize)
	pad := (mm.PageSize - uintptr(unsafe.Pointer(&keep[0]))%mm.PageSize) % mm.PageSize
	return keep[pad : pad+uintptr(size)], keep
}

// hostIRQMask stands in for the guest's per-CPU interrupt mask.
var hostIRQMask atomic.Uint64

// NewArena lays out an arena like the guest RAM of map m, with the kernel
// image and its per-CPU areas at [kernelStart, kernelAreaEnd) in use (the
// VMM's layout says where those end: vmm.PerCPUArea).
func NewArena(m memmap.Map, kernelStart, kernelAreaEnd uint64) (*Arena, error) {
	a := &Arena{}
	var mem []byte
	mem, a.buf = alignedBytes(m.RAMTop())
	a.off = uintptr(unsafe.Pointer(&mem[0]))
	for _, r := range m.Ranges() {
		if r.Kind == memmap.RAM {
			a.ram = append(a.ram, mm.Range{Base: r.Base, Size: r.Size})
		}
	}
	a.inUse = []mm.Range{
		{Base: 0, Size: firmware.FirmwareEnd},
		{Base: kernelStart, Size: kernelAreaEnd - kernelStart},
	}
	if err := a.b.Setup(a.off, &a.boot, a.ram, a.inUse, nil); err != mm.ErrNone {
		return nil, fmt.Errorf("host arena: allocator setup: %w", err)
	}
	// The guest's Lock masks interrupts through IRQSave/IRQRestore (a flag
	// in its per-CPU trap record); give the host the same kind of work, so
	// both sides run the same code path.
	a.b.IRQSave = func() uintptr {
		old := hostIRQMask.Load()
		hostIRQMask.Store(1)
		return uintptr(old)
	}
	a.b.IRQRestore = func(old uintptr) { hostIRQMask.Store(uint64(old)) }
	a.slots = make([]uint64, mm.BenchOrderBatch(0))
	var initMem []byte
	initMem, a.initBuf = alignedBytes(mm.BenchGiBFrames * mm.FrameMetaSize)
	a.initOff = uintptr(unsafe.Pointer(&initMem[0]))
	for i := range a.chunks {
		a.chunks[i] = uint64(i) * mm.BenchInitChunkFrames * mm.FrameMetaSize
	}
	mm.BenchInitMetadata(a.initOff, a.chunks[:], mm.BenchInitChunkFrames) // first touch, as in the guest
	return a, nil
}

// Release keeps the arena's memory alive until the caller is done with it.
func (a *Arena) Release() {
	runtime.KeepAlive(a.buf)
	runtime.KeepAlive(a.initBuf)
}

// Run runs metric m's host benchmark once (testing.Benchmark) and returns
// its figure in nanoseconds per operation.
func (a *Arena) Run(m Metric) (float64, error) {
	r := testing.Benchmark(m.host(a))
	if a.err != nil {
		return 0, fmt.Errorf("host %s: %w", m.Name, a.err)
	}
	return r.Extra[m.extra], nil
}

// Check runs the allocator's invariant checker over the arena and returns
// the number of violations.
func (a *Arena) Check() int {
	var out [8]mm.Violation
	tok := a.b.Lock()
	n := a.b.Check(out[:])
	a.b.Unlock(&tok)
	return n
}

func (a *Arena) fail(err mm.AllocError, b *testing.B) {
	if a.err == nil {
		a.err = err
	}
	b.SkipNow()
}

// best keeps the lowest per-operation time of the repetitions of a host
// benchmark, the estimator the guest uses too (see guest/wl_bench.go).
type best struct {
	ns   float64
	full bool // ns comes from a full-size repetition
}

func (m *best) add(d time.Duration, ops int, full bool) {
	if ops <= 0 || (m.full && !full) {
		return
	}
	ns := float64(d.Nanoseconds()) / float64(ops)
	if m.ns == 0 || ns < m.ns || (full && !m.full) {
		m.ns, m.full = ns, full
	}
}

// allocFree: repetitions of mm.BenchPairChunk pairs (as in the guest); the
// figure is the "ns/pair" metric, the best full repetition.
func (a *Arena) allocFree(b *testing.B) {
	var m best
	for done := 0; done < b.N; {
		n := min(mm.BenchPairChunk, b.N-done)
		t0 := time.Now()
		err := mm.BenchAllocFree(&a.b, n)
		m.add(time.Since(t0), n, n == mm.BenchPairChunk)
		if err != mm.ErrNone {
			a.fail(err, b)
			return
		}
		done += n
	}
	b.ReportMetric(m.ns, "ns/pair")
}

// allocOrder is the guest's round loop: BenchOrderBatch blocks allocated
// (timed) then freed (not timed), until b.N blocks; the figure is the
// "ns/alloc" metric, the best full round.
func (a *Arena) allocOrder(order uint8) func(*testing.B) {
	return func(b *testing.B) {
		slots := a.slots[:mm.BenchOrderBatch(order)]
		var m best
		for total := 0; total < b.N; {
			batch := slots[:min(len(slots), b.N-total)]
			t0 := time.Now()
			done, err := mm.BenchAllocOrder(&a.b, order, batch)
			m.add(time.Since(t0), done, done == len(slots))
			ferr := mm.BenchFreeOrder(&a.b, order, batch[:done])
			if err != mm.ErrNone || ferr != mm.ErrNone {
				a.fail(max(err, ferr), b)
				return
			}
			total += done
		}
		b.ReportMetric(m.ns, "ns/alloc")
	}
}

// initMetadata: the figure is the "ns/GiB" metric, the best repetition.
func (a *Arena) initMetadata(b *testing.B) {
	var m best
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		mm.BenchInitMetadata(a.initOff, a.chunks[:], mm.BenchInitChunkFrames)
		m.add(time.Since(t0), 1, true)
	}
	b.ReportMetric(m.ns, "ns/GiB")
}
