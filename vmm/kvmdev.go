package vmm

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// ErrNoKVM means /dev/kvm is missing or not accessible (tests decide what
// to do about that in internal/kvmtest).
var ErrNoKVM = errors.New("KVM is not available")

// OpenKVM opens /dev/kvm and checks the API version.
func OpenKVM() (*os.File, error) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: %w (need /dev/kvm and permission to open it: run as root or join the kvm group)", ErrNoKVM, err)
		}
		return nil, fmt.Errorf("open /dev/kvm: %w", err)
	}
	v, err := kvm.GetAPIVersion(f.Fd())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	if v != 12 {
		f.Close()
		return nil, fmt.Errorf("KVM_GET_API_VERSION: got %d, want 12", v)
	}
	return f, nil
}

// MaxVCPUs reports KVM_CAP_MAX_VCPUS (falling back to KVM_CAP_NR_VCPUS).
func MaxVCPUs(kvmFile *os.File) int {
	if n, err := kvm.CheckExtension(kvmFile.Fd(), kvm.CapMAXVCPUS); err == nil && n > 0 {
		return int(n)
	}
	if n, err := kvm.CheckExtension(kvmFile.Fd(), kvm.CapNRVCPUS); err == nil && n > 0 {
		return int(n)
	}
	return 0
}

// kvmIoeventfd is struct kvm_ioeventfd; gokvm has no KVM_IOEVENTFD wrapper.
type kvmIoeventfd struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	Fd        int32
	Flags     uint32
	_         [36]byte
}

var kvmIoeventfdIoctl = kvm.IIOW(0x79, unsafe.Sizeof(kvmIoeventfd{}))

// registerIoeventfd makes guest stores of length n at gpa signal an eventfd
// instead of exiting, and returns the eventfd as a pollable file.
func registerIoeventfd(vmFd uintptr, gpa uint64, n uint32) (*os.File, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	arg := kvmIoeventfd{Addr: gpa, Len: n, Fd: int32(efd)}
	if _, err := kvm.Ioctl(vmFd, kvmIoeventfdIoctl, uintptr(unsafe.Pointer(&arg))); err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("KVM_IOEVENTFD gpa=%#x len=%d: %w", gpa, n, err)
	}
	return os.NewFile(uintptr(efd), "console-doorbell"), nil
}

// injectInterrupt is KVM_INTERRUPT. gokvm's InjectInterrupt passes the
// vector as the ioctl's pointer argument (EFAULT: "bad address"); the
// ioctl takes a pointer to struct kvm_interrupt { __u32 irq; }.
func injectInterrupt(vcpuFd uintptr, vector uint32) error {
	irq := vector
	_, err := kvm.Ioctl(vcpuFd, kvm.IIOW(0x86, 4), uintptr(unsafe.Pointer(&irq)))
	if err != nil {
		return fmt.Errorf("KVM_INTERRUPT vector %d: %w", vector, err)
	}
	return nil
}

// maxCPUIDEntries is KVM_MAX_CPUID_ENTRIES: KVM never reports more.
const maxCPUIDEntries = 256

// cpuidTable is struct kvm_cpuid2 with room for every entry KVM can report,
// passed to the ioctls as it is: gokvm's wrappers encode and decode the
// table by reflection on every call and start at 64 entries, which this
// host's 75 overflow (E2BIG, and KVM runs its CPUID walk a second time).
type cpuidTable struct {
	nent    uint32
	_       uint32
	entries [maxCPUIDEntries]kvm.CPUIDEntry2
}

var (
	kvmGetSupportedCPUIDIoctl = kvm.IIOWR(0x05, 8) // sizeof(struct kvm_cpuid2) without its entries
	kvmSetCPUID2Ioctl         = kvm.IIOW(0x90, 8)
)

// supportedCPUID asks KVM for its CPUID table in one ioctl.
func supportedCPUID(kvmFd uintptr) (*cpuidTable, error) {
	t := &cpuidTable{nent: maxCPUIDEntries}
	if _, err := kvm.Ioctl(kvmFd, kvmGetSupportedCPUIDIoctl, uintptr(unsafe.Pointer(t))); err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	return t, nil
}

// cpuidFetch is supportedCPUID running on its own goroutine.
type cpuidFetch struct {
	done chan struct{}
	t    *cpuidTable
	err  error
}

// fetchCPUID starts supportedCPUID. KVM's walk of its CPUID leaves takes
// hundreds of CPUID instructions, each an exit to the outer hypervisor on
// a nested host like this project's (0.5-0.6 ms), and needs nothing but
// /dev/kvm: it runs on another host CPU while the VM is built and the
// kernel loaded. Callers must wait before the fd can close.
func fetchCPUID(kvmFd uintptr) *cpuidFetch {
	f := &cpuidFetch{done: make(chan struct{})}
	go func() {
		f.t, f.err = supportedCPUID(kvmFd)
		close(f.done)
	}()
	return f
}

func (f *cpuidFetch) wait() (*cpuidTable, error) {
	<-f.done
	return f.t, f.err
}

// set is KVM_SET_CPUID2 of the table on a vCPU.
func (t *cpuidTable) set(vcpuFd uintptr) error {
	_, err := kvm.Ioctl(vcpuFd, kvmSetCPUID2Ioctl, uintptr(unsafe.Pointer(t)))
	return err
}

// createVM is KVM_CREATE_VM, retried when a signal interrupts it: the
// ioctl can wait in the kernel, and a signal then (the Go runtime's
// preemption signal, for one) makes it fail with EINTR; seen twice in an
// afternoon of boot benchmarks on the shared machine, each a failed run.
func createVM(kvmFd uintptr) (uintptr, error) {
	for tries := 0; ; tries++ {
		fd, err := kvm.CreateVM(kvmFd)
		if !errors.Is(err, unix.EINTR) || tries == 100 {
			return fd, err
		}
	}
}
