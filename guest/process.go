package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// A user process: one unmodified static x86-64 Linux ELF (vmm run), its
// address space (PML4 entries below firmware.PhysMapSlot, frames from the
// buddy allocator, registered with the host as a root), its VMAs and its
// threads. One process per boot; its threads run on every vCPU.

// Implemented in user_amd64.s.
func syscallEntry()
func syscallEntryAddr() uint64
func resumeCtx()
func enterUser(ctx *userCtx)

// enterThread is enterUser that also loads the thread's FXSAVE image.
//
//go:noescape
func enterThread(ctx *userCtx, fx *[512]byte)

var _, _, _ = syscallEntry, resumeCtx, handleSyscall // reached from LSTAR and from assembly

// userCtx is a user thread's registers, in the order user_amd64.s saves
// them on a system call.
type userCtx struct {
	AX, BX, CX, DX, SI, DI, BP, R8, R9, R10, R11, R12, R13, R14, R15 uint64
	RSP, RIP, RFLAGS, FS                                             uint64
	_                                                                uint64 // keeps the frame 16-byte aligned
}

// User address-space layout (all below the physmap).
const (
	userMin      = 0x10000               // lowest address mmap hands out or accepts
	userStackTop = 0x0000_7d00_0000_0000 // initial thread's stack top
	userStackMax = 8 << 20               // its reservation
	userMmapTop  = userStackTop - 1<<32  // mmap(NULL) allocates below this, top down
	userTop      = firmware.PhysMapBase  // nothing of the program at or above
	elfMaxPhnum  = 64                    // program headers a loaded ELF may have
	runRFlags    = 0x202                 // IF set (masking is paravirtual), reserved bit 1
	auxRandomLen = 16                    // AT_RANDOM bytes
)

type process struct {
	active       bool
	as           addressSpace
	vmas         vmaSet
	entry        uint64
	phdr, phnum  uint64
	framesBefore uint64 // free frames before exec: all must come back
	frames       uint64 // data frames the program holds
	peakFrames   uint64
	faults       uint64
	wallNanos    uint64 // host wall clock at boot
	tsc0         uint64 // TSC when the program started
	tscKHz       uint64
	verifyEvery  uint64 // ns between periodic checkpoints (0: none)
	nextVerify   uint64
	verifyFailed bool
	needFlush    bool // a mapping went away: flush before the program runs again
	flushes      uint64
}

var proc process

// bundle returns the run bundle's header, or nil if the blob is not one.
func bundle(bi *firmware.BootInfo) *firmware.RunHeader {
	if bi.TraceSize < firmware.RunHeaderSize {
		return nil
	}
	h := (*firmware.RunHeader)(ptr(uintptr(bi.TraceBase)))
	if h.Magic != firmware.RunMagic {
		return nil
	}
	in := func(off, size uint64) bool { return off <= bi.TraceSize && size <= bi.TraceSize-off }
	if !in(h.ELFOff, h.ELFSize) || !in(h.ArgvOff, h.ArgvSize) || !in(h.EnvOff, h.EnvSize) ||
		!in(h.RandomOff, auxRandomLen) || h.ArgvSize+h.EnvSize > firmware.RunMaxStrings ||
		!in(h.FSOff, h.FSSize) || h.FSOff%8 != 0 {
		return nil
	}
	return h
}

// runProgram is the run workload: exec the bundle's ELF and enter it. It
// returns only on failure before the program starts; afterwards the run
// ends in programExit.
func runProgram(bi *firmware.BootInfo) uint64 {
	h := bundle(bi)
	if h == nil {
		putString("run: no program bundle (use vmm run PROG)\n")
		return exitWorkloadFail
	}
	if bi.TSCKHz == 0 {
		putString("run: the VMM gave no TSC frequency\n")
		return exitWorkloadFail
	}
	proc = process{framesBefore: kernelMM.FreeFrames(), wallNanos: h.WallNanos, tscKHz: bi.TSCKHz,
		verifyEvery: h.VerifyNanos, nextVerify: h.VerifyNanos}
	as, ok := newAddressSpace()
	if !ok {
		putString("run: no frame for the page tables\n")
		return exitWorkloadFail
	}
	proc.as = as
	base := uint64(bi.TraceBase)
	if h.FSSize != 0 && !fsInit(base+h.FSOff, h.FSSize, h.FSCwd) {
		programAbort()
		return exitWorkloadFail
	}
	if !tmpfsMount() {
		putString("run: no memory for /tmp\n")
		programAbort()
		return exitWorkloadFail
	}
	if !loadELF(physBytes(base+h.ELFOff, int(h.ELFSize))) {
		programAbort()
		return exitWorkloadFail
	}
	if !proc.vmas.insert(userStackTop-userStackMax, userStackTop, protRead|protWrite) || !mapVDSO() {
		programAbort()
		return exitWorkloadFail
	}
	sp, ok := buildStack(physBytes(base+h.ArgvOff, int(h.ArgvSize)), h.Argc,
		physBytes(base+h.EnvOff, int(h.EnvSize)), h.Envc, physBytes(base+h.RandomOff, auxRandomLen))
	if !ok {
		putString("run: arguments do not fit on the stack\n")
		programAbort()
		return exitWorkloadFail
	}
	if !switchToProcess() {
		putString("run: the VMM refused the program's page tables\n")
		programAbort()
		return exitWorkloadFail
	}
	if !checkAndCheckpoint("run-loaded", 0) {
		programAbort()
		return exitViolations
	}
	// The VMM pointed LSTAR at main.syscallEntry (found by symbol); this
	// reference also keeps the linker from dropping it.
	report("run.syscall_entry", syscallEntryAddr())
	proc.tsc0 = rdtsc()
	vdsoStart()
	t := &threads[0]
	*t = thread{state: threadRunning, tid: 1}
	t.ctx = userCtx{RSP: sp, RIP: proc.entry, RFLAGS: runRFlags}
	nextTID = 2
	startSecondaries()
	kernelLock(0)
	curThread = 0
	proc.active = true
	kernelExit(0)
	enterUser(&t.ctx)
	return exitWorkloadFail // not reached: enterUser never returns
}

// switchToProcess loads the program's page tables into CR3.
func switchToProcess() bool {
	if hypercall(firmware.HCSetCR3, proc.as.root, 0, 0, 0) != 0 {
		return false
	}
	thisCPU().Space = proc.as.root
	return true
}

// programAbort tears down a program that never started.
func programAbort() {
	hypercall(firmware.HCSetCR3, 0, 0, 0, 0)
	thisCPU().Space = 0
	proc.as.destroy()
	tmpfsTeardown()
	proc.active = false
}

// programExit ends the program: every frame it held goes back to the
// allocator, the host verifies, and the run ends with its status. It never
// returns.
func programExit(status uint64) { programEnd(status, 0) }

// programEnd is programExit for a program that exited (sig 0) or was
// killed by signal sig.
func programEnd(status, sig uint64) {
	stopOtherCPUs()
	freeDeferred()
	proc.active = false
	hypercall(firmware.HCSetCR3, 0, 0, 0, 0)
	thisCPU().Space = 0
	ok := proc.as.destroy()
	for fd := uint64(3); fd < maxFDs; fd++ {
		closeFD(fd) // pipe buffers go back too
	}
	tmpfsTeardown() // and every /tmp page
	reportSyscalls()
	report("run.page_faults", proc.faults)
	report("run.tlb_flushes", proc.flushes)
	report("run.peak_frames", proc.peakFrames)
	report("run.thread_switches", switches)
	report("run.tlb_shootdowns", shootdowns)
	report("run.tlb_kicks", kicks)
	report("run.signals_delivered", sigFaults)
	report("run.threads", nextTID-1)
	leaked := proc.framesBefore - kernelMM.FreeFrames()
	if proc.framesBefore < kernelMM.FreeFrames() {
		leaked = 0
	}
	report("run.frames_leaked", leaked)
	if proc.verifyFailed {
		exit(exitViolations)
	}
	if !ok || leaked != 0 {
		putString("run: the program's frames did not all come back\n")
		exit(exitWorkloadFail)
	}
	if !checkAndCheckpoint("run", hintLast) {
		exit(exitViolations)
	}
	consoleFlush()
	hypercall(firmware.HCExitProgram, status, sig, killRIP, killAddr)
	//lint:ignore SA5002 the VMM never resumes a vCPU after the program's exit
	for {
	}
}

// ---- ELF loading ----

func le16(b []byte, off uint64) uint64 { return uint64(b[off]) | uint64(b[off+1])<<8 }
func le32(b []byte, off uint64) uint64 { return le16(b, off) | le16(b, off+2)<<16 }
func le64(b []byte, off uint64) uint64 { return le32(b, off) | le32(b, off+4)<<32 }

const (
	ptLoad = 1
	ptPhdr = 6
	pfX    = 1
	pfW    = 2
	pfR    = 4
)

// loadELF maps the PT_LOAD segments of image: pages holding file bytes are
// copied now, the rest of each segment (bss) is demand-zero. The host has
// checked the ELF already; every field is checked again here.
func loadELF(image []byte) bool {
	n := uint64(len(image))
	if n < 64 || le32(image, 0) != 0x464c457f || image[4] != 2 || le16(image, 18) != 62 {
		putString("run: not a 64-bit x86-64 ELF\n")
		return false
	}
	phoff, phentsize, phnum := le64(image, 32), le16(image, 54), le16(image, 56)
	if phentsize != 56 || phnum == 0 || phnum > elfMaxPhnum || phoff > n || phnum*56 > n-phoff {
		putString("run: bad program headers\n")
		return false
	}
	proc.entry, proc.phnum = le64(image, 24), phnum
	for i := uint64(0); i < phnum; i++ {
		ph := image[phoff+i*56 : phoff+i*56+56]
		typ, flags := le32(ph, 0), le32(ph, 4)
		off, vaddr, filesz, memsz := le64(ph, 8), le64(ph, 16), le64(ph, 32), le64(ph, 40)
		if typ == ptPhdr {
			proc.phdr = vaddr
		}
		if typ != ptLoad || memsz == 0 {
			continue
		}
		if off == 0 && proc.phdr == 0 {
			proc.phdr = vaddr + phoff
		}
		if filesz > memsz || off > n || filesz > n-off || vaddr < userMin || memsz > userTop ||
			vaddr > userTop-memsz || vaddr%mm.PageSize != off%mm.PageSize {
			putString("run: bad PT_LOAD segment\n")
			return false
		}
		prot := uint64(0)
		if flags&pfR != 0 {
			prot |= protRead
		}
		if flags&pfW != 0 {
			prot |= protWrite
		}
		if flags&pfX != 0 {
			prot |= protExec
		}
		start, end := vaddr&^(mm.PageSize-1), alignUpPage(vaddr+memsz)
		if !proc.vmas.insert(start, end, prot) {
			putString("run: PT_LOAD segments overlap\n")
			return false
		}
		// Copy the pages that hold file bytes; bss beyond them faults in.
		for va := start; va < vaddr+filesz; va += mm.PageSize {
			f, ok := userFrame()
			if !ok || !proc.as.mapPage(va, f, prot&protWrite != 0) {
				putString("run: out of memory loading the program\n")
				return false
			}
			dst := physPage(f)
			// File bytes of this page: [max(va, vaddr), min(va+4K, vaddr+filesz)).
			lo, hi := max(va, vaddr), min(va+mm.PageSize, vaddr+filesz)
			copy(dst[lo-va:hi-va], image[off+(lo-vaddr):off+(hi-vaddr)])
		}
	}
	if proc.entry < userMin || proc.vmas.find(proc.entry) < 0 {
		putString("run: entry point outside the program\n")
		return false
	}
	return true
}

func alignUpPage(x uint64) uint64 { return (x + mm.PageSize - 1) &^ (mm.PageSize - 1) }

// userFrame allocates a zeroed frame for the program and counts it.
func userFrame() (uint64, bool) {
	f, ok := allocZeroed(mm.FlagUser | mm.FlagAnonymous)
	if ok {
		proc.frames++
		proc.peakFrames = max(proc.peakFrames, proc.frames)
	}
	return f, ok
}

// dropUserPage unmaps va (if mapped); its frame is freed after the next
// TLB shootdown (runsmp.go), never while a vCPU may still reach it.
func dropUserPage(va uint64) {
	if phys, ok := proc.as.clearPage(va); ok {
		deferFree(phys)
	}
}

// ---- the initial stack ----

// Auxiliary vector keys.
const (
	atNull   = 0
	atPhdr   = 3
	atPhent  = 4
	atPhnum  = 5
	atPagesz = 6
	atEntry  = 9
	atUID    = 11
	atEUID   = 12
	atGID    = 13
	atEGID   = 14
	atSecure = 23
	atRandom = 25
	atExecfn = 31
)

// buildStack lays out argc, argv, envp and auxv as the System V ABI says,
// with the strings and AT_RANDOM's bytes above them, and returns the
// initial RSP.
func buildStack(argv []byte, argc uint64, envp []byte, envc uint64, random []byte) (uint64, bool) {
	strBytes := uint64(len(argv) + len(envp) + auxRandomLen)
	words := 1 + argc + 1 + envc + 1 + 2*16
	total := alignUp16(strBytes) + alignUp16(words*8)
	if total > userStackMax/2 || argc > uint64(len(argv)) || envc > uint64(len(envp)) {
		return 0, false
	}
	// Written straight into the program's stack pages (faulted in here).
	sp := userStackTop - total
	strBase := total - strBytes // offset of the strings from sp
	if !copyToUser(sp+strBase, random) || !copyToUser(sp+strBase+auxRandomLen, argv) ||
		!copyToUser(sp+strBase+auxRandomLen+uint64(len(argv)), envp) {
		return 0, false
	}
	w := uint64(0)
	failed := false
	put := func(v uint64) {
		failed = failed || !putUserU64(sp+w, v)
		w += 8
	}
	put(argc)
	strs := func(b []byte, count uint64, at uint64) bool {
		off := uint64(0)
		for i := uint64(0); i < count; i++ {
			if off >= uint64(len(b)) {
				return false
			}
			put(sp + at + off)
			for off < uint64(len(b)) && b[off] != 0 {
				off++
			}
			off++ // the NUL
		}
		put(0)
		return true
	}
	argvAt := strBase + auxRandomLen
	if !strs(argv, argc, argvAt) || !strs(envp, envc, argvAt+uint64(len(argv))) {
		return 0, false
	}
	execfn := uint64(0)
	if argc > 0 {
		execfn = sp + argvAt
	}
	for _, kv := range [...][2]uint64{
		{atPhdr, proc.phdr}, {atPhent, 56}, {atPhnum, proc.phnum}, {atPagesz, mm.PageSize},
		{atEntry, proc.entry}, {atUID, 0}, {atEUID, 0}, {atGID, 0}, {atEGID, 0}, {atSecure, 0},
		{atRandom, sp + strBase}, {atExecfn, execfn}, {atSysinfoEhdr, vdsoBase}, {atNull, 0},
	} {
		put(kv[0])
		put(kv[1])
	}
	return sp, !failed
}

func alignUp16(x uint64) uint64 { return (x + 15) &^ 15 }

// ---- user memory ----

// userPhys translates the user address va for a kernel access, faulting
// the page in if its area allows; 0 means EFAULT.
func userPhys(va uint64, write bool) uint64 {
	if va >= userTop {
		return 0
	}
	page := va &^ (mm.PageSize - 1)
	e := proc.as.lookup(page)
	if e == nil {
		if !demandPage(page, write) {
			return 0
		}
		e = proc.as.lookup(page)
	} else if write && *e&pteW == 0 {
		return 0
	}
	if e == nil {
		return 0
	}
	return *e&pteAddr | va&(mm.PageSize-1)
}

// copyToUser copies b to user address va; false means EFAULT.
func copyToUser(va uint64, b []byte) bool {
	for len(b) > 0 {
		pa := userPhys(va, true)
		if pa == 0 {
			return false
		}
		n := min(uint64(len(b)), mm.PageSize-va%mm.PageSize)
		copy(physBytes(pa, int(n)), b[:n])
		b, va = b[n:], va+n
	}
	return true
}

// copyFromUser fills b from user address va; false means EFAULT.
func copyFromUser(b []byte, va uint64) bool {
	for len(b) > 0 {
		pa := userPhys(va, false)
		if pa == 0 {
			return false
		}
		n := min(uint64(len(b)), mm.PageSize-va%mm.PageSize)
		copy(b[:n], physBytes(pa, int(n)))
		b, va = b[n:], va+n
	}
	return true
}

// userU64 reads an aligned 8-byte user word.
func userU64(va uint64) (uint64, bool) {
	if va%8 != 0 {
		return 0, false
	}
	pa := userPhys(va, false)
	if pa == 0 {
		return 0, false
	}
	return physWords(pa, 1)[0], true
}

// putUserU64 writes an aligned 8-byte user word.
func putUserU64(va, v uint64) bool {
	if va%8 != 0 {
		return false
	}
	pa := userPhys(va, true)
	if pa == 0 {
		return false
	}
	physWords(pa, 1)[0] = v
	return true
}

// demandPage maps a zeroed frame at page if an area allows the access,
// and zeroed frames at the unmapped pages around it (fault-around, see
// vmaSet.faultAround).
func demandPage(page uint64, write bool) bool {
	i := proc.vmas.find(page)
	if i < 0 {
		return false
	}
	prot := proc.vmas.a[i].prot
	if prot == 0 || (write && prot&protWrite == 0) {
		return false
	}
	f, ok := userFrame()
	if !ok {
		return false
	}
	if !proc.as.mapPage(page, f, prot&protWrite != 0) {
		putFrame(f)
		proc.frames--
		return false
	}
	proc.faults++
	if kernelMM.FreeFrames() < kernelMM.State().RAMFrames/faultAroundFreeShare {
		return true
	}
	lo, hi := proc.vmas.faultAround(i, page)
	for va := lo; va < hi; va += mm.PageSize {
		e := proc.as.pte(va, false) // the faulting page's table: never nil
		if e == nil || *e&pteP != 0 {
			continue
		}
		f, ok := userFrame()
		if !ok {
			break
		}
		*e = leafPTE(f, prot&protWrite != 0)
	}
	return true
}

// procPageFault resolves a fault in the program's address space (from the
// program, or from the kernel touching user memory).
func procPageFault(rec *firmware.TrapRecord) bool {
	if rec.CR2 >= userTop {
		return false
	}
	page := rec.CR2 &^ (mm.PageSize - 1)
	if e := proc.as.lookup(page); e != nil {
		if rec.ErrorCode&pfWrite == 0 || *e&pteW != 0 {
			return true // spurious: another vCPU mapped it while this one waited for the lock; retry
		}
		return false // a protection fault
	}
	return demandPage(page, rec.ErrorCode&pfWrite != 0)
}

// programKilled ends the program after a fault it cannot survive (no
// handler, or one that cannot be entered: see signal.go): the report names the signal Linux would have sent and
// the status is 128 + that signal, as a shell shows it.
func programKilled(rec *firmware.TrapRecord) {
	sig, _, _ := faultSignal(rec)
	putString("run: program killed by signal ")
	putDec(sig)
	putString(": vector ")
	putDec(rec.Vector)
	putString(" at rip ")
	putHex(rec.RIP, 1)
	if rec.Vector == 14 {
		putString(", address ")
		putHex(rec.CR2, 1)
	}
	putString("\n")
	killRIP, killAddr = rec.RIP, rec.CR2
	programEnd(128+sig, sig)
}

// killRIP and killAddr say where a killed program was (for the host's
// symbolized report from the program's own line table).
var killRIP, killAddr uint64
