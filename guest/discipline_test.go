package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmm-dev/vmm/internal/discipline"
	"github.com/vmm-dev/vmm/internal/guestbuild"
)

var guestRoots = []string{"main.", "github.com/vmm-dev/vmm/guest", "github.com/vmm-dev/vmm/firmware"}

func guestEnv() []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
}

// TestGuestNeverCallsTheRuntimeAllocator disassembles the guest ELF and fails
// if any guest function can reach the allocator, scheduler or write barrier.
func TestGuestNeverCallsTheRuntimeAllocator(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	path, err := guestbuild.Path(t)
	if err != nil {
		t.Fatal(err)
	}
	bad, visited, err := discipline.CheckCalls(path, guestRoots)
	if err != nil {
		t.Fatal(err)
	}
	if visited < 20 {
		t.Fatalf("walked only %d functions: the root prefixes match nothing", visited)
	}
	for _, v := range bad {
		t.Errorf("guest code reaches the runtime: %s", v)
	}
}

// TestGuestHasNoHeapEscapes fails when escape analysis moves anything in
// guest code to the heap.
func TestGuestHasNoHeapEscapes(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	bad, err := discipline.HeapEscapes(guestbuild.RepoRoot(), "./guest/...", "guest/", guestEnv())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range bad {
		t.Errorf("heap escape in guest code: %s", l)
	}
}

// TestDisciplineChecksCatchAllocation proves both checks fail on a guest
// that allocates: a deliberately bad program built the same way.
func TestDisciplineChecksCatchAllocation(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module bad\ngo 1.26\n",
		"main.go": `package main
var sink []byte
//go:noinline
func grow(n int) { sink = make([]byte, n) }
func main() { grow(len(sink) + 1) }
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	elfPath := filepath.Join(dir, "bad.elf")
	cmd := exec.Command("go", "build", "-o", elfPath, ".")
	cmd.Dir, cmd.Env = dir, guestEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	bad, _, err := discipline.CheckCalls(elfPath, []string{"main.grow"})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) == 0 {
		t.Error("CheckCalls missed a call to the allocator")
	}
	esc, err := discipline.HeapEscapes(dir, ".", "", guestEnv())
	if err != nil {
		t.Fatal(err)
	}
	if len(esc) == 0 {
		t.Error("HeapEscapes missed make([]byte, n) escaping to the heap")
	}
}
