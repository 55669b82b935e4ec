package main

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
)

// TestUserOffsets checks user_offsets.h against cpuData and the per-CPU
// layout: user_amd64.s reaches those slots through GS.
func TestUserOffsets(t *testing.T) {
	src, err := os.ReadFile("user_offsets.h")
	if err != nil {
		t.Fatal(err)
	}
	var c cpuData
	want := map[string]uintptr{
		"CPU_USP": unsafe.Offsetof(c.SysUSP),
		"CPU_KSP": unsafe.Offsetof(c.SysKSP),
		"CPU_RIP": unsafe.Offsetof(c.SysRIP),
	}
	defs := regexp.MustCompile(`(?m)^#define (\w+) (0x[0-9a-f]+)$`).FindAllStringSubmatch(string(src), -1)
	if len(defs) != len(want) {
		t.Fatalf("user_offsets.h defines %d offsets, want %d", len(defs), len(want))
	}
	for _, d := range defs {
		off, ok := want[d[1]]
		if !ok {
			t.Errorf("user_offsets.h: unknown %s", d[1])
			continue
		}
		got, err := strconv.ParseUint(d[2], 0, 32)
		if err != nil {
			t.Fatal(err)
		}
		disp := uint32(int64(firmware.PerCPUDataOff) - int64(firmware.PerCPUFSOff) + int64(off))
		if uint32(got) != disp {
			t.Errorf("%s = %#x, want %#x (GS base = block+%#x, cpuData at block+%#x, field at +%d)",
				d[1], got, disp, firmware.PerCPUFSOff, firmware.PerCPUDataOff, off)
		}
	}
}

// TestUserCtxLayout pins userCtx to the frame user_amd64.s builds.
func TestUserCtxLayout(t *testing.T) {
	var c userCtx
	if unsafe.Sizeof(c) != 160 || unsafe.Offsetof(c.R15) != 112 || unsafe.Offsetof(c.RSP) != 120 ||
		unsafe.Offsetof(c.RIP) != 128 || unsafe.Offsetof(c.RFLAGS) != 136 || unsafe.Offsetof(c.FS) != 144 {
		t.Errorf("userCtx does not match user_amd64.s")
	}
}
