package vmm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bobuhiro11/gokvm/kvm"
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
// after every vCPU has stopped.
func (vm *VM) writeDump(reason string) (coredump.Stats, error) {
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
		vcpus = append(vcpus, coredump.VCPU{Index: v.index,
			RAX: regs.RAX, RBX: regs.RBX, RCX: regs.RCX, RDX: regs.RDX, RSI: regs.RSI, RDI: regs.RDI,
			RSP: regs.RSP, RBP: regs.RBP, R8: regs.R8, R9: regs.R9, R10: regs.R10, R11: regs.R11,
			R12: regs.R12, R13: regs.R13, R14: regs.R14, R15: regs.R15, RIP: regs.RIP, RFLAGS: regs.RFLAGS,
			CS: sregs.CS.Selector, SS: sregs.SS.Selector, DS: sregs.DS.Selector, ES: sregs.ES.Selector,
			FS: sregs.FS.Selector, GS: sregs.GS.Selector, FSBase: sregs.FS.Base, GSBase: sregs.GS.Base,
			CR0: sregs.CR0, CR2: sregs.CR2, CR3: sregs.CR3, CR4: sregs.CR4})
	}
	vm.mu.Lock()
	info := coredump.Info{Map: vm.mem.Map.Ranges(), Roots: append([]uint64(nil), vm.hc.roots...), Reason: reason}
	if r := vm.hc.reg; r != nil {
		reg := *r
		info.Reg = &reg
	}
	vm.mu.Unlock()
	return coredump.Write(vm.cfg.DumpPath, vm.mem.Map, vm.mem.Host(), vcpus, info)
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
	case vm.cfg.DumpAt != "":
		seen := "none"
		if len(labels) > 0 {
			seen = `"` + strings.Join(labels, `", "`) + `"`
		}
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
