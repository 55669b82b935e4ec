package gdbstub

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
)

func TestNextPCs(t *testing.T) {
	mem := map[uint64]uint64{0x8000: 0x401234, 0x9008: 0x406000}
	read := func(a uint64, p []byte) error {
		v, ok := mem[a]
		if !ok {
			return fmt.Errorf("unmapped %#x", a)
		}
		binary.LittleEndian.PutUint64(p, v)
		return nil
	}
	var r Regs
	r.RIP = 0x1000
	r.GPR[7] = 0x8000 // rsp
	r.GPR[0] = 0x402000
	r.GPR[1] = 0x9000 // rbx
	for _, tc := range []struct {
		name string
		code []byte
		want []uint64
	}{
		{"mov", []byte{0x48, 0x89, 0xd8}, []uint64{0x1003}},
		{"jmp rel8", []byte{0xeb, 0x10}, []uint64{0x1012}},
		{"jmp rel32 back", []byte{0xe9, 0xfb, 0xff, 0xff, 0xff}, []uint64{0x1000}},
		{"jne", []byte{0x75, 0x05}, []uint64{0x1002, 0x1007}},
		{"jcc to next", []byte{0x74, 0x00}, []uint64{0x1002}},
		{"call rel32", []byte{0xe8, 0x00, 0x01, 0x00, 0x00}, []uint64{0x1105}},
		{"ret", []byte{0xc3}, []uint64{0x401234}},
		{"call rax", []byte{0xff, 0xd0}, []uint64{0x402000}},
		{"call [rip+0x10]", []byte{0xff, 0x15, 0x10, 0x00, 0x00, 0x00, 0x90}, nil},
		{"jmp [rbx+8]", []byte{0xff, 0x63, 0x08}, []uint64{0x406000}},
		{"int3", []byte{0xcc}, []uint64{0x1001}},
	} {
		got, err := NextPCs(tc.code, r, read)
		if tc.name == "call [rip+0x10]" {
			// 6-byte instruction: target read at next+0x10 = 0x1016.
			mem[0x1016] = 0x407000
			got, err = NextPCs(tc.code, r, read)
			tc.want = []uint64{0x407000}
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %#x, %v; want %#x", tc.name, got, err, tc.want)
		}
	}
	if _, err := NextPCs(nil, r, read); err == nil {
		t.Error("no code bytes decoded")
	}
	r.GPR[7] = 0x1
	if _, err := NextPCs([]byte{0xc3}, r, read); err == nil {
		t.Error("ret with an unreadable stack gave a target")
	}
}
