package vmm

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/memmap"
	"golang.org/x/sys/unix"
)

// GuestMemory is guest RAM: one anonymous host mapping carved into the
// memory map's slots. Every guest physical address is checked against the
// slots before use; a bad address is an error, never a wild access.
type GuestMemory struct {
	Map   memmap.Map
	host  []byte
	dirty *dirtyTracker // told of the VMM's own writes (nil: not tracked)
}

// NewGuestMemory maps ramBytes of host memory with MAP_NORESERVE, so a large
// guest costs only the pages it touches.
func NewGuestMemory(m memmap.Map) (*GuestMemory, error) {
	size := m.TotalRAM()
	host, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes of guest RAM: %w", size, err)
	}
	return &GuestMemory{Map: m, host: host}, nil
}

// AdviseHuge asks the host to back all of guest RAM with transparent huge
// pages (MADV_HUGEPAGE): one host fault and one KVM mapping per 2 MiB the
// guest touches, instead of per 4 KiB, at the price of holding whole 2 MiB
// pages. Advice only: a host without THP ignores it.
func (g *GuestMemory) AdviseHuge() {
	unix.Madvise(g.host, unix.MADV_HUGEPAGE)
}

// Close unmaps guest RAM.
func (g *GuestMemory) Close() error {
	if g.host == nil {
		return nil
	}
	err := unix.Munmap(g.host)
	g.host = nil
	return err
}

// Host returns the whole host mapping (slot host offsets index into it).
func (g *GuestMemory) Host() []byte { return g.host }

// Slice returns the host bytes behind guest physical [gpa, gpa+n).
func (g *GuestMemory) Slice(gpa, n uint64) ([]byte, error) {
	off, ok := g.Map.Translate(gpa, n)
	if !ok {
		return nil, fmt.Errorf("guest physical range [%#x, +%#x) is not in guest RAM", gpa, n)
	}
	return g.host[off : off+n : off+n], nil
}

// Read copies guest physical memory at gpa into buf.
func (g *GuestMemory) Read(gpa uint64, buf []byte) error {
	s, err := g.Slice(gpa, uint64(len(buf)))
	if err != nil {
		return err
	}
	copy(buf, s)
	return nil
}

// Write copies buf into guest physical memory at gpa.
func (g *GuestMemory) Write(gpa uint64, buf []byte) error {
	s, err := g.Slice(gpa, uint64(len(buf)))
	if err != nil {
		return err
	}
	copy(s, buf)
	g.NoteWrite(gpa, uint64(len(buf)))
	return nil
}

// NoteWrite tells the dirty tracking that the VMM wrote [gpa, gpa+n)
// through a Slice: KVM's dirty log sees only the guest's writes. Write and
// WriteU64 call it; so must every other VMM write to guest RAM outside the
// firmware area (which counts as always written).
func (g *GuestMemory) NoteWrite(gpa, n uint64) { g.dirty.noteWrite(gpa, n) }

// ReadU64 reads a little-endian uint64 at gpa.
func (g *GuestMemory) ReadU64(gpa uint64) (uint64, error) {
	s, err := g.Slice(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(s), nil
}

// WriteU64 writes a little-endian uint64 at gpa.
func (g *GuestMemory) WriteU64(gpa, v uint64) error {
	s, err := g.Slice(gpa, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(s, v)
	g.NoteWrite(gpa, 8)
	return nil
}

// ReadAt lets diagnostics read kernel memory by virtual address (the
// guest kernel sees physical memory through the physmap); it reports false
// instead of failing, also for an address outside the physmap.
func (g *GuestMemory) ReadAt(gva uint64, buf []byte) bool {
	gpa, ok := firmware.VirtToPhys(gva)
	return ok && g.Read(gpa, buf) == nil
}

// Pre-faulting the frame metadata. The guest's first write to a page of
// guest RAM costs a KVM exit plus a host page fault (about 4.5 µs a page on
// this host, against 1.6 µs for a host process touching its own memory);
// the metadata array is 1/64 of RAM and written whole at boot, so for a
// large guest that first touch is most of the time to its first workload.
// The host knows where the guest's allocator will put the array: the same
// boot allocator over the same boot info. It populates those host pages on
// every host CPU before the guest runs; the guest's writes then find them
// present. A wrong prediction costs only the time (the registration check
// and the verifier never rely on it).

// PredictMeta returns where the guest's mm.Buddy.Init will place the frame
// metadata and allocator state, from the boot info in guest memory (read
// as the guest's mmInit reads it).
func PredictMeta(g *GuestMemory) (metaPhys, frames, statePhys uint64, err error) {
	var bi firmware.BootInfo
	if err := g.Read(firmware.BootInfoBase, unsafe.Slice((*byte)(unsafe.Pointer(&bi)), unsafe.Sizeof(bi))); err != nil {
		return 0, 0, 0, err
	}
	return predictMeta(&bi)
}

// predictMeta is PredictMeta from a boot info not yet in guest memory.
func predictMeta(bi *firmware.BootInfo) (metaPhys, frames, statePhys uint64, err error) {
	var ram, inUse []mm.Range
	var bad []uint64
	top := uint64(0)
	for i := range min(int(bi.NumMem), len(bi.Mem)) {
		if r := bi.Mem[i]; r.Kind == firmware.MemRAM {
			ram = append(ram, mm.Range{Base: r.Base, Size: r.Size})
			if r.Size != 0 {
				top = max(top, r.Base+r.Size)
			}
		}
	}
	for i := range min(int(bi.NumInUse), len(bi.InUse)) {
		inUse = append(inUse, mm.Range{Base: bi.InUse[i].Base, Size: bi.InUse[i].Size})
	}
	for i := range min(int(bi.NumBad), len(bi.BadFrames)) {
		bad = append(bad, bi.BadFrames[i]<<mm.PageShift)
	}
	var boot mm.BootAllocator
	boot.Init(ram, inUse, bad)
	frames = mm.FrameCountFor(top)
	if metaPhys, e := boot.AllocMeta(frames * mm.FrameMetaSize); e == mm.ErrNone {
		if statePhys, e := boot.Alloc(mm.StateSize, mm.PageSize); e == mm.ErrNone {
			return metaPhys, frames, statePhys, nil
		}
	}
	return 0, 0, 0, fmt.Errorf("predicting the metadata placement: the boot allocator has no room for %d frame records", frames)
}

const hugePage = 2 << 20

// Populate makes the host pages behind guest physical [gpa, gpa+n) present
// and writable, split over every host CPU (MADV_POPULATE_WRITE; a write
// per page where the kernel lacks it). Contents are kept. With huge, the
// whole 2 MiB pages inside the range are advised MADV_HUGEPAGE first.
func (g *GuestMemory) Populate(gpa, n uint64, huge bool) error {
	off, ok := g.Map.Translate(gpa, n)
	if !ok {
		return fmt.Errorf("populate: guest physical range [%#x, +%#x) is not in guest RAM", gpa, n)
	}
	lo := off &^ (mm.PageSize - 1)
	end := min((off+n+mm.PageSize-1)&^(mm.PageSize-1), uint64(len(g.host)))
	if huge {
		// Transparent huge pages where the range covers whole 2 MiB pages:
		// one host fault, and one KVM mapping, per 2 MiB.
		hlo, hend := (lo+hugePage-1)&^(hugePage-1), end&^(hugePage-1)
		if hlo < hend {
			unix.Madvise(g.host[hlo:hend], unix.MADV_HUGEPAGE) // advice only: ignore failure
		}
	}
	workers := uint64(runtime.NumCPU())
	unit := uint64(mm.PageSize)
	if huge {
		unit = hugePage // one worker per huge page: two would each zero one
	}
	chunk := max(((end-lo)/workers+unit-1)&^(unit-1), unit)
	var wg sync.WaitGroup
	for ; lo < end; lo += chunk {
		b := g.host[lo:min(lo+chunk, end)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if unix.Madvise(b, unix.MADV_POPULATE_WRITE) != nil {
				for i := 0; i < len(b); i += mm.PageSize {
					// A write fault allocates the page; adding 0 keeps
					// whatever is there.
					atomic.AddUint32((*uint32)(unsafe.Pointer(&b[i])), 0)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// prefaultMeta populates the pages where the guest will put its metadata
// and allocator state (see PredictMeta) on another goroutine: zeroing a
// fresh 2 MiB page takes 0.2-0.3 ms on this project's machine, time the
// VMM spends meanwhile loading the kernel and creating vCPUs. The caller
// must call wait before the guest runs or guest RAM is unmapped.
func (vm *VM) prefaultMeta(bi *firmware.BootInfo) (wait func()) {
	meta, frames, state, err := predictMeta(bi)
	if err != nil {
		vm.logf("%v: the guest faults its metadata in itself", err)
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The array is written whole at boot: huge pages waste nothing there.
		if err = vm.mem.Populate(meta, frames*mm.FrameMetaSize, true); err == nil {
			err = vm.mem.Populate(state, mm.StateSize, false)
		}
	}()
	return func() {
		<-done
		if err != nil {
			vm.logf("prefault metadata: %v", err)
		}
	}
}
