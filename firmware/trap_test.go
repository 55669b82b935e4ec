package firmware

import (
	"testing"
	"unsafe"
)

func TestTrapRecordLayout(t *testing.T) {
	var r TrapRecord
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(r), TrapRecordSize},
		{"Vector", unsafe.Offsetof(r.Vector), TrapOffVector},
		{"ErrorCode", unsafe.Offsetof(r.ErrorCode), TrapOffError},
		{"RIP", unsafe.Offsetof(r.RIP), TrapOffRIP},
		{"CS", unsafe.Offsetof(r.CS), TrapOffCS},
		{"RFLAGS", unsafe.Offsetof(r.RFLAGS), TrapOffRFLAGS},
		{"RSP", unsafe.Offsetof(r.RSP), TrapOffRSP},
		{"SS", unsafe.Offsetof(r.SS), TrapOffSS},
		{"CR2", unsafe.Offsetof(r.CR2), TrapOffCR2},
		{"SavedRAX", unsafe.Offsetof(r.SavedRAX), TrapOffRAX},
		{"Dispatch", unsafe.Offsetof(r.Dispatch), TrapOffDispatch},
		{"DispatchStack", unsafe.Offsetof(r.DispatchStack), TrapOffStack},
		{"Masked", unsafe.Offsetof(r.Masked), TrapOffMasked},
		{"Masked from FS", PerCPUTrapOff - PerCPUFSOff + unsafe.Offsetof(r.Masked), TrapMaskedFSOff},
	} {
		if c.got != c.want {
			t.Errorf("TrapRecord.%s at %d, want %d (trap_amd64.s depends on it)", c.name, c.got, c.want)
		}
	}
	if PerCPUTrapOff%16 != 0 || PerCPUTrapOff+TrapRecordSize != PerCPURing0Off+PerCPURing0Stack {
		t.Errorf("trap record at %#x does not end the ring-0 stack", PerCPUTrapOff)
	}
}

func TestTrapStubTable(t *testing.T) {
	seen := map[uint64]bool{}
	for v := range NumTrapVectors {
		a := TrapStub(v)
		if a == 0 || seen[a] {
			t.Fatalf("vector %d: stub address %#x missing or shared", v, a)
		}
		seen[a] = true
	}
}

func TestGateEncoding(t *testing.T) {
	lo, hi := Gate(0x1234_5678_9abc_def0, 1)
	if lo != 0x9abc_8e01_0010_def0 || hi != 0x1234_5678 {
		t.Errorf("Gate = %#x %#x", lo, hi)
	}
}
