package vmm

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/coredump"
	"github.com/vmm-dev/vmm/vmm/verify"
	"golang.org/x/sys/unix"
)

// Floors: the least this machine can do for the work the VMM does, measured
// in the same run as the VMM's own figures so every ratio compares like with
// like (`vmm bench --floors`).

// floorRAM is the floor VM's guest RAM: GDT and TSS, three page tables
// (one 2 MiB page maps the first 2 MiB, U bit set), the code.
const (
	floorRAM     = 64 << 10
	floorTSS     = 0x100
	floorPML4    = 0x1000
	floorCode    = 0x4000
	floorMMIO    = 0x100000 // mapped by the 2 MiB page, backed by no slot
	floorMMIOVal = 42
)

// KVMFloorTiming is where one KVMFloor run spent its time.
type KVMFloorTiming struct {
	CreateNanos int64 `json:"create_ns"` // open /dev/kvm .. vCPU registers set
	RunNanos    int64 `json:"run_ns"`    // first KVM_RUN .. the MMIO exit
	CloseNanos  int64 `json:"close_ns"`  // every fd and mapping released
	TotalNanos  int64 `json:"total_ns"`
}

// KVMFloor is the smallest complete VMM: open /dev/kvm, create a VM with
// 64 KiB of RAM, one vCPU entered directly in long mode at CPL3, run it
// until its one store to an unbacked address exits as KVM_EXIT_MMIO, close
// everything. A boot of the real VMM cannot do less than this.
func KVMFloor() (KVMFloorTiming, error) {
	var t KVMFloorTiming
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	f, err := openFloorVM()
	defer f.release()
	if err != nil {
		return t, err
	}
	ram := f.ram
	writeFloorRAM(ram)
	region := kvm.UserspaceMemoryRegion{Slot: 0, GuestPhysAddr: 0, MemorySize: floorRAM, UserspaceAddr: uint64(uintptrOf(ram))}
	if err := kvm.SetUserMemoryRegion(f.vmFd, &region); err != nil {
		return t, fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	if err := f.addVCPU(); err != nil {
		return t, err
	}
	entered := time.Now()
	t.CreateNanos = entered.Sub(start).Nanoseconds()
	for {
		f.run.ExitReason = uint32(kvm.EXITINTR)
		if err := kvm.Run(f.cpuFd); err != nil {
			return t, fmt.Errorf("KVM_RUN: %w", err)
		}
		e := decodeExit(f.run)
		if e.Reason == kvm.EXITINTR {
			continue
		}
		if e.Reason != kvm.EXITMMIO || e.MMIOAddr != floorMMIO || e.MMIOData != floorMMIOVal || !e.MMIOWrite {
			return t, fmt.Errorf("floor VM: unexpected exit %v (MMIO addr %#x data %#x)", e.Reason, e.MMIOAddr, e.MMIOData)
		}
		break
	}
	exited := time.Now()
	t.RunNanos = exited.Sub(entered).Nanoseconds()
	f.release()
	end := time.Now()
	t.CloseNanos = end.Sub(exited).Nanoseconds()
	t.TotalNanos = end.Sub(start).Nanoseconds()
	return t, nil
}

// floorVM is what a floor measurement opens: /dev/kvm, a VM, its memory
// mappings, one vCPU and its kvm_run page. release closes them, mappings
// first, then the fds in reverse order, and may be called again.
type floorVM struct {
	kvmFd, vmFd, cpuFd uintptr
	ram                []byte
	run                *kvm.RunData
	fds                []uintptr
	maps               [][]byte
}

// openFloorVM opens /dev/kvm, creates a VM and maps its floorRAM bytes of
// RAM (no memory slot yet); the caller releases the
// result even on error (it holds whatever was opened).
func openFloorVM() (*floorVM, error) {
	f := &floorVM{}
	kvmFd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return f, fmt.Errorf("open /dev/kvm: %w", err)
	}
	f.kvmFd = uintptr(kvmFd)
	f.fds = append(f.fds, f.kvmFd)
	if f.vmFd, err = createVM(f.kvmFd); err != nil {
		return f, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	f.fds = append(f.fds, f.vmFd)
	if f.ram, err = f.mmap(floorRAM); err != nil {
		return f, fmt.Errorf("mmap floor RAM: %w", err)
	}
	return f, nil
}

// mmap maps n bytes of anonymous memory, as guest RAM is mapped.
func (f *floorVM) mmap(n int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err == nil {
		f.maps = append(f.maps, b)
	}
	return b, err
}

// addVCPU creates vCPU 0, maps its kvm_run page and sets the floor's
// registers (long mode, CPL3, at floorCode).
func (f *floorVM) addVCPU() error {
	cpuFd, err := kvm.CreateVCPU(f.vmFd, 0)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	f.cpuFd = cpuFd
	f.fds = append(f.fds, cpuFd)
	runSize, err := kvm.GetVCPUMMmapSize(f.kvmFd)
	if err != nil {
		return fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	runMap, err := unix.Mmap(int(cpuFd), 0, int(runSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap kvm_run: %w", err)
	}
	f.maps = append(f.maps, runMap)
	f.run = (*kvm.RunData)(unsafe.Pointer(&runMap[0]))
	return setFloorRegisters(cpuFd)
}

func (f *floorVM) release() {
	for _, m := range f.maps {
		unix.Munmap(m)
	}
	f.maps = nil
	for i := len(f.fds) - 1; i >= 0; i-- {
		unix.Close(int(f.fds[i]))
	}
	f.fds = nil
}

// writeFloorRAM lays out the floor VM: the same descriptors the real VMM
// uses (they work on this host's paravirtual KVM and on VMX/SVM).
func writeFloorRAM(ram []byte) {
	put := func(off int, v uint64) { binary.LittleEndian.PutUint64(ram[off:], v) }
	put(0x10, 0x00af9b000000ffff) // ring-0 code
	put(0x18, 0x00cf93000000ffff) // ring-0 data
	put(0x28, 0x00cff3000000ffff) // ring-3 data, selector 0x2b
	put(0x30, 0x00affb000000ffff) // ring-3 code, selector 0x33
	lo, hi := tssDescriptor(floorTSS, 103)
	put(0x40, lo)
	put(0x48, hi)
	binary.LittleEndian.PutUint16(ram[floorTSS+102:], 104)
	const pte = 0x7 // present, writable, user
	put(floorPML4, floorPML4+0x1000|pte)
	put(floorPML4+0x1000, floorPML4+0x2000|pte)
	put(floorPML4+0x2000, 0|pte|0x80) // 2 MiB page at 0
	// movb $42, floorMMIO; jmp .
	code := []byte{0xc6, 0x04, 0x25, 0, 0, 0, 0, floorMMIOVal, 0xeb, 0xfe}
	binary.LittleEndian.PutUint32(code[3:], floorMMIO)
	copy(ram[floorCode:], code)
}

func setFloorRegisters(fd uintptr) error {
	sregs, err := kvm.GetSregs(fd)
	if err != nil {
		return fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	code := kvm.Segment{Limit: 0xffffffff, Selector: 0x33, Typ: 11, Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	data := kvm.Segment{Limit: 0xffffffff, Selector: 0x2b, Typ: 3, Present: 1, DPL: 3, DB: 1, S: 1, G: 1}
	sregs.CS = code
	sregs.DS, sregs.ES, sregs.SS, sregs.FS, sregs.GS = data, data, data, data, data
	sregs.TR = kvm.Segment{Base: floorTSS, Limit: 103, Selector: 0x40, Typ: 11, Present: 1}
	sregs.LDT = kvm.Segment{Typ: 2, Present: 1, Unusable: 1}
	sregs.GDT = kvm.Descriptor{Base: 0, Limit: 0x4f}
	sregs.IDT = kvm.Descriptor{}
	sregs.CR0 = 0x80050033
	sregs.CR4 = 0x620
	sregs.EFER = 0x501
	sregs.CR3 = floorPML4
	if err := kvm.SetSregs(fd, sregs); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	if err := kvm.SetRegs(fd, &kvm.Regs{RIP: floorCode, RSP: floorRAM - 8, RFLAGS: 0x2}); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	return nil
}

// ScanBuffer is host memory standing in for a guest's metadata array:
// mapped like guest RAM and touched once, so a scan measures reading it.
type ScanBuffer struct {
	words []uint64
	raw   []byte
}

// NewScanBuffer maps and fills n bytes (a multiple of 8).
func NewScanBuffer(n uint64) (*ScanBuffer, error) {
	if n == 0 || n%8 != 0 {
		return nil, fmt.Errorf("scan buffer of %d bytes: need a positive multiple of 8", n)
	}
	raw, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d-byte scan buffer: %w", n, err)
	}
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&raw[0])), n/8)
	for i := range words {
		words[i] = uint64(i) * 0x9e3779b97f4a7c15
	}
	return &ScanBuffer{words: words, raw: raw}, nil
}

// Close unmaps the buffer.
func (s *ScanBuffer) Close() error {
	if s.raw == nil {
		return nil
	}
	err := unix.Munmap(s.raw)
	s.raw, s.words = nil, nil
	return err
}

// Scan reads every word of the buffer on workers goroutines, each over its
// own contiguous share, and returns the elapsed time. The XOR of the words
// is returned so the reads cannot be dropped.
func (s *ScanBuffer) Scan(workers int) (time.Duration, uint64) {
	workers = max(1, workers)
	sums := make([]uint64, workers*8) // one cache line per worker
	var wg sync.WaitGroup
	start := time.Now()
	n := len(s.words)
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[w*8] = xorWords(s.words[lo:hi])
		}()
	}
	wg.Wait()
	d := time.Since(start)
	var x uint64
	for w := range workers {
		x ^= sums[w*8]
	}
	return d, x
}

// xorWords is the scan loop: four independent accumulators, 32 bytes a turn.
func xorWords(w []uint64) uint64 {
	var a, b, c, d uint64
	for len(w) >= 4 {
		a ^= w[0]
		b ^= w[1]
		c ^= w[2]
		d ^= w[3]
		w = w[4:]
	}
	for _, v := range w {
		a ^= v
	}
	return a ^ b ^ c ^ d
}

// WriteFloor writes n bytes to a new file in dir (into the page cache, no
// fsync) in 1 MiB writes, removes it and returns the write time: what a dump
// of n non-zero bytes cannot beat.
func WriteFloor(dir string, n uint64) (time.Duration, error) {
	return writeFloor(dir, n, false)
}

// DurableWriteFloor is WriteFloor made durable the way a --dump-sync dump
// is: writeback started every coredump.WritebackStep bytes
// (sync_file_range), then fsync. It is what a dump that must reach the disk
// before it is renamed cannot beat; its distance from WriteFloor is the
// disk's.
func DurableWriteFloor(dir string, n uint64) (time.Duration, error) {
	return writeFloor(dir, n, true)
}

func writeFloor(dir string, n uint64, durable bool) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "vmm-floor-*")
	if err != nil {
		return 0, fmt.Errorf("write floor: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i) | 1
	}
	start := time.Now()
	synced := uint64(0)
	for done := uint64(0); done < n; {
		k := min(n-done, uint64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			return 0, fmt.Errorf("write floor: %w", err)
		}
		done += k
		if durable && done-synced >= coredump.WritebackStep {
			unix.SyncFileRange(int(f.Fd()), int64(synced), int64(done-synced), unix.SYNC_FILE_RANGE_WRITE)
			synced = done
		}
	}
	if durable {
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("write floor: %w", err)
		}
	}
	return time.Since(start), nil
}

// VerifyAgain runs the host verification of a guest whose run has ended
// (before Close) once more, as a checkpoint would, and returns its time and
// violation count: `vmm bench --floors` takes the median of several.
func (vm *VM) VerifyAgain() (time.Duration, int, error) {
	vm.mu.Lock()
	reg, boot := vm.hc.reg, vm.hc.boot
	roots := append([]uint64(nil), vm.hc.roots...)
	vm.mu.Unlock()
	if reg == nil {
		return 0, 0, fmt.Errorf("the guest never registered its metadata")
	}
	start := time.Now()
	rep, err := verify.Verify(vm.mem, verify.Input{Registration: *reg, Boot: boot,
		Roots: roots, SharedTables: []uint64{firmware.KernelPDPT}})
	if err != nil {
		return 0, 0, err
	}
	return time.Since(start), rep.TotalViolations, nil
}
