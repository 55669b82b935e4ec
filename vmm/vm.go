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
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/diag"
	"github.com/vmm-dev/vmm/vmm/memmap"
	"golang.org/x/sys/unix"
)

// Process exit statuses for outcomes that are not a guest exit status.
const (
	StatusVMMError  = 1
	StatusUsage     = 2
	StatusFault     = 3
	StatusTimeout   = 4
	StatusViolation = 5
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
	timedOut atomic.Bool
	fallback *time.Timer // stops a timed-out run that ignores kicks
	done     chan struct{}

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
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	k, err := ParseKernel(vm.cfg.Kernel, m.RAMTop())
	if err != nil {
		return err
	}
	vm.kernel = k
	l, err := planLayout(m, k, vm.cfg.CPUs, uint64(len(vm.cfg.Trace)))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
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
	if len(vm.cfg.Trace) > 0 {
		if err := vm.mem.Write(l.traceBase, vm.cfg.Trace); err != nil {
			return fmt.Errorf("copy trace into guest RAM: %w", err)
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
	vm.prefaultMeta() // memory.go
	if f, err := registerIoeventfd(vm.vmFd, firmware.ConsoleDoorbell, 8); err == nil {
		vm.doorbel = f
		go vm.consoleLoop(f)
	} else {
		vm.logf("%v: console doorbell falls back to MMIO exits", err)
	}
	return nil
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

// Run runs the guest to its end: exit hypercall, fault, timeout or error.
func (vm *VM) Run() *Result {
	start := time.Now()
	timer := time.AfterFunc(vm.cfg.Timeout, vm.timeout)
	defer timer.Stop()
	if vm.cfg.Tick > 0 {
		stopTicks := vm.startTicks()
		defer stopTicks()
	}
	var wg sync.WaitGroup
	for _, v := range vm.vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vm.loop(v)
		}()
	}
	wg.Wait()
	vm.mu.Lock()
	if vm.fallback != nil {
		vm.fallback.Stop()
	}
	vm.mu.Unlock()
	vm.drainConsole()
	vm.finish()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	r := &vm.result
	r.Timing.RunNanos = time.Since(start).Nanoseconds()
	if !vm.timing.firstRun.IsZero() {
		r.Timing.CreateToEntryNanos = vm.timing.firstRun.Sub(vm.timing.created).Nanoseconds()
	}
	r.Reports = vm.hc.reports
	r.Registration = vm.hc.reg
	r.CPUs = len(vm.vcpus)
	r.VCPUs = vm.vcpuStats()
	r.TicksInjected = vm.vcpus[0].ticksInjected
	r.MemBytes = vm.cfg.MemBytes
	return r
}

func (vm *VM) vcpuStats() []VCPUStats {
	stats := make([]VCPUStats, len(vm.vcpus))
	for i, v := range vm.vcpus {
		seq, _ := vm.mem.ReadU64(uint64(firmware.MailboxBase+i*firmware.MailboxStride) + uint64(unsafe.Offsetof(firmware.Mailbox{}.Seq)))
		stats[i] = VCPUStats{CPU: i, HypercallsIssued: seq, HypercallsHandled: v.hypercalls}
	}
	return stats
}

// FirstEntry is when vCPU 0 first entered KVM_RUN (zero if never).
func (vm *VM) FirstEntry() time.Time { return vm.timing.firstRun }

// stop ends the run; the first caller decides the outcome.
func (vm *VM) stop(outcome string, status int, reason string, crash *CrashReport) {
	vm.mu.Lock()
	first := vm.result.Outcome == ""
	if first {
		vm.result.Outcome, vm.result.ExitStatus, vm.result.Reason = outcome, status, reason
		vm.result.Crash = crash
	}
	vm.mu.Unlock()
	if !first {
		return
	}
	vm.stopped.Store(true)
	vm.pauseMu.Lock()
	vm.pauseCnd.Broadcast()
	vm.pauseMu.Unlock()
	for _, v := range vm.vcpus {
		v.interrupt()
	}
}

// timeout asks every vCPU to stop and report where it was; a vCPU that
// does not come out of the guest within a second is stopped without report.
func (vm *VM) timeout() {
	vm.timedOut.Store(true)
	for _, v := range vm.vcpus {
		v.interrupt()
	}
	vm.pauseMu.Lock()
	vm.pauseCnd.Broadcast()
	vm.pauseMu.Unlock()
	fallback := time.AfterFunc(time.Second, func() {
		vm.stop(OutcomeTimeout, StatusTimeout, vm.timeoutReason(), nil)
	})
	vm.mu.Lock()
	vm.fallback = fallback
	vm.mu.Unlock()
}

func (vm *VM) timeoutReason() string {
	return fmt.Sprintf("guest did not exit within %v", vm.cfg.Timeout)
}

// park holds a vCPU outside KVM_RUN while another one checkpoints.
func (vm *VM) park(v *vcpu) {
	vm.pauseMu.Lock()
	vm.parked++
	vm.pauseCnd.Broadcast()
	for vm.pausing.Load() && !vm.stopped.Load() && !vm.timedOut.Load() {
		vm.pauseCnd.Wait()
	}
	vm.parked--
	vm.pauseMu.Unlock()
}

// stopTheWorld brings every other vCPU out of KVM_RUN; resume undoes it.
func (vm *VM) stopTheWorld(self *vcpu) {
	vm.pauseMu.Lock()
	for vm.pausing.Load() { // another vCPU is checkpointing: wait our turn
		vm.pauseMu.Unlock()
		vm.park(self)
		vm.pauseMu.Lock()
	}
	vm.pausing.Store(true)
	vm.pauseMu.Unlock()
	for _, v := range vm.vcpus {
		if v != self {
			v.interrupt()
		}
	}
	vm.pauseMu.Lock()
	for vm.parked < len(vm.vcpus)-1 && !vm.stopped.Load() && !vm.timedOut.Load() {
		vm.pauseCnd.Wait()
	}
	vm.pauseMu.Unlock()
}

func (vm *VM) resumeTheWorld() {
	vm.pauseMu.Lock()
	vm.pausing.Store(false)
	vm.pauseCnd.Broadcast()
	vm.pauseMu.Unlock()
}

// hypercall serves the hypercall in v's mailbox.
func (vm *VM) hypercall(v *vcpu) {
	mbGPA := uint64(firmware.MailboxBase + v.index*firmware.MailboxStride)
	raw, err := vm.mem.Slice(mbGPA, firmware.MailboxStride)
	if err != nil {
		vm.stop(OutcomeError, StatusVMMError, fmt.Sprintf("mailbox of vCPU %d: %v", v.index, err), nil)
		return
	}
	var mb firmware.Mailbox
	mb.Nr = le(raw, 0)
	for i := range mb.Args {
		mb.Args[i] = le(raw, 1+i)
	}
	v.hypercalls++
	vm.drainConsole()
	vm.mu.Lock()
	res := handleHypercall(vm.mem, &vm.hc, v.index, &mb)
	vm.mu.Unlock()
	vm.logf("vCPU %d: %s(%#x) = %#x", v.index, hcName(mb.Nr), mb.Args, res.ret)
	switch {
	case res.exit:
		vm.stop(OutcomeExit, res.exitStatus, fmt.Sprintf("guest exited with status %d", res.exitStatus), nil)
	case res.checkpoint != "":
		vm.stopTheWorld(v)
		res.ret = vm.checkpoint(res.checkpoint, false)
		vm.resumeTheWorld()
	case res.fault != nil:
		vm.stop(OutcomeFault, StatusFault, "unhandled exception "+vectorName(res.fault.Vector), vm.faultFrameReport(v, res.fault))
	case res.sleepNanos > 0:
		select {
		case <-v.wake:
		case <-time.After(time.Duration(res.sleepNanos)):
		}
	case res.setCR3 != 0:
		if err := setCR3(v, res.setCR3); err != nil {
			vm.stop(OutcomeError, StatusVMMError, err.Error(), nil)
		}
	case res.wake >= 0:
		select {
		case vm.vcpus[res.wake].wake <- struct{}{}:
		default:
		}
	}
	putLE(raw, 6, res.ret)
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
