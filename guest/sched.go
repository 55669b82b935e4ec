package main

import (
	"github.com/vmm-dev/vmm/firmware"
)

// Threads of the user program and a round-robin scheduler over them, run
// by whichever vCPU is free. A thread switch happens in a system call that
// blocks or yields, or at a timer tick that interrupted user code; kernel
// code is never preempted, and all of it runs under the kernel lock
// (runsmp.go), so the thread table needs no lock of its own.

const maxThreads = 64

// Thread states.
const (
	threadFree = iota
	threadRunnable
	threadRunning
	threadFutex    // waiting on futexAddr (until deadline, if set)
	threadSleeping // until deadline
	threadEpoll    // in epoll_pwait on epfd (until deadline, if set)
	threadPipe     // blocked on pipe pipeWait; restarts its system call when woken
)

type thread struct {
	ctx       userCtx
	state     uint64
	tid       uint64
	futexAddr uint64
	deadline  uint64 // guest ns since program start; 0: none
	clearTID  uint64 // CLONE_CHILD_CLEARTID / set_tid_address
	sigmask   uint64
	altstack  [3]uint64 // ss_sp, ss_flags, ss_size
	epfd      uint64    // epoll_pwait: the instance, the user's buffer, its size
	epEvents  uint64
	epMax     uint64
	pipeWait  uint64
	// fx is the thread's x87/SSE state (FXSAVE image) while it is off the
	// CPU: Go keeps live values in XMM registers, so a preempted thread
	// must get its own back.
	fx [512]byte
}

var (
	threads [maxThreads]thread
	// curThread is the thread of the vCPU that holds the kernel lock (-1:
	// it has none); kernelLock loads it from that vCPU's cpuCur.
	curThread int
	nextTID   uint64
	switches  uint64
)

// nowNanos is guest time since the program started, from the TSC.
func nowNanos() uint64 {
	d := rdtsc() - proc.tsc0
	return d/proc.tscKHz*1000000 + d%proc.tscKHz*1000000/proc.tscKHz
}

// wakeExpired makes threads whose deadline has passed runnable; a futex
// wait that timed out returns -ETIMEDOUT.
func wakeExpired(now uint64) {
	for i := range threads {
		t := &threads[i]
		if (t.state == threadFutex || t.state == threadSleeping || t.state == threadEpoll) && t.deadline != 0 && t.deadline <= now {
			switch t.state {
			case threadFutex:
				t.ctx.AX = errno(eTIMEDOUT)
			case threadEpoll:
				t.ctx.AX = 0 // no events
			}
			t.state = threadRunnable
		}
	}
}

// pickNext returns the next runnable thread after the current one (the
// current one last), or -1. A thread running on another vCPU is not
// runnable.
func pickNext() int {
	for k := 1; k <= maxThreads; k++ {
		i := (curThread + k) % maxThreads
		if threads[i].state == threadRunnable {
			return i
		}
	}
	return -1
}

// schedule saves the current thread's context from ctx and fx (it may have
// blocked; there is none on a vCPU that just joined) and loads the next
// runnable thread's into them. With nothing runnable the vCPU idles in the
// VMM without the lock (idleWait) until a deadline or a wake.
func schedule(ctx *userCtx, fx *[512]byte) {
	if curThread >= 0 {
		cur := &threads[curThread]
		cur.ctx = *ctx
		cur.fx = *fx
		if cur.state == threadRunning {
			cur.state = threadRunnable
		}
	}
	for {
		now := nowNanos()
		wakeExpired(now)
		if next := pickNext(); next >= 0 {
			if next != curThread {
				switches++
			}
			curThread = next
			threads[next].state = threadRunning
			*ctx = threads[next].ctx
			*fx = threads[next].fx
			return
		}
		earliest, running := uint64(0), false
		for i := range threads {
			st := threads[i].state
			running = running || st == threadRunning
			if st != threadFree && st != threadRunnable && st != threadRunning &&
				threads[i].deadline != 0 && (earliest == 0 || threads[i].deadline < earliest) {
				earliest = threads[i].deadline
			}
		}
		if earliest == 0 && !running {
			putString("run: deadlock: every thread of the program waits with no timeout\n")
			exit(exitWorkloadFail)
		}
		idleWait(now, earliest)
	}
}

// preemptTick switches threads at a timer tick that interrupted user code:
// the trap return path then resumes whichever thread regs and rec hold.
func preemptTick(rec *firmware.TrapRecord, regs *trapRegs) {
	if proc.verifyEvery != 0 && nowNanos() >= proc.nextVerify {
		// A safe point: the tick interrupted the program, so no kernel
		// code (and no allocator critical section) is running.
		if !checkAndCheckpoint("run-periodic", 0) {
			proc.verifyFailed = true
		}
		proc.nextVerify = nowNanos() + proc.verifyEvery
	}
	var ctx userCtx
	ctxFromTrap(&ctx, rec, regs)
	schedule(&ctx, fxBelow(regs))
	ctxToTrap(&ctx, rec, regs)
}

func ctxFromTrap(c *userCtx, rec *firmware.TrapRecord, r *trapRegs) {
	c.AX, c.BX, c.CX, c.DX, c.SI, c.DI, c.BP = r.AX, r.BX, r.CX, r.DX, r.SI, r.DI, r.BP
	c.R8, c.R9, c.R10, c.R11, c.R12, c.R13, c.R14, c.R15 = r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15
	c.RSP, c.RIP, c.RFLAGS, c.FS = rec.RSP, rec.RIP, rec.RFLAGS, r.FSBase
}

func ctxToTrap(c *userCtx, rec *firmware.TrapRecord, r *trapRegs) {
	r.AX, r.BX, r.CX, r.DX, r.SI, r.DI, r.BP = c.AX, c.BX, c.CX, c.DX, c.SI, c.DI, c.BP
	r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15 = c.R8, c.R9, c.R10, c.R11, c.R12, c.R13, c.R14, c.R15
	rec.RSP, rec.RIP, rec.RFLAGS, r.FSBase = c.RSP, c.RIP, c.RFLAGS, c.FS
}

// futexWake makes up to n threads waiting on addr runnable (result 0).
func futexWake(addr uint64, n uint64) uint64 {
	woken := uint64(0)
	for i := range threads {
		if woken >= n {
			break
		}
		t := &threads[i]
		if t.state == threadFutex && t.futexAddr == addr {
			t.state = threadRunnable
			t.ctx.AX = 0
			woken++
		}
	}
	return woken
}

// newThread starts a clone: the parent's registers, with the new stack, TLS
// and RAX 0. It returns the child's tid, or 0 when the table is full.
func newThread(parent *userCtx, parentFX *[512]byte, stack, tls uint64, setTLS bool, clearTID uint64) uint64 {
	for i := range threads {
		t := &threads[i]
		if t.state != threadFree {
			continue
		}
		*t = thread{state: threadRunnable, tid: nextTID, clearTID: clearTID, sigmask: threads[curThread].sigmask}
		nextTID++
		t.ctx = *parent
		t.fx = *parentFX
		t.ctx.AX = 0
		if stack != 0 {
			t.ctx.RSP = stack
		}
		if setTLS {
			t.ctx.FS = tls
		}
		return t.tid
	}
	return 0
}
