package main

import (
	"github.com/vmm-dev/vmm/firmware"
)

// Synchronous fault signals, delivered to the program's own handler the
// way Linux x86-64 does it: an exception in user code that the kernel
// cannot resolve becomes SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP; if the
// program installed a handler for it (rt_sigaction) and does not block it,
// the kernel builds an rt_sigframe on the thread's signal stack and enters
// the handler, which returns through sa_restorer into rt_sigreturn. Go's
// runtime rewrites the frame's RIP to its sigpanic, so a nil dereference
// becomes a Go panic that recover can stop. A fault with no handler, a
// blocked or ignored one (Linux forces the default action then), or a frame
// that cannot be written ends the program as before (programKilled).
// Asynchronous signals (tgkill SIGURG, Go's goroutine preemption) are not
// delivered: Go falls back to cooperative preemption at function prologues.

// sigaction flags and signal-stack flags (Linux x86-64).
const (
	saSiginfo   = 0x4
	saOnstack   = 0x08000000
	saRestorer  = 0x04000000
	saNodefer   = 0x40000000
	saResethand = 0x80000000
	ssOnstack   = 1
	ssDisable   = 2
)

// Signal numbers and si_code values used for faults.
const (
	sigILL  = 4
	sigTRAP = 5
	sigBUS  = 7
	sigFPE  = 8
	sigKILL = 9
	sigSEGV = 11
	sigSTOP = 19

	siKernel    = 0x80
	segvMaperr  = 1
	segvAccerr  = 2
	illIllopn   = 2
	fpeIntdiv   = 1
	busAdraln   = 1
	trapBrkpt   = 1
	unblockable = 1<<(sigKILL-1) | 1<<(sigSTOP-1)
)

// The rt_sigframe the handler sees (offsets from the frame's start, which
// is the handler's RSP: the return address comes first).
const (
	sfRestorer = 0
	sfUC       = 8             // struct ucontext
	sfStack    = sfUC + 16     // uc_stack: ss_sp, ss_flags, ss_size
	sfGregs    = sfUC + 40     // uc_mcontext: r8..r15 rdi rsi rbp rbx rdx rax rcx rsp rip eflags csgsfs err trapno oldmask cr2
	sfFPState  = sfGregs + 184 // uc_mcontext.fpstate
	sfSigmask  = sfUC + 296    // uc_sigmask
	sfInfo     = sfUC + 304    // struct siginfo (128 bytes)
	sfSize     = sfInfo + 128
	ucSize     = sfInfo - sfUC
	fxSize     = 512
	redZone    = 128 // the ABI's red zone below a non-leaf's RSP is left alone
)

// Linux's gregs order, as indices into the ucontext's register array.
const (
	gR8 = iota
	gR9
	gR10
	gR11
	gR12
	gR13
	gR14
	gR15
	gDI
	gSI
	gBP
	gBX
	gDX
	gAX
	gCX
	gSP
	gIP
	gFlags
	gCSGSFS
	gErr
	gTrapno
	gOldmask
	gCR2
	gFPState // uc_mcontext.fpstate follows the 23 registers
	nGregs   = gFPState
)

// rflags bits a handler starts without (DF, TF, RF) and those sigreturn
// takes from the frame (Linux's FIX_EFLAGS: AC OF DF TF SF ZF AF PF CF RF).
const (
	flagsClearOnEntry = 0x400 | 0x100 | 0x10000
	flagsFromFrame    = 0x40000 | 0x800 | 0x400 | 0x100 | 0x80 | 0x40 | 0x10 | 0x4 | 0x1 | 0x10000
)

// sigFrameBuf is where a frame is assembled before it is copied out (one
// vCPU runs programs and kernel code is never preempted).
var sigFrameBuf [sfSize]byte

// sigFaults counts faults delivered to a handler, for the run's report.
var sigFaults uint64

// faultSignal is the signal, si_code and si_addr Linux gives an exception
// in user code (arch/x86/kernel/traps.c).
func faultSignal(rec *firmware.TrapRecord) (sig, code, addr uint64) {
	switch rec.Vector {
	case 0: // #DE
		return sigFPE, fpeIntdiv, rec.RIP
	case 1, 3: // #DB, #BP
		return sigTRAP, siKernel, 0
	case 6: // #UD
		return sigILL, illIllopn, rec.RIP
	case 11, 12: // #NP, #SS
		return sigBUS, siKernel, 0
	case 14:
		code = segvMaperr
		if rec.ErrorCode&pfPresent != 0 || proc.vmas.find(rec.CR2) >= 0 {
			code = segvAccerr // an area covers it: the access was not allowed
		}
		return sigSEGV, code, rec.CR2
	case 16, 19: // #MF, #XM
		return sigFPE, 0, rec.RIP
	case 17: // #AC
		return sigBUS, busAdraln, 0
	}
	return sigSEGV, siKernel, 0 // #GP and the rest
}

// deliverFault enters the program's handler for the fault in rec/regs,
// leaving in them the handler's entry state; false means the fault cannot
// be delivered and the program must be killed.
func deliverFault(rec *firmware.TrapRecord, regs *trapRegs) bool {
	sig, code, addr := faultSignal(rec)
	act := &sigactions[sig]
	t := &threads[curThread]
	bit := uint64(1) << (sig - 1)
	if act[0] <= 1 || t.sigmask&bit != 0 || act[1]&saRestorer == 0 {
		return false // default, ignored or blocked: Linux forces the default action
	}
	if rec.Vector == 14 && faultAllowed(rec) {
		return false // a legal access that found no free frame: not the program's fault to handle
	}
	var c userCtx
	ctxFromTrap(&c, rec, regs)
	fx := fxBelow(regs)
	frame, ok := pushSigFrame(t, &c, fx, act, sig, code, addr, rec.Vector, rec.ErrorCode, rec.CR2, rec.CS, rec.SS)
	if !ok {
		return false
	}
	t.sigmask |= act[3] &^ unblockable
	if act[1]&saNodefer == 0 {
		t.sigmask |= bit
	}
	c.DI, c.SI, c.DX, c.AX = sig, frame+sfInfo, frame+sfUC, 0
	c.RSP, c.RIP, c.RFLAGS = frame, act[0], c.RFLAGS&^flagsClearOnEntry
	if act[1]&saResethand != 0 { // this delivery only: the next one is fatal
		act[0], act[1] = 0, act[1]&^saSiginfo
	}
	ctxToTrap(&c, rec, regs)
	fxInit(fx) // the handler starts with a clean FPU, as on Linux
	sigFaults++
	return true
}

// pushSigFrame writes the FXSAVE image and the rt_sigframe for c onto the
// thread's signal stack (or below its stack pointer) and returns the
// frame's address.
func pushSigFrame(t *thread, c *userCtx, fx *[512]byte, act *[4]uint64, sig, code, addr, trapno, errCode, cr2, cs, ss uint64) (uint64, bool) {
	ssSP, ssSize := t.altstack[0], t.altstack[2]
	altOn := ssSize != 0 && uint32(t.altstack[1])&ssDisable == 0
	onAlt := onAltStack(t, c.RSP)
	sp := c.RSP - redZone
	if act[1]&saOnstack != 0 && altOn && !onAlt {
		sp = ssSP + ssSize
	}
	fp := (sp - fxSize) &^ 63
	frame := (fp-sfSize)&^15 - 8 // the handler is entered as if called: RSP+8 16-aligned
	if frame >= sp || (altOn && (onAlt || act[1]&saOnstack != 0) && frame < ssSP) {
		return 0, false // wrapped, or the frame would overflow the signal stack
	}
	b := sigFrameBuf[:]
	clear(b)
	put64(b, sfRestorer, act[2])
	put64(b, sfUC, 6) // UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
	stFlags := uint64(0)
	if !altOn {
		stFlags = ssDisable
	} else if onAlt {
		stFlags = ssOnstack
	}
	put64(b, sfStack, ssSP)
	put64(b, sfStack+8, stFlags)
	put64(b, sfStack+16, ssSize)
	g := [nGregs]uint64{
		gR8: c.R8, gR9: c.R9, gR10: c.R10, gR11: c.R11, gR12: c.R12, gR13: c.R13, gR14: c.R14, gR15: c.R15,
		gDI: c.DI, gSI: c.SI, gBP: c.BP, gBX: c.BX, gDX: c.DX, gAX: c.AX, gCX: c.CX, gSP: c.RSP, gIP: c.RIP,
		gFlags: c.RFLAGS, gCSGSFS: cs&0xffff | (ss&0xffff)<<48, gErr: errCode, gTrapno: trapno,
		gOldmask: t.sigmask,
	}
	if trapno == 14 {
		g[gCR2] = cr2
	}
	for i, v := range g {
		put64(b, sfGregs+8*uint64(i), v)
	}
	put64(b, sfFPState, fp)
	put64(b, sfSigmask, t.sigmask)
	put64(b, sfInfo, sig)     // si_signo, si_errno 0
	put64(b, sfInfo+8, code)  // si_code
	put64(b, sfInfo+16, addr) // si_addr
	if !copyToUser(fp, fx[:]) || !copyToUser(frame, b) {
		return 0, false
	}
	return frame, true
}

// sysRtSigreturn restores the context a handler's frame holds (the handler
// may have changed it: Go's points RIP at sigpanic) and returns its RAX.
// The frame is the ucontext at RSP: the handler's RET popped the restorer.
func sysRtSigreturn(c *userCtx) uint64 {
	uc := c.RSP
	b := sigFrameBuf[:ucSize]
	if !copyFromUser(b, uc) {
		sigreturnKill(c)
	}
	rip := greg(b, gIP)
	if rip >= userTop {
		sigreturnKill(c) // the kernel's own addresses are never a resume point
	}
	fx := fxBelow(c)
	if fp := greg(b, gFPState); fp != 0 {
		mask := uint32(le32(fx[:], 28)) // MXCSR_MASK of this CPU, from the last FXSAVE
		if mask == 0 {
			mask = 0xffbf
		}
		if fp%16 != 0 || !copyFromUser(fx[:], fp) {
			sigreturnKill(c)
		}
		mx := uint32(le32(fx[:], 24)) & mask // reserved MXCSR bits would make FXRSTOR fault
		for i := 0; i < 4; i++ {
			fx[24+i] = byte(mx >> (8 * i))
		}
	} else {
		fxInit(fx)
	}
	c.R8, c.R9, c.R10, c.R11 = greg(b, gR8), greg(b, gR9), greg(b, gR10), greg(b, gR11)
	c.R12, c.R13, c.R14, c.R15 = greg(b, gR12), greg(b, gR13), greg(b, gR14), greg(b, gR15)
	c.DI, c.SI, c.BP, c.BX = greg(b, gDI), greg(b, gSI), greg(b, gBP), greg(b, gBX)
	c.DX, c.CX, c.RSP, c.RIP = greg(b, gDX), greg(b, gCX), greg(b, gSP), rip
	c.RFLAGS = c.RFLAGS&^flagsFromFrame | greg(b, gFlags)&flagsFromFrame
	threads[curThread].sigmask = le64(b, sfSigmask-sfUC) &^ unblockable
	return greg(b, gAX)
}

// sigreturnKill ends the program whose rt_sigreturn frame is unreadable or
// bad: Linux answers with a SIGSEGV the program cannot catch.
func sigreturnKill(c *userCtx) {
	rec := firmware.TrapRecord{Vector: 13, RIP: c.RIP}
	programKilled(&rec)
}

// faultAllowed reports whether the page fault in rec was an access its area
// permits to a page not yet there, i.e. one demand paging failed to serve.
func faultAllowed(rec *firmware.TrapRecord) bool {
	i := proc.vmas.find(rec.CR2)
	if i < 0 || rec.ErrorCode&pfPresent != 0 {
		return false
	}
	prot := proc.vmas.a[i].prot
	return prot != 0 && (rec.ErrorCode&pfWrite == 0 || prot&protWrite != 0)
}

// onAltStack reports whether sp lies on t's enabled signal stack.
func onAltStack(t *thread, sp uint64) bool {
	ssSP, ssSize := t.altstack[0], t.altstack[2]
	return ssSize != 0 && uint32(t.altstack[1])&ssDisable == 0 && sp > ssSP && sp-ssSP <= ssSize
}

// fxInit sets an FXSAVE image to the FPU's initial state.
func fxInit(fx *[512]byte) {
	mask := [4]byte{fx[28], fx[29], fx[30], fx[31]}
	clear(fx[:])
	fx[0], fx[1] = 0x7f, 0x03   // FCW 0x37f
	fx[24], fx[25] = 0x80, 0x1f // MXCSR 0x1f80
	copy(fx[28:32], mask[:])
}

// greg is register i of a ucontext read into b.
func greg(b []byte, i uint64) uint64 { return le64(b, sfGregs-sfUC+8*i) }

func put64(b []byte, off, v uint64) {
	for i := uint64(0); i < 8; i++ {
		b[off+i] = byte(v >> (8 * i))
	}
}

// sigDefaultIgnored is the set of signals whose default action is to do
// nothing (SIGCHLD, SIGURG, SIGWINCH); SIGCONT resumes, which here is the
// same. The stop signals are refused instead (no job control).
const sigDefaultIgnored = 1<<(17-1) | 1<<(18-1) | 1<<(23-1) | 1<<(28-1)

const sigStops = 1<<(19-1) | 1<<(20-1) | 1<<(21-1) | 1<<(22-1)

// sysTgkill sends sig to one of the program's threads. Only what is
// synchronous here is served: Go's dieFromSignal resets the action to the
// default and raises the signal on itself, which must end the program as
// killed by it.
func sysTgkill(c *userCtx, tgid, tid, sig uint64) uint64 {
	if sig > 64 || int64(tid) <= 0 || int64(tgid) <= 0 {
		return errno(eINVAL)
	}
	if tgid != programPID || !threadExists(tid) {
		return errno(eSRCH)
	}
	if sig == 0 {
		return 0 // the existence check
	}
	bit := uint64(1) << (sig - 1)
	act := sigactions[sig][0]
	switch {
	case sig == 23:
		return 0 // SIGURG: asynchronous preemption, safely dropped
	case sig == 9 || (act == 0 && sigDefaultIgnored&bit == 0 && sigStops&bit == 0):
		killRIP, killAddr = c.RIP, 0
		programEnd(128+sig, sig) // does not return
	case act == 1 || (act == 0 && sigDefaultIgnored&bit != 0):
		return 0 // ignored: discarded, as Linux does
	}
	return errno(eNOSYS) // a handler, or a stop signal: not delivered asynchronously
}

// brokenPipe is a write to a pipe nobody reads: SIGPIPE, whose default
// action ends the program, else EPIPE (Go ignores it at the write and
// then decides for itself; a blocked SIGPIPE stays undelivered).
func brokenPipe(c *userCtx) uint64 {
	if sigactions[13][0] == 0 && threads[curThread].sigmask&(1<<12) == 0 {
		killRIP, killAddr = c.RIP, 0
		programEnd(128+13, 13)
	}
	return errno(ePIPE)
}

// threadExists reports whether tid names a live thread of the program.
func threadExists(tid uint64) bool {
	for i := range threads {
		if threads[i].state != threadFree && threads[i].tid == tid {
			return true
		}
	}
	return false
}
