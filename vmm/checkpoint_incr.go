package vmm

import (
	"time"

	"github.com/vmm-dev/vmm/vmm/verify"
)

// verifyAt checks guest memory for one checkpoint, with the world
// stopped. In incremental mode every checkpoint takes the dirty log (so
// the next one sees only what was written after this one) and the
// verifier re-checks what changed, falling back to a full check when it
// cannot conclude; the final check is always full.
func (vm *VM) verifyAt(in verify.Input, final bool) (*verify.Report, verify.Outcome, error) {
	if vm.dirty == nil || final {
		rep, err := verify.Verify(vm.mem, in)
		out := verify.Outcome{Kind: verify.KindFull, Rechecked: in.FrameCount}
		if vm.dirty != nil {
			out.Reason = "final check"
		}
		return rep, out, err
	}
	if !vm.dirty.started {
		start := time.Now()
		rep, out, err := vm.incr.Check(vm.mem, in, nil)
		out.Reason = "first checkpoint: dirty logging starts here"
		checked := time.Since(start)
		if err := vm.dirty.start(vm.incr.Watched); err != nil {
			vm.logf("%v; every checkpoint is a full check", err)
			vm.dirty = nil
		}
		vm.incr.ExpectCoarse()
		vm.logf("checkpoint: full check and baseline in %v, dirty logging started in %v", checked, time.Since(start)-checked)
		return rep, out, err
	}
	start := time.Now()
	pages, err := vm.dirty.fetch()
	fetched := time.Since(start)
	if err != nil {
		vm.logf("dirty log: %v; full check", err)
		vm.incr.Invalidate()
		return vm.incr.Check(vm.mem, in, nil)
	}
	rep, out, err := vm.incr.Check(vm.mem, in, pages)
	checked := time.Since(start) - fetched
	if perr := vm.dirty.protect(vm.incr.Watched); perr != nil {
		// The watched pages stay set in the log: read as written, sound.
		vm.logf("dirty log: %v", perr)
	}
	protected := time.Since(start) - fetched - checked
	if vm.cfg.Log != nil { // counting the pages reads the whole bitmap
		vm.logf("checkpoint: %s check of %d frames (%d pages marked written since the last one; dirty log fetched in %v, checked in %v, watched pages protected in %v)%s",
			out.Kind, out.Rechecked, pages.pageCount(), fetched, checked, protected, reasonSuffix(out.Reason))
	}
	return rep, out, err
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}
