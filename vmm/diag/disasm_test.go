package diag

import (
	"errors"
	"testing"
)

func TestDisassemble(t *testing.T) {
	sym := &Symbolizer{syms: []elfSym{{"main.foo", 0x401000, 0x40}, {"main.bar", 0x401040, 0x40}}}
	tests := []struct {
		name string
		code []byte
		pc   uint64
		sym  *Symbolizer
		want string
		n    int
	}{
		{"store", []byte{0x48, 0x89, 0x03}, 0x401000, nil, "mov %rax,(%rbx)", 3},
		{"store with trailing bytes", []byte{0x48, 0x89, 0x03, 0x0f, 0x0b}, 0x401000, nil, "mov %rax,(%rbx)", 3},
		{"ud2", []byte{0x0f, 0x0b}, 0x401000, nil, "ud2", 2},
		{"ret", []byte{0xc3}, 0x401000, nil, "retq", 1},
		{"hlt", []byte{0xf4}, 0, nil, "hlt", 1},
		// call rel32 from 0x401000 (len 5) to 0x401040 = main.bar's entry.
		{"call named", []byte{0xe8, 0x3b, 0x00, 0x00, 0x00}, 0x401000, sym, "callq main.bar", 5},
		{"call unnamed", []byte{0xe8, 0x3b, 0x00, 0x00, 0x00}, 0x401000, nil, "callq 0x401040", 5},
		// jmp rel8 from 0x401000 (len 2) to 0x401010 = main.foo+0x10.
		{"jump into function", []byte{0xeb, 0x0e}, 0x401000, sym, "jmp 0x401010 <main.foo+0x10>", 2},
		{"call outside symbols", []byte{0xe8, 0x00, 0x10, 0x00, 0x00}, 0x401000, sym, "callq 0x402005", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := Disassemble(tt.code, tt.pc, tt.sym)
			if err != nil || got != tt.want || n != tt.n {
				t.Errorf("Disassemble(% x) = %q, %d, %v; want %q, %d", tt.code, got, n, err, tt.want, tt.n)
			}
		})
	}
}

func TestDisassembleBad(t *testing.T) {
	for _, code := range [][]byte{
		nil,
		{0x06},             // push %es: invalid in 64-bit mode
		{0xff, 0xff},       // ff /7: no such instruction
		{0x48, 0x89},       // mov without its ModRM byte
		{0x48},             // lone REX prefix
		{0xe8, 0x00, 0x00}, // call rel32 cut short
	} {
		text, n, err := Disassemble(code, 0x401000, nil)
		if err == nil || n != 0 || text != "" {
			t.Errorf("Disassemble(% x) = %q, %d, %v; want an error", code, text, n, err)
		}
	}
	if _, _, err := Disassemble(nil, 0, nil); !errors.Is(err, ErrNoCode) {
		t.Errorf("empty code: err = %v, want ErrNoCode", err)
	}
}

func FuzzDisassemble(f *testing.F) {
	f.Add([]byte{0x48, 0x89, 0x03}, uint64(0x401000))
	f.Add([]byte{0x0f, 0x0b}, uint64(0))
	f.Add([]byte{0xe8, 0xff, 0xff, 0xff, 0xff}, ^uint64(0)-2)
	f.Add([]byte{0xc4, 0xe2, 0x79, 0x18, 0x05}, uint64(1))
	sym := &Symbolizer{syms: []elfSym{{"main.foo", 0x401000, 0x40}, {"top", ^uint64(0) - 0x10, 0x10}}}
	f.Fuzz(func(t *testing.T, code []byte, pc uint64) {
		text, n, err := Disassemble(code, pc, sym)
		if err != nil {
			return
		}
		if n < 1 || n > len(code) || n > 15 || text == "" {
			t.Fatalf("Disassemble(% x) = %q, %d", code, text, n)
		}
	})
}
