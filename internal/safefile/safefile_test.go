package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// special returns paths of each kind of non-regular file, in a temp dir.
func special(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	linkDev := filepath.Join(dir, "link-to-null")
	os.Symlink("/dev/null", linkDev)
	linkFIFO := filepath.Join(dir, "link-to-fifo")
	os.Symlink(fifo, linkFIFO)
	return map[string]string{"fifo": fifo, "dir": sub, "chardev": "/dev/null", "zero": "/dev/zero",
		"link-to-dev": linkDev, "link-to-fifo": linkFIFO}
}

// TestReadRegularRefusesSpecialFiles: no FIFO blocks (the test would hang),
// no device is read.
func TestReadRegularRefusesSpecialFiles(t *testing.T) {
	for name, p := range special(t) {
		_, err := ReadRegular(p, 1<<20)
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s (%s): err %v, want ErrNotRegular", name, p, err)
		}
		if f, err := OpenRegular(p); !errors.Is(err, ErrNotRegular) {
			f.Close()
			t.Errorf("OpenRegular %s: err %v", name, err)
		}
	}
}

func TestReadRegularSizeCap(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("0123456789"), 0o644)
	if b, err := ReadRegular(p, 10); err != nil || string(b) != "0123456789" {
		t.Fatalf("at the cap: %q, %v", b, err)
	}
	if _, err := ReadRegular(p, 9); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the cap: %v", err)
	}
	if _, err := ReadRegular(filepath.Join(t.TempDir(), "missing"), 9); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

// TestReadRegularPastStatSize: a file longer than fstat said (procfs
// files say 0) is read whole, and still refused past the cap.
func TestReadRegularPastStatSize(t *testing.T) {
	const p = "/proc/self/status"
	if fi, err := os.Stat(p); err != nil || fi.Size() != 0 {
		t.Skipf("%s: %v, not a zero-size regular file here", p, err)
	}
	b, err := ReadRegular(p, 1<<20)
	if err != nil || !strings.Contains(string(b), "\nVmRSS:") {
		t.Fatalf("%s: %d bytes, %v", p, len(b), err)
	}
	if _, err := ReadRegular(p, 16); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%s over a 16-byte cap: %v", p, err)
	}
}

// TestCreateAtomicRefusesSpecialTargets: nothing is created, and the
// special file is still there.
func TestCreateAtomicRefusesSpecialTargets(t *testing.T) {
	sp := special(t)
	dangling := filepath.Join(t.TempDir(), "dangling")
	os.Symlink("/nonexistent/x", dangling)
	sp["dangling"] = dangling
	for name, p := range sp {
		before, _ := os.Lstat(p)
		if err := CheckTarget(p); !errors.Is(err, ErrNotRegular) {
			t.Errorf("CheckTarget %s: %v, want ErrNotRegular", name, err)
		}
		if f, err := CreateAtomic(p); !errors.Is(err, ErrNotRegular) {
			if f != nil {
				f.Abort()
			}
			t.Errorf("CreateAtomic %s: %v", name, err)
		}
		after, err := os.Lstat(p)
		if err != nil || after.Mode() != before.Mode() {
			t.Errorf("%s changed: %v %v -> %v", name, err, before.Mode(), after)
		}
	}
	if _, err := os.Stat("/dev/null"); err != nil {
		t.Fatalf("/dev/null: %v", err)
	}
}

func onlyEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

// replacing starts replacing dir/out, which holds "old" (mode 0600), with
// data.
func replacing(t *testing.T, data string) (dir, p string, f *File) {
	t.Helper()
	dir = t.TempDir()
	p = filepath.Join(dir, "out")
	os.WriteFile(p, []byte("old"), 0o600)
	f, err := CreateAtomic(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(data)
	return dir, p, f
}

func TestCreateAtomicReplacesOnCommitOnly(t *testing.T) {
	dir, p, f := replacing(t, "new data")
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("target changed before Commit: %q", b)
	}
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("target changed by Abort: %q", b)
	}
	onlyEntries(t, dir, "out")

	f, _ = CreateAtomic(p)
	f.WriteString("new data")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "new data" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after Commit: %q, mode %v (want the old 0600)", b, fi.Mode())
	}
	if err := f.Abort(); err != nil { // after Commit: a no-op
		t.Fatal(err)
	}
	onlyEntries(t, dir, "out")

	// A new file.
	q := filepath.Join(dir, "new")
	f, _ = CreateAtomic(q)
	f.WriteString("x")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	onlyEntries(t, dir, "new", "out")
}

// TestCreateAtomicThroughSymlink replaces the link's target and keeps the
// link.
func TestCreateAtomicThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	os.WriteFile(target, []byte("old"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink("real", link)
	f, err := CreateAtomic(link)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode().Type() != os.ModeSymlink {
		t.Fatalf("link is gone: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Fatalf("target holds %q", b)
	}
	onlyEntries(t, dir, "link", "real")
}

// TestCommitRefusesTargetTurnedDirectory: a target swapped for a directory
// after CreateAtomic is left alone and the temporary file removed.
func TestCommitRefusesTargetTurnedDirectory(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	f, err := CreateAtomic(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(p, 0o755)
	if err := f.Commit(); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Commit: %v", err)
	}
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		t.Fatalf("directory changed: %v", err)
	}
	onlyEntries(t, dir, "out")
}

// TestReplaceSkipsSyncCommitSyncs: Replace renames the whole file over the
// target as Commit does, without an fsync; Commit syncs the file and its
// directory.
func TestReplaceSkipsSyncCommitSyncs(t *testing.T) {
	syncs := 0
	defer func(f func(*os.File) error) { syncFile = f }(syncFile)
	syncFile = func(f *os.File) error { syncs++; return f.Sync() }

	dir, p, f := replacing(t, "replaced")
	if err := f.Replace(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "replaced" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after Replace: %q, mode %v (want the old 0600)", b, fi.Mode())
	}
	if syncs != 0 {
		t.Errorf("Replace synced %d times", syncs)
	}
	if err := f.Commit(); err == nil {
		t.Error("Commit after Replace succeeded")
	}
	onlyEntries(t, dir, "out")

	f, _ = CreateAtomic(p)
	f.WriteString("committed")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "committed" || syncs != 2 {
		t.Fatalf("after Commit: %q with %d syncs (want the file's and the directory's)", b, syncs)
	}

	// A target turned directory is refused by Replace too.
	q := filepath.Join(dir, "gone")
	f, _ = CreateAtomic(q)
	os.Mkdir(q, 0o755)
	if err := f.Replace(); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Replace over a directory: %v", err)
	}
	onlyEntries(t, dir, "gone", "out")
}
