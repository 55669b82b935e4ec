package diag

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// guestSrc is the program built at test time. fooLine is the line of
// "func foo"; barLine the line of the call to foo inside bar.
const guestSrc = `package main

var sink int

//go:noinline
func foo(p *int) {
	*p = 42
	baz(p)
}

//go:noinline
func baz(p *int) { *p++ }

//go:noinline
func bar() {
	foo(&sink)
	sink++
}

func main() { bar() }
`

// Lines in guestSrc. foo is not a leaf, so its entry (the stack-check
// prologue) is on the line of "func foo".
const (
	fooLine = 6
	barCall = 16
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// buildGuest builds guestSrc once per test binary run, skipping the test if
// the go command is not available.
func buildGuest(t testing.TB) (bin, src string) {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found: ", err)
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "diag-guest-")
		if buildErr != nil {
			return
		}
		write := func(name, data string) {
			if buildErr == nil {
				buildErr = os.WriteFile(filepath.Join(buildDir, name), []byte(data), 0o644)
			}
		}
		write("go.mod", "module guest\n\ngo 1.21\n")
		write("main.go", guestSrc)
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "guest")
		cmd := exec.Command(goCmd, "build", "-o", buildBin, ".")
		cmd.Dir = buildDir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		// The same program without symbol table and DWARF (-s -w).
		cmd = exec.Command(goCmd, "build", "-ldflags=-s -w", "-o", buildBin+".stripped", ".")
		cmd.Dir = buildDir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build -ldflags='-s -w': %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin, filepath.Join(buildDir, "main.go")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func openGuest(t testing.TB) (*elf.File, string) {
	t.Helper()
	bin, src := buildGuest(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, src
}

func symAddr(t testing.TB, f *elf.File, name string) elf.Symbol {
	t.Helper()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("symbol %s not in ELF", name)
	return elf.Symbol{}
}

// textBytes returns n bytes of the ELF's .text at addr.
func textBytes(t testing.TB, f *elf.File, addr, n uint64) []byte {
	t.Helper()
	text := f.Section(".text")
	data, err := text.Data()
	if err != nil {
		t.Fatal(err)
	}
	if addr < text.Addr || addr-text.Addr+n > uint64(len(data)) {
		t.Fatalf("%#x+%d outside .text", addr, n)
	}
	return data[addr-text.Addr : addr-text.Addr+n]
}

func TestDescribe(t *testing.T) {
	f, src := openGuest(t)
	sym, err := NewSymbolizer(f)
	if err != nil {
		t.Fatal(err)
	}
	foo := symAddr(t, f, "main.foo")
	want := fmt.Sprintf("main.foo+0x0 (%s:%d)", src, fooLine)
	if got := sym.Describe(foo.Value); got != want {
		t.Errorf("Describe(main.foo) = %q, want %q", got, want)
	}
	fn, off, file, line, ok := sym.Lookup(foo.Value + 1)
	if !ok || fn != "main.foo" || off != 1 || file != src || line < fooLine || line > fooLine+2 {
		t.Errorf("Lookup(main.foo+1) = %q %#x %q %d %v", fn, off, file, line, ok)
	}
	if got, want := sym.Describe(0x10), "0x10 (unknown)"; got != want {
		t.Errorf("Describe(0x10) = %q, want %q", got, want)
	}
	if got := sym.Describe(^uint64(0)); got != "0xffffffffffffffff (unknown)" {
		t.Errorf("Describe(max) = %q", got)
	}
}

// TestCallTarget finds bar's call to foo and checks it is named, and that the
// return address after it is described with the line of the call.
func TestCallTarget(t *testing.T) {
	f, src := openGuest(t)
	sym, err := NewSymbolizer(f)
	if err != nil {
		t.Fatal(err)
	}
	bar := symAddr(t, f, "main.bar")
	code := textBytes(t, f, bar.Value, bar.Size)
	var found bool
	for pc, rest := bar.Value, code; len(rest) > 0; {
		text, n, err := Disassemble(rest, pc, sym)
		if err != nil {
			t.Fatalf("disassemble main.bar at %#x: %v", pc, err)
		}
		pc, rest = pc+uint64(n), rest[n:]
		if strings.HasPrefix(text, "call") && strings.HasSuffix(text, " main.foo") {
			found = true
			want := fmt.Sprintf("main.bar+%#x (%s:%d)", pc-bar.Value, src, barCall)
			if got := sym.describe(pc, true); got != want {
				t.Errorf("describe(return address) = %q, want %q", got, want)
			}
			break
		}
	}
	if !found {
		t.Errorf("no \"call main.foo\" in main.bar")
	}
}

// TestELFSymbolFallback uses only the ELF symbol table, as for functions
// that .gopclntab lacks.
func TestELFSymbolFallback(t *testing.T) {
	f, _ := openGuest(t)
	s := &Symbolizer{}
	if err := s.loadSymtab(f); err != nil {
		t.Fatal(err)
	}
	foo := symAddr(t, f, "main.foo")
	if got, want := s.Describe(foo.Value+3), "main.foo+0x3"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	s = &Symbolizer{syms: []elfSym{{"a.f.abi0", 0x1000, 0x10}, {"a.g", 0x1010, 0}, {"a.h", 0x1020, 0x10}}}
	for pc, want := range map[uint64]string{
		0xfff: "0xfff (unknown)", 0x1000: "a.f.abi0+0x0", 0x100f: "a.f.abi0+0xf",
		0x1010: "a.g+0x0", 0x1011: "0x1011 (unknown)", 0x102f: "a.h+0xf", 0x1030: "0x1030 (unknown)",
	} {
		if got := s.Describe(pc); got != want {
			t.Errorf("Describe(%#x) = %q, want %q", pc, got, want)
		}
	}
}

// TestStrippedELF: -s -w drops the ELF symbol table but keeps .gopclntab,
// which alone is enough.
func TestStrippedELF(t *testing.T) {
	bin, src := buildGuest(t)
	f, err := elf.Open(bin + ".stripped")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Symbols(); err == nil {
		t.Fatal("stripped binary still has a symbol table")
	}
	sym, err := NewSymbolizer(f)
	if err != nil {
		t.Fatal(err)
	}
	fn := sym.table.LookupFunc("main.foo")
	if fn == nil {
		t.Fatal("main.foo not in .gopclntab")
	}
	want := fmt.Sprintf("main.foo+0x4 (%s:%d)", src, fooLine)
	if got := sym.Describe(fn.Entry + 4); got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}

func TestNewSymbolizerErrors(t *testing.T) {
	if _, err := NewSymbolizer(nil); !errors.Is(err, ErrNoELF) {
		t.Errorf("nil ELF: err = %v, want ErrNoELF", err)
	}
	f, err := elf.NewFile(bytes.NewReader(bareELF()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSymbolizer(f); !errors.Is(err, ErrNoSymbols) {
		t.Errorf("section-less ELF: err = %v, want ErrNoSymbols", err)
	}
	var nilSym *Symbolizer
	if got := nilSym.Describe(0x1234); got != "0x1234 (unknown)" {
		t.Errorf("nil Symbolizer Describe = %q", got)
	}
}

// bareELF returns a valid 64-bit ELF header with no sections or segments,
// what a fully stripped file looks like to debug/elf.
func bareELF() []byte {
	var h elf.Header64
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	h.Type = uint16(elf.ET_EXEC)
	h.Machine = uint16(elf.EM_X86_64)
	h.Version = uint32(elf.EV_CURRENT)
	h.Ehsize = uint16(binary.Size(h))
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, &h)
	return b.Bytes()
}

func FuzzNewSymbolizer(f *testing.F) {
	f.Add(bareELF())
	f.Add(bareELF()[:20])
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		s, err := NewSymbolizer(ef)
		if err != nil {
			return
		}
		for _, pc := range []uint64{0, 0x400000, 0x401000, ^uint64(0)} {
			s.Describe(pc)
		}
	})
}
