package main

import (
	"testing"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
)

// TestTrapRegsMatchTrapEntry pins trapRegs to the push order of trapEntry
// (trap_amd64.s): AX is pushed last, so it is at the lowest address, and
// the resume-SP slot sits above R15, the saved FS base above it (at
// 128(SP), where trapEntry stores it), then 8 bytes of padding.
func TestTrapRegsMatchTrapEntry(t *testing.T) {
	var r trapRegs
	if unsafe.Sizeof(r) != 17*8 || unsafe.Offsetof(r.AX) != 0 || unsafe.Offsetof(r.BP) != 6*8 ||
		unsafe.Offsetof(r.R15) != 14*8 || unsafe.Offsetof(r.ResumeSP) != 15*8 || unsafe.Offsetof(r.FSBase) != 128 {
		t.Errorf("trapRegs layout does not match trapEntry's pushes")
	}
	// trapEntry's FXSAVE area: top - 144 (registers, slots) - 512 must stay 16-aligned.
	if (firmware.PerCPUXStackOff+firmware.PerCPUXStackSize-18*8-512)%16 != 0 {
		t.Errorf("FXSAVE area on the exception stack is not 16-byte aligned")
	}
}
