package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/inspect/inspecttest"
)

func TestMain(m *testing.M) {
	// The test binary doubles as vmm for tests that need a real process
	// (signals): VMM_TEST_AS_VMM=1 runs main with the remaining arguments.
	if os.Getenv("VMM_TEST_AS_VMM") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	inspecttest.Cleanup()
	os.Exit(code)
}

// runInspect runs `vmm inspect args...` and returns status, stdout, stderr.
func runInspect(args ...string) (int, string, string) {
	return runCLI(append([]string{"inspect"}, args...)...)
}

func TestInspectClean(t *testing.T) {
	path := inspecttest.Shared(t, 128<<20)
	st, out, errs := runInspect(path)
	if st != 0 || errs != "" {
		t.Fatalf("status %d, stderr %q", st, errs)
	}
	for _, want := range []string{"reason:", "vcpu 0:", "rip 0x", "memory map:", "registration: metadata at", "buddyinfo:", "violations: none"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	st, out, _ = runInspect(path, "--json") // flags after FILE
	var v struct {
		Reason string
		Report struct {
			Frames          uint64
			TotalViolations int `json:"total_violations"`
		}
	}
	if err := json.Unmarshal([]byte(out), &v); st != 0 || err != nil || v.Report.Frames == 0 {
		t.Fatalf("--json: status %d, %v: %s", st, err, out)
	}
}

func TestInspectDamaged(t *testing.T) {
	d := inspecttest.Copy(t, inspecttest.Shared(t, 128<<20))
	h := d.FindFrame(0, func(_ uint64, f uint32, o uint8, _ uint32) bool { return f == mm.FlagFree && o <= mm.MaxOrder })
	d.PutU32(d.Rec(h, mm.OffRefcount), 7)
	st, out, _ := runInspect(d.Path)
	if st != vmm.StatusViolation || !strings.Contains(out, "free-refcount") {
		t.Fatalf("status %d, want %d:\n%s", st, vmm.StatusViolation, out)
	}
}

func TestInspectBadInput(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, bytes.Repeat([]byte("garbage "), 100), 0o644)
	cases := []struct {
		args   []string
		status int
	}{
		{[]string{garbage}, vmm.StatusVMMError},
		{[]string{filepath.Join(t.TempDir(), "missing")}, vmm.StatusVMMError},
		{[]string{"--bogus", garbage}, vmm.StatusUsage},
		{[]string{}, vmm.StatusUsage},
		{[]string{garbage, garbage}, vmm.StatusUsage},
		{[]string{"--frame", "zz", garbage}, vmm.StatusUsage},
	}
	for _, c := range cases {
		st, out, errs := runInspect(c.args...)
		if st != c.status || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "vmm inspect: ") {
			t.Errorf("%q: status %d (want %d), stdout %q, stderr %q", c.args, st, c.status, out, errs)
		}
	}
}

func TestInspectFrameAndMap(t *testing.T) {
	path := inspecttest.Shared(t, 128<<20)
	d := inspecttest.Copy(t, path)
	head := d.List(mm.MaxOrder)[0]
	png1 := filepath.Join(t.TempDir(), "m.png")
	st, out, errs := runInspect("--frame", fmt.Sprintf("%#x", head*mm.PageSize), "--map", png1, path)
	if st != 0 {
		t.Fatalf("status %d: %s", st, errs)
	}
	if !strings.Contains(out, "flags:        0x200 FREE") || !strings.Contains(out, "order:        10") {
		t.Errorf("--frame output:\n%s", out)
	}
	f, err := os.Open(png1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(cfg.Width*cfg.Height) < d.Reg.FrameCount || cfg.Width > 1200 || !strings.Contains(out, "frames per row") {
		t.Errorf("PNG %dx%d for %d frames", cfg.Width, cfg.Height, d.Reg.FrameCount)
	}
	// Decimal addresses, and the frame past the end is a one-line error.
	if st, out, _ := runInspect("--frame", "0", path); st != 0 || !strings.Contains(out, "ALLOCATED|KERNEL") {
		t.Errorf("--frame 0: %d\n%s", st, out)
	}
	if st, _, errs := runInspect("--frame", "0x7fffffffffff", path); st != vmm.StatusVMMError || strings.Count(errs, "\n") != 1 {
		t.Errorf("--frame out of range: %d %q", st, errs)
	}
}

// TestInspectMapShowsOnePoisonedFrameIn4GiB: in a real 4 GiB guest's map,
// one frame (a boot-time bad frame) is drawn as a square a person sees.
func TestInspectMapShowsOnePoisonedFrameIn4GiB(t *testing.T) {
	inspecttest.SkipWithoutKVM(t)
	const bad = 0x80123
	dir := t.TempDir()
	dump, pic := filepath.Join(dir, "4g.core"), filepath.Join(dir, "4g.png")
	if st, _, errs := runCLI("boot", "--kernel", guestPath(t), "--mem", "4G", "--workload", "hello",
		"--bad-frames", fmt.Sprintf("%#x", bad), "--dump", dump); st != 0 {
		t.Fatalf("boot: status %d: %s", st, errs)
	}
	st, out, errs := runInspect("--json", "--map", pic, dump)
	if st != 0 {
		t.Fatalf("inspect: status %d: %s", st, errs)
	}
	var doc struct {
		Map struct {
			Width, Height int
			FramesPerRow  int `json:"frames_per_row"`
			MapX          int `json:"map_x"`
			MapY          int `json:"map_y"`
			Legend        []struct {
				State  string
				Frames uint64
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.Map
	poisoned := uint64(0)
	for _, e := range m.Legend {
		if e.State == "poisoned" {
			poisoned = e.Frames
		}
	}
	if m.FramesPerRow != 1024 || poisoned != 1 {
		t.Fatalf("map %+v: want 1024 frames per row and 1 poisoned frame", m)
	}
	f, err := os.Open(pic)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != m.Width || img.Bounds().Dy() != m.Height {
		t.Fatalf("PNG %v, JSON says %dx%d", img.Bounds(), m.Width, m.Height)
	}
	x, y := m.MapX+bad%m.FramesPerRow, m.MapY+bad/m.FramesPerRow
	red := 0
	for dy := -3; dy <= 3; dy++ {
		for dx := -3; dx <= 3; dx++ {
			r, g, b, _ := img.At(x+dx, y+dy).RGBA()
			if r>>8 == 230 && g>>8 == 30 && b>>8 == 30 {
				red++
			}
		}
	}
	if red < 25 {
		t.Errorf("the poisoned frame at (%d,%d) shows %d poisoned pixels, want a 5x5 square", x, y, red)
	}
}
