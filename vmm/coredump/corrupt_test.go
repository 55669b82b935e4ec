package coredump

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
)

// smallDump returns the bytes of a valid dump of a 4 MiB guest.
func smallDump(t testing.TB) []byte {
	t.Helper()
	path, _, _, _, _ := writeTestDump(t, 4<<20)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layout finds the file offsets tests poke at in a dump written by Write.
type layout struct {
	notes   uint64 // first note header
	vmmDesc uint64 // VMM note desc
	vmmHdr  uint64 // VMM note header
	load1   uint64 // phdr of the first PT_LOAD
}

func findLayout(t testing.TB, b []byte) layout {
	t.Helper()
	l := layout{load1: ehdrSize + phdrSize}
	l.notes = le.Uint64(b[ehdrSize+8:])
	name := append([]byte(NoteName), 0)
	i := bytes.Index(b[l.notes:], name)
	if i < 0 {
		t.Fatal("no VMM note")
	}
	l.vmmHdr = l.notes + uint64(i) - nhdrSize
	l.vmmDesc = l.notes + uint64(i) + 4
	return l
}

func TestOpenCorrupt(t *testing.T) {
	good := smallDump(t)
	l := findLayout(t, good)
	size := uint64(len(good))
	segs := func() []Segment {
		d, err := parse(good)
		if err != nil {
			t.Fatalf("parse(good): %v", err)
		}
		return d.Segments()
	}()
	lastLoadEnd := segs[1].FileOff + segs[1].Size

	goBinary, err := os.Executable() // the test binary: an ELF, not a core
	if err != nil {
		t.Fatal(err)
	}

	put32 := func(off uint64, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[off:], v); return b }
	}
	put64 := func(off uint64, v uint64) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint64(b[off:], v); return b }
	}
	cut := func(n uint64) func([]byte) []byte { return func(b []byte) []byte { return b[:n] } }

	tests := []struct {
		name  string
		file  string              // path of an existing file to open instead
		edit  func([]byte) []byte // applied to a copy of good
		class error
		msg   string
	}{
		{name: "empty", edit: cut(0), class: ErrTruncated, msg: "file is 0 bytes, shorter than the 64-byte ELF header"},
		{name: "10 bytes", edit: cut(10), class: ErrTruncated, msg: "file is 10 bytes"},
		{name: "text", edit: func([]byte) []byte {
			return []byte(strings.Repeat("this is not an ELF file, it is a text file\n", 4))
		}, class: ErrNotELF, msg: "magic is 74 68 69 73"},
		{name: "/bin/true", file: "/bin/true", class: ErrNotCore, msg: "want ET_CORE: not a core file"},
		{name: "go test binary", file: goBinary, class: ErrNotCore, msg: "want ET_CORE: not a core file"},
		{name: "ELFCLASS32", edit: func(b []byte) []byte { b[4] = 1; return b }, class: ErrNotCore, msg: "ELF class is ELFCLASS32"},
		{name: "big endian", edit: func(b []byte) []byte { b[5] = 2; return b }, class: ErrNotCore, msg: "ELFDATA2MSB"},
		{name: "aarch64", edit: func(b []byte) []byte { le.PutUint16(b[0x12:], 183); return b }, class: ErrNotCore, msg: "ELF machine is EM_AARCH64"},
		{name: "phentsize", edit: func(b []byte) []byte { le.PutUint16(b[0x36:], 32); return b }, class: ErrCorrupt, msg: "e_phentsize is 32"},
		{name: "phnum 0", edit: func(b []byte) []byte { le.PutUint16(b[0x38:], 0); return b }, class: ErrCorrupt, msg: "no program headers"},
		{name: "phnum huge", edit: func(b []byte) []byte { le.PutUint16(b[0x38:], 0xfff0); return b }, class: ErrCorrupt, msg: "program header 3 has type PT_SHLIB"},
		{name: "phnum past EOF", edit: func(b []byte) []byte { le.PutUint16(b[0x38:], 0xfff0); return b[:segs[0].FileOff] }, class: ErrTruncated, msg: "program header table"},
		{name: "phoff past EOF", edit: put64(0x20, size), class: ErrTruncated, msg: "program header table"},
		{name: "phoff wraps", edit: put64(0x20, ^uint64(0)-8), class: ErrTruncated, msg: "program header table"},
		{name: "truncated in header", edit: cut(40), class: ErrTruncated, msg: "shorter than the 64-byte ELF header"},
		{name: "truncated in phdrs", edit: cut(ehdrSize + phdrSize + 10), class: ErrTruncated, msg: "program header table"},
		{name: "truncated in notes", edit: cut(l.vmmDesc + 8), class: ErrTruncated, msg: "program header 0 (PT_NOTE)"},
		{name: "truncated in RAM", edit: cut(lastLoadEnd - 3*pageSize), class: ErrTruncated, msg: "program header 2 (PT_LOAD)"},
		{name: "truncated at first PT_LOAD", edit: cut(segs[0].FileOff), class: ErrTruncated, msg: "program header 1 (PT_LOAD)"},
		{name: "PT_LOAD offset past EOF", edit: put64(l.load1+8, size), class: ErrTruncated, msg: "ends past end of file"},
		{name: "PT_LOAD filesz wraps", edit: put64(l.load1+32, ^uint64(0)), class: ErrTruncated, msg: "ends past end of file"},
		{name: "PT_LOAD memsz differs", edit: put64(l.load1+40, 1<<40), class: ErrCorrupt, msg: "p_filesz 0x9f000 != p_memsz"},
		{name: "PT_LOAD paddr not RAM", edit: func(b []byte) []byte {
			le.PutUint64(b[l.load1+24:], firmware.LowHoleBase)
			return b
		}, class: ErrCorrupt, msg: "is not a RAM range of the dump's memory map"},
		{name: "PT_LOAD paddr wraps", edit: put64(l.load1+24, ^uint64(0)-4096), class: ErrCorrupt, msg: "wraps past 2^64"},
		{name: "PT_LOAD missing", edit: func(b []byte) []byte { le.PutUint16(b[0x38:], 2); return b }, class: ErrCorrupt, msg: "1 PT_LOAD segments for 2 RAM ranges"},
		{name: "no PT_NOTE", edit: put32(ehdrSize, 1 /* PT_LOAD */), class: ErrNotVMMDump, msg: "no PT_NOTE segment"},
		{name: "PT_NOTE misaligned", edit: put64(ehdrSize+8, l.notes+1), class: ErrCorrupt, msg: "not 4-byte aligned"},
		{name: "note descsz overflows", edit: put32(l.notes+4, 0xffffffff), class: ErrCorrupt, msg: "note descsz 0xffffffff runs past the end of the note segment"},
		{name: "note namesz overflows", edit: put32(l.notes, 0xfffffff0), class: ErrCorrupt, msg: "note namesz 0xfffffff0 runs past"},
		{name: "note name not NUL terminated", edit: func(b []byte) []byte { b[l.notes+nhdrSize+4] = 'X'; return b }, class: ErrCorrupt, msg: "not NUL terminated"},
		{name: "note header cut", edit: func(b []byte) []byte {
			le.PutUint64(b[ehdrSize+32:], l.vmmHdr-l.notes+5) // PT_NOTE filesz ends 5 bytes into the VMM note header
			return b
		}, class: ErrCorrupt, msg: "note header needs 12 bytes, only 5 left"},
		{name: "prstatus size", edit: put32(l.notes+4, 100), class: ErrCorrupt, msg: "NT_PRSTATUS descsz is 100"},
		{name: "missing VMM note", edit: func(b []byte) []byte { b[l.vmmHdr+nhdrSize] = 'X'; return b }, class: ErrNotVMMDump,
			msg: "core file has no VMM note: not written by vmm boot --dump"},
		{name: "VMM note version", edit: put32(l.vmmDesc, 2), class: ErrCorrupt, msg: "VMM note version is 2; this reader knows version 1"},
		{name: "VMM note flags", edit: put32(l.vmmDesc+4, 6), class: ErrCorrupt, msg: "unknown bits"},
		{name: "VMM note too many ranges", edit: put32(l.vmmDesc+8, 1<<30), class: ErrCorrupt, msg: "memory map ranges, more than"},
		{name: "VMM note ranges past desc", edit: put32(l.vmmDesc+8, 100), class: ErrCorrupt, msg: "VMM note fields need"},
		{name: "VMM note vCPU count", edit: put32(l.vmmDesc+16, 3), class: ErrCorrupt, msg: "VMM note says 3 vCPUs, but there are 2 NT_PRSTATUS notes"},
		{name: "VMM note short desc", edit: put32(l.vmmHdr+4, 20), class: ErrCorrupt, msg: "VMM note descsz is 20"},
		{name: "map overlap", edit: put64(l.vmmDesc+vmmHeaderSize+vmmRangeSize, 0x1000), class: ErrCorrupt, msg: "memory map range 1 at 0x1000 overlaps"},
		{name: "map range empty", edit: put64(l.vmmDesc+vmmHeaderSize+8, 0), class: ErrCorrupt, msg: "memory map range 0 at 0x0 is empty"},
		{name: "map range wraps", edit: put64(l.vmmDesc+vmmHeaderSize+3*vmmRangeSize+8, ^uint64(0)), class: ErrCorrupt, msg: "wraps past 2^64"},
		{name: "duplicate VMM note", edit: func(b []byte) []byte {
			copy(b[l.load1:], b[ehdrSize:ehdrSize+phdrSize]) // a second PT_NOTE over the same notes
			return b
		}, class: ErrCorrupt, msg: "second VMM note (first at"},
		{name: "pr_pid 0", edit: put32(l.notes+nhdrSize+8+32, 0), class: ErrCorrupt, msg: "pr_pid is 0"},
		{name: "selector wide", edit: put64(l.notes+nhdrSize+8+112+17*8, 1<<20), class: ErrCorrupt, msg: "cs selector is 0x100000"},
		{name: "QEMU version", edit: put32(l.notes+2*(nhdrSize+8+prstatusSize)+nhdrSize+8, 9), class: ErrCorrupt, msg: "QEMU note version is 9"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.file
			if path == "" {
				path = filepath.Join(dir, strings.ReplaceAll(tt.name, "/", "_"))
				if err := os.WriteFile(path, tt.edit(bytes.Clone(good)), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if _, err := os.Stat(path); err != nil {
				t.Skipf("%s: %v", path, err)
			}
			d, err := Open(path)
			if err == nil {
				d.Close()
				t.Fatalf("Open succeeded, want %v", tt.class)
			}
			if !errors.Is(err, tt.class) {
				t.Errorf("error %q is not %v", err, tt.class)
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), "file offset 0x") {
				t.Errorf("error %q is not a FormatError with a file offset", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestOpenNotRegular(t *testing.T) {
	for _, p := range []string{t.TempDir(), "/dev/null", filepath.Join(t.TempDir(), "missing")} {
		if d, err := Open(p); err == nil {
			d.Close()
			t.Errorf("Open(%s) succeeded", p)
		}
	}
}

// TestGoBuiltBinary opens a freshly built trivial Go program, the case of
// "an ELF from something else" without relying on /bin/true.
func TestGoBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	cmd := exec.Command(goTool, "build", "-o", bin, src)
	cmd.Env = append(os.Environ(), "GO111MODULE=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("go build: %v\n%s", err, out)
	}
	_, err = Open(bin)
	if !errors.Is(err, ErrNotCore) || !strings.Contains(err.Error(), "ELF type is ET_EXEC, want ET_CORE") {
		t.Errorf("Open(go binary) = %v", err)
	}
}

// TestOpenCorruptHandlerThreads: a handler thread must name a vCPU of the
// dump, at most once.
func TestOpenCorruptHandlerThreads(t *testing.T) {
	m, ram, _ := testGuest(t, 4<<20)
	vs := testVCPUs()
	for i := range vs {
		h := vs[i]
		vs[i].Handler = &h
	}
	path := filepath.Join(t.TempDir(), "h.core")
	if _, err := Write(path, m, ram, vs, testInfo()); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parse(good); err != nil {
		t.Fatalf("parse(good): %v", err)
	}
	const prNote = nhdrSize + 8 + prstatusSize                        // "CORE\0" padded to 8
	pidAt := findLayout(t, good).notes + 3*prNote + nhdrSize + 8 + 32 // vCPU 1's handler
	if got := le.Uint32(good[pidAt:]); got != HandlerPIDBase+2 {
		t.Fatalf("pr_pid at %#x is %d, want vCPU 1's handler %d", pidAt, got, HandlerPIDBase+2)
	}
	for _, tc := range []struct {
		pid  uint32
		want string
	}{
		{HandlerPIDBase + 9, "names no vCPU"},
		{HandlerPIDBase + 1, "second handler"},
	} {
		b := bytes.Clone(good)
		le.PutUint32(b[pidAt:], tc.pid)
		_, err := parse(b)
		var fe *FormatError
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(fmt.Sprint(err), tc.want) || !errors.As(err, &fe) {
			t.Errorf("pid %d: %v, want ErrCorrupt %q", tc.pid, err, tc.want)
		}
	}
}
