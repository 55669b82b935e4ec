package vmm

import (
	"bytes"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/coredump"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// bootChecked boots cfg in incremental mode (or cfg.Verify, if set) and, at every checkpoint,
// runs a full check beside the one the VMM ran (world still stopped): the
// reports must be equal but for their timing. fn, if set, runs after that
// with the world stopped. It returns the result and the checkpoints that
// were incremental.
func bootChecked(t *testing.T, cfg Config, fn func(vm *VM, label string, in verify.Input)) (*Result, []Checkpoint) {
	t.Helper()
	requireKVM(t)
	var console bytes.Buffer
	cfg.Console = &console
	if cfg.Verify == "" {
		cfg.Verify = VerifyIncremental
	}
	vm, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	vm.afterVerify = func(label string, in verify.Input, rep *verify.Report, out verify.Outcome) {
		full, err := verify.Verify(vm.mem, in)
		if err != nil || rep == nil {
			t.Errorf("checkpoint %q: %v (report %v)", label, err, rep)
			return
		}
		a, b := *full, *rep
		a.Nanos, b.Nanos = 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Errorf("checkpoint %q: the %s check (%s) differs from a full one:\nfull %+v\ngot  %+v", label, out.Kind, out.Reason, a, b)
		}
		if fn != nil {
			fn(vm, label, in)
		}
	}
	res := vm.Run()
	var incr []Checkpoint
	for _, c := range res.Checkpoints {
		if c.Kind == VerifyIncremental {
			incr = append(incr, c)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", console.String())
	}
	return res, incr
}

// TestIncrementalCheckpointsKVM: a real guest workload (the smp workload on
// two vCPUs, its frees crossing CPUs) with KVM's dirty log: the
// checkpoints between the first and the final one are incremental, re-check
// some frames and report what a full check reports.
func TestIncrementalCheckpointsKVM(t *testing.T) {
	cfg := bootConfig(t)
	cfg.CPUs, cfg.Workload = 2, "smp"
	res, incr := bootChecked(t, cfg, nil)
	if res.Violations() != 0 || res.Outcome != OutcomeExit {
		t.Fatalf("outcome %s, %d violations", res.Outcome, res.Violations())
	}
	if len(incr) == 0 {
		t.Fatalf("no incremental checkpoint: %+v", res.Checkpoints)
	}
	for _, c := range incr {
		if c.RecheckedFrames == 0 || c.RecheckedFrames >= c.Report.Frames {
			t.Errorf("checkpoint %q re-checked %d of %d frames", c.Label, c.RecheckedFrames, c.Report.Frames)
		}
	}
	if last := res.Checkpoints[len(res.Checkpoints)-1]; !last.Final || last.Kind != VerifyFull {
		t.Errorf("final checkpoint %+v is not a full check", last)
	}
}

// TestIncrementalSeesVMMWrites: a record the VMM itself damages between two
// checkpoints (KVM does not log the VMM's writes; GuestMemory.Write tells
// the tracker) is found at the next one, as a full check finds it.
func TestIncrementalSeesVMMWrites(t *testing.T) {
	cfg := bootConfig(t)
	cfg.CPUs, cfg.Workload = 2, "smp"
	var damaged uint64
	res, _ := bootChecked(t, cfg, func(vm *VM, label string, in verify.Input) {
		if label != "smp-held" {
			return
		}
		// A tail of the lowest free top-order block (the last one the
		// allocator hands out, so the guest leaves its records alone):
		// set a reserved byte.
		v, err := verify.NewView(vm.mem, in)
		if err != nil {
			t.Fatal(err)
		}
		for p := uint64(0); p < v.FrameCount() && damaged == 0; p += 1 << mm.MaxOrder {
			if r, _ := v.Record(p); r.Flags == mm.FlagFree && r.Order == mm.MaxOrder {
				damaged = p + 5
			}
		}
		gpa := in.MetaPhys + damaged*mm.FrameMetaSize + mm.OffOrder + 1
		if err := vm.mem.Write(gpa, []byte{1}); err != nil {
			t.Fatal(err)
		}
	})
	next := checkpointNamed(res, "smp-held", 1)
	if next == nil || next.Kind != VerifyFull {
		t.Fatalf("the checkpoint after the damage: %+v", next)
	}
	requireReported(t, next, damaged)
}

// hinted are the default boot's checkpoints that pass
// firmware.CheckpointUnwatched: the interval after them (stress, poison)
// rewrites the metadata.
var hinted = map[string]bool{"hello": true, "stress-full": true, "demand": true, "poison-drained": true}

// TestAutoVerifyDefaultBoot4GiB: the default boot of a 4 GiB guest with
// --verify auto (vmm's default) checks incrementally: some checkpoints are
// incremental, each reports what a full check reports, every checkpoint
// after a hinted one is full, and the one at exit is full.
func TestAutoVerifyDefaultBoot4GiB(t *testing.T) {
	cfg := bootConfig(t)
	cfg.MemBytes, cfg.Verify = 4<<30, VerifyAuto
	res, incr := bootChecked(t, cfg, nil)
	if res.Violations() != 0 || res.Outcome != OutcomeExit || res.ExitStatus != 0 {
		t.Fatalf("outcome %s, status %d, %d violations", res.Outcome, res.ExitStatus, res.Violations())
	}
	if len(incr) < 5 {
		t.Fatalf("only %d incremental checkpoints: %+v", len(incr), res.Checkpoints)
	}
	cps := res.Checkpoints
	for i := 1; i < len(cps); i++ {
		if cps[i].FullReason == reasonFirst {
			t.Errorf("checkpoint %q (number %d) says it is the first", cps[i].Label, i+1)
		}
		if !hinted[cps[i-1].Label] || cps[i].Final {
			continue
		}
		if r := cps[i].FullReason; cps[i].Kind != VerifyFull || r != reasonFirst && r != reasonRestart && r != reasonStaysOff && r != reasonLast {
			t.Errorf("checkpoint %q after the unwatched interval from %q is %s (%q)", cps[i].Label, cps[i-1].Label, cps[i].Kind, r)
		}
	}
	if last := cps[len(cps)-1]; !last.Final || last.Kind != VerifyFull {
		t.Errorf("final checkpoint %+v is not a full check", last)
	}
}

// TestAutoVerifySmallGuestIsFull: below AutoIncrementalMin auto is full
// mode: no dirty log, every checkpoint a full check with no reason.
func TestAutoVerifySmallGuestIsFull(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Verify, cfg.Workload = VerifyAuto, "paging"
	res, _ := boot(t, cfg)
	if res.Violations() != 0 || res.Outcome != OutcomeExit || len(res.Checkpoints) < 3 {
		t.Fatalf("outcome %s, %d violations, %d checkpoints", res.Outcome, res.Violations(), len(res.Checkpoints))
	}
	for _, c := range res.Checkpoints {
		if c.Kind != VerifyFull || c.FullReason != "" {
			t.Errorf("checkpoint %q: %s (%q)", c.Label, c.Kind, c.FullReason)
		}
	}
}

// TestUnwatchedIntervalIsCheckedInFull: a guest that sets the hint and then
// corrupts its metadata gains nothing. After the hinted "demand"
// checkpoint a record is damaged in guest RAM behind the dirty log's back
// (as an unlogged guest write would be); the next checkpoint must be a
// full check that names the frame.
func TestUnwatchedIntervalIsCheckedInFull(t *testing.T) {
	cfg := bootConfig(t)
	const damaged = 1 // a firmware-area frame: the allocator never writes its record
	res, _ := bootChecked(t, cfg, func(vm *VM, label string, in verify.Input) {
		if label != "demand" {
			return
		}
		b, err := vm.mem.Slice(in.MetaPhys+damaged*mm.FrameMetaSize+mm.OffOrder+1, 1)
		if err != nil {
			t.Fatal(err)
		}
		b[0] = 1 // no NoteWrite: the log does not see it
	})
	if c := checkpointNamed(res, "demand", 0); c == nil || c.Kind != VerifyIncremental {
		t.Errorf("checkpoint demand: %+v: the test needs it watched", c)
	}
	next := checkpointNamed(res, "demand", 1)
	// Full because the interval was not watched (not by chance: stress and
	// poison rewrite enough to make a watched one full too).
	if next == nil || next.Kind != VerifyFull || next.FullReason != reasonStaysOff {
		t.Fatalf("the checkpoint after the damage: %+v", next)
	}
	requireReported(t, next, damaged)
}

// freeTopOrderTail is a tail of the lowest free top-order block: the last
// one the allocator hands out, so the guest leaves its records alone.
func freeTopOrderTail(t *testing.T, vm *VM, in verify.Input) uint64 {
	t.Helper()
	v, err := verify.NewView(vm.mem, in)
	if err != nil {
		t.Fatal(err)
	}
	for p := uint64(0); p < v.FrameCount(); p += 1 << mm.MaxOrder {
		if r, _ := v.Record(p); r.Flags == mm.FlagFree && r.Order == mm.MaxOrder {
			return p + 5
		}
	}
	t.Fatal("no free top-order block")
	return 0
}

// checkpointNamed is the checkpoint after (by) the last one named label, or nil.
func checkpointNamed(res *Result, label string, after int) *Checkpoint {
	var found *Checkpoint
	for i, c := range res.Checkpoints {
		if c.Label == label && i+after < len(res.Checkpoints) {
			found = &res.Checkpoints[i+after]
		}
	}
	return found
}

// requireReported fails unless cp found violations, one of them at pfn.
func requireReported(t *testing.T, cp *Checkpoint, pfn uint64) {
	t.Helper()
	if cp == nil || cp.Violations == 0 {
		t.Fatalf("no violations: %+v", cp)
	}
	for _, v := range cp.Report.Violations {
		if v.PFN == pfn {
			return
		}
	}
	t.Errorf("frame %#x not reported: %v", pfn, cp.Report.Violations)
}

// TestIncrementalSeesGDBWrites: gdb's writes to guest RAM are the VMM's
// (KVM's dirty log misses them): a memory write (gdb's M packet, `set
// *ADDR = v`) and a breakpoint (an int3 byte; `break *ADDR` takes any
// address) on a frame record between two checkpoints must be seen by the
// next incremental one as a full check sees them (bootChecked compares the
// two). Until it was noted, the breakpoint was missed.
func TestIncrementalSeesGDBWrites(t *testing.T) {
	for _, how := range []string{"write", "breakpoint"} {
		t.Run(how, func(t *testing.T) {
			cfg := bootConfig(t)
			cfg.Workload = "paging"
			var damaged uint64
			res, _ := bootChecked(t, cfg, func(vm *VM, label string, in verify.Input) {
				if label != "paging-unmapped" {
					return
				}
				damaged = freeTopOrderTail(t, vm, in)
				var err error
				// The hook runs on vCPU 0's thread, where its registers may be read.
				d := &debugger{vm: vm, snaps: make([]snapshot, len(vm.vcpus)), bps: map[uint64]bp{}, steps: map[uint64]bp{}}
				va := firmware.PhysToVirt(in.MetaPhys + damaged*mm.FrameMetaSize + mm.OffOrder + 1)
				if how == "write" {
					err = d.WriteMem(0, va, []byte{1})
				} else {
					err = d.Breakpoint(true, 0, va, 1)
				}
				if err != nil {
					t.Fatal(err)
				}
			})
			requireReported(t, checkpointNamed(res, "paging-unmapped", 1), damaged)
		})
	}
}

// TestDumpShowsBytesUnderBreakpoints: a dump written while gdb has
// breakpoints planted (--dump-at, or a fault, under --gdb) holds the
// guest's own bytes, not the int3s; the breakpoints are planted again
// after it.
func TestDumpShowsBytesUnderBreakpoints(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "paging"
	path := filepath.Join(t.TempDir(), "bp.core")
	done := false
	bootChecked(t, cfg, func(vm *VM, label string, in verify.Input) {
		if done {
			return
		}
		done = true
		d := &debugger{vm: vm, snaps: make([]snapshot, len(vm.vcpus)), bps: map[uint64]bp{}, steps: map[uint64]bp{}}
		va := firmware.PhysToVirt(vm.kernel.Start)
		var orig [1]byte
		if err := vm.mem.Read(vm.kernel.Start, orig[:]); err != nil || orig[0] == int3 {
			t.Fatalf("kernel's first byte %#x: %v", orig[0], err)
		}
		if err := d.Breakpoint(true, 0, va, 1); err != nil {
			t.Fatal(err)
		}
		vm.dbg = d
		_, err := vm.writeDumpWith(path, "test", false)
		vm.dbg = nil
		if err != nil {
			t.Fatal(err)
		}
		var now [1]byte
		vm.mem.Read(vm.kernel.Start, now[:])
		if err := d.Breakpoint(false, 0, va, 1); err != nil || now[0] != int3 {
			t.Fatalf("breakpoint after the dump: byte %#x, removal: %v", now[0], err)
		}
		dump, err := coredump.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer dump.Close()
		b, err := dump.Slice(vm.kernel.Start, 1)
		if err != nil || b[0] != orig[0] {
			t.Errorf("the dump holds %#x under the breakpoint, the guest %#x (%v)", b, orig[0], err)
		}
	})
	if !done {
		t.Fatal("no checkpoint")
	}
}

// TestLastCheckpointLeavesLogging: the guest's last checkpoint before its
// exit (firmware.CheckpointLast, sent by every workload run) is checked
// incrementally, keeps no baseline (anything after it is checked in full)
// and leaves dirty logging on: turning it off would cost that checkpoint
// a memory-slot update, more than the short last interval's faults.
func TestLastCheckpointLeavesLogging(t *testing.T) {
	cfg := bootConfig(t)
	cfg.CPUs, cfg.Workload, cfg.MemBytes, cfg.Verify = 2, "smp", 1<<30, VerifyAuto
	seen := false
	res, _ := bootChecked(t, cfg, func(vm *VM, label string, in verify.Input) {
		if label != "smp" {
			return
		}
		seen = true
		if vm.dirty == nil || !vm.dirty.started || vm.incr.HasBaseline() {
			t.Errorf("after the last checkpoint: logging on %v, baseline kept %v; want logging on, no baseline",
				vm.dirty != nil && vm.dirty.started, vm.incr.HasBaseline())
		}
	})
	if c := checkpointNamed(res, "smp", 0); !seen || c == nil || c.Kind != VerifyIncremental {
		t.Fatalf("the last checkpoint: %+v", c)
	}
	if c := checkpointNamed(res, "smp", 1); c == nil || !c.Final || c.Kind != VerifyFull {
		t.Errorf("the exit check: %+v", c)
	}
}
