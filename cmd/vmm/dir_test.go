package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/internal/kvmtest"
	"github.com/vmm-dev/vmm/vmm"
)

// TestRunRefusesBadDirsBeforeAnyVM: a missing --dir, a file, a tree with a
// FIFO, a device, a symlink out of the tree, and a tree too large for the
// guest RAM each get StatusUsage and their own message, without KVM.
func TestRunRefusesBadDirsBeforeAnyVM(t *testing.T) {
	k := guestPath(t)
	hello := buildProgram(t, "hello")
	tmp := t.TempDir()
	mk := func(name string, fill func(dir string)) string {
		d := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "ok.txt"), []byte("fine\n"), 0o644)
		fill(d)
		return d
	}
	file := filepath.Join(tmp, "plain")
	os.WriteFile(file, []byte("x"), 0o644)
	fifo := mk("fifo", func(d string) {
		if err := syscall.Mkfifo(filepath.Join(d, "sub", "pipe"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	escape := mk("escape", func(d string) {
		if err := os.Symlink(file, filepath.Join(d, "sub", "out")); err != nil {
			t.Fatal(err)
		}
	})
	dotdot := mk("dotdot", func(d string) {
		if err := os.Symlink("../../plain", filepath.Join(d, "sub", "up")); err != nil {
			t.Fatal(err)
		}
	})
	dirlink := mk("dirlink", func(d string) {
		if err := os.Symlink("sub", filepath.Join(d, "loop")); err != nil {
			t.Fatal(err)
		}
	})
	big := mk("big", func(d string) {
		f, err := os.Create(filepath.Join(d, "sub", "huge"))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(40 << 20) // sparse: nothing is read before the size check
		f.Close()
	})
	cases := []struct {
		dir, mem, want string
	}{
		{filepath.Join(tmp, "missing"), "512M", "no such file or directory"},
		{file, "512M", "is not a directory"},
		{fifo, "512M", "sub/pipe is a FIFO; only regular files and directories"},
		{escape, "512M", "is a symlink to " + file + ", outside the tree"},
		{dotdot, "512M", "outside the tree"},
		{dirlink, "512M", "is a symlink to a directory"},
		{big, "64M", "needs more than"},
	}
	for _, c := range cases {
		st, out, errs := runCLI("run", "--kernel", k, "--mem", c.mem, "--dir", c.dir, hello)
		if st != vmm.StatusUsage || out != "" || !strings.Contains(errs, "--dir") || !strings.Contains(errs, c.want) {
			t.Errorf("--dir %s: status %d, stdout %q, stderr %q; want %d and %q", c.dir, st, out, errs, vmm.StatusUsage, c.want)
		}
	}
	st, _, errs := runCLI("run", "--kernel", k, "--dir", mk("plain-tree", func(string) {}), "--cwd", "nope", hello)
	if st != vmm.StatusUsage || !strings.Contains(errs, "--cwd nope is not a directory of the tree") {
		t.Errorf("--cwd nope: status %d, stderr %q", st, errs)
	}
	st, _, errs = runCLI("run", "--kernel", k, "--cwd", "sub", hello)
	if st != vmm.StatusUsage || !strings.Contains(errs, "--cwd needs --dir") {
		t.Errorf("--cwd without --dir: status %d, stderr %q", st, errs)
	}
	// The same large tree fits a larger guest: the refusal was the cap.
	if _, _, err := packDir(big, "/", 256<<20); err != nil {
		t.Errorf("packDir(big) with room: %v", err)
	}
}

// TestRunReadOnlyFileSystemErrors: the errors of a read-only mount (which a
// host run on a writable tree cannot show) match what Linux returned in a
// read-only chroot of the same tree, recorded in
// testdata/run/fserrors/want.txt (see its main.go).
func TestRunReadOnlyFileSystemErrors(t *testing.T) {
	kvmtest.Require(t)
	prog := buildProgram(t, "fserrors")
	want, err := os.ReadFile(filepath.Join("..", "..", "testdata", "run", "fserrors", "want.txt"))
	if err != nil {
		t.Fatal(err)
	}
	st, out, errs := runCLI("run", "--kernel", guestPath(t), "--dir", filepath.Join("..", "..", "testdata", "run", "readfile", "tree"), prog)
	if st != 0 || out != string(want) {
		t.Errorf("status %d, stdout:\n%s\nwant:\n%s\nstderr:\n%s", st, out, want, errs)
	}
}

// TestRunTmpfsEdgeCases: /tmp's answers at its edges (sparse files,
// SEEK_DATA/SEEK_HOLE, bad offsets and pointers, F_SETFL O_APPEND,
// getdents64 in pieces, renames to and from the read-only root) match what
// Linux gave with a tmpfs on /tmp in a read-only chroot, recorded in
// testdata/run/tmpfsedge/want.txt (see its main.go); nothing leaks.
func TestRunTmpfsEdgeCases(t *testing.T) {
	kvmtest.Require(t)
	prog := buildProgram(t, "tmpfsedge")
	want, err := os.ReadFile(filepath.Join("..", "..", "testdata", "run", "tmpfsedge", "want.txt"))
	if err != nil {
		t.Fatal(err)
	}
	st, out, errs := runCLI("run", "--kernel", guestPath(t), prog)
	if st != 0 || out != string(want) || !strings.Contains(errs, " 0 violations;") || !strings.Contains(errs, " 0 frames leaked") {
		t.Errorf("status %d, stdout:\n%s\nwant:\n%s\nstderr:\n%s", st, out, want, errs)
	}
}

// TestRunGuestRefusesBadFSImages: the guest kernel checks the image as
// untrusted input; each corruption ends the run before the program starts
// with the kernel's reason on its console, never a fault inside it.
func TestRunGuestRefusesBadFSImages(t *testing.T) {
	kvmtest.Require(t)
	prog := buildProgram(t, "hello")
	tree := filepath.Join("..", "..", "testdata", "run", "readfile", "tree")
	img, _, err := packDir(tree, "/", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ent := func(i int) int { return firmware.FSHeaderSize + firmware.FSEntrySize*i }
	le := binary.LittleEndian
	// Entry 1 is the root's first child ("empty"), 3 is "sub".
	cases := []struct {
		name, want string
		cwd        uint64
		corrupt    func(b []byte)
	}{
		{"magic", "no header", 0, func(b []byte) { b[0]++ }},
		{"entries", "regions out of place", 0, func(b []byte) { le.PutUint64(b[8:], 1<<30) }},
		{"children", "directory children out of place", 0, func(b []byte) { le.PutUint64(b[ent(0)+24:], 1<<40) }},
		{"cycle", "directory children out of place", 0, func(b []byte) { le.PutUint64(b[ent(3)+16:], 0) }},
		{"parent", "child does not name its directory", 0, func(b []byte) { le.PutUint32(b[ent(2)+4:], 3) }},
		{"data", "file data out of place", 0, func(b []byte) { le.PutUint64(b[ent(2)+24:], 1<<40) }},
		{"name", "entry name out of place", 0, func(b []byte) { le.PutUint32(b[ent(2)+12:], 1<<31) }},
		{"slash", "entry name with / or NUL", 0, func(b []byte) {
			b[le.Uint64(b[16:])+uint64(le.Uint32(b[ent(2)+8:]))] = '/'
		}},
		{"mode", "entry neither file nor directory", 0, func(b []byte) { le.PutUint32(b[ent(2):], 0o020644) }},
		{"cwd", "the working directory is not a directory", 2, func([]byte) {}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := append([]byte(nil), img...)
			c.corrupt(bad)
			f, err := parseRunFlags([]string{"--kernel", guestPath(t), "--timeout", "1m", prog}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var console bytes.Buffer
			cfg, image, err := f.config(io.Discard, io.Discard, &console)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Program, err = runBundle(image, []string{prog}, nil, 0, bad, c.cwd); err != nil {
				t.Fatal(err)
			}
			vm, err := vmm.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Close()
			res := vm.Run()
			if res.ProgramExitStatus != nil || res.Outcome != vmm.OutcomeExit || !strings.Contains(console.String(), "run: bad --dir image: "+c.want) {
				t.Errorf("outcome %s (%s), program status %v; console:\n%s", res.Outcome, res.Reason, res.ProgramExitStatus, console.String())
			}
		})
	}
}
