package vmm

import (
	"fmt"
	"strings"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/diag"
)

// CrashReport says where the guest was when it died (or timed out).
type CrashReport struct {
	CPU         int      `json:"cpu"`
	Reason      string   `json:"reason"`
	RIP         uint64   `json:"rip"`
	Symbol      string   `json:"symbol"` // function+offset (file:line)
	Instruction string   `json:"instruction"`
	CR2         uint64   `json:"cr2"`
	HasCR2      bool     `json:"has_cr2"`
	ErrorCode   uint64   `json:"error_code,omitempty"`
	Vector      int      `json:"vector"` // -1 when no exception vector is known
	Backtrace   []string `json:"backtrace"`
	Text        string   `json:"text"` // the whole human-readable report
}

func (vm *VM) symbolizer() *diag.Symbolizer {
	vm.symOnce.Do(func() {
		s, err := diag.NewSymbolizer(vm.kernel.File)
		if err != nil {
			vm.logf("symbolizer: %v", err)
			return
		}
		vm.sym = s
	})
	return vm.sym
}

// crashReport reads v's registers (on v's own thread) and symbolizes them.
func (vm *VM) crashReport(v *vcpu, why string) *CrashReport {
	return vm.registerReport(v, diag.CrashInfo{Reason: why, Vector: -1})
}

// stoppedReport is crashReport for a guest stopped from outside (timeout,
// signal): the same registers and backtrace, not called a crash.
func (vm *VM) stoppedReport(v *vcpu, why string) *CrashReport {
	return vm.registerReport(v, diag.CrashInfo{Reason: why, Vector: -1, Stopped: true})
}

func (vm *VM) registerReport(v *vcpu, ci diag.CrashInfo) *CrashReport {
	why := ci.Reason
	regs, err := kvm.GetRegs(v.fd)
	if err != nil {
		return &CrashReport{CPU: v.index, Reason: why, Vector: -1, Text: fmt.Sprintf("%s\n(KVM_GET_REGS failed: %v)\n", why, err)}
	}
	ci.RIP, ci.RSP, ci.RBP = regs.RIP, regs.RSP, regs.RBP
	ci.RFLAGS = regs.RFLAGS
	ci.Regs = [16]uint64{regs.RAX, regs.RCX, regs.RDX, regs.RBX, regs.RSP, regs.RBP, regs.RSI, regs.RDI,
		regs.R8, regs.R9, regs.R10, regs.R11, regs.R12, regs.R13, regs.R14, regs.R15}
	ci.HasRegs = true
	if sregs, err := kvm.GetSregs(v.fd); err == nil && (strings.Contains(why, "triple fault") || sregs.CR2 != 0) {
		ci.CR2, ci.HasCR2 = sregs.CR2, true
	}
	return vm.buildReport(v.index, ci)
}

// faultFrameReport turns an exception the guest handed to HCFault into the
// same report.
func (vm *VM) faultFrameReport(v *vcpu, ff *firmware.FaultFrame) *CrashReport {
	ci := diag.CrashInfo{
		Reason: fmt.Sprintf("unhandled exception %s (vector %d), error code %#x", vectorName(ff.Vector), ff.Vector, ff.ErrorCode),
		RIP:    ff.RIP, RSP: ff.RSP, RBP: ff.RBP, RFLAGS: ff.RFLAGS, Vector: int(ff.Vector), HasVector: true,
		ErrorCode: ff.ErrorCode, HasErrorCode: true,
	}
	if ff.Vector == 14 {
		ci.CR2, ci.HasCR2 = ff.CR2, true
	}
	r := vm.buildReport(v.index, ci)
	r.ErrorCode = ff.ErrorCode
	return r
}

func (vm *VM) buildReport(cpu int, ci diag.CrashInfo) *CrashReport {
	sym := vm.symbolizer()
	code := make([]byte, 16)
	for len(code) > 0 && !vm.mem.ReadAt(ci.RIP, code) {
		code = code[:len(code)-1]
	}
	ci.Code = code
	var b strings.Builder
	fmt.Fprintf(&b, "vCPU %d: ", cpu)
	diag.Report(&b, ci, sym, vm.mem.ReadAt)
	r := &CrashReport{CPU: cpu, Reason: ci.Reason, RIP: ci.RIP, CR2: ci.CR2, HasCR2: ci.HasCR2, Vector: ci.Vector, Text: b.String()}
	if sym != nil {
		r.Symbol = sym.Describe(ci.RIP)
	}
	if text, _, err := diag.Disassemble(code, ci.RIP, sym); err == nil {
		r.Instruction = text
	}
	for _, pc := range diag.Unwind(vm.mem.ReadAt, sym, ci.RIP, ci.RSP, ci.RBP, 32) {
		if sym != nil {
			r.Backtrace = append(r.Backtrace, sym.Describe(pc))
		} else {
			r.Backtrace = append(r.Backtrace, fmt.Sprintf("%#x", pc))
		}
	}
	return r
}

var vectorNames = [...]string{"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
	"#BR bound range", "#UD invalid opcode", "#NM device not available", "#DF double fault",
	"coprocessor overrun", "#TS invalid TSS", "#NP segment not present", "#SS stack fault",
	"#GP general protection", "#PF page fault", "reserved", "#MF x87 error", "#AC alignment check",
	"#MC machine check", "#XM SIMD exception", "#VE virtualization exception", "#CP control protection"}

func vectorName(v uint64) string {
	if v < uint64(len(vectorNames)) {
		return vectorNames[v]
	}
	return fmt.Sprintf("vector %d", v)
}
