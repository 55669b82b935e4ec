package diag

import "testing"

func TestReturnSlot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   []byte
		offset uint64
		ok     bool
	}{
		{"at entry", nil, 0, true},
		{"frameless leaf", []byte{0xf3, 0x90}, 0, true},                              // pause
		{"after push rbp", []byte{0x55}, 8, true},                                    // push %rbp
		{"framed", []byte{0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20}, 0, false}, // push; mov %rsp,%rbp; sub $0x20,%rsp
		{"epilogue", []byte{0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20, 0x48, 0x83, 0xc4, 0x20, 0x5d}, 0, true},
		{"sub without frame", []byte{0x48, 0x83, 0xec, 0x18}, 0x18, true},
		{"invalid in 64-bit mode", []byte{0x06}, 0, false},
	} {
		off, ok := ReturnSlot(tc.code)
		if off != tc.offset || ok != tc.ok {
			t.Errorf("%s: got (%#x, %v), want (%#x, %v)", tc.name, off, ok, tc.offset, tc.ok)
		}
	}
}
