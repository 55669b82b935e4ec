package main

import (
	"sync/atomic"

	"github.com/vmm-dev/vmm/firmware"
)

// A user program on several vCPUs (vmm run --cpus N).
//
// One kernel lock. Every entry from the program into the kernel (system
// call, page fault, timer tick, any other trap that interrupted the
// program) takes it, and the return to the program releases it, so kernel
// code (thread table, VMAs, page tables, fds, the allocator) runs on one
// vCPU at a time and needs no finer locking. A vCPU with nothing to run
// leaves the lock and sleeps in the VMM (HCSleep) until a deadline or an
// HCWake from a vCPU that made a thread runnable.
//
// TLB shootdown. Kernel code never reaches the program's memory through
// its virtual addresses (userPhys walks the tables and goes through the
// physmap; handleTrap writes its return frame that way too). So only
// instructions that run after the lock is released, the program's own and
// the return path's pops from the program's stack, can use a stale
// translation, and only on vCPUs that run the program. inUser[c] is 1 exactly while
// vCPU c may do so without the lock: it is set (under the lock) just
// before the release on the way back to the program, and cleared as the
// first thing at every entry, before any user address is touched. A vCPU
// that removes or narrows mappings (munmap, madvise, mprotect, MAP_FIXED
// over pages) does it under the lock, keeps the unmapped frames on a
// deferred list instead of freeing them, and before it frees them or lets
// go of the lock (shootdown):
//  1. bumps flushGen and flushes its own TLB;
//  2. kicks (HCKick: a timer interrupt from the VMM) every other vCPU with
//     inUser set, and waits until each has cleared it, kicking again now
//     and then (an interrupt can meet a masked window and wait);
//  3. only then frees the deferred frames.
// Why that is enough: a vCPU seen with inUser clear is in the kernel (or
// idle) and cannot get back to the program without the lock, which the
// shooter holds; when it next takes the lock it sees flushGen moved and
// flushes before it does anything else (kernelLock), so before any
// program instruction.
// A vCPU seen with inUser set has been waited for until it entered the
// kernel. So when step 3 runs, no vCPU holds, or can load without a
// flush, a translation to a frame on the deferred list, and none comes
// back to the buddy allocator while one might.
//
// Exit. exit_group (or a fatal signal) on any vCPU sets dying while holding
// the lock and kicks the others; each parks at its next attempt to take
// the lock (its own kernel CR3 loaded, asleep in the VMM for good), and
// only when all have parked does the exiting vCPU tear down the address
// space.
//
// Checkpoints (--verify-every) are taken by the lock holder at a timer
// tick that interrupted the program: every other vCPU is then in the
// program, waiting for the lock, or idle, never inside the allocator.

var (
	klock    uint64                   // 0: free; else the holder's vCPU index + 1
	inUser   [firmware.MaxCPUs]uint64 // 1: may run the program's code without the lock
	cpuCur   [firmware.MaxCPUs]uint64 // thread each vCPU runs, + 1 (0: none)
	flushGen uint64                   // shootdowns so far (changed under the lock)
	seenGen  [firmware.MaxCPUs]uint64 // flushGen at each vCPU's last TLB flush
	idleMask uint64                   // vCPUs asleep in schedule's idle wait
	// idleUntil is when each idle vCPU wakes by itself (guest ns).
	idleUntil  [firmware.MaxCPUs]uint64
	dying      uint64 // the program is ending: other vCPUs park
	parkedMask uint64 // vCPUs parked for the exit
	shootdowns uint64 // shootdowns that had to wait for another vCPU
	kicks      uint64

	// deferred holds frames unmapped since the last shootdown; they go
	// back to the allocator only after every vCPU has flushed.
	deferred  [deferMax]uint64
	ndeferred int
)

const (
	deferMax = 1024
	// lockSpins bounds busy-waiting for the kernel lock before a short
	// sleep in the VMM (the holder may be descheduled on the host).
	lockSpins      = 2000
	lockSleepNanos = 30000
	kickEvery      = 20000 // shootdown wait: spins between repeated kicks
	idleMaxNanos   = 100000000
)

// kernelEnter is the first thing an entry from the program does.
func kernelEnter(me uint64) {
	atomic.StoreUint64(&inUser[me], 0)
	kernelLock(me)
}

// kernelLock takes the kernel lock (parking for good if the program is
// ending) and makes this vCPU's thread current; a shootdown that happened
// since this vCPU's last flush is honoured before anything else.
func kernelLock(me uint64) {
	for spins := 0; ; spins++ {
		if atomic.LoadUint64(&klock) == 0 && atomic.CompareAndSwapUint64(&klock, 0, me+1) {
			break
		}
		if atomic.LoadUint64(&dying) != 0 {
			parkForExit(me)
		}
		if spins < lockSpins {
			cpuPause()
			continue
		}
		spins = 0
		hypercall(firmware.HCSleep, lockSleepNanos, 0, 0, 0)
	}
	curThread = int(cpuCur[me]) - 1
	if seenGen[me] != flushGen && proc.active {
		tlbFlush()
	}
}

// kernelExit returns to the program: deferred frames go back after a
// shootdown, idle vCPUs are woken for runnable threads, and the lock is
// released. No hypercall may follow the inUser store (a trap in the return
// path re-enters the kernel and may make its own).
func kernelExit(me uint64) {
	if proc.needFlush {
		shootdown()
	}
	wakeIdle()
	cpuCur[me] = uint64(curThread + 1)
	atomic.StoreUint64(&inUser[me], 1)
	atomic.StoreUint64(&klock, 0)
}

// kernelUnlockIdle lets go of the lock with no thread on this vCPU.
func kernelUnlockIdle(me uint64) {
	cpuCur[me] = 0
	curThread = -1
	atomic.StoreUint64(&klock, 0)
}

// deferFree queues a frame whose mapping was just cleared.
func deferFree(phys uint64) {
	deferred[ndeferred] = phys
	ndeferred++
	proc.needFlush = true
	if ndeferred == deferMax {
		shootdown()
	}
}

// freeDeferred hands the deferred frames back to the allocator. It first
// checks the shootdown's promise: every other vCPU is out of the program
// (inUser clear) or has flushed since the unmapping (seenGen current). On
// this host one vCPU's CR3 bounce happens to resync KVM's shadow tables
// for all, so a missing wait would not show as corruption; this check
// makes it a failure anyway.
func freeDeferred() {
	me := thisCPU().Index
	for c := uint64(0); c < uint64(bootInfo().NumCPUs); c++ {
		if c != me && ndeferred > 0 && atomic.LoadUint64(&inUser[c]) != 0 && atomic.LoadUint64(&seenGen[c]) != flushGen {
			putString("run: kernel bug: frames would be freed while vCPU ")
			putDec(c)
			putString(" may still hold stale translations\n")
			exit(exitWorkloadFail)
		}
	}
	for i := 0; i < ndeferred; i++ {
		putFrame(deferred[i])
		proc.frames--
	}
	ndeferred = 0
}

// shootdown makes every vCPU drop stale translations of the program, then
// frees the deferred frames (see the top of this file for why it is sound).
// Called with the kernel lock held.
func shootdown() {
	me := thisCPU().Index
	n := uint64(bootInfo().NumCPUs)
	atomic.AddUint64(&flushGen, 1)
	tlbFlush()
	pending := uint64(0)
	for c := uint64(0); c < n; c++ {
		if c != me && atomic.LoadUint64(&inUser[c]) != 0 {
			pending |= 1 << c
		}
	}
	if pending != 0 {
		shootdowns++
		kickAll(pending)
	}
	for spins := 1; pending != 0; spins++ {
		for c := uint64(0); c < n; c++ {
			if pending&(1<<c) != 0 && atomic.LoadUint64(&inUser[c]) == 0 {
				pending &^= 1 << c
			}
		}
		if pending == 0 {
			break
		}
		cpuPause()
		if spins%kickEvery == 0 {
			kickAll(pending)
		}
	}
	freeDeferred()
	proc.needFlush = false
}

func kickAll(mask uint64) {
	for c := uint64(0); mask != 0; c++ {
		if mask&(1<<c) != 0 {
			hypercall(firmware.HCKick, c, 0, 0, 0)
			kicks++
			mask &^= 1 << c
		}
	}
}

// idleWait sleeps in the VMM with no thread to run: until the earliest
// deadline (0: none), a wake, or idleMaxNanos. It returns with the lock.
func idleWait(now, earliest uint64) {
	me := thisCPU().Index
	if proc.needFlush {
		shootdown() // no deferred frame outlives the lock (a checkpoint may come next)
	}
	d := uint64(idleMaxNanos)
	if earliest > now {
		d = min(d, earliest-now)
	}
	idleUntil[me] = now + d
	atomic.OrUint64(&idleMask, 1<<me)
	kernelUnlockIdle(me)
	hypercall(firmware.HCSleep, d, 0, 0, 0)
	kernelLock(me)
	atomic.AndUint64(&idleMask, ^(uint64(1) << me))
}

// wakeIdle wakes an idle vCPU for each runnable thread, and one if a
// thread's deadline comes before an idle vCPU would wake by itself.
func wakeIdle() {
	m := atomic.LoadUint64(&idleMask)
	if m == 0 {
		return
	}
	runnable, earliest := 0, uint64(0)
	for i := range threads {
		switch t := &threads[i]; t.state {
		case threadRunnable:
			runnable++
		case threadFutex, threadSleeping, threadEpoll:
			if t.deadline != 0 && (earliest == 0 || t.deadline < earliest) {
				earliest = t.deadline
			}
		}
	}
	for c := uint64(0); m != 0; c++ {
		bit := uint64(1) << c
		if m&bit == 0 {
			continue
		}
		m &^= bit
		if runnable > 0 || (earliest != 0 && earliest < idleUntil[c]) {
			if runnable > 0 {
				runnable--
			} else {
				earliest = 0
			}
			atomic.AndUint64(&idleMask, ^bit)
			hypercall(firmware.HCWake, c, 0, 0, 0)
		}
	}
}

// parkForExit takes this vCPU out of the program for good: the exiting
// vCPU waits for it before it frees the page tables in our CR3.
func parkForExit(me uint64) {
	hypercall(firmware.HCSetCR3, 0, 0, 0, 0)
	thisCPU().Space = 0
	atomic.OrUint64(&parkedMask, 1<<me)
	for {
		hypercall(firmware.HCSleep, 0, 0, 0, 0) // the VMM ends the run
	}
}

// stopOtherCPUs parks every other vCPU (called with the lock held, on the
// way out of the program).
func stopOtherCPUs() {
	n := uint64(bootInfo().NumCPUs)
	if n == 1 {
		return
	}
	me := thisCPU().Index
	all := (uint64(1)<<n - 1) &^ (1 << me)
	if n == 64 {
		all = ^uint64(0) &^ (1 << me)
	}
	atomic.StoreUint64(&dying, 1)
	for spins := 0; ; spins++ {
		left := all &^ atomic.LoadUint64(&parkedMask)
		if left == 0 {
			return
		}
		if spins%kickEvery == 0 {
			kickAll(left)
		}
		cpuPause()
	}
}

// startSecondaries posts the run job: every other vCPU joins the
// scheduler (runSecondary).
func startSecondaries() {
	n := uint64(bootInfo().NumCPUs)
	if n == 1 {
		return
	}
	waitFor(func() bool { return atomic.LoadUint64(&online) == n-1 })
	atomic.StoreUint64(&jobID, jobRun)
	atomic.AddUint64(&jobGen, 1)
	wakeAll()
}

// runSecondary is a secondary vCPU's part of vmm run: load the program's
// page tables and run whatever thread is runnable, forever.
func runSecondary(cpu uint64) uint64 {
	if hypercall(firmware.HCSetCR3, proc.as.root, 0, 0, 0) != 0 {
		putString("run: the VMM refused the program's page tables on a secondary vCPU\n")
		exit(exitWorkloadFail)
	}
	thisCPU().Space = proc.as.root
	kernelLock(cpu)
	var ctx userCtx
	var fx [512]byte
	schedule(&ctx, &fx)
	kernelExit(cpu)
	enterThread(&ctx, &fx)
	return exitWorkloadFail // not reached
}

// schedAffinity is the mask sched_getaffinity reports: one CPU per vCPU.
func schedAffinity() uint64 {
	n := uint64(bootInfo().NumCPUs)
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<n - 1
}
