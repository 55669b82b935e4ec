package diag

import (
	"fmt"
	"io"
	"strings"
)

// RegNames names CrashInfo.Regs in x86 encoding order (the order of the
// ModRM register numbers), which is NOT the order of struct kvm_regs.
var RegNames = [16]string{
	"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
}

// CrashInfo is what the VMM knows about a guest crash.
type CrashInfo struct {
	Reason string // e.g. "triple fault (KVM_EXIT_SHUTDOWN)"
	// Stopped: the guest did not crash, it was stopped from outside (a
	// timeout, a signal) and the report says where it was.
	Stopped bool

	Vector       int // exception vector; used if HasVector
	HasVector    bool
	ErrorCode    uint64 // exception error code; used if HasErrorCode
	HasErrorCode bool

	RIP, RSP, RBP, RFLAGS uint64
	CR2                   uint64 // faulting address of a #PF; used if HasCR2
	HasCR2                bool

	Code []byte // guest bytes at RIP; may be short or empty

	Regs    [16]uint64 // general registers in RegNames order; used if HasRegs
	HasRegs bool
}

var vectorNames = map[int]string{
	0: "#DE divide error", 1: "#DB debug", 2: "NMI", 3: "#BP breakpoint", 4: "#OF overflow",
	5: "#BR bound range", 6: "#UD invalid opcode", 7: "#NM device not available",
	8: "#DF double fault", 10: "#TS invalid TSS", 11: "#NP segment not present",
	12: "#SS stack fault", 13: "#GP general protection", 14: "#PF page fault",
	16: "#MF x87 error", 17: "#AC alignment check", 18: "#MC machine check",
	19: "#XM SIMD error", 20: "#VE virtualization", 21: "#CP control protection",
}

// Report writes a readable crash report for ci to w. sym (may be nil)
// names addresses; read (may be nil) reads guest memory for the backtrace.
// The output is stable: tests compare it line by line. Example:
//
//	guest crash: triple fault
//	vector: 14 (#PF page fault), error code 0x6 (not-present write user)
//	RIP: main.foo+0x1c (/src/guest/main.go:42)
//	=> 0x40123c: mov %rax,(%rbx)
//	CR2: 0x0000000000000010
//	RSP: 0x000000000009ff00  RBP: 0x000000000009ff20  RFLAGS: 0x0000000000010246
//	registers:
//	  rax 0x0000000000000000  rcx 0x0000000000000000  rdx ...  rbx ...
//	backtrace:
//	  #0 0x40123c main.foo+0x1c (/src/guest/main.go:42)
//	  #1 0x401300 main.kmain+0x40 (/src/guest/main.go:17)
func Report(w io.Writer, ci CrashInfo, sym *Symbolizer, read func(gva uint64, buf []byte) bool) error {
	var b strings.Builder
	reason := ci.Reason
	if reason == "" {
		reason = "unknown reason"
	}
	what := "guest crash"
	if ci.Stopped {
		what = "guest stopped"
	}
	fmt.Fprintf(&b, "%s: %s\n", what, reason)
	if ci.HasVector {
		name := vectorNames[ci.Vector]
		if name == "" {
			name = "vector"
		}
		fmt.Fprintf(&b, "vector: %d (%s)", ci.Vector, name)
		if ci.HasErrorCode {
			fmt.Fprintf(&b, ", error code %#x", ci.ErrorCode)
			if ci.Vector == 14 {
				fmt.Fprintf(&b, " (%s)", pfError(ci.ErrorCode))
			}
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "RIP: %s\n", sym.Describe(ci.RIP))
	b.WriteString(instLine(ci.Code, ci.RIP, sym))
	if ci.HasCR2 {
		fmt.Fprintf(&b, "CR2: 0x%016x\n", ci.CR2)
	}
	fmt.Fprintf(&b, "RSP: 0x%016x  RBP: 0x%016x  RFLAGS: 0x%016x\n", ci.RSP, ci.RBP, ci.RFLAGS)
	if ci.HasRegs {
		b.WriteString("registers:\n")
		for i, v := range ci.Regs {
			fmt.Fprintf(&b, "  %-3s 0x%016x", RegNames[i], v)
			if i%4 == 3 {
				b.WriteByte('\n')
			}
		}
	}
	b.WriteString("backtrace:\n")
	for i, f := range Frames(ci, sym, read) {
		fmt.Fprintf(&b, "  #%d %#x %s\n", i, f.PC, f)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// instLine formats "=> 0x...: <instruction>\n" for the code at rip.
func instLine(code []byte, rip uint64, sym *Symbolizer) string {
	if len(code) == 0 {
		return fmt.Sprintf("=> %#x: (code not readable)\n", rip)
	}
	text, _, err := Disassemble(code, rip, sym)
	if err != nil {
		return fmt.Sprintf("=> %#x: (undecodable: % x)\n", rip, head(code))
	}
	return fmt.Sprintf("=> %#x: %s\n", rip, text)
}

// pfError decodes the page-fault error code bits.
func pfError(code uint64) string {
	parts := []string{"not-present", "read", "kernel"}
	if code&1 != 0 {
		parts[0] = "protection"
	}
	if code&2 != 0 {
		parts[1] = "write"
	}
	if code&4 != 0 {
		parts[2] = "user"
	}
	if code&8 != 0 {
		parts = append(parts, "reserved-bit")
	}
	if code&16 != 0 {
		parts = append(parts, "fetch")
	}
	return strings.Join(parts, " ")
}
