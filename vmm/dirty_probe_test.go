package vmm

import (
	"math/bits"
	"runtime"
	"testing"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// dirtyProbeVM is the floor VM with its one slot dirty-logged (manual
// protection first, if asked), running a guest that stores to page 8, exits
// with MMIO data 42, stores to page 9 and exits with 43. run takes it to
// its next MMIO exit and checks the data. Everything closes with the test.
func dirtyProbeVM(t *testing.T, manual bool) (vmFd uintptr, region *kvm.UserspaceMemoryRegion, run func(round int, want uint64)) {
	t.Helper()
	requireKVM(t)
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	kvmFd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(kvmFd) })
	vmFd, err = kvm.CreateVM(uintptr(kvmFd))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(int(vmFd)) })
	if manual {
		if err := enableManualDirtyLog(vmFd); err != nil {
			t.Fatal(err)
		}
	}
	ram, err := unix.Mmap(-1, 0, floorRAM, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(ram) })
	writeFloorRAM(ram)
	// movb $1, 0x8000; movb $42, mmio; movb $1, 0x9000; movb $43, mmio; jmp .
	code := []byte{
		0xc6, 0x04, 0x25, 0x00, 0x80, 0x00, 0x00, 0x01,
		0xc6, 0x04, 0x25, 0x00, 0x00, 0x10, 0x00, 42,
		0xc6, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, 0x01,
		0xc6, 0x04, 0x25, 0x00, 0x00, 0x10, 0x00, 43,
		0xeb, 0xfe}
	copy(ram[floorCode:], code)
	region = &kvm.UserspaceMemoryRegion{Slot: 0, Flags: memLogDirtyPages, MemorySize: floorRAM,
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&ram[0])))}
	if err := kvm.SetUserMemoryRegion(vmFd, region); err != nil {
		t.Fatalf("KVM_SET_USER_MEMORY_REGION with KVM_MEM_LOG_DIRTY_PAGES: %v", err)
	}
	cpuFd, err := kvm.CreateVCPU(vmFd, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(int(cpuFd)) })
	size, err := kvm.GetVCPUMMmapSize(uintptr(kvmFd))
	if err != nil {
		t.Fatal(err)
	}
	runMap, err := unix.Mmap(int(cpuFd), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(runMap) })
	if err := setFloorRegisters(cpuFd); err != nil {
		t.Fatal(err)
	}
	rd := (*kvm.RunData)(unsafe.Pointer(&runMap[0]))
	return vmFd, region, func(round int, want uint64) {
		t.Helper()
		for {
			rd.ExitReason = uint32(kvm.EXITINTR)
			if err := kvm.Run(cpuFd); err != nil {
				t.Fatal(err)
			}
			e := decodeExit(rd)
			if e.Reason == kvm.EXITINTR {
				continue
			}
			if e.Reason != kvm.EXITMMIO || e.MMIOData != want {
				t.Fatalf("round %d: exit %v data %#x", round, e.Reason, e.MMIOData)
			}
			return
		}
	}
}

// TestDirtyLogProbe checks that this host's KVM logs guest writes: a slot
// made with KVM_MEM_LOG_DIRTY_PAGES, a guest that stores to page 8, exits,
// stores to page 9 and exits again. The first KVM_GET_DIRTY_LOG must show
// page 8, the second page 9 and not page 8 (the ioctl clears the log).
func TestDirtyLogProbe(t *testing.T) {
	vmFd, region, run := dirtyProbeVM(t, false)
	bitmap := make([]uint64, bitmapWords(floorRAM))
	// The log starts clear of the VMM's own writes (writeFloorRAM above).
	if err := getDirtyLog(vmFd, 0, bitmap); err != nil {
		t.Fatal(err)
	}
	if bitmap[0] != 0 {
		t.Errorf("dirty log before the guest ran: %#x (host writes are not logged)", bitmap[0])
	}
	for round, want := range []uint64{42, 43} {
		run(round, want)
		if err := getDirtyLog(vmFd, 0, bitmap); err != nil {
			t.Fatal(err)
		}
		var pages []uint64
		forEachBit(bitmap, func(i uint64) { pages = append(pages, i) })
		t.Logf("round %d: dirty pages %v", round, pages)
		page, other := uint64(8+round), uint64(9-round)
		if bitmap[0]&(1<<page) == 0 {
			t.Errorf("round %d: page %d written by the guest is not in the dirty log %#x", round, page, bitmap[0])
		}
		if bitmap[0]&(1<<other) != 0 {
			t.Errorf("round %d: page %d not written since the last fetch is in the dirty log %#x", round, other, bitmap[0])
		}
	}
	// A slot without the flag: the ioctl must fail (ENOENT), not read as clean.
	region.Slot, region.Flags, region.GuestPhysAddr = 1, 0, 0x200000
	if err := kvm.SetUserMemoryRegion(vmFd, region); err != nil {
		t.Fatal(err)
	}
	if err := getDirtyLog(vmFd, 1, bitmap); err == nil {
		t.Errorf("KVM_GET_DIRTY_LOG on a slot without dirty logging succeeded")
	}
}

// forEachBit calls fn with the index of every set bit.
func forEachBit(bitmap []uint64, fn func(i uint64)) {
	for w, word := range bitmap {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			fn(uint64(w)*64 + uint64(b))
			word &= word - 1
		}
	}
}
