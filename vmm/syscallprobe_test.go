package vmm

import (
	"testing"

	"github.com/vmm-dev/vmm/internal/kvmtest"
)

// TestSyscallCPL: the probe's SYSCALL lands at CPL3 on kvm_pvm and at CPL0
// on VMX/SVM, as the loaded module says.
func TestSyscallCPL(t *testing.T) {
	kvmtest.Require(t)
	cpl, err := SyscallCPL()
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	switch HostModule() {
	case "kvm_pvm":
		want = 3
	case "":
		t.Skipf("no known KVM module loaded; SYSCALL landed at CPL%d", cpl)
	}
	if cpl != want {
		t.Errorf("SYSCALL landed at CPL%d on %s, want CPL%d", cpl, HostModule(), want)
	}
}

// BenchmarkSyscallRoundTrip: b.N bare SYSCALL round trips in the probe VM
// (LSTAR only jumps back), the floor under vmm run's system calls
// (scripts/bench-run.sh runs it beside the getpid figure).
func BenchmarkSyscallRoundTrip(b *testing.B) {
	kvmtest.Require(b)
	_, d, err := syscallLoop(uint32(b.N))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "ns/syscall")
}
