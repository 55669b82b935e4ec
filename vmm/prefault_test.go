package vmm

import (
	"bytes"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"golang.org/x/sys/unix"
)

// TestPredictMetaMatchesRegistration: the host's prediction of where the
// guest puts its metadata is where the guest registers it, for the layouts
// that move it (RAM size, vCPUs, bad frames in its way).
func TestPredictMetaMatchesRegistration(t *testing.T) {
	requireKVM(t)
	k, err := ParseKernel(guestImage(t), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	_, perCPUEnd := PerCPUArea(k.End, 2)
	e := perCPUEnd / firmware.PageSize // 1 GiB of metadata goes here: past the per-CPU areas, which cannot be bad
	for _, tc := range []struct {
		mem  uint64
		cpus int
		bad  []uint64
	}{
		{128 << 20, 1, nil},
		{1 << 30, 2, []uint64{e, e + 1, e + 0xb5, 0x3000}},
	} {
		cfg := bootConfig(t)
		cfg.MemBytes, cfg.CPUs, cfg.BadFrames, cfg.Workload = tc.mem, tc.cpus, tc.bad, "hello"
		vm, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		meta, frames, state, err := PredictMeta(vm.Memory())
		if err != nil {
			vm.Close()
			t.Fatal(err)
		}
		res := vm.Run()
		vm.Close()
		r := res.Registration
		if r == nil || res.ExitStatus != 0 {
			t.Fatalf("%+v: guest did not register (%s)", tc, res.Reason)
		}
		if r.MetaPhys != meta || r.FrameCount != frames || r.StatePhys != state {
			t.Errorf("%+v: predicted meta %#x frames %d state %#x; guest registered %#x %d %#x",
				tc, meta, frames, state, r.MetaPhys, r.FrameCount, r.StatePhys)
		}
	}
}

// TestPopulateKeepsContents: populated pages are present and what was
// written before is still there.
func TestPopulateKeepsContents(t *testing.T) {
	g := testMemory(t, 64<<20)
	const gpa, n = 3<<20 + 0x800, 9<<20 + 0x10
	if err := g.Write(gpa+4096*5, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := g.Populate(gpa, n, true); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if err := g.Read(gpa+4096*5, got); err != nil || !bytes.Equal(got, []byte("kept")) {
		t.Errorf("contents after Populate: %q, %v", got, err)
	}
	first, end := uint64(gpa)&^4095, uint64(gpa+n+4095)&^4095
	s, _ := g.Slice(first, end-first)
	vec := make([]byte, len(s)/4096)
	if err := mincore(s, vec); err != nil {
		t.Fatal(err)
	}
	for i, v := range vec {
		if v&1 == 0 {
			t.Fatalf("page %d of the populated range is not resident", i)
		}
	}
	if err := g.Populate(g.Map.RAMTop()+1<<30, 4096, false); err == nil {
		t.Error("Populate outside guest RAM succeeded")
	}
}

func mincore(b, vec []byte) error {
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptrOf(b), uintptr(len(b)), uintptrOf(vec))
	if e != 0 {
		return e
	}
	return nil
}

// TestNewPrefaultsMetadata: when New returns, the host pages of the
// predicted metadata array and allocator state are resident (populated on
// another goroutine while the VM was built), before any guest instruction.
func TestNewPrefaultsMetadata(t *testing.T) {
	requireKVM(t)
	cfg := bootConfig(t)
	cfg.Workload = "hello"
	vm, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	meta, frames, state, err := PredictMeta(vm.Memory())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ gpa, n uint64 }{{meta, frames * mm.FrameMetaSize}, {state, mm.StateSize}} {
		s, err := vm.Memory().Slice(r.gpa, r.n)
		if err != nil {
			t.Fatal(err)
		}
		vec := make([]byte, (len(s)+4095)/4096)
		if err := mincore(s, vec); err != nil {
			t.Fatal(err)
		}
		for i, v := range vec {
			if v&1 == 0 {
				t.Fatalf("page %d of [%#x, +%#x) is not resident after New", i, r.gpa, r.n)
			}
		}
	}
}
