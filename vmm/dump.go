package vmm

import (
	"fmt"

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
	info := coredump.Info{Map: vm.mem.Map.Ranges(), Roots: append([]uint64(nil), vm.hc.roots...), Holdings: vm.hc.held, Reason: reason}
	if r := vm.hc.reg; r != nil {
		reg := *r
		info.Reg = &reg
	}
	vm.mu.Unlock()
	return coredump.Write(vm.cfg.DumpPath, vm.mem.Map, vm.mem.Host(), vcpus, info)
}
