package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// The system-call table: one entry per Linux x86-64 number the kernel
// knows, with its support level. dispatchSyscall implements the supported
// and partial ones; every other number (listed as refused or not listed at
// all) returns -ENOSYS and is counted by name for the run's report.
// docs/syscalls.md is generated from this table (TestSyscallDoc).

// Support levels.
const (
	sysRefused   = iota // returns -ENOSYS
	sysSupported        // as Linux does it
	sysPartial          // works for what the Go runtime asks; the note says what is left out
)

type sysEntry struct {
	name  string
	level uint8
	note  string
}

const maxSyscall = 335

// syscallTable is constant-initialised (no init code runs in the guest).
var syscallTable = [maxSyscall]sysEntry{
	0:   {"read", sysPartial, "fd 0 reads as empty (end of file); eventfds, pipes, --dir and /tmp files (a directory: EISDIR); other fds: EBADF"},
	1:   {"write", sysPartial, "fd 1 and 2 go to vmm's stdout and stderr; eventfds, pipes, /tmp files; other fds: EBADF"},
	2:   {"open", sysRefused, ""},
	3:   {"close", sysSupported, ""},
	4:   {"stat", sysRefused, ""},
	5:   {"fstat", sysPartial, "--dir and /tmp files and directories; fds 0..2: ENOSYS"},
	8:   {"lseek", sysPartial, "files (SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE) and directories (SEEK_SET, SEEK_CUR); other fds: ESPIPE"},
	9:   {"mmap", sysPartial, "private anonymous memory only (MAP_FIXED, MAP_FIXED_NOREPLACE, hints, PROT_NONE reservations); file mappings: ENODEV"},
	10:  {"mprotect", sysPartial, "PROT_NONE over pages already populated: EINVAL"},
	11:  {"munmap", sysSupported, ""},
	12:  {"brk", sysRefused, ""},
	13:  {"rt_sigaction", sysPartial, "handlers of fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP) run on the program's faults, with Linux's signal frame; other signals are never sent"},
	14:  {"rt_sigprocmask", sysPartial, "the mask is stored per thread; a blocked fault signal kills, as on Linux"},
	15:  {"rt_sigreturn", sysSupported, "registers, FXSAVE state and signal mask from the handler's frame"},
	16:  {"ioctl", sysPartial, "every fd answers ENOTTY"},
	17:  {"pread64", sysPartial, "--dir and /tmp files; fds 1, 2 and pipe write ends: EBADF; fd 0, pipe read ends, eventfds: ESPIPE"},
	18:  {"pwrite64", sysSupported, "/tmp files; other fds: ESPIPE or EBADF"},
	20:  {"writev", sysRefused, ""},
	21:  {"access", sysRefused, ""},
	24:  {"sched_yield", sysSupported, ""},
	28:  {"madvise", sysPartial, "MADV_DONTNEED and MADV_FREE free the frames (later reads see zeros); other advice is accepted and ignored"},
	35:  {"nanosleep", sysSupported, ""},
	39:  {"getpid", sysPartial, "always 1"},
	41:  {"socket", sysRefused, ""},
	53:  {"socketpair", sysRefused, ""},
	56:  {"clone", sysPartial, "threads only (CLONE_VM|CLONE_THREAD), at most 64; fork: ENOSYS"},
	57:  {"fork", sysRefused, ""},
	59:  {"execve", sysRefused, ""},
	60:  {"exit", sysSupported, "ends the calling thread (the last one ends the program)"},
	62:  {"kill", sysRefused, ""},
	63:  {"uname", sysRefused, ""},
	72:  {"fcntl", sysPartial, "F_GETFD, F_SETFD, F_GETFL on every fd, F_SETFL (O_NONBLOCK; O_APPEND on files) on descriptors beyond 0..2; other commands: EINVAL"},
	74:  {"fsync", sysSupported, "files: 0; pipes, eventfds, fds 0..2: EINVAL"},
	75:  {"fdatasync", sysSupported, "as fsync"},
	76:  {"truncate", sysSupported, "/tmp files; the --dir tree: EROFS"},
	77:  {"ftruncate", sysSupported, "/tmp files open for writing; other fds: EINVAL"},
	79:  {"getcwd", sysPartial, "the working directory's path (a removed /tmp directory: ENOENT)"},
	80:  {"chdir", sysSupported, "into the --dir tree or /tmp"},
	81:  {"fchdir", sysSupported, "a directory descriptor; others: ENOTDIR"},
	89:  {"readlink", sysPartial, "as readlinkat"},
	91:  {"fchmod", sysPartial, "/tmp; the --dir tree: EROFS; other fds: ENOSYS"},
	95:  {"umask", sysSupported, "/tmp (initially 022)"},
	96:  {"gettimeofday", sysRefused, ""},
	102: {"getuid", sysPartial, "always 0"},
	104: {"getgid", sysPartial, "always 0"},
	107: {"geteuid", sysPartial, "always 0"},
	108: {"getegid", sysPartial, "always 0"},
	110: {"getppid", sysPartial, "always 0"},
	131: {"sigaltstack", sysPartial, "per thread; SA_ONSTACK handlers run on it; SS_AUTODISARM: EINVAL"},
	157: {"prctl", sysRefused, ""},
	158: {"arch_prctl", sysPartial, "ARCH_SET_FS and ARCH_GET_FS; others: EINVAL"},
	186: {"gettid", sysSupported, ""},
	200: {"tkill", sysRefused, ""},
	202: {"futex", sysPartial, "FUTEX_WAIT and FUTEX_WAKE (private or not) with relative timeouts; other ops: ENOSYS"},
	204: {"sched_getaffinity", sysPartial, "one CPU per vCPU"},
	217: {"getdents64", sysPartial, "--dir directories: ., .., then the entries in name order"},
	218: {"set_tid_address", sysSupported, ""},
	228: {"clock_gettime", sysPartial, "REALTIME (host wall clock at boot + guest TSC time), MONOTONIC, MONOTONIC_RAW, BOOTTIME and the COARSE clocks; CPU-time clocks: EINVAL"},
	230: {"clock_nanosleep", sysPartial, "relative sleeps on the monotonic clocks; TIMER_ABSTIME: ENOSYS"},
	231: {"exit_group", sysSupported, ""},
	232: {"epoll_wait", sysPartial, "as epoll_pwait"},
	233: {"epoll_ctl", sysPartial, "only eventfds can be watched (others: EPERM), for EPOLLIN"},
	234: {"tgkill", sysPartial, "to the program itself: a signal whose action is the default terminates it (Go's dieFromSignal), an ignored one is discarded; SIGURG (goroutine preemption) is dropped; a signal with a handler: ENOSYS"},
	257: {"openat", sysPartial, "the --dir tree read-only (writing, O_CREAT, O_TRUNC: EROFS), /tmp writable (379 nodes, then ENOSPC; O_TMPFILE: EOPNOTSUPP); 61 fds beyond 0..2"},
	258: {"mkdirat", sysPartial, "in /tmp; the --dir tree is read-only: EEXIST, the parent's lookup error, else EROFS"},
	262: {"newfstatat", sysPartial, "--dir paths (AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW accepted); mode, size, inode, mtime; uid and gid 0"},
	263: {"unlinkat", sysPartial, "in /tmp; the --dir tree: the parent lookup's error, EISDIR/EINVAL/ENOTEMPTY/EBUSY for ., .., /, else EROFS (as Linux, before the name is looked up)"},
	264: {"renameat", sysPartial, "as renameat2 without flags"},
	266: {"symlinkat", sysPartial, "in /tmp (followed 40 deep, then ELOOP); the --dir tree: EROFS"},
	267: {"readlinkat", sysPartial, "/tmp symlinks; the --dir tree has none: the lookup's error, else EINVAL"},
	268: {"fchmodat", sysPartial, "/tmp (kept, never enforced: the caller is root); the --dir tree: EROFS"},
	270: {"pselect6", sysRefused, ""},
	281: {"epoll_pwait", sysPartial, "reports EPOLLIN on watched eventfds; blocks the thread until one is written or the timeout passes"},
	290: {"eventfd2", sysPartial, "non-semaphore counters; a read of zero is EAGAIN even without EFD_NONBLOCK"},
	291: {"epoll_create1", sysPartial, "at most 61 descriptors beyond 0..2 in all"},
	293: {"pipe2", sysPartial, "64 KiB, at most 4 pipes; not watchable by epoll; SIGPIPE is not delivered (EPIPE)"},
	302: {"prlimit64", sysPartial, "reports RLIMIT_NOFILE 1024/4096, RLIMIT_STACK 8 MiB, others unlimited; new limits are accepted and ignored"},
	316: {"renameat2", sysPartial, "in /tmp (RENAME_WHITEOUT: EINVAL); to or from the tree: EXDEV; in it: EROFS"},
	318: {"getrandom", sysSupported, "bytes from the host's cryptographic source, at most 1 MiB a call (a short count, as Linux may return)"},
	334: {"rseq", sysRefused, ""},
}

// Errno values (Linux x86-64).
const (
	ePERM     = 1
	eNOENT    = 2
	eSRCH     = 3
	eBADF     = 9
	eAGAIN    = 11
	eNOMEM    = 12
	eFAULT    = 14
	eEXIST    = 17
	eNODEV    = 19
	eINVAL    = 22
	eNOTTY    = 25
	eNOSYS    = 38
	eMFILE    = 24
	ePIPE     = 32
	eTIMEDOUT = 110
)

func errno(e uint64) uint64 { return -e }

// programPID is the program's process ID: the only process there is.
const programPID = 1

var (
	sysCalls   [maxSyscall + 1]uint64 // by number; the last slot counts numbers past the table
	sigactions [65][4]uint64          // handler, flags, restorer, mask
	fdClosed   [3]bool
)

// handleSyscall is called by syscallEntry with the caller's registers; it
// leaves in ctx the registers to resume (the same thread's, with RAX set,
// or another thread's after a switch).
func handleSyscall(ctx *userCtx) {
	me := thisCPU().Index
	kernelEnter(me)
	nr := ctx.AX
	sysCalls[min(nr, maxSyscall)]++
	ret, block := dispatchSyscall(nr, ctx)
	ctx.AX = ret
	if proc.needFlush {
		shootdown() // before schedule may let go of the lock
	}
	if block {
		schedule(ctx, fxBelow(ctx))
	}
	kernelExit(me)
}

// dispatchSyscall runs one system call; block means the caller has been
// taken off the CPU (its result is already in ret, or set when woken).
func dispatchSyscall(nr uint64, c *userCtx) (ret uint64, block bool) {
	a0, a1, a2, a3, a4 := c.DI, c.SI, c.DX, c.R10, c.R8
	switch nr {
	case 0: // read
		if a0 == 0 && !fdClosed[0] {
			return 0, false
		}
		if f := fdOf(a0, fdEventfd); f != nil {
			return eventfdRead(f, a1, a2), false
		}
		if f := fdOf(a0, fdPipeR); f != nil {
			return pipeRead(c, f, a1, a2)
		}
		if f := fdOf(a0, fdFile); f != nil {
			return sysFileRead(f, a1, a2), false
		}
		return errno(eBADF), false
	case 1:
		if f := fdOf(a0, fdEventfd); f != nil {
			return eventfdWrite(f, a1, a2), false
		}
		if f := fdOf(a0, fdPipeW); f != nil {
			return pipeWrite(c, f, a1, a2)
		}
		if f := fdOf(a0, fdFile); f != nil {
			return fileWrite(f, a1, a2), false
		}
		return sysWrite(c, a0, a1, a2), false
	case 3: // close
		if a0 < 3 && !fdClosed[a0] {
			fdClosed[a0] = true
			return 0, false
		}
		return closeFD(a0), false
	case 9:
		return sysMmap(a0, a1, a2, a3, a4), false
	case 10:
		return sysMprotect(a0, a1, a2), false
	case 11:
		return sysMunmap(a0, a1), false
	case 13:
		return sysRtSigaction(a0, a1, a2, a3), false
	case 14:
		return sysRtSigprocmask(a0, a1, a2, a3), false
	case 16: // ioctl
		return errno(eNOTTY), false
	case 5:
		return sysFstat(a0, a1), false
	case 8:
		return sysLseek(a0, a1, a2), false
	case 17:
		return sysPread(a0, a1, a2, a3), false
	case 79:
		return sysGetcwd(a0, a1), false
	case 217:
		return sysGetdents64(a0, a1, a2), false
	case 262:
		return sysNewfstatat(a0, a1, a2, a3), false
	case 258:
		return sysMkdirat(a0, a1, a2), false
	case 89: // readlink
		return sysReadlinkat(atFDCWD, a0, a1, a2), false
	case 267:
		return sysReadlinkat(a0, a1, a2, a3), false
	case 266:
		return sysSymlinkat(a0, a1, a2), false
	case 263:
		return sysUnlinkat(a0, a1, a2), false
	case 24: // sched_yield
		return 0, true
	case 28:
		return sysMadvise(a0, a1, a2), false
	case 35: // nanosleep
		return sysSleep(a0), true
	case 39: // getpid
		return programPID, false
	case 56:
		return sysClone(c, a0, a1, a2, a3, a4), false
	case 60:
		return sysExitThread(), true
	case 72:
		return sysFcntl(a0, a1, a2), false
	case 102, 104, 107, 108, 110: // getuid, getgid, geteuid, getegid, getppid
		return 0, false
	case 15:
		return sysRtSigreturn(c), false
	case 131:
		return sysSigaltstack(a0, a1, c.RSP), false
	case 158:
		return sysArchPrctl(c, a0, a1), false
	case 186: // gettid
		return threads[curThread].tid, false
	case 202:
		return sysFutex(a0, a1, a2, a3)
	case 204:
		return sysSchedGetaffinity(a1, a2), false
	case 218: // set_tid_address
		threads[curThread].clearTID = a0
		return threads[curThread].tid, false
	case 228:
		return sysClockGettime(a0, a1), false
	case 230: // clock_nanosleep
		if a1 != 0 {
			return errno(eNOSYS), false
		}
		if a0 != 1 && a0 != 4 && a0 != 7 && a0 != 0 {
			return errno(eINVAL), false
		}
		return sysSleep(a2), true
	case 231: // exit_group
		programExit(a0 & 0xff)
	case 234: // tgkill
		return sysTgkill(c, a0, a1, a2), false
	case 232: // epoll_wait
		return sysEpollPwait(a0, a1, a2, int64(int32(a3)))
	case 281: // epoll_pwait (the signal mask is irrelevant: none is delivered)
		return sysEpollPwait(a0, a1, a2, int64(int32(a3)))
	case 233:
		return sysEpollCtl(a0, a1, a2, a3), false
	case 290:
		return sysEventfd2(a0, a1), false
	case 291:
		return sysEpollCreate1(), false
	case 293:
		return sysPipe2(a0, a1), false
	case 257:
		return sysOpenat(a0, a1, a2, a3), false
	case 18:
		return sysPwrite(a0, a1, a2, a3), false
	case 74, 75: // fsync, fdatasync
		return sysFsync(a0), false
	case 76:
		return sysTruncate(a0, a1), false
	case 77:
		return sysFtruncate(a0, a1), false
	case 95:
		return sysUmask(a0), false
	case 80:
		return sysChdir(a0), false
	case 81:
		return sysFchdir(a0), false
	case 91:
		return sysFchmod(a0, a1), false
	case 268:
		return sysFchmodat(a0, a1, a2), false
	case 264: // renameat
		return sysRenameat2(a0, a1, a2, a3, 0), false
	case 316:
		return sysRenameat2(a0, a1, a2, a3, a4), false
	case 302:
		return sysPrlimit(a1, a3), false
	case 318:
		return sysGetrandom(a0, a1, a2), false
	}
	return errno(eNOSYS), false
}

// sysWrite sends fd 1 or 2 to the host, one page-bounded chunk a hypercall.
func sysWrite(c *userCtx, fd, buf, n uint64) uint64 {
	if (fd != 1 && fd != 2) || fdClosed[fd] {
		return errno(eBADF)
	}
	done := uint64(0)
	for done < n {
		pa := userPhys(buf+done, false)
		if pa == 0 {
			if done > 0 {
				return done
			}
			return errno(eFAULT)
		}
		chunk := min(n-done, mm.PageSize-(buf+done)%mm.PageSize)
		if hypercallWrite(fd, pa, chunk) == firmware.HCErrClosed {
			if done > 0 {
				return done
			}
			return brokenPipe(c) // `vmm run prog | head`: head has gone
		}
		done += chunk
	}
	return done
}

// sysGetrandom fills the user buffer from the host's random source, one
// page-bounded chunk a hypercall.
func sysGetrandom(buf, n, flags uint64) uint64 {
	if flags&^7 != 0 { // GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE
		return errno(eINVAL)
	}
	n = min(n, 1<<20)
	done := uint64(0)
	for done < n {
		pa := userPhys(buf+done, true)
		if pa == 0 {
			if done > 0 {
				return done
			}
			return errno(eFAULT)
		}
		chunk := min(n-done, mm.PageSize-(buf+done)%mm.PageSize)
		if hypercall(firmware.HCRandom, pa, chunk, 0, 0) != chunk {
			return errno(eAGAIN)
		}
		done += chunk
	}
	return done
}

// Memory system calls.
const (
	mapShared         = 0x01
	mapPrivate        = 0x02
	mapFixed          = 0x10
	mapAnonymous      = 0x20
	mapFixedNoreplace = 0x100000
	madvDontneed      = 4
	madvFree          = 8
)

// rangeOK checks a page-aligned user range and returns its end.
func rangeOK(addr, length uint64) (uint64, bool) {
	if addr%mm.PageSize != 0 || length == 0 || length > userTop {
		return 0, false
	}
	end := addr + alignUpPage(length)
	return end, addr >= userMin && end <= userTop && end > addr
}

func sysMmap(addr, length, prot, flags, fd uint64) uint64 {
	if flags&mapAnonymous == 0 {
		return errno(eNODEV)
	}
	if flags&mapShared != 0 || flags&mapPrivate == 0 || prot&^(protRead|protWrite|protExec) != 0 {
		return errno(eINVAL)
	}
	if length == 0 || length > userTop {
		return errno(eINVAL)
	}
	size := alignUpPage(length)
	if flags&(mapFixed|mapFixedNoreplace) != 0 {
		end, ok := rangeOK(addr, size)
		if !ok {
			return errno(eINVAL)
		}
		if flags&mapFixedNoreplace != 0 && proc.vmas.overlaps(addr, end) {
			return errno(eEXIST)
		}
		if !unmapRange(addr, end) || !proc.vmas.insert(addr, end, prot) {
			return errno(eNOMEM)
		}
		return addr
	}
	start := uint64(0)
	if end, ok := rangeOK(addr&^(mm.PageSize-1), size); ok && addr != 0 && !proc.vmas.overlaps(addr&^(mm.PageSize-1), end) {
		start = addr &^ (mm.PageSize - 1)
	} else {
		start = proc.vmas.gap(size, userMin, userMmapTop)
	}
	if start == 0 || !proc.vmas.insert(start, start+size, prot) {
		return errno(eNOMEM)
	}
	return start
}

// unmapRange frees every page mapped in [start, end) and removes the areas.
func unmapRange(start, end uint64) bool {
	if !proc.vmas.overlaps(start, end) {
		return true
	}
	freePages(start, end)
	return proc.vmas.remove(start, end)
}

// freePages unmaps and frees the populated pages of [start, end), walking
// only the page tables that exist.
func freePages(start, end uint64) {
	for va := start; va < end; {
		e := proc.as.pte(va, false)
		if e == nil { // no page table here: skip to the next 2 MiB
			va = (va + 1<<21) &^ (1<<21 - 1)
			continue
		}
		if *e&pteP != 0 {
			dropUserPage(va)
		}
		va += mm.PageSize
	}
}

func sysMunmap(addr, length uint64) uint64 {
	end, ok := rangeOK(addr, length)
	if !ok {
		return errno(eINVAL)
	}
	if !unmapRange(addr, end) {
		return errno(eNOMEM)
	}
	return 0
}

func sysMprotect(addr, length, prot uint64) uint64 {
	end, ok := rangeOK(addr, length)
	if !ok || prot&^(protRead|protWrite|protExec) != 0 {
		return errno(eINVAL)
	}
	if !proc.vmas.covered(addr, end) {
		return errno(eNOMEM)
	}
	for va := addr; va < end; va += mm.PageSize {
		if e := proc.as.lookup(va); e != nil {
			if prot == 0 {
				return errno(eINVAL)
			}
			if prot&protWrite != 0 {
				*e |= pteW
			} else if *e&pteW != 0 {
				*e &^= pteW
				proc.needFlush = true
			}
		}
	}
	if !proc.vmas.remove(addr, end) || !proc.vmas.insert(addr, end, prot) {
		return errno(eNOMEM)
	}
	return 0
}

// tlbFlush drops this vCPU's stale translations (shootdown does it for
// every vCPU). The kernel runs at CPL3 (no INVLPG), and loading the same
// CR3 again through the VMM is not a flush (KVM resets its MMU context
// only when CR3 changes), so it bounces through the kernel's own root.
func tlbFlush() {
	hypercall(firmware.HCSetCR3, 0, 0, 0, 0)
	switchToProcess()
	seenGen[thisCPU().Index] = flushGen
	proc.flushes++
}

func sysMadvise(addr, length, advice uint64) uint64 {
	end, ok := rangeOK(addr, length)
	if !ok {
		return errno(eINVAL)
	}
	if advice == madvDontneed || advice == madvFree {
		freePages(addr, end)
	}
	return 0
}

func sysRtSigaction(sig, act, oact, size uint64) uint64 {
	if sig == 0 || sig > 64 || size != 8 {
		return errno(eINVAL)
	}
	var buf [32]byte
	if oact != 0 {
		for i := 0; i < 4; i++ {
			for j := 0; j < 8; j++ {
				buf[8*i+j] = byte(sigactions[sig][i] >> (8 * j))
			}
		}
		if !copyToUser(oact, buf[:]) {
			return errno(eFAULT)
		}
	}
	if act != 0 {
		if sig == 9 || sig == 19 {
			return errno(eINVAL)
		}
		if !copyFromUser(buf[:], act) {
			return errno(eFAULT)
		}
		for i := 0; i < 4; i++ {
			sigactions[sig][i] = le64(buf[:], uint64(8*i))
		}
	}
	return 0
}

func sysRtSigprocmask(how, set, oset, size uint64) uint64 {
	if size != 8 {
		return errno(eINVAL)
	}
	t := &threads[curThread]
	if oset != 0 && !putUserU64(oset, t.sigmask) {
		return errno(eFAULT)
	}
	if set == 0 {
		return 0
	}
	v, ok := userU64(set)
	if !ok {
		return errno(eFAULT)
	}
	switch how {
	case 0:
		t.sigmask |= v
	case 1:
		t.sigmask &^= v
	case 2:
		t.sigmask = v
	default:
		return errno(eINVAL)
	}
	return 0
}

func sysSigaltstack(ss, oss, sp uint64) uint64 {
	t := &threads[curThread]
	onAlt := onAltStack(t, sp)
	if oss != 0 {
		flags := uint64(uint32(t.altstack[1]))
		if t.altstack[2] == 0 {
			flags = ssDisable
		} else if onAlt {
			flags = ssOnstack
		}
		if !putUserU64(oss, t.altstack[0]) || !putUserU64(oss+8, flags) || !putUserU64(oss+16, t.altstack[2]) {
			return errno(eFAULT)
		}
	}
	if ss != 0 {
		if onAlt {
			return errno(ePERM) // Linux refuses to move the stack a handler runs on
		}
		var w [3]uint64
		for i := range w {
			v, ok := userU64(ss + uint64(8*i))
			if !ok {
				return errno(eFAULT)
			}
			w[i] = v
		}
		switch fl := uint32(w[1]); {
		case fl&ssDisable != 0 && fl&^ssDisable == 0:
			w = [3]uint64{}
		case fl != 0: // SS_AUTODISARM (not implemented) or unknown flags
			return errno(eINVAL)
		case w[2] < 2048: // MINSIGSTKSZ
			return errno(eNOMEM)
		}
		t.altstack = w
	}
	return 0
}

func sysArchPrctl(c *userCtx, code, addr uint64) uint64 {
	switch code {
	case 0x1002: // ARCH_SET_FS
		if addr >= userTop {
			return errno(ePERM)
		}
		c.FS = addr
		return 0
	case 0x1003: // ARCH_GET_FS
		if !putUserU64(addr, c.FS) {
			return errno(eFAULT)
		}
		return 0
	}
	return errno(eINVAL)
}

// Clone flags.
const (
	cloneVM            = 0x100
	cloneThread        = 0x10000
	cloneSetTLS        = 0x80000
	cloneParentSetTID  = 0x100000
	cloneChildClearTID = 0x200000
	cloneChildSetTID   = 0x1000000
)

func sysClone(c *userCtx, flags, stack, ptid, ctid, tls uint64) uint64 {
	if flags&(cloneVM|cloneThread) != cloneVM|cloneThread {
		return errno(eNOSYS)
	}
	clearTID := uint64(0)
	if flags&cloneChildClearTID != 0 {
		clearTID = ctid
	}
	tid := newThread(c, fxBelow(c), stack, tls, flags&cloneSetTLS != 0, clearTID)
	if tid == 0 {
		return errno(eAGAIN)
	}
	if flags&cloneParentSetTID != 0 && !putUserTID(ptid, tid) {
		return errno(eFAULT)
	}
	if flags&cloneChildSetTID != 0 && !putUserTID(ctid, tid) {
		return errno(eFAULT)
	}
	return tid
}

// putUserTID stores a 32-bit tid.
func putUserTID(va, tid uint64) bool {
	var b [4]byte
	for i := range b {
		b[i] = byte(tid >> (8 * i))
	}
	return copyToUser(va, b[:])
}

// sysExitThread ends the calling thread; the last one ends the program.
func sysExitThread() uint64 {
	t := &threads[curThread]
	if t.clearTID != 0 && putUserTID(t.clearTID, 0) {
		futexWake(t.clearTID, 1)
	}
	t.state = threadFree
	for i := range threads {
		if threads[i].state != threadFree {
			return 0
		}
	}
	programExit(0)
	return 0
}

func sysFcntl(fd, cmd, arg uint64) uint64 {
	if fd >= 3 && fd < maxFDs && fds[fd].kind != fdNone {
		f := &fds[fd]
		switch cmd {
		case 1, 2: // F_GETFD, F_SETFD
			return 0
		case 3: // F_GETFL
			fl := uint64(0)
			if f.kind == fdPipeW {
				fl = 1
			}
			if f.kind == fdFile {
				fl = f.flags | oLargeF
			}
			if f.nonblock {
				fl |= oNonblk
			}
			return fl
		case 4: // F_SETFL
			f.nonblock = arg&oNonblk != 0
			if f.kind == fdFile {
				f.flags = f.flags&^oAppend | arg&oAppend
			}
			return 0
		}
		return errno(eINVAL)
	}
	if fd >= 3 || fdClosed[fd] {
		return errno(eBADF)
	}
	switch cmd {
	case 1, 2: // F_GETFD, F_SETFD
		return 0
	case 3: // F_GETFL
		if fd == 0 {
			return 0x8000 // O_RDONLY|O_LARGEFILE
		}
		return 0x8001 // O_WRONLY|O_LARGEFILE
	}
	return errno(eINVAL)
}

// sysSleep blocks the caller for the relative timespec at ts.
func sysSleep(ts uint64) uint64 {
	ns, ok := timespecNanos(ts)
	if !ok {
		return errno(eFAULT)
	}
	t := &threads[curThread]
	t.state, t.deadline = threadSleeping, nowNanos()+max(ns, 1)
	return 0
}

// timespecNanos reads a struct timespec.
func timespecNanos(ts uint64) (uint64, bool) {
	sec, ok1 := userU64(ts)
	nsec, ok2 := userU64(ts + 8)
	if !ok1 || !ok2 || sec > 1<<33 || nsec >= 1000000000 {
		return 0, false
	}
	return sec*1000000000 + nsec, true
}

func sysFutex(addr, op, val, timeout uint64) (uint64, bool) {
	switch op &^ (128 | 256) { // FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME
	case 0: // FUTEX_WAIT
		if addr%4 != 0 {
			return errno(eINVAL), false
		}
		var b [4]byte
		if !copyFromUser(b[:], addr) {
			return errno(eFAULT), false
		}
		if le32(b[:], 0) != val&0xffffffff {
			return errno(eAGAIN), false
		}
		deadline := uint64(0)
		if timeout != 0 {
			ns, ok := timespecNanos(timeout)
			if !ok {
				return errno(eFAULT), false
			}
			deadline = nowNanos() + max(ns, 1)
		}
		t := &threads[curThread]
		t.state, t.futexAddr, t.deadline = threadFutex, addr, deadline
		return 0, true
	case 1: // FUTEX_WAKE
		return futexWake(addr, val), false
	}
	return errno(eNOSYS), false
}

func sysSchedGetaffinity(size, mask uint64) uint64 {
	if size < 8 {
		return errno(eINVAL)
	}
	if !putUserU64(mask, schedAffinity()) {
		return errno(eFAULT)
	}
	return 8
}

func sysClockGettime(clock, ts uint64) uint64 {
	now := nowNanos()
	switch clock {
	case 0, 5: // REALTIME, REALTIME_COARSE
		now += proc.wallNanos
	case 1, 4, 6, 7: // MONOTONIC, MONOTONIC_RAW, MONOTONIC_COARSE, BOOTTIME
	default:
		return errno(eINVAL)
	}
	if !putUserU64(ts, now/1000000000) || !putUserU64(ts+8, now%1000000000) {
		return errno(eFAULT)
	}
	return 0
}

func sysPrlimit(resource, old uint64) uint64 {
	if old == 0 {
		return 0
	}
	cur, maxv := ^uint64(0), ^uint64(0)
	switch resource {
	case 7: // RLIMIT_NOFILE
		cur, maxv = 1024, 4096
	case 3: // RLIMIT_STACK
		cur = 8 << 20
	}
	if resource > 15 {
		return errno(eINVAL)
	}
	if !putUserU64(old, cur) || !putUserU64(old+8, maxv) {
		return errno(eFAULT)
	}
	return 0
}

// reportSyscalls hands the host each system call's count by name, and
// each refused one's under sys.refused.
func reportSyscalls() {
	for nr := 0; nr <= maxSyscall; nr++ {
		n := sysCalls[nr]
		if n == 0 {
			continue
		}
		name := "unknown"
		if nr == maxSyscall {
			name = "beyond-table" // every number past the table
		}
		refused := true
		if nr < maxSyscall && syscallTable[nr].name != "" {
			name = syscallTable[nr].name
			refused = syscallTable[nr].level == sysRefused
		}
		if refused {
			reportNamed("sys.refused.", name, uint64(nr), n)
		} else {
			reportNamed("sys.", name, uint64(nr), n)
		}
	}
}

var reportKey [64]byte

// reportNamed reports value under prefix+name (+"#nr" for unknown numbers).
func reportNamed(prefix, name string, nr, value uint64) {
	k := copy(reportKey[:], prefix)
	k += copy(reportKey[k:], name)
	if name == "unknown" {
		k += copy(reportKey[k:], "#")
		var d [20]byte
		k += copy(reportKey[k:], decimal(&d, nr))
	}
	reportBuf(reportKey[:k], value)
}
