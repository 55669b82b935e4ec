package main

import (
	"sync/atomic"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

const (
	smpRounds   = 3000
	smpShared   = 64   // frames every vCPU holds a reference to
	smpAnchored = 32   // of which these also hold an anchor reference through the job
	ringSize    = 1024 // frames in flight from one vCPU to the next
)

// pfnRing passes frames from vCPU i to vCPU i+1, which frees them: a
// single-producer single-consumer ring of physical addresses.
type pfnRing struct {
	head, tail uint64 // head: producer, tail: consumer
	buf        [ringSize]uint64
}

var (
	rings      [firmware.MaxCPUs]pfnRing
	sharedSet  [smpShared]uint64
	smpBarrier barrier
	smpAllocs  uint64
	smpCross   uint64 // frames freed by another vCPU than the allocator
	smpFreed   uint64 // shared frames freed by their last put
	smpFail    uint64
	smpViol    uint64 // the smp-caches checkpoint found violations
)

func (r *pfnRing) push(v uint64) bool {
	h := r.head
	if h-atomic.LoadUint64(&r.tail) == ringSize {
		return false
	}
	r.buf[h%ringSize] = v
	atomic.StoreUint64(&r.head, h+1)
	return true
}

func (r *pfnRing) pop() (uint64, bool) {
	t := r.tail
	if t == atomic.LoadUint64(&r.head) {
		return 0, false
	}
	v := r.buf[t%ringSize]
	atomic.StoreUint64(&r.tail, t+1)
	return v, true
}

// runSMP runs the smp job on every vCPU: concurrent allocation through the
// per-CPU caches, frames freed on another vCPU, shared frames released by
// racing puts; a host-verified checkpoint with the caches populated; and
// frame conservation at the end.
func runSMP(bi *firmware.BootInfo) uint64 {
	if bi.NumCPUs < 2 {
		putString("smp: one vCPU; run with --cpus 2 or more\n")
		return exitOK
	}
	startFree := kernelMM.FreeFrames()
	n := uint64(bi.NumCPUs)
	for i := range sharedSet {
		f, err := kernelMM.AllocLocal(0, mm.FlagKernel) // shared by reference, never mapped
		if err != mm.ErrNone {
			return exitWorkloadFail
		}
		refs := n
		if i < smpAnchored {
			refs++ // an anchor reference, dropped after the job
		}
		for c := uint64(1); c < refs; c++ {
			kernelMM.Get(f)
		}
		sharedSet[i] = f.StartAddress()
	}
	// A checkpoint while the shared set is held (declared to the host)
	// shows the state of frames fresh from a per-CPU cache.
	h := hold(mm.Holding{Table: addrOf(&sharedSet[0]), Words: smpShared, Stride: 1})
	if !checkAndCheckpoint("smp-held", 0) {
		unhold(h)
		return exitViolations
	}
	// During the job the racing puts free the unanchored half; the
	// anchored half must stay allocated, which the smp-caches checkpoint
	// sees: a put that frees too early is caught there, naming the frame.
	rehold(h, mm.Holding{Table: addrOf(&sharedSet[0]), Words: smpAnchored, Stride: 1})
	st := postJob(jobSMP)
	unhold(h)
	if st != exitOK {
		return st
	}
	tok := kernelMM.Lock()
	for i := 0; i < smpAnchored; i++ {
		freed, err := kernelMM.Put(mm.ContainingAddress(sharedSet[i]), 0, &tok)
		if err != mm.ErrNone {
			atomic.AddUint64(&smpFail, 1)
		}
		if freed {
			atomic.AddUint64(&smpFreed, 1)
		}
	}
	kernelMM.Unlock(&tok)
	report("smp.cpus", n)
	report("smp.allocs", atomic.LoadUint64(&smpAllocs))
	report("smp.cross_cpu_frees", atomic.LoadUint64(&smpCross))
	report("smp.shared_freed", atomic.LoadUint64(&smpFreed))
	if atomic.LoadUint64(&smpViol) != 0 {
		return exitViolations
	}
	if smpFreed != smpShared || smpFail != 0 {
		putString("smp: shared frames freed ")
		putDec(smpFreed)
		putString(" times, failures ")
		putDec(smpFail)
		putString("\n")
		return exitWorkloadFail
	}
	if kernelMM.FreeFrames() != startFree || kernelMM.CachedFrames() != 0 {
		putString("smp: frames not conserved\n")
		return exitWorkloadFail
	}
	return exitOK
}

// smpJob is one vCPU's share of the smp workload.
func smpJob(cpu uint64) uint64 {
	c := int(cpu)
	n := uint64(bootInfo().NumCPUs)
	next := &rings[(cpu+1)%n]
	mine := &rings[cpu]
	r := rng{s: 0x9e3779b97f4a7c15 ^ (cpu+1)*0x2545f4914f6cdd1d}
	var held [8]uint64
	for round := 0; round < smpRounds; round++ {
		k := int(1 + r.below(8))
		for i := 0; i < k; i++ {
			f, err := kernelMM.AllocLocal(c, mm.FlagKernel)
			if err != mm.ErrNone {
				k = i
				break
			}
			physWords(f.StartAddress(), 1)[0] = cpu
			held[i] = f.StartAddress()
			atomic.AddUint64(&smpAllocs, 1)
		}
		for i := 0; i < k; i++ {
			if i%2 == 0 && next.push(held[i]) {
				continue // the next vCPU frees it
			}
			if kernelMM.FreeLocal(c, mm.ContainingAddress(held[i])) != mm.ErrNone {
				atomic.AddUint64(&smpFail, 1)
			}
		}
		freeIncoming(c, mine)
		if round == smpRounds/2 {
			releaseShared(c)
		}
	}
	smpBarrier.wait() // every send is done
	freeIncoming(c, mine)
	smpBarrier.wait()
	if cpu == 0 && !checkAndCheckpoint("smp-caches", 0) { // caches still populated
		atomic.StoreUint64(&smpViol, 1) // a verdict on the allocator, not a workload failure
	}
	smpBarrier.wait()
	if kernelMM.Drain(c) != mm.ErrNone {
		atomic.AddUint64(&smpFail, 1)
	}
	smpBarrier.wait()
	return exitOK
}

func freeIncoming(c int, ring *pfnRing) {
	for {
		v, ok := ring.pop()
		if !ok {
			return
		}
		if physWords(v, 1)[0] == uint64(c) || kernelMM.FreeLocal(c, mm.ContainingAddress(v)) != mm.ErrNone {
			atomic.AddUint64(&smpFail, 1)
			continue
		}
		atomic.AddUint64(&smpCross, 1)
	}
}

// releaseShared drops this vCPU's reference to every shared frame; exactly
// one put per frame must free it (for the anchored frames, the anchor's).
func releaseShared(c int) {
	for i := range sharedSet {
		freed, err := kernelMM.PutLocal(c, mm.ContainingAddress(sharedSet[i]))
		if err != mm.ErrNone {
			atomic.AddUint64(&smpFail, 1)
		}
		if freed {
			atomic.AddUint64(&smpFreed, 1)
		}
	}
}
