package main

import (
	"sync/atomic"

	"github.com/vmm-dev/vmm/firmware"
)

// Secondary vCPUs start in secondaryMain and wait for jobs that vCPU 0
// posts. Waiting never burns a host time slice: after a short spin a vCPU
// sleeps in the VMM (HCSleep) until another one wakes it (HCWake).

// spinBeforeSleep bounds busy-waiting: with more vCPUs than host CPUs the
// one we wait for may be descheduled, and PAUSE does not exit to the host.
const spinBeforeSleep = 200

// sleepNanos caps one sleep, so a lost wake costs at most this much.
const sleepNanos = 1000000

var (
	jobGen    uint64 // incremented by vCPU 0 to post a job
	jobID     uint64 // which job (jobSMP...)
	jobDone   uint64 // secondaries that finished the current job
	jobStatus uint64 // first failure status reported by a secondary
	online    uint64 // secondaries that reached secondaryMain
	sleepers  uint64 // bitmask of vCPUs asleep in waitFor
	idtReady  uint64 // vCPU 0 has filled the IDT
)

// Jobs vCPU 0 can post.
const (
	jobNone = iota
	jobSMP
	jobSMPBench
	jobRun // vmm run: join the scheduler (runSecondary); never returns
)

// waitFor spins briefly, then sleeps in the VMM, until cond holds.
func waitFor(cond func() bool) {
	for i := 0; i < spinBeforeSleep; i++ {
		if cond() {
			return
		}
		cpuPause()
	}
	bit := uint64(1) << thisCPU().Index
	for !cond() {
		atomic.OrUint64(&sleepers, bit)
		if !cond() {
			hypercall(firmware.HCSleep, sleepNanos, 0, 0, 0)
		}
		atomic.AndUint64(&sleepers, ^bit)
	}
}

// wakeAll wakes every sleeping vCPU (they re-check their condition).
func wakeAll() {
	s := atomic.LoadUint64(&sleepers)
	for cpu := uint64(0); s != 0; cpu++ {
		if s&(1<<cpu) != 0 {
			hypercall(firmware.HCWake, cpu, 0, 0, 0)
			s &^= 1 << cpu
		}
	}
}

// relax is the allocator lock's back-off: sleep a little in the VMM
// instead of spinning through a descheduled holder's time slice.
func relax() {
	if bootInfo().NumCPUs > 1 {
		hypercall(firmware.HCSleep, 20000, 0, 0, 0)
	}
}

func secondaryMain(cpu uint64) {
	// Interrupts (timer ticks reach every vCPU) may come once the trap
	// record is set: not before vCPU 0 has filled the IDT.
	waitFor(func() bool { return atomic.LoadUint64(&idtReady) != 0 })
	initTrapRecord()
	atomic.AddUint64(&online, 1)
	wakeAll()
	seen := uint64(0)
	for {
		waitFor(func() bool { return atomic.LoadUint64(&jobGen) != seen })
		seen = atomic.LoadUint64(&jobGen)
		st := runJob(atomic.LoadUint64(&jobID), cpu)
		if st != exitOK {
			atomic.CompareAndSwapUint64(&jobStatus, 0, st)
		}
		atomic.AddUint64(&jobDone, 1)
		wakeAll()
	}
}

// postJob runs job on every vCPU (vCPU 0 included) and waits for all.
func postJob(id uint64) uint64 {
	n := uint64(bootInfo().NumCPUs)
	waitFor(func() bool { return atomic.LoadUint64(&online) == n-1 })
	atomic.StoreUint64(&jobDone, 0)
	atomic.StoreUint64(&jobStatus, 0)
	atomic.StoreUint64(&jobID, id)
	atomic.AddUint64(&jobGen, 1)
	wakeAll()
	st := runJob(id, 0)
	waitFor(func() bool { return atomic.LoadUint64(&jobDone) == n-1 })
	if st == exitOK {
		st = atomic.LoadUint64(&jobStatus)
	}
	return st
}

func runJob(id, cpu uint64) uint64 {
	switch id {
	case jobSMP:
		return smpJob(cpu)
	case jobSMPBench:
		return smpBenchJob(cpu)
	case jobRun:
		return runSecondary(cpu)
	}
	return exitOK
}

// barrier is a reusable all-vCPU rendezvous.
type barrier struct{ arrived, gen uint64 }

func (b *barrier) wait() {
	n := uint64(bootInfo().NumCPUs)
	g := atomic.LoadUint64(&b.gen)
	if atomic.AddUint64(&b.arrived, 1) == n {
		atomic.StoreUint64(&b.arrived, 0)
		atomic.AddUint64(&b.gen, 1)
		wakeAll()
		return
	}
	waitFor(func() bool { return atomic.LoadUint64(&b.gen) != g })
}
