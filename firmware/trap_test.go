package firmware

import (
	"testing"
	"unsafe"
)

func TestTrapRecordLayout(t *testing.T) {
	var r TrapRecord
	var f TrapFrame
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(r), TrapRecordSize},
		{"Vector", unsafe.Offsetof(r.Vector), 0},
		{"ErrorCode", unsafe.Offsetof(r.ErrorCode), 8},
		{"RIP", unsafe.Offsetof(r.RIP), 16},
		{"CS", unsafe.Offsetof(r.CS), 24},
		{"RFLAGS", unsafe.Offsetof(r.RFLAGS), 32},
		{"RSP", unsafe.Offsetof(r.RSP), 40},
		{"SS", unsafe.Offsetof(r.SS), 48},
		{"CR2", unsafe.Offsetof(r.CR2), 56},
		{"SavedRAX", unsafe.Offsetof(r.SavedRAX), 64},
		{"Dispatch", unsafe.Offsetof(r.Dispatch), 72},
		{"DispatchStack", unsafe.Offsetof(r.DispatchStack), 80},
		{"Depth", unsafe.Offsetof(r.Depth), 88},
		{"Masked", unsafe.Offsetof(r.Masked), 96},
		{"Masked from FS", PerCPUTrapOff - PerCPUFSOff + unsafe.Offsetof(r.Masked), 0x3fe0},
		// The frame below the record: trapCommon's REC, and the order the
		// entry stub and the CPU push in (the dispatcher reads it).
		{"frame size", unsafe.Sizeof(f), TrapFrameSize},
		{"frame Vector", TrapFrameSize - unsafe.Offsetof(f.Vector), 56},
		{"frame ErrorCode", TrapFrameSize - unsafe.Offsetof(f.ErrorCode), 48},
		{"frame CS", TrapFrameSize - unsafe.Offsetof(f.CS), 32},
		{"frame RFLAGS", TrapFrameSize - unsafe.Offsetof(f.RFLAGS), 24},
	} {
		if c.got != c.want {
			t.Errorf("TrapRecord.%s at %d, want %d (the guest's assembly and the VMM depend on it)", c.name, c.got, c.want)
		}
	}
	if TrapOffDispatch != 72 || TrapOffMasked != 96 {
		t.Errorf("TrapOffDispatch %d, TrapOffMasked %d", TrapOffDispatch, TrapOffMasked)
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
