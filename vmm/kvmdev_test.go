package vmm

import (
	"runtime"
	"testing"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/internal/kvmtest"
	"golang.org/x/sys/unix"
)

// supportedCPUID passes struct kvm_cpuid2 to KVM as it is; it must read
// the same table as gokvm's reflective wrapper (which also checks the
// ioctl numbers and the entry layout), and KVM_SET_CPUID2 must take it.
func TestSupportedCPUIDMatchesGokvm(t *testing.T) {
	kvmtest.Require(t)
	// Leaf 1's EBX carries the APIC id of the host CPU the ioctl ran on:
	// both reads must run on the same one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &all)
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	f, err := OpenKVM()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := supportedCPUID(f.Fd())
	if err != nil {
		t.Fatal(err)
	}
	want := &kvm.CPUID{Nent: maxCPUIDEntries, Entries: make([]kvm.CPUIDEntry2, maxCPUIDEntries)}
	if err := kvm.GetSupportedCPUID(f.Fd(), want); err != nil {
		t.Fatal(err)
	}
	if got.nent == 0 || got.nent != want.Nent {
		t.Fatalf("supportedCPUID: %d entries, gokvm %d", got.nent, want.Nent)
	}
	for i := range got.nent {
		if got.entries[i] != want.Entries[i] {
			t.Fatalf("entry %d: %+v, gokvm %+v", i, got.entries[i], want.Entries[i])
		}
	}
	vmFd, err := createVM(f.Fd())
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(int(vmFd))
	cpuFd, err := kvm.CreateVCPU(vmFd, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(int(cpuFd))
	if err := got.set(cpuFd); err != nil {
		t.Fatalf("KVM_SET_CPUID2: %v", err)
	}
	back := &kvm.CPUID{Nent: maxCPUIDEntries, Entries: make([]kvm.CPUIDEntry2, maxCPUIDEntries)}
	if err := kvm.GetCPUID2(cpuFd, back); err != nil {
		t.Fatal(err)
	}
	if back.Nent != got.nent {
		t.Fatalf("KVM_GET_CPUID2 after the set: %d entries, want %d", back.Nent, got.nent)
	}
}
