package vmm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// TestGuestCheckPrintsCovers: a free top-order block head turned ALLOCATED
// behind the guest's back is one violation in the guest's own check too, and
// its console line says how many frames it stands for (as the host's report
// does), so a reader of the console knows its tails were not listed.
func TestGuestCheckPrintsCovers(t *testing.T) {
	requireKVM(t)
	cfg := bootConfig(t)
	cfg.Workload = "paging"
	cfg.Verify = VerifyFull
	var console bytes.Buffer
	cfg.Console = &console
	vm, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	damaged := uint64(0)
	vm.afterVerify = func(label string, in verify.Input, _ *verify.Report, _ verify.Outcome) {
		if label != "paging-mapped" {
			return
		}
		for p := in.FrameCount - 1<<mm.MaxOrder; p > 0 && damaged == 0; p -= 1 << mm.MaxOrder {
			rec, err := vm.mem.Slice(in.MetaPhys+p*mm.FrameMetaSize, mm.FrameMetaSize)
			if err != nil {
				t.Fatal(err)
			}
			if binary.LittleEndian.Uint32(rec[mm.OffFlags:]) == mm.FlagFree && rec[mm.OffOrder] == mm.MaxOrder {
				binary.LittleEndian.PutUint32(rec[mm.OffFlags:], mm.FlagAllocated)
				damaged = p
			}
		}
		if damaged == 0 {
			t.Fatal("no free top-order block to damage")
		}
	}
	res := vm.Run()
	if res.ExitStatus != StatusViolation {
		t.Errorf("exit status %d, want %d (violations)", res.ExitStatus, StatusViolation)
	}
	var line string
	for _, l := range strings.Split(console.String(), "\n") {
		if line == "" && strings.HasPrefix(l, fmt.Sprintf("mm check: frame %#x: illegal-flags ", damaged)) {
			line = l
		}
	}
	want := "(bad block head: covers 1024 frames; its 1023 tails are not reported one by one)"
	if !strings.HasSuffix(line, want) {
		t.Fatalf("the guest's line for frame %#x is %q, want it to end %q; console:\n%s", damaged, line, want, console.String())
	}
}
