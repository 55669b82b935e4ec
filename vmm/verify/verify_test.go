package verify

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
)

// flatMemory is guest physical memory as one byte slice from address 0.
type flatMemory []byte

func (m flatMemory) Slice(gpa, n uint64) ([]byte, error) {
	if gpa > uint64(len(m)) || n > uint64(len(m))-gpa {
		return nil, fmt.Errorf("[%#x,+%#x) outside %#x bytes", gpa, n, len(m))
	}
	return m[gpa : gpa+n], nil
}

// newGuest sets up a real allocator in a flat arena of frames frames.
func newGuest(t testing.TB, frames uint64) (flatMemory, *mm.Buddy, Input) {
	t.Helper()
	return newGuestFrom(t, frames, mm.PageSize)
}

// newGuestFrom is newGuest with RAM from base (below it: not RAM).
func newGuestFrom(t testing.TB, frames, base uint64) (flatMemory, *mm.Buddy, Input) {
	t.Helper()
	mem := make(flatMemory, frames*mm.PageSize)
	var b mm.Buddy
	var boot mm.BootAllocator
	ram := []mm.Range{{Base: base, Size: frames*mm.PageSize - base}}
	off := uintptrOf(mem)
	if err := b.Setup(off, &boot, ram, nil, nil); err != mm.ErrNone {
		t.Fatal(err)
	}
	meta, n, st := b.Registration()
	return mem, &b, Input{Registration: Registration{MetaPhys: meta, FrameCount: n, Version: uint64(mm.LayoutVersion), StatePhys: st}}
}

func TestVerifyCleanAllocator(t *testing.T) {
	mem, _, in := newGuest(t, 4096)
	r, err := Verify(mem, in)
	if err != nil {
		t.Fatal(err)
	}
	if r.TotalViolations != 0 || r.FreeFrames == 0 || r.Frames != 4096 {
		t.Fatalf("report %+v", r)
	}
}

func TestVerifyRefusesBadRegistration(t *testing.T) {
	mem, _, in := newGuest(t, 1024)
	for _, mut := range []func(*Input){
		func(i *Input) { i.Version = 99 },
		func(i *Input) { i.FrameCount = 0 },
		func(i *Input) { i.FrameCount = 1 << 40 },
		func(i *Input) { i.MetaPhys = uint64(len(mem)) - 64 },
		func(i *Input) { i.StatePhys = ^uint64(0) - 8 },
	} {
		bad := in
		mut(&bad)
		if _, err := Verify(mem, bad); err == nil {
			t.Errorf("registration %+v accepted", bad)
		}
	}
}

// TestHostilePageTablesAreBounded: every entry of a table pointing back at
// itself asks for 512^4 visits; the walk must stop with a violation.
func TestHostilePageTablesAreBounded(t *testing.T) {
	mem, _, in := newGuest(t, 4096)
	root := uint64(4000) * mm.PageSize // some frame: its flags do not matter here
	for i := 0; i < 512; i++ {
		binary.LittleEndian.PutUint64(mem[root+uint64(i)*8:], root|ptePresent|pteWritable|pteUser)
	}
	in.Roots = []uint64{root}
	r, err := Verify(mem, in)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range r.Violations {
		found = found || strings.Contains(v.Kind, "too large")
	}
	if !found {
		t.Errorf("no bound violation in %d violations", r.TotalViolations)
	}
}

func TestFlagNames(t *testing.T) {
	if got := FlagNames(mm.FlagAllocated | mm.FlagUser | mm.FlagCOW); got != "ALLOCATED|USER|COW" {
		t.Errorf("got %q", got)
	}
	if got := FlagNames(0); got != "-" {
		t.Errorf("got %q", got)
	}
}
