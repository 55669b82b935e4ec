// Package vmm boots the guest kernel on KVM: it creates the VM, lays out
// guest memory and firmware tables, runs the vCPUs and serves hypercalls.
// Only this package calls gokvm's kvm package.
package vmm

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/diag"
	"github.com/vmm-dev/vmm/vmm/memmap"
	"github.com/vmm-dev/vmm/vmm/verify"
	"golang.org/x/sys/unix"
)

// VM is one booted guest.
type VM struct {
	cfg     Config
	kvmFile *os.File
	vmFd    uintptr
	runSize int
	mem     *GuestMemory
	kernel  *Kernel
	layout  *layout
	vcpus   []*vcpu
	console *console
	tscKHz  uint64
	symOnce sync.Once
	sym     *diag.Symbolizer

	mu       sync.Mutex // guards hc, result
	hc       hcState
	result   Result
	stopped  atomic.Bool
	halting  atomic.Bool // a timeout or signal asked every vCPU to stop and report
	halt     haltRequest // what halting means; set once before halting
	fallback *time.Timer // stops a halted run that ignores kicks
	done     chan struct{}
	dbg      *debugger // --gdb (nil without)

	// Incremental checkpoints (Config.Verify): KVM's dirty log of guest
	// RAM and the verifier's state from the last checkpoint; nil dirty
	// in full mode. Used with the world stopped.
	dirty *dirtyTracker
	incr  verify.Incremental
	watch watchPolicy
	// afterVerify, when set (tests), runs after each checkpoint's check,
	// still with the world stopped.
	afterVerify func(label string, in verify.Input, rep *verify.Report, out verify.Outcome)

	// The console doorbell: MMIO exits first, an ioeventfd after
	// doorbellExitsBeforeEventfd of them (see consoleDoorbell).
	doorbellMu    sync.Mutex
	doorbel       *os.File // the ioeventfd once registered
	doorbellExits uint64   // doorbells that reached the VMM as MMIO exits
	doorbellOff   bool     // registration failed or the VM is closing: exits only

	// Stop-the-world for checkpoints: the initiator sets pausing, kicks the
	// others and waits until parked == len(vcpus)-1.
	pausing  atomic.Bool
	pauseMu  sync.Mutex
	pauseCnd *sync.Cond
	parked   int

	timing struct {
		created  time.Time
		firstRun time.Time
	}
}

// New creates the VM: KVM VM, guest RAM, loaded kernel, firmware tables and
// vCPUs ready to run. The caller must Close it.
func New(cfg Config) (*VM, error) {
	kvmFile, err := OpenKVM()
	if err != nil {
		return nil, err
	}
	vm := &VM{cfg: cfg, kvmFile: kvmFile, done: make(chan struct{})}
	vm.pauseCnd = sync.NewCond(&vm.pauseMu)
	if err := vm.cfg.Validate(MaxVCPUs(kvmFile)); err != nil {
		vm.Close()
		return nil, err
	}
	if err := vm.build(); err != nil {
		vm.Close()
		return nil, err
	}
	vm.timing.created = time.Now()
	return vm, nil
}

func (vm *VM) build() error {
	m, err := memmap.Build(vm.cfg.MemBytes)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	k, err := ParseKernel(vm.cfg.Kernel, m.RAMTop())
	if err != nil {
		return err
	}
	vm.kernel = k
	blob := [][]byte{vm.cfg.Trace} // the host blob: a replay trace or a run bundle
	if len(vm.cfg.Program) > 0 {
		blob = vm.cfg.Program
	}
	blobSize := uint64(0)
	for _, b := range blob {
		blobSize += uint64(len(b))
	}
	l, err := planLayout(m, k, vm.cfg.CPUs, blobSize)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := checkBadFrames(vm.cfg.BadFrames, l.inUse(k)); err != nil {
		return err
	}
	vm.layout = l
	vm.hc.cpus = vm.cfg.CPUs
	cpuidFetch := fetchCPUID(vm.kvmFile.Fd())
	defer cpuidFetch.wait() // the ioctl must end before New's error path closes /dev/kvm
	fd, err := createVM(vm.kvmFile.Fd())
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	vm.vmFd = fd
	size, err := kvm.GetVCPUMMmapSize(vm.kvmFile.Fd())
	if err != nil {
		return fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	vm.runSize = int(size)
	if vm.mem, err = NewGuestMemory(m); err != nil {
		return err
	}
	if vm.cfg.incremental() { // dirty logging starts at the first checkpoint (dirtyTracker.start)
		vm.dirty = newDirtyTracker(vm.vmFd, m.Slots(), vm.mem.Host())
		vm.mem.dirty = vm.dirty
	}
	if vm.cfg.HugePages {
		vm.mem.AdviseHuge()
	}
	for i, s := range m.Slots() {
		region := kvm.UserspaceMemoryRegion{Slot: uint32(i), GuestPhysAddr: s.GPA, MemorySize: s.Size,
			UserspaceAddr: uint64(uintptrOf(vm.mem.Host()[s.HostOffset:]))}
		if err := kvm.SetUserMemoryRegion(vm.vmFd, &region); err != nil {
			return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot=%d gpa=%#x size=%#x: %w", i, s.GPA, s.Size, err)
		}
	}
	vm.prefaultKernel()
	bi, err := bootInfo(m, l, k, &vm.cfg)
	if err != nil {
		return err
	}
	defer vm.prefaultMeta(bi)() // memory.go
	if err := k.Load(vm.mem); err != nil {
		return err
	}
	at := l.traceBase
	for _, b := range blob {
		if len(b) == 0 {
			continue
		}
		if err := vm.mem.Write(at, b); err != nil {
			return fmt.Errorf("copy trace or program into guest RAM: %w", err)
		}
		at += uint64(len(b))
	}
	if vm.console, err = newConsole(vm.mem, vm.cfg.Console); err != nil {
		return err
	}
	cpuid, err := cpuidFetch.wait()
	if err != nil {
		vm.logf("%v (vCPUs keep KVM's default CPUID)", err)
	}
	for i := range vm.cfg.CPUs {
		v, err := vm.createVCPU(i, cpuid)
		if v != nil {
			vm.vcpus = append(vm.vcpus, v)
		}
		if err != nil {
			return err
		}
	}
	if khz, err := kvm.GetTSCKHz(vm.vcpus[0].fd); err == nil {
		vm.tscKHz = khz
	}
	bi.TSCKHz = vm.tscKHz
	if err := writeFirmware(vm.mem, l, bi); err != nil {
		return err
	}
	if vm.hc.boot, err = verify.ReadBoot(vm.mem); err != nil { // the verifier's copy, before the guest runs
		return err
	}
	return vm.startDebugger()
}

// prefaultKernel advises transparent huge pages for the 2 MiB pages that
// hold the kernel image, before the VMM writes them: the first write then
// faults in 2 MiB at once instead of one 4 KiB page at a time (about 480
// faults for this kernel: 0.9 ms against 0.2-0.4 ms), and the guest, which
// maps them with 2 MiB pages, takes one KVM page fault for its text and
// data. Not the per-CPU areas after it (PerCPUArea): the guest maps those
// with 4 KiB pages anyway and touches a few dozen of them, far cheaper
// than zeroing a huge page. Advice only: without THP the pages fault in
// as before.
func (vm *VM) prefaultKernel() {
	lo, hi := vm.kernel.Start&^(hugePage-1), alignUp(vm.kernel.End, hugePage)
	if b, err := vm.mem.Slice(lo, hi-lo); err == nil {
		unix.Madvise(b, unix.MADV_HUGEPAGE)
	}
}

// doorbellExitsBeforeEventfd is how many console doorbells are taken as
// MMIO exits before the doorbell becomes an ioeventfd. On this kernel
// KVM_IOEVENTFD frees the VM's old I/O bus with call_srcu, which starts a
// normal (not expedited) SRCU grace period of two to three timer ticks
// (8-12 ms at HZ=250), and closing the VM fd waits for it in
// kvm_destroy_vm's srcu_barrier: registered at setup, it made the close of
// every short run take 4-13 ms. An exit costs 25-55 us more than an
// ioeventfd doorbell; a run that rings this many has run long enough that
// the grace period is mostly over by the time it ends, and a chatty guest
// still gets the cheap doorbell.
var doorbellExitsBeforeEventfd uint64 = 64

// consoleDoorbell handles a console doorbell that arrived as an MMIO exit:
// drain the ring, and after enough of them register the ioeventfd so later
// doorbells no longer stop the vCPU.
func (vm *VM) consoleDoorbell() {
	vm.drainConsole()
	vm.doorbellMu.Lock()
	defer vm.doorbellMu.Unlock()
	vm.doorbellExits++
	if vm.doorbel != nil || vm.doorbellOff || vm.doorbellExits < doorbellExitsBeforeEventfd {
		return
	}
	f, err := registerIoeventfd(vm.vmFd, firmware.ConsoleDoorbell, 8)
	if err != nil {
		vm.doorbellOff = true
		vm.logf("%v: console doorbell stays on MMIO exits", err)
		return
	}
	vm.doorbel = f
	vm.logf("console doorbell is an ioeventfd after %d MMIO exits", vm.doorbellExits)
	go vm.consoleLoop(f)
}

// consoleLoop drains the console each time the guest rings the doorbell.
func (vm *VM) consoleLoop(f *os.File) {
	var buf [8]byte
	for {
		if _, err := f.Read(buf[:]); err != nil {
			return
		}
		vm.drainConsole()
	}
}

// consolePoll is how often the VMM drains the console ring while the guest
// runs. The guest kernel does not ring the doorbell (an exit, 37-119 µs on
// this project's machines, for every burst of lines: 17 in a default boot);
// a line waits at most this long, less when a hypercall comes first.
const consolePoll = 2 * time.Millisecond

// pollConsole drains the console every consolePoll until stop returns.
func (vm *VM) pollConsole() (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(consolePoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				vm.drainConsole()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

func (vm *VM) drainConsole() {
	if err := vm.console.drain(); err != nil {
		vm.logf("console: %v", err)
	}
}

func (vm *VM) logf(format string, args ...any) {
	if vm.cfg.Log != nil {
		fmt.Fprintf(vm.cfg.Log, "vmm: "+format+"\n", args...)
	}
}

// Memory exposes guest RAM (for tests and the verifier).
func (vm *VM) Memory() *GuestMemory { return vm.mem }

// Close releases every KVM and memory resource.
func (vm *VM) Close() error {
	vm.closeDebugger()
	for _, v := range vm.vcpus {
		v.kickMu.Lock()
		v.close()
		v.kickMu.Unlock()
	}
	vm.doorbellMu.Lock()
	vm.doorbellOff = true
	if vm.doorbel != nil {
		vm.doorbel.Close()
	}
	vm.doorbellMu.Unlock()
	if vm.console != nil {
		vm.console.close()
	}
	if vm.vmFd != 0 {
		unix.Close(int(vm.vmFd))
		vm.vmFd = 0
	}
	if vm.mem != nil {
		vm.mem.Close()
		vm.mem = nil
	}
	if vm.kvmFile != nil {
		vm.kvmFile.Close()
		vm.kvmFile = nil
	}
	return nil
}
