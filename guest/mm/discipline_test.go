package mm

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoHeapEscapes compiles the package with -gcflags=-m and fails on any
// heap escape in non-test files (leaking params and inlining are fine).
func TestNoHeapEscapes(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	cmd := exec.Command(goBin, "build", "-gcflags=-m", ".")
	outb, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, outb)
	}
	sc := bufio.NewScanner(bytes.NewReader(outb))
	lines := 0
	for sc.Scan() {
		l := sc.Text()
		lines++
		file, _, _ := strings.Cut(l, ":")
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		if strings.Contains(l, "escapes to heap") || strings.Contains(l, "moved to heap") {
			t.Errorf("heap allocation in guest code: %s", l)
		}
	}
	if lines < 10 {
		t.Errorf("suspiciously little -m output (%d lines)", lines)
	}
}

// TestGuestImports: non-test files import only unsafe, sync/atomic and
// math/bits, and unsafe only in *_unsafe.go files.
func TestGuestImports(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(src), "\n") {
			l = strings.TrimSpace(l)
			if !strings.HasPrefix(l, "import") && !strings.HasPrefix(l, "\"") {
				continue
			}
			for _, imp := range []string{"\"unsafe\"", "\"sync/atomic\"", "\"math/bits\""} {
				l = strings.ReplaceAll(l, imp, "")
			}
			if strings.Contains(l, "\"") {
				t.Errorf("%s: forbidden import line %q", f, l)
			}
		}
		if bytes.Contains(src, []byte("\"unsafe\"")) && !strings.HasSuffix(f, "_unsafe.go") {
			t.Errorf("%s imports unsafe but is not a *_unsafe.go file", f)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	e := simpleEnv(t, 4096)
	b := e.b
	var out [8]Violation
	var frame PhysFrame
	n := testing.AllocsPerRun(100, func() {
		tok := b.Lock()
		f, err := b.Alloc(1, &tok)
		if err != ErrNone {
			panic(err)
		}
		frame = f
		if err := b.Free(f, 1, &tok); err != ErrNone {
			panic(err)
		}
		b.Unlock(&tok)
	})
	if n != 0 {
		t.Errorf("Alloc/Free allocate %v times", n)
	}
	_ = frame
	n = testing.AllocsPerRun(10, func() {
		if b.Check(out[:]) != 0 {
			panic("violations")
		}
	})
	if n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
	n = testing.AllocsPerRun(10, func() {
		ParseTraceLine([]byte("001,4295.108630,a,1158632,0\n"))
	})
	if n != 0 {
		t.Errorf("ParseTraceLine allocates %v times", n)
	}
}
