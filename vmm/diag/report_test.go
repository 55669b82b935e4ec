package diag

import (
	"fmt"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	sym := &Symbolizer{syms: []elfSym{
		{"main.foo", 0x401000, 0x40}, {"main.bar", 0x401040, 0x40}, {"main.kmain.abi0", 0x401080, 0x40},
	}}
	m := newImage()
	m.frame(0x9100, 0x9200, 0x401050)
	m.frame(0x9200, 0, 0x401090)
	ci := CrashInfo{
		Reason: "triple fault (KVM_EXIT_SHUTDOWN)",
		Vector: 14, HasVector: true, ErrorCode: 6, HasErrorCode: true,
		RIP: 0x40101c, RSP: 0x90f0, RBP: 0x9100, RFLAGS: 0x10246,
		CR2: 0x10, HasCR2: true,
		Code: []byte{0x48, 0x89, 0x03, 0xc3},
	}
	for i := range ci.Regs {
		ci.Regs[i] = uint64(i)
	}
	ci.HasRegs = true
	var b strings.Builder
	if err := Report(&b, ci, sym, m.read); err != nil {
		t.Fatal(err)
	}
	want := `guest crash: triple fault (KVM_EXIT_SHUTDOWN)
vector: 14 (#PF page fault), error code 0x6 (not-present write user)
RIP: main.foo+0x1c
=> 0x40101c: mov %rax,(%rbx)
CR2: 0x0000000000000010
RSP: 0x00000000000090f0  RBP: 0x0000000000009100  RFLAGS: 0x0000000000010246
registers:
  rax 0x0000000000000000  rcx 0x0000000000000001  rdx 0x0000000000000002  rbx 0x0000000000000003
  rsp 0x0000000000000004  rbp 0x0000000000000005  rsi 0x0000000000000006  rdi 0x0000000000000007
  r8  0x0000000000000008  r9  0x0000000000000009  r10 0x000000000000000a  r11 0x000000000000000b
  r12 0x000000000000000c  r13 0x000000000000000d  r14 0x000000000000000e  r15 0x000000000000000f
backtrace:
  #0 0x40101c main.foo+0x1c
  #1 0x401050 main.bar+0x10
  #2 0x401090 main.kmain.abi0+0x10
`
	if got := b.String(); got != want {
		t.Errorf("Report:\n%s\nwant:\n%s", got, want)
	}
}

func TestReportMinimal(t *testing.T) {
	tests := []struct {
		name string
		ci   CrashInfo
		want string
	}{
		{
			name: "nothing known",
			ci:   CrashInfo{RIP: 0x1234},
			want: `guest crash: unknown reason
RIP: 0x1234 (unknown)
=> 0x1234: (code not readable)
RSP: 0x0000000000000000  RBP: 0x0000000000000000  RFLAGS: 0x0000000000000000
backtrace:
  #0 0x1234 0x1234 (unknown)
`,
		},
		{
			name: "undecodable code, ud vector",
			ci:   CrashInfo{Reason: "ud2", RIP: 0x1234, Vector: 6, HasVector: true, Code: []byte{0x06, 0x07}},
			want: `guest crash: ud2
vector: 6 (#UD invalid opcode)
RIP: 0x1234 (unknown)
=> 0x1234: (undecodable: 06 07)
RSP: 0x0000000000000000  RBP: 0x0000000000000000  RFLAGS: 0x0000000000000000
backtrace:
  #0 0x1234 0x1234 (unknown)
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := Report(&b, tt.ci, nil, nil); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("Report:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestReportRealELF reports a crash at main.foo's entry in the test-built
// program, with a frame record returning into main.bar after its call.
func TestReportRealELF(t *testing.T) {
	f, src := openGuest(t)
	sym, err := NewSymbolizer(f)
	if err != nil {
		t.Fatal(err)
	}
	foo := symAddr(t, f, "main.foo")
	bar := symAddr(t, f, "main.bar")
	ret := bar.Value + 8 // some address inside bar; the line comes from ret-1
	m := newImage()
	m.frame(0x9100, 0, ret)
	ci := CrashInfo{Reason: "test", RIP: foo.Value, RBP: 0x9100, Code: textBytes(t, f, foo.Value, 15)}
	var b strings.Builder
	if err := Report(&b, ci, sym, m.read); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	text, _, err := Disassemble(ci.Code, foo.Value, sym)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("RIP: main.foo+0x0 (%s:%d)\n", src, fooLine),
		fmt.Sprintf("=> %#x: %s\n", foo.Value, text),
		fmt.Sprintf("  #0 %#x main.foo+0x0 (%s:%d)\n", foo.Value, src, fooLine),
		fmt.Sprintf("  #1 %#x main.bar+0x8 (%s:", ret, src),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
