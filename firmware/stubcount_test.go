package firmware

import (
	"debug/elf"
	"fmt"
	"os/exec"
	"testing"

	"github.com/vmm-dev/vmm/internal/guestbuild"
	"golang.org/x/arch/x86/x86asm"
)

// The ring-0 stubs run in KVM's instruction emulator on the PVM host at
// about 1 µs an instruction: these counts are a budget, not trivia. A
// change that grows them must update the numbers here on purpose.
const (
	entryInstructions = 3 // dummy error code, vector, jump (2 with a CPU error code)
	// trapCommon's body: save RIP, RSP and CR2, redirect to ring 3, IRETQ
	// (the dispatcher copies the rest of the frame). A first exception
	// executes 19 of them; a fault inside the dispatcher 22.
	commonInstructions = 22
)

func TestStubInstructionCounts(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	path, err := guestbuild.Path(t) // the stubs as linked into the guest
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	text := f.Section(".text")
	code, err := text.Data()
	if err != nil {
		t.Fatal(err)
	}
	count := func(name string) int {
		for _, s := range syms {
			if s.Name != name {
				continue
			}
			body := code[s.Value-text.Addr : s.Value-text.Addr+s.Size]
			n := 0
			for off := 0; off < len(body); n++ {
				inst, err := x86asm.Decode(body[off:], 64)
				if err != nil {
					t.Fatalf("%s+%#x: %v", name, off, err)
				}
				off += inst.Len
				if inst.Op == x86asm.IRETQ || inst.Op == x86asm.JMP {
					return n + 1 // padding follows
				}
			}
			return n
		}
		t.Fatalf("symbol %s not found", name)
		return 0
	}
	const pkg = "github.com/vmm-dev/vmm/firmware."
	if n := count(pkg + "trapCommon"); n != commonInstructions {
		t.Errorf("trapCommon executes %d instructions, budget %d", n, commonInstructions)
	}
	if n := count(pkg + "trap6"); n != entryInstructions {
		t.Errorf("trap6 entry executes %d instructions, want %d", n, entryInstructions)
	}
	if n := count(pkg + "trap14"); n != entryInstructions-1 {
		t.Errorf("trap14 entry executes %d instructions, want %d", n, entryInstructions-1)
	}
	// Every linked stub agrees with the one table of vectors.
	for v := range NumTrapVectors {
		want := entryInstructions
		if TrapErrorCode(v) {
			want--
		}
		if n := count(fmt.Sprintf("%strap%d", pkg, v)); n != want {
			t.Errorf("trap%d entry executes %d instructions, want %d (error code pushed by the CPU: %v)", v, n, want, TrapErrorCode(v))
		}
	}
}
