package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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
// host run on a writable tree cannot show) match what Linux returns, as
// recorded in testdata/run/fserrors/want.txt.
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
