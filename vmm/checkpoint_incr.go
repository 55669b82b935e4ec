package vmm

import (
	"time"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// verifyAt checks guest memory for one checkpoint, with the world
// stopped. In incremental mode every checkpoint takes the dirty log (so
// the next one sees only what was written after this one) and the
// verifier re-checks what changed, falling back to a full check when it
// cannot conclude; the final check is always full. flags are the guest's
// hints. Unwatched (firmware.CheckpointUnwatched) says the next interval is
// not worth watching: logging stops after this check and no baseline is
// kept, so the guest takes no faults for the log and the next checkpoint
// is a full check (which starts logging again, unless it too is hinted).
// Last (firmware.CheckpointLast: the run ends after this checkpoint) keeps
// no baseline either but leaves logging as it is, on or off. The hints can
// only replace an incremental check by a full one.
func (vm *VM) verifyAt(in verify.Input, final bool, flags uint64) (*verify.Report, verify.Outcome, error) {
	unwatched := flags&firmware.CheckpointUnwatched != 0
	last := flags&firmware.CheckpointLast != 0 && !unwatched
	if vm.dirty == nil || final {
		rep, err := verify.Verify(vm.mem, in)
		out := verify.Outcome{Kind: verify.KindFull, Rechecked: in.FrameCount}
		if vm.dirty != nil {
			out.Reason = "final check"
		}
		return rep, out, err
	}
	if vm.watch.skip > 0 {
		vm.watch.skip--
		rep, err := verify.Verify(vm.mem, in)
		return rep, verify.Outcome{Kind: verify.KindFull, Rechecked: in.FrameCount,
			Reason: "not watching: the last watched interval cost the guest more faults than a full check"}, err
	}
	if !vm.dirty.started {
		return vm.startWatching(in, unwatched, last)
	}
	start := time.Now()
	pages, err := vm.dirty.fetch()
	fetched := time.Since(start)
	if err != nil {
		vm.logf("dirty log: %v; full check", err)
		vm.stopWatching() // drops the baseline: the next checkpoint starts again from a full check
		return vm.incr.CheckUnwatched(vm.mem, in, nil)
	}
	if last { // logging stays on, nothing is protected again
		return vm.incr.CheckUnwatched(vm.mem, in, pages)
	}
	if unwatched {
		rep, out, err := vm.incr.CheckUnwatched(vm.mem, in, pages)
		vm.stopWatching()
		if vm.cfg.Log != nil {
			vm.logf("checkpoint: %s check of %d frames; the guest said the next interval is not worth watching: dirty logging stopped", out.Kind, out.Rechecked)
		}
		return rep, out, err
	}
	writes := vm.watchedWrites(pages)
	rep, out, err := vm.incr.Check(vm.mem, in, pages)
	if !vm.watch.pays(out, rep, writes) || !vm.incr.HasBaseline() {
		// Nothing to watch (a back-off, a dirty state, or an interval that
		// rewrote the metadata): no faults until the next baseline.
		vm.stopWatching()
		return rep, out, err
	}
	checked := time.Since(start) - fetched
	if perr := vm.dirty.protect(vm.incr.Watched); perr != nil {
		// The watched pages stay set in the log: read as written, sound.
		vm.logf("dirty log: %v", perr)
	}
	protected := time.Since(start) - fetched - checked
	if vm.cfg.Log != nil { // counting the pages reads the whole bitmap
		vm.logf("checkpoint: %s check of %d frames (%d watched pages written since the last one, of %d pages set in the log, where pages not watched stay set; dirty log fetched in %v, checked in %v, watched pages protected in %v)%s",
			out.Kind, out.Rechecked, writes, pages.pageCount(), fetched, checked, protected, reasonSuffix(out.Reason))
	}
	return rep, out, err
}

// Why a checkpoint taken while nothing is logged is a full check.
const (
	reasonFirst    = "first checkpoint: dirty logging starts here"
	reasonRestart  = "the last interval was not watched: a new baseline, dirty logging starts here"
	reasonStaysOff = "the guest said the next interval is not worth watching: no baseline, dirty logging stays off"
	reasonLast     = "the guest said the run ends after this checkpoint: no baseline, dirty logging stays off"
)

// startWatching checks a checkpoint taken while nothing is logged (the
// first one, or the first after an unwatched interval) in full and, unless
// the guest says the next interval is not worth watching or is the last,
// makes it the baseline and turns logging on.
func (vm *VM) startWatching(in verify.Input, unwatched, last bool) (*verify.Report, verify.Outcome, error) {
	reason := reasonFirst
	if vm.watch.checked {
		reason = reasonRestart
	}
	vm.watch.checked = true
	vm.incr.Invalidate()
	if unwatched || last {
		rep, err := verify.Verify(vm.mem, in)
		out := verify.Outcome{Kind: verify.KindFull, Rechecked: in.FrameCount, Reason: reasonStaysOff}
		if last {
			out.Reason = reasonLast
		}
		return rep, out, err
	}
	start := time.Now()
	rep, out, err := vm.incr.Check(vm.mem, in, nil)
	out.Reason = reason
	checked := time.Since(start)
	if !vm.incr.HasBaseline() {
		return rep, out, err // not clean: nothing to watch, the next one is full
	}
	if err := vm.dirty.start(vm.incr.Watched); err != nil {
		vm.logf("%v; every checkpoint is a full check", err)
		vm.dirty = nil
	}
	vm.incr.ExpectCoarse()
	vm.logf("checkpoint: full check and baseline in %v, dirty logging started in %v", checked, time.Since(start)-checked)
	return rep, out, err
}

// stopWatching turns logging off (no baseline is kept): the guest's writes
// no longer fault, and the next checkpoint is a full check.
func (vm *VM) stopWatching() {
	vm.incr.Invalidate()
	if err := vm.dirty.stop(); err != nil {
		vm.logf("dirty log: %v", err) // logging may go on in part: it costs only faults
	}
}

// Watching pays while the faults it costs the guest stay below the full
// checks it saves. On this host dirty logging is fault based: the guest's
// first write to a watched page after a checkpoint exits to KVM, about
// watchFaultCost (the default boot ran 130 ms longer at 128 MiB for some
// 8,000 such writes). After an incremental checkpoint whose interval
// wrote more watched pages than a full check's worth of faults, the VMM
// stops watching (the baseline goes and logging is turned off, so nothing
// is write-protected) for
// as many checkpoints as the last time plus one, doubling while it keeps
// not paying; the checkpoints in between are full checks, and the one
// after them takes a new baseline.
const watchFaultCost = 15 * time.Microsecond

// watchPolicy is that back-off.
type watchPolicy struct {
	fullNanos int64 // the last full check's cost
	skip      int   // checkpoints left unwatched
	backoff   int   // how many the last back-off skipped
	checked   bool  // a checkpoint was taken (the next start is not the first)
}

// watchedWrites counts the watched pages in pages: the guest's faults for
// the log in the interval just ended.
func (vm *VM) watchedWrites(pages *dirtyPages) (n int64) {
	vm.incr.Watched(func(gpa, size uint64) {
		pages.Pages(gpa, size, func(uint64) { n++ })
	})
	return n
}

// pays applies the policy after a checkpoint: out is how it was checked,
// writes the watched pages written before it.
func (p *watchPolicy) pays(out verify.Outcome, rep *verify.Report, writes int64) bool {
	if out.Kind == verify.KindFull {
		if rep != nil {
			p.fullNanos = rep.Nanos
		}
		return true
	}
	if p.fullNanos == 0 || time.Duration(writes)*watchFaultCost <= time.Duration(p.fullNanos) {
		p.backoff = 0
		return true
	}
	p.backoff = min(2*p.backoff+1, 64)
	p.skip = p.backoff
	return false
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}
