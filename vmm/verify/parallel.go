package verify

import (
	"runtime"
	"sync/atomic"

	"github.com/vmm-dev/vmm/guest/mm"
)

// The passes over every frame record, on every host CPU. guest/mm's linear
// pass (mm.CheckRange), the host's own pass (specCheck.frames) and the
// mapping rules (mapCounter.judge) run over pieces of the array; within a
// piece all three read one chunk in turn, so the second and third find it
// in cache and the records cross the memory bus once. The two checkers
// stay apart (independent implementations of the rules); they only share
// the chunk. Pieces start at multiples of 2^MaxOrder, so every block whose head
// is aligned has its head and tails in one piece, and no bad head's run of
// tails crosses into the next piece; a piece that the one before it
// carries into (a misaligned or overrunning head whose block goes on past
// the piece's start) is checked again after the fan-out, in order, from
// where the pass before it stopped. The results are merged in frame order
// with the same caps, so the report is the one a single pass gives.

const (
	// pieceFrames is one unit of work: 4 MiB of records, 64 pieces at
	// 16 GiB, so an idle CPU takes over the pieces a busy one leaves.
	pieceFrames = 1 << 16
	// chunkFrames is what the checkers read in turn: one page of records,
	// in L1 for the second and third while the first streams the next
	// (the best of 16..4096 on this machine).
	chunkFrames = 64
	// minPieces is how many pieces a guest of fewer than that many
	// pieceFrames is cut into (pieces of at least minPieceFrames): on a
	// 1 GiB guest the four 4 MiB pieces left the first worker's CPU alone
	// with all of them while the second thread woke (tens of microseconds
	// here, a third of a piece), or with one piece in three.
	minPieces      = 16
	minPieceFrames = 1 << 14
	// pieceListed is how many of guest/mm's violations a piece keeps; a
	// piece that finds more is checked again with room for all that the
	// report can still list.
	pieceListed = 8
)

// fanout says how the frames are split: workers goroutines (0: one per
// host CPU) over pieces of frames frames (0: pieceFrames; rounded up to a
// multiple of 2^MaxOrder). Tests vary both.
type fanout struct {
	workers int
	frames  uint64
}

// piece is one range of frames and what both passes found in it.
type piece struct {
	lo, hi uint64

	lpIn, lp mm.LinearPass // guest/mm's pass as the piece started it, and at its end
	mmOut    [pieceListed]mm.Violation
	mmTotal  int

	fpIn, fp framePass // the host's pass, likewise
	spec     specCheck // its findings in the piece
	hist     histogram
	leaks    ptResult
	judged   ptResult // the mapping rules' findings (mapCounter.judge)
}

// run checks the piece from the passes' starting states.
func (pc *piece) run(v *mm.View, tmpl *specCheck, pt *mapCounter) {
	pc.lp, pc.mmTotal = pc.lpIn, 0
	pc.fp = pc.fpIn
	pc.hist, pc.leaks, pc.judged = histogram{}, ptResult{}, ptResult{}
	pc.spec = *tmpl
	pc.spec.out, pc.spec.tot = nil, 0
	if pc.spec.hist != nil {
		pc.spec.hist = &pc.hist
	}
	pc.spec.leaks = &pc.leaks
	for c := pc.lo; c < pc.hi; c += chunkFrames {
		e := min(c+chunkFrames, pc.hi)
		pc.mmTotal = mm.CheckRange(v, c, e, &pc.lp, pc.mmOut[:], pc.mmTotal)
		pc.spec.frames(&pc.fp, c, e)
		pt.judge(c, e, &pc.judged)
	}
}

// framesResult is the merged outcome of the passes over the frames.
type framesResult struct {
	lp      mm.LinearPass  // guest/mm's counts over all frames
	mmOut   []mm.Violation // its violations in frame order (at most listed)
	mmTotal int
	fp      framePass // the host pass's counts
}

// pieceSize is the frames in one piece: fo.frames (0: pieceFrames) rounded
// up to a multiple of 2^MaxOrder.
func (fo fanout) pieceSize() uint64 {
	size := fo.frames
	if size == 0 {
		size = pieceFrames
	}
	return wholeTopBlocks(size)
}

// wholeTopBlocks rounds n frames up to a multiple of 2^MaxOrder.
func wholeTopBlocks(n uint64) uint64 {
	const top = uint64(1) << mm.MaxOrder
	return (n + top - 1) / top * top
}

// piecesOf is the frames in one piece of n frames: pieceSize, but by
// default (fo.frames 0) small enough for minPieces pieces, down to
// minPieceFrames, when n makes more than one (see parallel).
func (fo fanout) piecesOf(n uint64) uint64 {
	size := fo.pieceSize()
	if fo.frames == 0 && n > size {
		size = min(size, max(minPieceFrames, wholeTopBlocks((n+minPieces-1)/minPieces)))
	}
	return size
}

// parallel reports whether n frames make more than one piece, so that more
// than one goroutine works on them. Below that the rest of a verification
// runs on the caller's goroutine too: handing a small job to another
// thread costs more (a wake-up, on a loaded host a scheduling delay) than
// it saves.
func (fo fanout) parallel(n uint64) bool {
	return n > fo.pieceSize() && fo.workers != 1
}

// checkFrames runs the passes over every frame: guest/mm's, whose
// violations may fill up to mmRoom entries of the report; the host's (s,
// started as fp), whose violations, histogram and leak reports it adds to
// s, s.hist and s.leaks in frame order; and the rules that tie frames to
// their mappings (pt), whose findings it adds to pt.res. buf holds the
// pieces' states between calls (they are large: reusing them spares a
// fresh allocation's page faults at every checkpoint).
func checkFrames(v *mm.View, s *specCheck, fp framePass, pt *mapCounter, mmRoom int, fo fanout, buf *[]piece) framesResult {
	n := v.FrameCount()
	size := fo.piecesOf(n)
	count := int((n + size - 1) / size)
	if cap(*buf) < count {
		*buf = make([]piece, count)
	}
	pieces := (*buf)[:count]
	for i := range pieces {
		lo := uint64(i) * size
		pieces[i] = piece{lo: lo, hi: min(lo+size, n), lpIn: mm.NewLinearPass(), fpIn: fp.resume()}
	}
	workers := fo.workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	workers = max(1, min(workers, len(pieces)))
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= len(pieces) {
				return
			}
			pieces[i].run(v, s, pt)
		}
	}
	// The caller works too; a panic in any worker (a fault reading a
	// dump's mapping, see goLikeCaller) reaches the caller once all have
	// stopped.
	waits := make([]func(), workers)
	for i := range waits[1:] {
		waits[i+1] = goLikeCaller(work)
	}
	waits[0] = work
	var caught any
	for _, wait := range waits {
		func() {
			defer func() {
				if p := recover(); p != nil && caught == nil {
					caught = p
				}
			}()
			wait()
		}()
	}
	if caught != nil {
		panic(caught)
	}

	// The pieces a misaligned block reaches into, again from where the
	// pass before them stopped, in order.
	for i := 1; i < len(pieces); i++ {
		prev, pc := &pieces[i-1], &pieces[i]
		if prev.lp.Carries(pc.lo) || prev.fp.carries(pc.lo) {
			pc.lpIn, pc.fpIn = prev.lp.Resume(), prev.fp.resume()
			pc.run(v, s, pt)
		}
	}

	res := framesResult{lp: mm.NewLinearPass(), fp: fp}
	for i := range pieces {
		pc := &pieces[i]
		for k, h := range pc.lp.Heads {
			res.lp.Heads[k] += h
		}
		res.lp.Poisoned += pc.lp.Poisoned
		res.lp.Cached += pc.lp.Cached
		res.fp.poisoned += pc.fp.poisoned

		if room := mmRoom - len(res.mmOut); room > 0 && pc.mmTotal > 0 {
			found := pc.mmOut[:min(pc.mmTotal, pieceListed)]
			if pc.mmTotal > pieceListed && room > pieceListed {
				found = make([]mm.Violation, room)
				lp := pc.lpIn
				found = found[:min(mm.CheckRange(v, pc.lo, pc.hi, &lp, found, 0), room)]
			}
			res.mmOut = append(res.mmOut, found[:min(len(found), room)]...)
		}
		res.mmTotal += pc.mmTotal

		for _, x := range pc.spec.out {
			if len(s.out) < MaxListed {
				s.out = append(s.out, x)
			}
		}
		s.tot += pc.spec.tot
		if s.hist != nil {
			s.hist.merge(&pc.hist)
		}
		if s.leaks != nil {
			s.leaks.merge(&pc.leaks)
		}
		pt.res.merge(&pc.judged)
	}
	return res
}
