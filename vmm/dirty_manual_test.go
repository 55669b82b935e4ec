package vmm

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// TestManualDirtyLogProbe checks manual dirty-log protection with an
// initially set log on this host: the log starts all set; a page cleared
// and then written by the guest is set again, a cleared page not written
// stays clear, a page never cleared stays set.
func TestManualDirtyLogProbe(t *testing.T) {
	requireKVM(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	kvmFd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(kvmFd)
	vmFd, err := kvm.CreateVM(uintptr(kvmFd))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(int(vmFd))
	if err := enableManualDirtyLog(vmFd); err != nil {
		t.Fatal(err)
	}
	ram, err := unix.Mmap(-1, 0, floorRAM, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(ram)
	writeFloorRAM(ram)
	code := []byte{
		0xc6, 0x04, 0x25, 0x00, 0x80, 0x00, 0x00, 0x01, // movb $1, 0x8000
		0xc6, 0x04, 0x25, 0x00, 0x00, 0x10, 0x00, 42,
		0xc6, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, 0x01, // movb $1, 0x9000
		0xc6, 0x04, 0x25, 0x00, 0x00, 0x10, 0x00, 43,
		0xeb, 0xfe}
	copy(ram[floorCode:], code)
	region := kvm.UserspaceMemoryRegion{Slot: 0, Flags: memLogDirtyPages, MemorySize: floorRAM,
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&ram[0])))}
	if err := kvm.SetUserMemoryRegion(vmFd, &region); err != nil {
		t.Fatal(err)
	}
	cpuFd, err := kvm.CreateVCPU(vmFd, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(int(cpuFd))
	size, err := kvm.GetVCPUMMmapSize(uintptr(kvmFd))
	if err != nil {
		t.Fatal(err)
	}
	runMap, err := unix.Mmap(int(cpuFd), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(runMap)
	if err := setFloorRegisters(cpuFd); err != nil {
		t.Fatal(err)
	}
	const pages = floorRAM / pageSize
	bitmap := make([]uint64, bitmapWords(floorRAM))
	if err := getDirtyLog(vmFd, 0, bitmap); err != nil {
		t.Fatal(err)
	}
	if bitmap[0] != 1<<pages-1 {
		t.Fatalf("initial log %#x, want all %d pages set", bitmap[0], pages)
	}
	clear8and9 := func() {
		t.Helper()
		if err := clearDirtyLog(vmFd, 0, pages, []uint64{1<<8 | 1<<9}); err != nil {
			t.Fatal(err)
		}
	}
	clear8and9()
	run := (*kvm.RunData)(unsafe.Pointer(&runMap[0]))
	for round, want := range []uint64{42, 43} {
		for {
			run.ExitReason = uint32(kvm.EXITINTR)
			if err := kvm.Run(cpuFd); err != nil {
				t.Fatal(err)
			}
			if e := decodeExit(run); e.Reason != kvm.EXITINTR {
				if e.Reason != kvm.EXITMMIO || e.MMIOData != want {
					t.Fatalf("round %d: exit %v data %#x", round, e.Reason, e.MMIOData)
				}
				break
			}
		}
		if err := getDirtyLog(vmFd, 0, bitmap); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: log %#x", round, bitmap[0])
		written, other := uint64(8+round), uint64(9-round)
		if bitmap[0]&(1<<written) == 0 || bitmap[0]&(1<<other) != 0 || bitmap[0]&(1<<10) == 0 {
			t.Errorf("round %d: log %#x: want page %d set, page %d clear, page 10 (never cleared) set", round, bitmap[0], written, other)
		}
		clear8and9()
	}
}
