package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// Repetitions of the bench workload. Every figure is the minimum over
// repetitions of identical work (the host side of `vmm bench` and
// BenchmarkGuestLoop* use the same estimator): the vCPU is a host thread
// on a small, shared machine, and a repetition during which it was
// preempted or a neighbour flushed the caches measures the neighbour, not
// the allocator. The whole workload takes ~0.6 s.
const (
	benchPairReps = 50  // of mm.BenchPairChunk pairs: 1e7 pairs in all
	benchInitReps = 256 // of 1 GiB of metadata
	benchRounds   = 256 // BenchAllocOrder rounds of 64 MiB per order
)

// runBench times the loops of guest/mm/benchloop.go with the guest TSC
// (frequency from KVM in the boot info) and reports picoseconds (integers
// keep sub-nanosecond precision) or nanoseconds; `vmm bench` runs the same
// functions on the host and prints the ratio.
//
//   - bench.order0_pair_ps: one order-0 Lock/Alloc/Free/Unlock pair on the
//     no-split, no-merge path (mm.BenchAllocFree), best of benchPairReps
//     repetitions of mm.BenchPairChunk pairs.
//   - bench.order{0,3,9}_alloc_ps: one Lock/Alloc/Unlock of that order:
//     rounds of mm.BenchOrderBatch blocks (64 MiB) allocated (timed), then
//     freed (not timed), best of benchRounds rounds.
//   - bench.init_gib_ns: InitMetadata over the 262144 records that cover
//     1 GiB of RAM. The buddy's largest block is 4 MiB (MaxOrder), so the 16
//     MiB of records are four separate MaxOrder blocks, 65536 records each
//     (mm.BenchInitMetadata; the host does the same over one 16 MiB
//     buffer); one untimed pass first touches them (host page faults on
//     guest RAM), then best of benchInitReps repetitions.
func runBench(bi *firmware.BootInfo) uint64 {
	khz := bi.TSCKHz
	if khz == 0 {
		putString("bench: the VMM gave no TSC frequency\n")
		return exitWorkloadFail
	}
	report("bench.tsc_khz", khz)

	// Metadata init: first, while the four MaxOrder blocks are easy to find.
	var chunks [mm.BenchInitChunks]uint64
	tok := kernelMM.Lock()
	n := 0
	for ; n < len(chunks); n++ {
		f, err := kernelMM.Alloc(mm.MaxOrder, &tok)
		if err != mm.ErrNone {
			break
		}
		chunks[n] = f.StartAddress()
	}
	kernelMM.Unlock(&tok)
	if n == len(chunks) {
		mm.BenchInitMetadata(firmware.PhysMapBase, chunks[:], mm.BenchInitChunkFrames) // first touch
		best := ^uint64(0)
		for r := 0; r < benchInitReps; r++ {
			t := rdtsc()
			mm.BenchInitMetadata(firmware.PhysMapBase, chunks[:], mm.BenchInitChunkFrames)
			best = min(best, rdtsc()-t)
		}
		report("bench.init_gib_ns", ticksToPS(best, 1000, khz))
	} else {
		putString("bench: not enough memory for 16 MiB of metadata, skipping init\n")
	}
	tok = kernelMM.Lock()
	for i := 0; i < n; i++ {
		kernelMM.Free(mm.ContainingAddress(chunks[i]), mm.MaxOrder, &tok)
	}
	kernelMM.Unlock(&tok)

	// Order-0 alloc+free pairs.
	best := ^uint64(0)
	for r := 0; r < benchPairReps; r++ {
		t := rdtsc()
		err := mm.BenchAllocFree(&kernelMM, mm.BenchPairChunk)
		best = min(best, rdtsc()-t)
		if err != mm.ErrNone {
			putString("bench: alloc/free pair failed: ")
			putString(err.Error())
			putString("\n")
			return exitWorkloadFail
		}
	}
	report("bench.order0_pair_ps", ticksToPS(best, mm.BenchPairChunk, khz))

	// Order-k allocations.
	table, ok := newBlockTable()
	if !ok {
		putString("bench: no block for the frame table\n")
		return exitWorkloadFail
	}
	orders := [3]uint8{0, 3, 9}
	keys := [3]string{"bench.order0_alloc_ps", "bench.order3_alloc_ps", "bench.order9_alloc_ps"}
	for i, order := range orders {
		slots := table.slots[:min(len(table.slots), mm.BenchOrderBatch(order))]
		best := ^uint64(0)
		for r := 0; r < benchRounds; r++ {
			t := rdtsc()
			done, err := mm.BenchAllocOrder(&kernelMM, order, slots)
			ticks := rdtsc() - t
			ferr := mm.BenchFreeOrder(&kernelMM, order, slots[:done])
			if err != mm.ErrNone || ferr != mm.ErrNone || done != len(slots) {
				putString("bench: order-")
				putDec(uint64(order))
				putString(" alloc/free failed: ")
				putString(err.Error())
				putString(", ")
				putString(ferr.Error())
				putString(" (a round needs 64 MiB free)\n")
				table.release()
				return exitWorkloadFail
			}
			best = min(best, ticks)
		}
		report(keys[i], ticksToPS(best, uint64(len(slots)), khz))
	}
	table.release()
	putString("bench: done (see vmm bench for the host comparison)\n")
	return exitOK
}

// ticksToPS converts TSC ticks spent on count operations to picoseconds
// per operation: ticks * 1e9 / khz / count, without overflow for any run
// shorter than ~7 s at 2.6 GHz (and degrading gracefully beyond).
func ticksToPS(ticks, count, khz uint64) uint64 {
	if count == 0 || khz == 0 {
		return 0
	}
	if ticks <= ^uint64(0)/1000000000 {
		return ticks * 1000000000 / khz / count
	}
	return ticks / khz * 1000000000 / count
}
