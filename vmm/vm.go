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
	doorbel *os.File // console ioeventfd, nil if unsupported
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
	// afterVerify, when set (tests), runs after each checkpoint's check,
	// still with the world stopped.
	afterVerify func(label string, in verify.Input, rep *verify.Report, out verify.Outcome)

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
	blob := vm.cfg.Trace // the host blob: a replay trace or a run bundle
	if len(vm.cfg.Program) > 0 {
		blob = vm.cfg.Program
	}
	l, err := planLayout(m, k, vm.cfg.CPUs, uint64(len(blob)))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := checkBadFrames(vm.cfg.BadFrames, l.inUse(k)); err != nil {
		return err
	}
	vm.layout = l
	vm.hc.cpus = vm.cfg.CPUs
	fd, err := kvm.CreateVM(vm.kvmFile.Fd())
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
	for i, s := range m.Slots() {
		region := kvm.UserspaceMemoryRegion{Slot: uint32(i), GuestPhysAddr: s.GPA, MemorySize: s.Size,
			UserspaceAddr: uint64(uintptrOf(vm.mem.Host()[s.HostOffset:]))}
		if err := kvm.SetUserMemoryRegion(vm.vmFd, &region); err != nil {
			return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot=%d gpa=%#x size=%#x: %w", i, s.GPA, s.Size, err)
		}
	}
	if err := k.Load(vm.mem); err != nil {
		return err
	}
	if len(blob) > 0 {
		if err := vm.mem.Write(l.traceBase, blob); err != nil {
			return fmt.Errorf("copy trace or program into guest RAM: %w", err)
		}
	}
	if vm.console, err = newConsole(vm.mem, vm.cfg.Console); err != nil {
		return err
	}
	cpuid, err := supportedCPUID(vm.kvmFile.Fd())
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
	if err := writeFirmware(vm.mem, l, k, &vm.cfg, vm.tscKHz); err != nil {
		return err
	}
	if vm.hc.boot, err = verify.ReadBoot(vm.mem); err != nil { // the verifier's copy, before the guest runs
		return err
	}
	vm.prefaultMeta() // memory.go
	if f, err := registerIoeventfd(vm.vmFd, firmware.ConsoleDoorbell, 8); err == nil {
		vm.doorbel = f
		go vm.consoleLoop(f)
	} else {
		vm.logf("%v: console doorbell falls back to MMIO exits", err)
	}
	return vm.startDebugger()
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
	if vm.doorbel != nil {
		vm.doorbel.Close()
	}
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
