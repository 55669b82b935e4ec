package coredump

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestGuardDumpShrinksUnderReader: the file is truncated while mapped; a
// read past the new end is an ErrChanged error, not a SIGBUS.
func TestGuardDumpShrinksUnderReader(t *testing.T) {
	path, _, _, touched, _ := writeTestDump(t, 16<<20)
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	last := touched[len(touched)-1]
	read := func() error {
		b, err := d.Slice(last, pageSize)
		if err != nil {
			return err
		}
		if b[0] != 0xA5 {
			t.Errorf("byte at %#x is %#x", last, b[0])
		}
		return nil
	}
	if err := d.Guard(read); err != nil {
		t.Fatalf("intact file: %v", err)
	}
	if err := os.Truncate(path, pageSize); err != nil {
		t.Fatal(err)
	}
	err = d.Guard(read)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("after truncation: %v, want ErrChanged", err)
	}
	t.Log(err)
	// The guard is off again after Guard returns, and other panics pass through.
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v, want the original panic", r)
		}
	}()
	d.Guard(func() error { panic("boom") })
}

// TestWriteFailureKeepsOldFile: a write that fails part way (here the
// file-size limit makes it fail with EFBIG) leaves the previous dump as it
// was and no temporary file. It runs in a child process so that the limit
// applies to nothing else.
func TestWriteFailureKeepsOldFile(t *testing.T) {
	if p := os.Getenv("COREDUMP_TEST_FSIZE_PATH"); p != "" {
		signal.Ignore(syscall.SIGXFSZ) // get EFBIG instead of being killed
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1 << 16, Max: 1 << 16}); err != nil {
			t.Fatal(err)
		}
		m, ram, _ := testGuest(t, 16<<20)
		_, err := Write(p, m, ram, testVCPUs(), testInfo())
		if err == nil {
			t.Fatal("Write succeeded over the file-size limit")
		}
		t.Logf("Write: %v", err)
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "guest.core")
	os.WriteFile(path, []byte("the previous dump"), 0o640)
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFailureKeepsOldFile$", "-test.v")
	cmd.Env = append(os.Environ(), "COREDUMP_TEST_FSIZE_PATH="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Write: ") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "the previous dump" {
		t.Fatalf("previous file now holds %q (%v)", b, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the previous dump", len(ents))
	}
}

// TestWriteRefusesSpecialTargets: a device, FIFO or directory is never
// opened for writing, truncated or removed.
func TestWriteRefusesSpecialTargets(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	syscall.Mkfifo(fifo, 0o644)
	m, ram, _ := testGuest(t, 4<<20)
	for _, p := range []string{"/dev/null", fifo, dir} {
		before, _ := os.Lstat(p)
		if _, err := Write(p, m, ram, nil, Info{}); err == nil {
			t.Errorf("Write to %s succeeded", p)
		}
		if after, err := os.Lstat(p); err != nil || after.Mode() != before.Mode() {
			t.Errorf("%s changed: %v", p, err)
		}
	}
	// Reading one does not block either.
	if _, err := Open(fifo); err == nil {
		t.Error("Open of a FIFO succeeded")
	}
}
