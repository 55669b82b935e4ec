package vmm

import (
	"strings"
	"testing"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
)

func TestClassifyExit(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Exit
		act  action
		why  string
	}{
		{"signal", Exit{Reason: kvm.EXITINTR}, actResume, ""},
		{"hypercall", Exit{Reason: kvm.EXITMMIO, MMIOAddr: firmware.HypercallDoorbell, MMIOLen: 8, MMIOWrite: true}, actHypercall, ""},
		{"short hypercall store", Exit{Reason: kvm.EXITMMIO, MMIOAddr: firmware.HypercallDoorbell, MMIOLen: 4, MMIOWrite: true}, actFault, "wrote 4 bytes"},
		{"console", Exit{Reason: kvm.EXITMMIO, MMIOAddr: firmware.ConsoleDoorbell, MMIOLen: 8, MMIOWrite: true}, actConsole, ""},
		{"wild store", Exit{Reason: kvm.EXITMMIO, MMIOAddr: 0x10000000, MMIOLen: 8, MMIOWrite: true}, actFault, "unbacked physical address 0x10000000"},
		{"doorbell read", Exit{Reason: kvm.EXITMMIO, MMIOAddr: firmware.HypercallDoorbell, MMIOLen: 8}, actFault, "read 8 bytes"},
		{"triple fault", Exit{Reason: kvm.EXITSHUTDOWN}, actFault, "triple fault"},
		{"emulation", Exit{Reason: kvm.EXITINTERNALERROR, Suberror: 1}, actFault, "emulation failure"},
		{"entry", Exit{Reason: kvm.EXITFAILENTRY, HardwareReason: 0x21}, actFault, "hardware reason 0x21"},
		{"hlt", Exit{Reason: kvm.EXITHLT}, actFault, "HLT"},
		{"pio", Exit{Reason: kvm.EXITIO, IOPort: 0x3f8, IOWrite: true}, actFault, "out port 0x3f8"},
		{"unknown", Exit{Reason: 99}, actFault, "unexpected exit reason 99"},
	} {
		act, why := classifyExit(tc.e)
		if act != tc.act || !strings.Contains(why, tc.why) {
			t.Errorf("%s: got (%d, %q), want (%d, ...%q...)", tc.name, act, why, tc.act, tc.why)
		}
	}
}

func TestDecodeExitMMIO(t *testing.T) {
	var r kvm.RunData
	r.ExitReason = uint32(kvm.EXITMMIO)
	r.Data[0] = firmware.ConsoleDoorbell
	r.Data[1] = 0xffffffff_12345678
	r.Data[2] = 4 | 1<<32
	e := decodeExit(&r)
	if e.MMIOAddr != firmware.ConsoleDoorbell || e.MMIOLen != 4 || !e.MMIOWrite || e.MMIOData != 0x12345678 {
		t.Errorf("decoded %+v", e)
	}
}
