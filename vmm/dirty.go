package vmm

import (
	"fmt"
	"math/bits"
	"sync"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// Dirty logging: KVM records every guest write to a slot created with
// KVM_MEM_LOG_DIRTY_PAGES in a bitmap (one bit per 4 KiB page of the slot);
// KVM_GET_DIRTY_LOG copies the bitmap out and clears it. Incremental
// checkpoints re-check only what those pages hold. KVM logs only the
// guest's writes: a write by the VMM itself through the host mapping (a
// debugger's memory write) is not in the log, so such writers mark the
// tracker stale and the next checkpoint is a full one.

// memLogDirtyPages is KVM_MEM_LOG_DIRTY_PAGES, the slot flag.
const memLogDirtyPages = 1 << 0

// kvmGetDirtyLogNr is KVM_GET_DIRTY_LOG's ioctl number (_IOW(KVMIO, 0x42,
// struct kvm_dirty_log)). gokvm's GetDirtyLog treats ENOENT (no such slot,
// or a slot without dirty logging) as success with an untouched bitmap,
// which would read as "nothing changed": this wrapper reports it.
const kvmGetDirtyLogNr = 0x42

// getDirtyLog fetches and clears slot's dirty bitmap into bitmap, which
// must hold one bit per page of the slot (rounded up to 64 bits).
func getDirtyLog(vmFd uintptr, slot uint32, bitmap []uint64) error {
	if len(bitmap) == 0 {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot=%d: empty bitmap", slot)
	}
	dl := kvm.DirtyLog{Slot: slot, BitMap: uint64(uintptr(unsafe.Pointer(&bitmap[0])))}
	if _, err := kvm.Ioctl(vmFd, kvm.IIOW(kvmGetDirtyLogNr, unsafe.Sizeof(dl)), uintptr(unsafe.Pointer(&dl))); err != nil {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot=%d: %w", slot, err)
	}
	return nil
}

// bitmapWords is the bitmap size for a slot of size bytes.
func bitmapWords(size uint64) int { return int((size/pageSize + 63) / 64) }

const pageSize = 4096

// dirtyTracker is the dirty log of every slot of guest RAM, plus the pages
// the VMM wrote itself since the last fetch. Logging starts at the first
// checkpoint, not at boot: under dirty logging KVM maps guest RAM 4 KiB at
// a time and takes a fault at the first write to each page after each
// fetch, and the guest writes its whole metadata array while it boots (at
// 16 GiB that tripled the time to the first workload). The first
// checkpoint is a full check anyway; it makes the baseline, then start
// turns logging on, so the log holds exactly what was written after it.
// stop turns it off again for an interval nothing watches (the guest's
// hint, a back-off): turned off, the write-protected pages stop faulting;
// the next baseline starts it again.
type dirtyTracker struct {
	vmFd    uintptr
	slots   []dirtySlot
	host    []byte // the host mapping of guest RAM (slots index into it)
	started bool   // logging is on (start; stop turns it off)
	// manual: KVM_CLEAR_DIRTY_LOG protects what the verifier watches
	// (protect); without it KVM_GET_DIRTY_LOG clears and protects all.
	// manualTried: the capability was asked for (once, before any slot
	// first logs).
	manual, manualTried bool

	mu    sync.Mutex
	wrote []span // written by the VMM since the last fetch
}

type dirtySlot struct {
	slot                  uint32
	gpa, size, hostOffset uint64
	bits                  []uint64
	clear                 []uint64 // scratch for protect, all zero between calls
}

type span struct{ gpa, n uint64 }

// maxHostSpans bounds the VMM's own writes remembered between checkpoints;
// beyond it the whole of guest RAM counts as written.
const maxHostSpans = 4096

func newDirtyTracker(vmFd uintptr, slots []memmap.Slot, host []byte) *dirtyTracker {
	t := &dirtyTracker{vmFd: vmFd, host: host}
	for i, s := range slots {
		t.slots = append(t.slots, dirtySlot{slot: uint32(i), gpa: s.GPA, size: s.Size, hostOffset: s.HostOffset,
			bits: make([]uint64, bitmapWords(s.Size)), clear: make([]uint64, bitmapWords(s.Size))})
	}
	return t
}

// start turns dirty logging on for every slot (with the world stopped),
// with manual protection where KVM has it, and protects what watched
// names. On an error the slots already switched keep logging, which costs
// only time; the caller stays with full checks.
func (t *dirtyTracker) start(watched func(fn func(gpa, n uint64))) error {
	if !t.manualTried {
		t.manualTried = true
		t.manual = enableManualDirtyLog(t.vmFd) == nil
	}
	if err := t.setLogging(memLogDirtyPages); err != nil {
		return err
	}
	t.mu.Lock()
	t.wrote = nil
	t.mu.Unlock()
	t.started = true
	return t.protect(watched)
}

// stop turns logging off for every slot (with the world stopped): KVM
// drops the write protection it kept for the log, so the guest's writes
// stop faulting until a start. The VMM's own writes are still noted; a
// start forgets them (it is followed by a full check).
func (t *dirtyTracker) stop() error {
	t.started = false
	return t.setLogging(0)
}

// setLogging sets every slot's flags: KVM_MEM_LOG_DIRTY_PAGES or none.
func (t *dirtyTracker) setLogging(flags uint32) error {
	for _, s := range t.slots {
		region := kvm.UserspaceMemoryRegion{Slot: s.slot, Flags: flags, GuestPhysAddr: s.gpa, MemorySize: s.size,
			UserspaceAddr: uint64(uintptrOf(t.host[s.hostOffset:]))}
		if err := kvm.SetUserMemoryRegion(t.vmFd, &region); err != nil {
			return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot=%d gpa=%#x size=%#x flags=%#x: %w", s.slot, s.gpa, s.size, flags, err)
		}
	}
	return nil
}

// protect clears the log of the pages watched names (with manual
// protection; without it every fetch has cleared the whole log): KVM
// write-protects them again, so the next fetch shows which of them the
// guest wrote. The pages never cleared stay set in the log: they read as
// written at every fetch, which costs only re-checks. Call it with the
// world stopped, after the check.
func (t *dirtyTracker) protect(watched func(fn func(gpa, n uint64))) error {
	if !t.manual {
		return nil
	}
	watched(func(gpa, n uint64) {
		end := gpa + n
		for i := range t.slots {
			s := &t.slots[i]
			if lo, hi := max(gpa, s.gpa), min(end, s.gpa+s.size); lo < hi {
				setBits(s.clear, (lo-s.gpa)/pageSize, (hi-s.gpa+pageSize-1)/pageSize)
			}
		}
	})
	// One KVM_CLEAR_DIRTY_LOG per run of non-zero words (first_page must
	// be a multiple of 64), which it then zeroes for the next protect.
	for _, s := range t.slots {
		pages := s.size / pageSize
		for w := 0; w < len(s.clear); {
			if s.clear[w] == 0 {
				w++
				continue
			}
			e := w
			for e < len(s.clear) && s.clear[e] != 0 {
				e++
			}
			n := min(uint64(e-w)*64, pages-uint64(w)*64)
			err := clearDirtyLogRange(t.vmFd, s.slot, uint64(w)*64, n, s.clear[w:e])
			clear(s.clear[w:e])
			if err != nil {
				return err
			}
			w = e
		}
	}
	return nil
}

// noteWrite records a write by the VMM to guest physical [gpa, gpa+n):
// KVM logs only the guest's writes.
func (t *dirtyTracker) noteWrite(gpa, n uint64) {
	if t == nil || n == 0 {
		return
	}
	t.mu.Lock()
	if len(t.wrote) <= maxHostSpans {
		t.wrote = append(t.wrote, span{gpa, n})
	}
	t.mu.Unlock()
}

// fetch takes the dirty log of every slot (clearing it, without manual
// protection) and adds the VMM's
// own writes and the firmware area, where the VMM writes in place (the
// mailboxes, the console ring): the pages written since the last fetch.
// Call it with the world stopped.
func (t *dirtyTracker) fetch() (*dirtyPages, error) {
	for i := range t.slots {
		s := &t.slots[i]
		if err := getDirtyLog(t.vmFd, s.slot, s.bits); err != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	host := t.wrote
	t.wrote = nil
	t.mu.Unlock()
	if len(host) > maxHostSpans {
		host = []span{{0, ^uint64(0)}}
	}
	host = append(host, span{0, firmware.PageTableBase})
	for _, h := range host {
		t.mark(h.gpa, h.n)
	}
	return &dirtyPages{slots: t.slots}, nil
}

// mark sets the bits of every page of [gpa, gpa+n) that is in a slot.
func (t *dirtyTracker) mark(gpa, n uint64) {
	end := gpa + n
	if end < gpa {
		end = ^uint64(0)
	}
	for i := range t.slots {
		s := &t.slots[i]
		lo, hi := max(gpa, s.gpa), min(end, s.gpa+s.size)
		for p := (lo - s.gpa) / pageSize; lo < hi && p < (hi-s.gpa+pageSize-1)/pageSize; p++ {
			s.bits[p/64] |= 1 << (p % 64)
		}
	}
}

// dirtyPages is one fetch's pages (verify.Dirty); valid until the next
// fetch.
type dirtyPages struct{ slots []dirtySlot }

// Pages calls fn for every written page overlapping [gpa, gpa+n), in
// increasing order (slots are in address order and disjoint).
func (d *dirtyPages) Pages(gpa, n uint64, fn func(page uint64)) {
	end := gpa + n
	if end < gpa {
		end = ^uint64(0)
	}
	for i := range d.slots {
		s := &d.slots[i]
		lo, hi := max(gpa, s.gpa), min(end, s.gpa+s.size)
		if lo >= hi {
			continue
		}
		first, last := (lo-s.gpa)/pageSize, (hi-s.gpa-1)/pageSize
		for w := first / 64; w <= last/64; w++ {
			word := s.bits[w]
			if w == first/64 {
				word &= ^uint64(0) << (first % 64)
			}
			if w == last/64 && last%64 != 63 {
				word &= 1<<(last%64+1) - 1
			}
			for word != 0 {
				b := uint64(bits.TrailingZeros64(word))
				fn(s.gpa + (w*64+b)*pageSize)
				word &= word - 1
			}
		}
	}
}

// pageCount is the number of written pages (for logs).
func (d *dirtyPages) pageCount() (n int) {
	for _, s := range d.slots {
		for _, w := range s.bits {
			n += bits.OnesCount64(w)
		}
	}
	return n
}

// Manual dirty-log protection (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): with it
// KVM_GET_DIRTY_LOG only reads the log, and KVM_CLEAR_DIRTY_LOG clears the
// pages named and write-protects just those again. With INITIALLY_SET the
// log starts all set and nothing is write-protected when logging starts.
// The VMM then protects only what the verifier reads (the metadata, the
// page tables, the holdings): the guest's other pages keep their mappings
// and never fault for the log.
const (
	kvmEnableCapNr        = 0xa3 // _IOW(KVMIO, 0xa3, struct kvm_enable_cap)
	kvmClearDirtyLogNr    = 0xc0 // _IOWR(KVMIO, 0xc0, struct kvm_clear_dirty_log)
	capManualDirtyLog2    = 168  // KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
	dirtyLogManualProtect = 1 << 0
	dirtyLogInitiallySet  = 1 << 1
)

// kvmEnableCap is struct kvm_enable_cap.
type kvmEnableCap struct {
	Cap, Flags uint32
	Args       [4]uint64
	Pad        [64]byte
}

// kvmClearDirtyLog is struct kvm_clear_dirty_log.
type kvmClearDirtyLog struct {
	Slot, NumPages uint32
	FirstPage      uint64
	Bitmap         uint64
}

// enableManualDirtyLog turns on manual protection with an initially set
// log; call it before any slot logs.
func enableManualDirtyLog(vmFd uintptr) error {
	c := kvmEnableCap{Cap: capManualDirtyLog2, Args: [4]uint64{dirtyLogManualProtect | dirtyLogInitiallySet}}
	if _, err := kvm.Ioctl(vmFd, kvm.IIOW(kvmEnableCapNr, unsafe.Sizeof(c)), uintptr(unsafe.Pointer(&c))); err != nil {
		return fmt.Errorf("KVM_ENABLE_CAP KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 flags=%#x: %w", c.Args[0], err)
	}
	return nil
}

// clearDirtyLog clears (and write-protects again) the pages of slot whose
// bits are set in bitmap, which covers the whole slot of pages pages.
func clearDirtyLog(vmFd uintptr, slot uint32, pages uint64, bitmap []uint64) error {
	return clearDirtyLogRange(vmFd, slot, 0, pages, bitmap)
}

// clearDirtyLogRange is clearDirtyLog for the n pages from first (a
// multiple of 64; n too, unless the range ends the slot), bitmap's bit 0
// being page first.
func clearDirtyLogRange(vmFd uintptr, slot uint32, first, n uint64, bitmap []uint64) error {
	c := kvmClearDirtyLog{Slot: slot, NumPages: uint32(n), FirstPage: first, Bitmap: uint64(uintptr(unsafe.Pointer(&bitmap[0])))}
	if _, err := kvm.Ioctl(vmFd, kvm.IIOWR(kvmClearDirtyLogNr, unsafe.Sizeof(c)), uintptr(unsafe.Pointer(&c))); err != nil {
		return fmt.Errorf("KVM_CLEAR_DIRTY_LOG slot=%d pages [%d, +%d): %w", slot, first, n, err)
	}
	return nil
}

// setBits sets bits [lo, hi) of b.
func setBits(b []uint64, lo, hi uint64) {
	for p := lo; p < hi; {
		if p%64 == 0 && hi-p >= 64 {
			b[p/64] = ^uint64(0)
			p += 64
			continue
		}
		b[p/64] |= 1 << (p % 64)
		p++
	}
}
