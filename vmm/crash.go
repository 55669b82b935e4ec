package vmm

import (
	"fmt"
	"strings"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/diag"
)

// CrashReport says where the guest was when it died (or timed out). For an
// exception the guest reported, every field describes the interrupted code,
// not the handler that reported it.
type CrashReport struct {
	CPU         int    `json:"cpu"`
	Reason      string `json:"reason"`
	RIP         uint64 `json:"rip"`
	Symbol      string `json:"symbol"` // function+offset (file:line)
	Instruction string `json:"instruction"`
	CR2         uint64 `json:"cr2"`
	HasCR2      bool   `json:"has_cr2"`
	ErrorCode   uint64 `json:"error_code"`
	HasError    bool   `json:"has_error_code"`
	Vector      int    `json:"vector"` // -1 when no exception vector is known
	// Registers is nil only when KVM could not read them.
	Registers *Registers   `json:"registers"`
	Backtrace []diag.Frame `json:"backtrace"`
	Text      string       `json:"text"` // the whole human-readable report
}

// Registers are the general registers of a crash report.
type Registers struct {
	RAX    uint64 `json:"rax"`
	RCX    uint64 `json:"rcx"`
	RDX    uint64 `json:"rdx"`
	RBX    uint64 `json:"rbx"`
	RSP    uint64 `json:"rsp"`
	RBP    uint64 `json:"rbp"`
	RSI    uint64 `json:"rsi"`
	RDI    uint64 `json:"rdi"`
	R8     uint64 `json:"r8"`
	R9     uint64 `json:"r9"`
	R10    uint64 `json:"r10"`
	R11    uint64 `json:"r11"`
	R12    uint64 `json:"r12"`
	R13    uint64 `json:"r13"`
	R14    uint64 `json:"r14"`
	R15    uint64 `json:"r15"`
	RIP    uint64 `json:"rip"`
	RFLAGS uint64 `json:"rflags"`
}

func registersOf(ci *diag.CrashInfo) *Registers {
	g := &ci.Regs // diag.RegNames order
	return &Registers{RAX: g[0], RCX: g[1], RDX: g[2], RBX: g[3], RSP: g[4], RBP: g[5], RSI: g[6], RDI: g[7],
		R8: g[8], R9: g[9], R10: g[10], R11: g[11], R12: g[12], R13: g[13], R14: g[14], R15: g[15],
		RIP: ci.RIP, RFLAGS: ci.RFLAGS}
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
		return &CrashReport{CPU: v.index, Reason: why, Vector: -1, Backtrace: []diag.Frame{},
			Text: fmt.Sprintf("vCPU %d: guest crash: %s\n(KVM_GET_REGS failed: %v)\n", v.index, why, err)}
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
// same report, and keeps the interrupted context for the dump.
func (vm *VM) faultFrameReport(v *vcpu, ff *firmware.FaultFrame) *CrashReport {
	v.fault = ff
	ci := diag.CrashInfo{
		Reason: fmt.Sprintf("unhandled exception %s (vector %d), error code %#x", vectorName(ff.Vector), ff.Vector, ff.ErrorCode),
		RIP:    ff.RIP, RSP: ff.RSP, RBP: ff.RBP, RFLAGS: ff.RFLAGS, Vector: int(ff.Vector), HasVector: true,
		ErrorCode: ff.ErrorCode, HasErrorCode: true, Regs: ff.Regs, HasRegs: true,
	}
	if ff.Vector == 14 {
		ci.CR2, ci.HasCR2 = ff.CR2, true
	}
	return vm.buildReport(v.index, ci)
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
	r := &CrashReport{CPU: cpu, Reason: ci.Reason, RIP: ci.RIP, Symbol: sym.Describe(ci.RIP),
		CR2: ci.CR2, HasCR2: ci.HasCR2, ErrorCode: ci.ErrorCode, HasError: ci.HasErrorCode, Vector: ci.Vector,
		Backtrace: diag.Frames(ci, sym, vm.mem.ReadAt), Text: b.String()}
	if ci.HasRegs {
		r.Registers = registersOf(&ci)
	}
	if text, _, err := diag.Disassemble(code, ci.RIP, sym); err == nil {
		r.Instruction = text
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
