package main

// File descriptors beyond 0..2: the eventfd and epoll instances the Go
// runtime's network poller makes (it needs them for timers), pipes
// (pipe.go) and files and directories of the --dir tree and /tmp (fs.go,
// tmpfs.go). An eventfd is
// a counter; an epoll instance watches eventfds only, and a thread waiting
// in epoll_pwait blocks until an eventfd it watches is written or its
// timeout passes.

const (
	maxFDs      = 64
	fdNone      = 0
	fdEventfd   = 1
	fdEpoll     = 2
	epollIn     = 0x1
	efdNonblk   = 0x800 // EFD_NONBLOCK (= O_NONBLOCK)
	epollCtlAdd = 1
	epollCtlDel = 2
	epollCtlMod = 3
)

type fileDesc struct {
	kind     uint64
	count    uint64 // eventfd counter
	nonblock bool
	// Watching (on an eventfd): which epoll fd watches it, for what, with
	// what user data.
	watcher uint64
	events  uint64
	data    uint64
	// A file or directory (fs.go): its vnode, the offset (a directory's:
	// the next getdents64 record), and the open flags kept (access mode,
	// O_APPEND).
	node, pos, flags uint64
}

var fds [maxFDs]fileDesc

// newFD returns a free descriptor number >= 3, or 0.
func newFD(kind uint64) uint64 {
	for i := 3; i < maxFDs; i++ {
		if fds[i].kind == fdNone {
			fds[i] = fileDesc{kind: kind}
			return uint64(i)
		}
	}
	return 0
}

// fdsFree counts the free descriptor numbers.
func fdsFree() int {
	n := 0
	for i := 3; i < maxFDs; i++ {
		if fds[i].kind == fdNone {
			n++
		}
	}
	return n
}

func fdOf(fd, kind uint64) *fileDesc {
	if fd < 3 || fd >= maxFDs || fds[fd].kind != kind {
		return nil
	}
	return &fds[fd]
}

func sysEventfd2(initval, flags uint64) uint64 {
	fd := newFD(fdEventfd)
	if fd == 0 {
		return errno(eMFILE)
	}
	fds[fd].count, fds[fd].nonblock = initval&0xffffffff, flags&efdNonblk != 0
	return fd
}

func sysEpollCreate1() uint64 {
	fd := newFD(fdEpoll)
	if fd == 0 {
		return errno(eMFILE)
	}
	return fd
}

func sysEpollCtl(epfd, op, fd, event uint64) uint64 {
	if fdOf(epfd, fdEpoll) == nil {
		return errno(eBADF)
	}
	f := fdOf(fd, fdEventfd)
	if f == nil {
		return errno(ePERM) // only eventfds can be watched here
	}
	switch op {
	case epollCtlAdd, epollCtlMod:
		var b [12]byte // struct epoll_event is packed on x86-64: u32 events, u64 data
		if !copyFromUser(b[:], event) {
			return errno(eFAULT)
		}
		if op == epollCtlAdd && f.watcher != 0 {
			return errno(eEXIST)
		}
		f.watcher, f.events, f.data = epfd, le32(b[:], 0), le64(b[:], 4)
	case epollCtlDel:
		f.watcher = 0
	default:
		return errno(eINVAL)
	}
	return 0
}

// readyEvents writes up to max ready events of epfd to the user buffer at
// events and returns how many (or an errno).
func readyEvents(epfd, events, max uint64) uint64 {
	n := uint64(0)
	for i := 3; i < maxFDs && n < max; i++ {
		f := &fds[i]
		if f.kind == fdEventfd && f.watcher == epfd && f.events&epollIn != 0 && f.count > 0 {
			var b [12]byte
			putLE(b[:4], epollIn)
			putLE(b[4:], f.data)
			if !copyToUser(events+12*n, b[:]) {
				return errno(eFAULT)
			}
			n++
		}
	}
	return n
}

func putLE(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

// sysEpollPwait returns ready events now, or blocks the caller until an
// eventfd it watches is written (wakeEpoll) or timeoutMs passes.
func sysEpollPwait(epfd, events, max uint64, timeoutMs int64) (uint64, bool) {
	if fdOf(epfd, fdEpoll) == nil {
		return errno(eBADF), false
	}
	if max == 0 || max > 1<<20 {
		return errno(eINVAL), false
	}
	if n := readyEvents(epfd, events, max); n != 0 || timeoutMs == 0 {
		return n, false
	}
	t := &threads[curThread]
	t.state, t.deadline = threadEpoll, 0
	if timeoutMs > 0 {
		t.deadline = nowNanos() + uint64(timeoutMs)*1000000
	}
	t.epfd, t.epEvents, t.epMax = epfd, events, max
	return 0, true
}

// wakeEpoll hands the events now ready to every thread waiting on epfd.
func wakeEpoll(epfd uint64) {
	for i := range threads {
		t := &threads[i]
		if t.state == threadEpoll && t.epfd == epfd {
			n := readyEvents(epfd, t.epEvents, t.epMax)
			if n != 0 {
				t.ctx.AX, t.state = n, threadRunnable
			}
		}
	}
}

func eventfdRead(f *fileDesc, buf, n uint64) uint64 {
	if n < 8 {
		return errno(eINVAL)
	}
	if f.count == 0 {
		return errno(eAGAIN) // a blocking eventfd would block: the Go runtime's never does
	}
	if !putUserU64Unaligned(buf, f.count) {
		return errno(eFAULT)
	}
	f.count = 0
	return 8
}

func eventfdWrite(f *fileDesc, buf, n uint64) uint64 {
	if n < 8 {
		return errno(eINVAL)
	}
	var b [8]byte
	if !copyFromUser(b[:], buf) {
		return errno(eFAULT)
	}
	v := le64(b[:], 0)
	if v == ^uint64(0) || f.count+v < f.count || f.count+v == ^uint64(0) {
		return errno(eAGAIN)
	}
	f.count += v
	if f.watcher != 0 {
		wakeEpoll(f.watcher)
	}
	return 8
}

func putUserU64Unaligned(va, v uint64) bool {
	var b [8]byte
	putLE(b[:], v)
	return copyToUser(va, b[:])
}

// closeFD releases fd (3 and up).
func closeFD(fd uint64) uint64 {
	if fd < 3 || fd >= maxFDs || fds[fd].kind == fdNone {
		return errno(eBADF)
	}
	if k := fds[fd].kind; k == fdPipeR || k == fdPipeW {
		closePipeEnd(&fds[fd])
	}
	if fds[fd].kind == fdFile && isTmp(fds[fd].node) {
		tmpRelease(fds[fd].node)
	}
	if fds[fd].kind == fdEpoll {
		for i := range fds {
			if fds[i].watcher == fd {
				fds[i].watcher = 0
			}
		}
	}
	fds[fd] = fileDesc{}
	return 0
}
