package main

import "github.com/vmm-dev/vmm/guest/mm"

// Pipes inside the program (pipe2), e.g. the testing package capturing an
// example's output. They cannot be watched by epoll (the Go runtime then
// does blocking reads and writes), so a read of an empty pipe or a write
// to a full one blocks the thread; it is restarted when the other end
// changes: its registers go back to the SYSCALL instruction, as Linux
// restarts an interrupted call.

const (
	maxPipes = 4
	pipeSize = 64 << 10
	fdPipeR  = 3
	fdPipeW  = 4
	oNonblk  = 0x800
)

// pipeOrder is the buddy order of a pipe's buffer (pipeSize bytes).
const pipeOrder = 4

type pipe struct {
	used       bool
	readers    uint64
	writers    uint64
	head, tail uint64 // bytes written and read since creation
	bufPhys    uint64 // the buffer: a KERNEL block, declared to the host as held
	held       int
}

// buf returns the pipe's buffer.
func (p *pipe) buf() []byte { return physBytes(p.bufPhys, pipeSize) }

var pipes [maxPipes]pipe

func sysPipe2(fdsAddr, flags uint64) uint64 {
	p := -1
	for i := range pipes {
		if !pipes[i].used {
			p = i
			break
		}
	}
	if p < 0 {
		return errno(eMFILE)
	}
	r := newFD(fdPipeR)
	if r == 0 {
		return errno(eMFILE)
	}
	w := newFD(fdPipeW)
	if w == 0 {
		fds[r] = fileDesc{}
		return errno(eMFILE)
	}
	var b [8]byte
	putLE(b[:4], r)
	putLE(b[4:], w)
	if !copyToUser(fdsAddr, b[:]) {
		fds[r], fds[w] = fileDesc{}, fileDesc{}
		return errno(eFAULT)
	}
	tok := kernelMM.Lock()
	f, err := kernelMM.AllocFlags(pipeOrder, &tok, mm.FlagKernel)
	kernelMM.Unlock(&tok)
	if err != mm.ErrNone {
		fds[r], fds[w] = fileDesc{}, fileDesc{}
		return errno(eNOMEM)
	}
	pipes[p] = pipe{used: true, readers: 1, writers: 1, bufPhys: f.StartAddress(),
		held: hold(mm.Holding{Block: mm.HeldBlock(f, pipeOrder)})}
	nb := flags&oNonblk != 0
	fds[r].data, fds[r].nonblock = uint64(p), nb
	fds[w].data, fds[w].nonblock = uint64(p), nb
	return r
}

// blockRestart takes the caller off the CPU until the pipe changes; it then
// re-executes the same system call.
func blockRestart(c *userCtx, nr uint64, p uint64) {
	t := &threads[curThread]
	t.state, t.deadline, t.pipeWait = threadPipe, 0, p
	c.RIP -= 2 // back onto SYSCALL (0f 05)
	c.AX = nr
	t.ctx = *c
}

// wakePipe makes every thread blocked on pipe p runnable; they retry.
func wakePipe(p uint64) {
	for i := range threads {
		if threads[i].state == threadPipe && threads[i].pipeWait == p {
			threads[i].state = threadRunnable
		}
	}
}

func pipeRead(c *userCtx, f *fileDesc, buf, n uint64) (uint64, bool) {
	p := &pipes[f.data]
	if n == 0 {
		return 0, false
	}
	if p.head == p.tail {
		if p.writers == 0 {
			return 0, false
		}
		if f.nonblock {
			return errno(eAGAIN), false
		}
		blockRestart(c, 0, f.data)
		return c.AX, true
	}
	done := uint64(0)
	for done < n && p.tail < p.head {
		off := p.tail % pipeSize
		chunk := min(n-done, p.head-p.tail, pipeSize-off, mm.PageSize-(buf+done)%mm.PageSize)
		if !copyToUser(buf+done, p.buf()[off:off+chunk]) {
			break
		}
		done += chunk
		p.tail += chunk
	}
	if done == 0 {
		return errno(eFAULT), false
	}
	wakePipe(f.data)
	return done, false
}

func pipeWrite(c *userCtx, f *fileDesc, buf, n uint64) (uint64, bool) {
	p := &pipes[f.data]
	if p.readers == 0 {
		return brokenPipe(c), false
	}
	if n == 0 {
		return 0, false
	}
	if p.head-p.tail == pipeSize {
		if f.nonblock {
			return errno(eAGAIN), false
		}
		blockRestart(c, 1, f.data)
		return c.AX, true
	}
	done := uint64(0)
	for done < n && p.head-p.tail < pipeSize {
		off := p.head % pipeSize
		chunk := min(n-done, pipeSize-(p.head-p.tail), pipeSize-off, mm.PageSize-(buf+done)%mm.PageSize)
		if !copyFromUser(p.buf()[off:off+chunk], buf+done) {
			break
		}
		done += chunk
		p.head += chunk
	}
	if done == 0 {
		return errno(eFAULT), false
	}
	wakePipe(f.data)
	return done, false
}

// closePipeEnd drops one end; the pipe is free when both are gone.
func closePipeEnd(f *fileDesc) {
	p := &pipes[f.data]
	if f.kind == fdPipeR {
		p.readers--
	} else {
		p.writers--
	}
	if p.readers == 0 && p.writers == 0 {
		unhold(p.held)
		tok := kernelMM.Lock()
		kernelMM.Free(mm.ContainingAddress(p.bufPhys), pipeOrder, &tok)
		kernelMM.Unlock(&tok)
		*p = pipe{}
	}
	wakePipe(f.data)
}
