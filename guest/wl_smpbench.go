package main

import (
	"sync/atomic"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// smpBenchPairs is each vCPU's number of order-0 AllocLocal+FreeLocal pairs.
const smpBenchPairs = 2000000

var (
	smpBenchTicks   [firmware.MaxCPUs]uint64
	smpBenchBarrier barrier
)

// runSMPBench measures order-0 pairs per second through the per-CPU caches
// with every vCPU allocating at once (guest TSC); compare with
// go test -bench 'AllocFreeLocal' -cpu 1,2 ./guest/mm/ on the host.
func runSMPBench(bi *firmware.BootInfo) uint64 {
	if bi.TSCKHz == 0 {
		return exitWorkloadFail
	}
	if st := postJob(jobSMPBench); st != exitOK {
		return st
	}
	longest := uint64(0)
	for c := uint32(0); c < bi.NumCPUs; c++ {
		longest = max(longest, smpBenchTicks[c])
	}
	ns := ticksToNS(longest)
	pairs := uint64(bi.NumCPUs) * smpBenchPairs
	report("smpbench.cpus", uint64(bi.NumCPUs))
	report("smpbench.pairs", pairs)
	report("smpbench.ns", ns)
	report("smpbench.pairs_per_sec", pairs*1000000000/max(ns, 1))
	report("smpbench.ps_per_pair_per_cpu", ns*1000/smpBenchPairs)
	return exitOK
}

func smpBenchJob(cpu uint64) uint64 {
	c := int(cpu)
	for i := 0; i < 1000; i++ { // warm the cache and the TLB
		f, err := kernelMM.AllocLocal(c, mm.FlagKernel)
		if err != mm.ErrNone || kernelMM.FreeLocal(c, f) != mm.ErrNone {
			return exitWorkloadFail
		}
	}
	smpBenchBarrier.wait()
	t := rdtsc()
	for i := 0; i < smpBenchPairs; i++ {
		f, err := kernelMM.AllocLocal(c, mm.FlagKernel)
		if err != mm.ErrNone || kernelMM.FreeLocal(c, f) != mm.ErrNone {
			return exitWorkloadFail
		}
	}
	atomic.StoreUint64(&smpBenchTicks[cpu], rdtsc()-t)
	smpBenchBarrier.wait()
	if kernelMM.Drain(c) != mm.ErrNone {
		return exitWorkloadFail
	}
	return exitOK
}
