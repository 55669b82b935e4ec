package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/coredump"
	"github.com/vmm-dev/vmm/vmm/inspect"
	"github.com/vmm-dev/vmm/vmm/inspect/inspecttest"
)

// specials makes a FIFO, a directory and symlinks to a device and to
// nothing in a temp dir.
func specials(t *testing.T) (fifo, dir, linkDev, dangling string) {
	t.Helper()
	d := t.TempDir()
	fifo, dir = filepath.Join(d, "fifo"), filepath.Join(d, "dir")
	linkDev, dangling = filepath.Join(d, "null-link"), filepath.Join(d, "dangling")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(dir, 0o755)
	os.Symlink("/dev/null", linkDev)
	os.Symlink(filepath.Join(d, "missing"), dangling)
	return
}

func modes(paths ...string) []os.FileMode {
	var m []os.FileMode
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			m = append(m, 0)
			continue
		}
		m = append(m, fi.Mode())
	}
	return m
}

// wantUsage checks a one-line usage error that mentions want.
func wantUsage(t *testing.T, args []string, want string) {
	t.Helper()
	st, out, errs := runCLI(args...)
	if st != vmm.StatusUsage || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, want) {
		t.Errorf("%q: status %d, stdout %q, stderr %q; want status %d and one line with %q", args, st, out, errs, vmm.StatusUsage, want)
	}
}

// TestBootRefusesSpecialFiles: device, FIFO and directory arguments are
// refused before any VM exists, without blocking and without touching
// them. None of this needs KVM.
func TestBootRefusesSpecialFiles(t *testing.T) {
	k := guestPath(t)
	fifo, dir, linkDev, dangling := specials(t)
	all := []string{"/dev/null", "/dev/zero", fifo, dir, linkDev, dangling}
	before := modes(all...)
	for _, p := range []string{"/dev/null", fifo, dir, linkDev, dangling, filepath.Join(dir, "missing", "x.core")} {
		wantUsage(t, []string{"boot", "--kernel", k, "--dump", p}, "--dump: ")
	}
	for _, p := range []string{fifo, "/dev/zero", dir} {
		wantUsage(t, []string{"boot", "--kernel", p}, "not a regular file")
		wantUsage(t, []string{"boot", "--kernel", k, "--trace", p}, "not a regular file")
		wantUsage(t, []string{"bench", "--kernel", p}, "not a regular file")
		wantUsage(t, []string{"bench", "--floors", "--kernel", p}, "not a regular file")
	}
	if after := modes(all...); !slicesEqual(before, after) {
		t.Errorf("special files changed: %v -> %v", before, after)
	}
	if ents, _ := os.ReadDir(filepath.Dir(fifo)); len(ents) != 4 {
		t.Errorf("the directory holds %d entries, want the 4 made", len(ents))
	}
}

func slicesEqual(a, b []os.FileMode) bool {
	return len(a) == len(b) && string(fmtModes(a)) == string(fmtModes(b))
}

func fmtModes(m []os.FileMode) []byte {
	var b []byte
	for _, x := range m {
		b = append(b, x.String()...)
		b = append(b, ' ')
	}
	return b
}

// TestBootInputSizeCaps: sizes are checked before reading, against guest
// RAM; a gzip trace is bounded after decompression too.
func TestBootInputSizeCaps(t *testing.T) {
	k := guestPath(t)
	d := t.TempDir()
	big := filepath.Join(d, "big.elf")
	f, _ := os.Create(big)
	f.Truncate(maxKernel + 1) // sparse: costs nothing
	f.Close()
	wantUsage(t, []string{"boot", "--kernel", big}, "too large")
	wantUsage(t, []string{"boot", "--mem", "8M", "--kernel", big}, "at most 8388608")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	line := []byte("0,0.0,a,1,0\n")
	for n := 0; n <= 9<<20; n += len(line) {
		zw.Write(line)
	}
	zw.Close()
	bomb := filepath.Join(d, "bomb.csv.gz")
	os.WriteFile(bomb, gz.Bytes(), 0o644)
	wantUsage(t, []string{"boot", "--mem", "8M", "--kernel", k, "--trace", bomb}, "larger than 8 MiB")
}

// TestBootRefusesCraftedTrace: a line naming an impossible frame (here
// 2^64-1, which once made the replay free frame 0) or order, or a line
// that is not a trace record, is refused with its line number.
func TestBootRefusesCraftedTrace(t *testing.T) {
	k := guestPath(t)
	d := t.TempDir()
	for name, c := range map[string]struct{ text, want string }{
		"pfn":       {"# header\n0,0.0,f,18446744073709551615,0\n", "line 2"},
		"order":     {"0,0.0,a,5,11\n", "order 11 out of range"},
		"malformed": {"0,0.0,a,5,1\nhello\n", "line 2 \"hello\": not a page-allocation trace"},
	} {
		p := filepath.Join(d, name+".csv")
		os.WriteFile(p, []byte(c.text), 0o644)
		wantUsage(t, []string{"boot", "--kernel", k, "--trace", p}, c.want)
	}
}

// TestInspectRefusesSpecialFiles: a FIFO or device as the dump is refused
// without blocking; a special --map target is refused before the dump is
// read, and left as it was.
func TestInspectRefusesSpecialFiles(t *testing.T) {
	fifo, dir, linkDev, _ := specials(t)
	for _, p := range []string{fifo, "/dev/zero", dir} {
		st, _, errs := runInspect(p)
		if st != vmm.StatusVMMError || !strings.Contains(errs, "not a regular file") {
			t.Errorf("inspect %s: status %d, %q", p, st, errs)
		}
	}
	before := modes("/dev/null", fifo, dir, linkDev)
	for _, p := range []string{"/dev/null", fifo, dir, linkDev} {
		st, _, errs := runInspect("--map", p, "/nonexistent.core")
		if st != vmm.StatusUsage || !strings.Contains(errs, "--map: ") {
			t.Errorf("--map %s: status %d, %q", p, st, errs)
		}
	}
	if after := modes("/dev/null", fifo, dir, linkDev); !slicesEqual(before, after) {
		t.Errorf("special files changed: %v -> %v", before, after)
	}
}

// TestInspectDumpShrinksUnderReader: the dump is truncated after it was
// opened and mapped (as when another `vmm boot --dump` rewrites it); every
// kind of inspection ends in an error, no SIGBUS, and an old --map file is
// left as it was.
func TestInspectDumpShrinksUnderReader(t *testing.T) {
	src := inspecttest.Shared(t, 128<<20)
	old := filepath.Join(t.TempDir(), "map.png")
	os.WriteFile(old, []byte("the previous map"), 0o644)
	for _, f := range []inspectFlags{{}, {json: true}, {frame: "0x3000000"}, {mapOut: old}} {
		d := inspecttest.Copy(t, src)
		in, err := inspect.Open(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(d.Path, 8192); err != nil {
			t.Fatal(err)
		}
		f.path = d.Path
		st, err := inspectOpened(in, &f, 0x3000000, &bytes.Buffer{})
		in.Close()
		if st != vmm.StatusVMMError || !errors.Is(err, coredump.ErrChanged) {
			t.Errorf("%+v: status %d, err %v; want %d and ErrChanged", f, st, err, vmm.StatusVMMError)
		}
	}
	if b, _ := os.ReadFile(old); string(b) != "the previous map" {
		t.Errorf("old map overwritten: %q", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(old)); len(ents) != 1 {
		t.Errorf("%d files beside the map, want 1", len(ents))
	}
}

// TestBootDumpAtUnknownLabel: a --dump-at label the guest never reaches is
// an error that lists the labels it did reach, and the file is untouched.
func TestBootDumpAtUnknownLabel(t *testing.T) {
	inspecttest.SkipWithoutKVM(t)
	p := filepath.Join(t.TempDir(), "guest.core")
	os.WriteFile(p, []byte("the previous dump"), 0o644)
	st, _, errs := runCLI("boot", "--kernel", guestPath(t), "--workload", "paging", "--dump", p, "--dump-at", "no-such-label")
	if st != vmm.StatusVMMError || !strings.Contains(errs, `checkpoints it reached: "paging-mapped", "paging-unmapped", "paging", "exit"`) ||
		!strings.Contains(errs, "nothing written") {
		t.Errorf("status %d (want %d), stderr:\n%s", st, vmm.StatusVMMError, errs)
	}
	if b, _ := os.ReadFile(p); string(b) != "the previous dump" {
		t.Errorf("dump file now holds %.40q", b)
	}
	// The final checkpoint is a label too: --dump-at exit is the exit dump.
	if st, _, errs := runCLI("boot", "--kernel", guestPath(t), "--workload", "hello", "--dump", p, "--dump-at", "exit"); st != 0 {
		t.Errorf("--dump-at exit: status %d: %s", st, errs)
	}
	if b, _ := os.ReadFile(p); !bytes.HasPrefix(b, []byte("\x7fELF")) {
		t.Errorf("--dump-at exit wrote no core: %.40q", b)
	}
	// The labels come from --workload help.
	_, out, _ := runCLI("boot", "--kernel", guestPath(t), "--workload", "help")
	if !strings.Contains(out, "checkpoints: paging-mapped paging-unmapped paging\n") {
		t.Errorf("--workload help lacks paging's checkpoints:\n%s", out)
	}
}

// TestBootDumpFailureKeepsOldFile: a dump that fails part way (the
// file-size limit makes the write fail with EFBIG) makes the run exit with
// the VMM-error status and leaves the previous dump as it was. The boot
// runs in a child process so that the limit applies to nothing else.
func TestBootDumpFailureKeepsOldFile(t *testing.T) {
	if p := os.Getenv("VMM_TEST_DUMP_FSIZE"); p != "" {
		signal.Ignore(syscall.SIGXFSZ) // get EFBIG instead of being killed
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1 << 16, Max: 1 << 16}); err != nil {
			t.Fatal(err)
		}
		st, _, errs := runCLI("boot", "--kernel", os.Getenv("VMM_TEST_KERNEL"), "--workload", "hello", "--dump", p)
		t.Logf("status %d\n%s", st, errs)
		if st != vmm.StatusVMMError || !strings.Contains(errs, "dump "+p+" failed") {
			t.Fatalf("status %d, want %d", st, vmm.StatusVMMError)
		}
		return
	}
	inspecttest.SkipWithoutKVM(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "guest.core")
	os.WriteFile(p, []byte("the previous dump"), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^TestBootDumpFailureKeepsOldFile$", "-test.v")
	cmd.Env = append(os.Environ(), "VMM_TEST_DUMP_FSIZE="+p, "VMM_TEST_KERNEL="+guestPath(t))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(p); string(b) != "the previous dump" {
		t.Errorf("previous dump now holds %.40q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the directory, want only the previous dump", len(ents))
	}
}

// TestBootDumpSync: --dump-sync writes the same kind of dump (and replaces
// the old one); without --dump it is a usage error that boots nothing.
func TestBootDumpSync(t *testing.T) {
	inspecttest.SkipWithoutKVM(t)
	p := filepath.Join(t.TempDir(), "guest.core")
	os.WriteFile(p, []byte("the previous dump"), 0o644)
	if st, _, errs := runCLI("boot", "--kernel", guestPath(t), "--workload", "hello", "--dump", p, "--dump-sync"); st != 0 {
		t.Fatalf("--dump-sync: status %d: %s", st, errs)
	}
	if b, _ := os.ReadFile(p); !bytes.HasPrefix(b, []byte("\x7fELF")) {
		t.Errorf("--dump-sync wrote no core: %.40q", b)
	}
	if st, _, errs := runCLI("boot", "--kernel", guestPath(t), "--workload", "hello", "--dump-sync"); st != vmm.StatusUsage || !strings.Contains(errs, "--dump-sync needs --dump FILE") {
		t.Errorf("--dump-sync without --dump: status %d, stderr:\n%s", st, errs)
	}
}
