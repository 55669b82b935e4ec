package inspect_test

import (
	"bytes"
	"errors"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/coredump"
	"github.com/vmm-dev/vmm/vmm/inspect"
	"github.com/vmm-dev/vmm/vmm/inspect/inspecttest"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// TestOpenRejectsGarbage: files that are not dumps give a FormatError of
// the right class, never a panic.
func TestOpenRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path string
		class      error
	}{
		{"empty", write("empty", nil), coredump.ErrTruncated},
		{"text", write("text", bytes.Repeat([]byte("not an ELF core file\n"), 20)), coredump.ErrNotELF},
		{"ELF executable", self, coredump.ErrNotCore},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := inspect.Open(c.path)
			var fe *coredump.FormatError
			if !errors.As(err, &fe) || !errors.Is(err, c.class) {
				t.Fatalf("Open = %v, want a FormatError of class %v", err, c.class)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// TestTruncatedDump cuts a real dump at several points: every cut is a
// clean error from Open (or, past the headers, from Verify).
func TestTruncatedDump(t *testing.T) {
	src := inspecttest.Shared(t, testMem)
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{3, 63, 64, 200, 4096, 1 << 20, fi.Size() / 2, fi.Size() - 1} {
		d := inspecttest.Copy(t, src)
		if err := os.Truncate(d.Path, size); err != nil {
			t.Fatal(err)
		}
		in, err := inspect.Open(d.Path)
		if err == nil {
			in.Close()
			t.Fatalf("truncated to %d bytes: Open succeeded", size)
		}
		if !errors.Is(err, coredump.ErrTruncated) && !errors.Is(err, coredump.ErrNotELF) && !errors.Is(err, coredump.ErrCorrupt) {
			t.Errorf("truncated to %d bytes: %v", size, err)
		}
	}
}

// TestDamagedMetadata scribbles random bytes over the allocator state and a
// run of records: Verify reports violations and Frame and Map still work.
func TestDamagedMetadata(t *testing.T) {
	d := inspecttest.Copy(t, inspecttest.Shared(t, testMem))
	r := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, max(64*mm.FrameMetaSize, mm.StateSize))
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	d.Write(d.Reg.StatePhys, junk[:mm.StateSize])
	d.Write(d.Rec(0x300, 0), junk[:64*mm.FrameMetaSize])
	in, err := inspect.Open(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rep, err := in.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if rep.TotalViolations == 0 {
		t.Fatal("no violations on damaged metadata")
	}
	for pfn := uint64(0x300); pfn < 0x340; pfn++ {
		if _, err := in.Frame(pfn * mm.PageSize); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.Map(&bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
}

// TestFrame decodes a free head and a crafted mapping and page table.
func TestFrame(t *testing.T) {
	d := inspecttest.Copy(t, inspecttest.Shared(t, testMem))
	s := spareFrames(t, d)
	root := d.BuildSpace([4]uint64(s[:4]), []inspecttest.Leaf{{PFN: s[4], Writable: true, User: true}})
	in, err := inspect.Open(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.ExtraRoots = []uint64{root}

	head := d.List(mm.MaxOrder)[0]
	fi, err := in.Frame(head*mm.PageSize + 123)
	if err != nil {
		t.Fatal(err)
	}
	if fi.PFN != head || fi.FlagNames != "FREE" || fi.Order != mm.MaxOrder || fi.Prev != nil {
		t.Errorf("free head: %+v", fi)
	}
	// The identity map covers every RAM frame; it is not a mapping.
	if !fi.IdentityMapped || fi.Identity == nil || fi.Identity.VA != firmware.PhysToVirt(head*mm.PageSize) || fi.MapCount != 0 || len(fi.Mappings) != 0 {
		t.Errorf("free head: identity %v %+v, %d mappings %+v; want identity only", fi.IdentityMapped, fi.Identity, fi.MapCount, fi.Mappings)
	}
	fi, err = in.Frame(s[4] * mm.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Tail || fi.BlockHead == nil || *fi.BlockHead != s[0]-1 || fi.MapCount != 1 ||
		fi.Mappings[0].VA != 0x400000 || !fi.Mappings[0].Writable || fi.Mappings[0].Root != root ||
		fi.Mappings[0].Space != "extra" || !fi.IdentityMapped {
		t.Errorf("mapped tail: %+v", fi)
	}
	var text strings.Builder
	fi.WriteText(&text)
	for _, want := range []string{"flags:        0x200 FREE", "next:         none", "order:        tail (block head",
		"va 0x0000000000400000 writable user", "mappings:     1 (outside the identity map)", "identity map: va 0x"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	fi, err = in.Frame(s[2] * mm.PageSize)
	if err != nil || len(fi.Tables) == 0 || fi.Tables[0].Level != 2 {
		t.Errorf("PD frame: %+v, %v", fi.Tables, err)
	}
	if _, err := in.Frame(d.Reg.FrameCount * mm.PageSize); err == nil {
		t.Error("Frame past the array succeeded")
	}
}

// TestMap renders a real dump and decodes the PNG back.
func TestMap(t *testing.T) {
	in, err := inspect.Open(inspecttest.Shared(t, testMem))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	r, err := in.Map(&buf)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	frames := in.Info.Reg.FrameCount
	if img.Bounds().Dx() != r.Width || img.Bounds().Dy() != r.Height || uint64(r.Width*r.Height) < frames || r.Width > 1200 {
		t.Fatalf("image %v for %d frames", img.Bounds(), frames)
	}
	if os.Getenv("INSPECT_MAP_OUT") != "" {
		os.WriteFile(os.Getenv("INSPECT_MAP_OUT"), buf.Bytes(), 0o644)
	}
}

// FuzzInspect runs Open, Verify, Frame and Map on mutated dumps: none may
// panic. The seed is a real 16 MiB guest's dump (skipped without KVM): the
// kernel image now ends past 6 MiB, so an 8 MiB guest has no room for the
// per-CPU area at the next 2 MiB boundary.
func FuzzInspect(f *testing.F) {
	if inspecttest.HaveKVM() {
		p := filepath.Join(f.TempDir(), "seed.core")
		inspecttest.Boot(f, 16<<20, "paging", p)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "f.core")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		in, err := inspect.Open(p)
		if err != nil {
			return
		}
		defer in.Close()
		in.Verify()
		in.Frame(0x300000)
		in.Map(&bytes.Buffer{})
	})
}

// TestNoRegistration: a dump of a guest that never registered its metadata
// opens, but Verify, Frame and Map say why they cannot work.
func TestNoRegistration(t *testing.T) {
	m, err := memmap.Build(4 * memmap.MiB)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "noreg.core")
	ram := make([]byte, m.TotalRAM())
	if _, err := coredump.Write(p, m, ram, []coredump.VCPU{{}}, coredump.Info{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	in, err := inspect.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := in.Verify(); !errors.Is(err, inspect.ErrNoRegistration) {
		t.Errorf("Verify: %v", err)
	}
	if _, err := in.Frame(0); !errors.Is(err, inspect.ErrNoRegistration) {
		t.Errorf("Frame: %v", err)
	}
	if _, err := in.Map(&bytes.Buffer{}); !errors.Is(err, inspect.ErrNoRegistration) {
		t.Errorf("Map: %v", err)
	}
}
