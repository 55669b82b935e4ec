package vmm

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/coredump"
)

// DumpResult says where the dump went and what it cost.
type DumpResult struct {
	Path     string `json:"path"`
	FileSize uint64 `json:"file_size"`
	Written  uint64 `json:"bytes_written"` // non-hole bytes
	Nanos    int64  `json:"ns"`
	Error    string `json:"error,omitempty"`
}

// writeDump writes guest memory and vCPU state as an ELF core file. It runs
// after every vCPU has stopped. A vCPU that reported an exception is dumped
// with the interrupted context as its thread (so gdb's bt shows the code
// that faulted), first in the file, and its real registers, in the handler
// that reported it, as a second thread.
func (vm *VM) writeDump(reason string) (coredump.Stats, error) {
	return vm.writeDumpWith(vm.cfg.DumpPath, reason, vm.cfg.DumpSync)
}

// DumpAgain writes another dump of a guest whose run has ended (before
// Close) to path, durable or not (Config.DumpSync): `vmm bench --floors`
// times repeated dumps of one guest.
func (vm *VM) DumpAgain(path string, sync bool) (DumpResult, error) {
	start := time.Now()
	st, err := vm.writeDumpWith(path, "dump again", sync)
	return DumpResult{Path: path, FileSize: st.FileSize, Written: st.Written, Nanos: time.Since(start).Nanoseconds()}, err
}

// writeDumpWith is writeDump to path, made durable first when sync is set.
func (vm *VM) writeDumpWith(path, reason string, sync bool) (coredump.Stats, error) {
	var vcpus []coredump.VCPU
	for _, v := range vm.vcpus {
		regs, err := kvm.GetRegs(v.fd)
		if err != nil {
			return coredump.Stats{}, fmt.Errorf("KVM_GET_REGS vCPU %d: %w", v.index, err)
		}
		sregs, err := kvm.GetSregs(v.fd)
		if err != nil {
			return coredump.Stats{}, fmt.Errorf("KVM_GET_SREGS vCPU %d: %w", v.index, err)
		}
		c := coredump.VCPU{Index: v.index,
			RAX: regs.RAX, RBX: regs.RBX, RCX: regs.RCX, RDX: regs.RDX, RSI: regs.RSI, RDI: regs.RDI,
			RSP: regs.RSP, RBP: regs.RBP, R8: regs.R8, R9: regs.R9, R10: regs.R10, R11: regs.R11,
			R12: regs.R12, R13: regs.R13, R14: regs.R14, R15: regs.R15, RIP: regs.RIP, RFLAGS: regs.RFLAGS,
			CS: sregs.CS.Selector, SS: sregs.SS.Selector, DS: sregs.DS.Selector, ES: sregs.ES.Selector,
			FS: sregs.FS.Selector, GS: sregs.GS.Selector, FSBase: sregs.FS.Base, GSBase: sregs.GS.Base,
			CR0: sregs.CR0, CR2: sregs.CR2, CR3: sregs.CR3, CR4: sregs.CR4}
		if ff := v.fault; ff != nil {
			c = faultContext(c, ff)
			vcpus = append([]coredump.VCPU{c}, vcpus...)
			continue
		}
		vcpus = append(vcpus, c)
	}
	vm.mu.Lock()
	info := coredump.Info{Map: vm.mem.Map.Ranges(), Roots: append([]uint64(nil), vm.hc.roots...), Holdings: vm.hc.held, Reason: reason}
	if r := vm.hc.reg; r != nil {
		reg := *r
		info.Reg = &reg
	}
	vm.mu.Unlock()
	if vm.dbg != nil {
		// The dump is the guest's memory, not gdb's int3 bytes.
		defer vm.dbg.unplantAll()()
	}
	return coredump.WriteWith(path, vm.mem.Map, vm.mem.Host(), vcpus, info, coredump.Options{Sync: sync})
}

// dumpAtExit writes the dump once the guest has stopped, unless --dump-at
// already wrote it. A --dump-at label that never happened writes nothing
// (the file at the path keeps what it held: a dump of another moment under
// that name would mislead) and records an error listing the labels that
// did happen.
func (vm *VM) dumpAtExit() {
	if vm.cfg.DumpPath == "" {
		return
	}
	vm.mu.Lock()
	reason := vm.result.Outcome + ": " + vm.result.Reason
	dumped := vm.result.Dump != nil
	var labels []string
	for _, c := range vm.result.Checkpoints {
		if !c.Final && !slices.Contains(labels, c.Label) {
			labels = append(labels, c.Label)
		}
	}
	vm.mu.Unlock()
	switch {
	case dumped:
	case vm.cfg.DumpAt == finalLabel: // the last checkpoint is the exit dump itself
		vm.dump(reason)
	case vm.cfg.DumpAt != "":
		seen := `"` + strings.Join(append(labels, finalLabel), `", "`) + `"`
		msg := fmt.Sprintf("--dump-at %q: the guest reached no checkpoint with that label (checkpoints it reached: %s); nothing written (--workload help lists each workload's labels)",
			vm.cfg.DumpAt, seen)
		vm.logf("dump: %s", msg)
		vm.mu.Lock()
		vm.result.Dump = &DumpResult{Path: vm.cfg.DumpPath, Error: msg}
		vm.mu.Unlock()
	default:
		vm.dump(reason)
	}
}

// faultContext returns the thread for a vCPU that reported ff: the
// interrupted registers, with handler (the vCPU's registers now) attached.
// Segment bases and control registers are the same in both.
func faultContext(handler coredump.VCPU, ff *firmware.FaultFrame) coredump.VCPU {
	g := &ff.Regs // x86 encoding order
	c := handler
	c.RAX, c.RCX, c.RDX, c.RBX, c.RSP, c.RBP, c.RSI, c.RDI = g[0], g[1], g[2], g[3], ff.RSP, ff.RBP, g[6], g[7]
	c.R8, c.R9, c.R10, c.R11, c.R12, c.R13, c.R14, c.R15 = g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]
	c.RIP, c.RFLAGS, c.CS, c.SS = ff.RIP, ff.RFLAGS, uint16(ff.CS), uint16(ff.SS)
	if ff.Vector == 14 {
		c.CR2 = ff.CR2
		handler.CR2 = ff.CR2
	}
	c.Signal = vectorSignal(ff.Vector)
	c.Handler = &handler
	return c
}

// vectorSignal is the signal Linux would deliver for an exception, which
// gdb prints for the faulting thread.
func vectorSignal(vector uint64) int {
	switch vector {
	case 0, 16, 19:
		return 8 // SIGFPE
	case 1, 3:
		return 5 // SIGTRAP
	case 6:
		return 4 // SIGILL
	case 17:
		return 7 // SIGBUS
	}
	return 11 // SIGSEGV
}
