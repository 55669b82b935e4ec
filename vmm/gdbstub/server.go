package gdbstub

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBadPackets is how many consecutive unusable packets (bad checksum)
// a client may send before the stub hangs up on it.
const maxBadPackets = 64

// Server keeps the debugger's view of the target across client
// connections: one client at a time, and a client that vanishes leaves the
// target as it was (stopped, or running until its next stop).
type Server struct {
	t       Target
	running bool // resumed, no stop received since
	cur     Stop // the last stop
	ended   bool // cur is the end of the run

	// Trace, if set, receives every packet in and out (vmm boot -v).
	Trace io.Writer

	connected  atomic.Bool
	finished   chan struct{}
	finishOnce sync.Once
}

// NewServer serves t, which is about to stop on its own (the VM stops
// before its first instruction).
func NewServer(t Target) *Server {
	return &Server{t: t, running: true, finished: make(chan struct{})}
}

// Serve accepts clients until ln is closed. One client at a time: a
// second connection while one is served is closed (after a second).
func (s *Server) Serve(ln net.Listener) error {
	busy := make(chan struct{}, 1)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		// A client that just went away may not be noticed yet: give its
		// session a moment to end before turning the newcomer away.
		wait := time.NewTimer(time.Second)
		select {
		case busy <- struct{}{}:
			wait.Stop()
			s.connected.Store(true)
			go func() {
				s.ServeConn(writeDeadline{c})
				c.Close()
				s.connected.Store(false)
				if s.ended {
					s.finishOnce.Do(func() { close(s.finished) })
				}
				<-busy
			}()
		case <-wait.C:
			c.Close()
		}
	}
}

// Connected reports whether a client is being served.
func (s *Server) Connected() bool { return s.connected.Load() }

// Finished is closed when a client that saw the end of the run has gone.
func (s *Server) Finished() <-chan struct{} { return s.finished }

// writeTimeout bounds a write to a client that stopped reading.
const writeTimeout = 10 * time.Second

type writeDeadline struct{ net.Conn }

func (w writeDeadline) Write(p []byte) (int, error) {
	w.SetWriteDeadline(time.Now().Add(writeTimeout))
	return w.Conn.Write(p)
}

// ErrClientGone: the connection closed or failed.
var ErrClientGone = errors.New("gdb client went away")

type inEvent struct {
	kind eventKind
	pkt  []byte
}

// session is one client connection.
type session struct {
	s       *Server
	w       *bufio.Writer
	noAck   bool
	waiting bool // the client waits for a stop reply
	gCPU    int  // vCPU for g/p/m (Hg); -1 = the one that stopped
	bad     int
	last    []byte // last packet sent, for a '-' retransmission
}

// ServeConn serves one client until it detaches, kills, disconnects or
// misbehaves; the error says why the session ended.
func (s *Server) ServeConn(c io.ReadWriter) error {
	in := make(chan inEvent, 16)
	done := make(chan struct{})
	defer close(done)
	go readEvents(c, in, done)
	ss := &session{s: s, w: bufio.NewWriter(c), gCPU: -1}
	for {
		select {
		case ev, ok := <-in:
			if !ok {
				return ErrClientGone
			}
			if end, err := ss.event(ev); end {
				ss.w.Flush()
				return err
			}
		case st := <-s.t.Stops():
			s.cur, s.running, s.ended = st, false, st.Exited
			if ss.waiting {
				ss.waiting = false
				ss.reportStop()
			}
		}
		if err := ss.w.Flush(); err != nil {
			return ErrClientGone
		}
	}
}

// readEvents frames the client's bytes until it closes or the session ends.
func readEvents(c io.Reader, in chan<- inEvent, done <-chan struct{}) {
	defer close(in)
	r := bufio.NewReader(c)
	var f framer
	for {
		b, err := r.ReadByte()
		if err != nil {
			return
		}
		kind, pkt := f.feed(b)
		if kind == evNone {
			continue
		}
		select {
		case in <- inEvent{kind, append([]byte(nil), pkt...)}:
		case <-done:
			return
		}
		if kind == evOverflow {
			return
		}
	}
}

// event handles one framed event; end reports that the session is over.
func (ss *session) event(ev inEvent) (end bool, err error) {
	switch ev.kind {
	case evPacket:
		if ss.s.Trace != nil {
			fmt.Fprintf(ss.s.Trace, "gdb -> %.200q\n", ev.pkt)
		}
		ss.bad = 0
		if !ss.noAck {
			ss.w.WriteByte('+')
		}
		return ss.packet(string(ev.pkt))
	case evBadSum:
		ss.bad++
		if ss.bad > maxBadPackets {
			return true, fmt.Errorf("%d packets in a row with bad checksums", ss.bad)
		}
		if !ss.noAck {
			ss.w.WriteByte('-')
		}
	case evNack:
		if ss.last != nil {
			ss.w.Write(ss.last)
		}
	case evInterrupt:
		if ss.s.running {
			ss.s.t.Stop()
		}
	case evOverflow:
		return true, fmt.Errorf("packet longer than %d bytes", MaxPacket)
	}
	return false, nil
}

func (ss *session) trace(format string, args ...any) {
	if ss.s.Trace != nil {
		fmt.Fprintf(ss.s.Trace, "gdb: "+format+"\n", args...)
	}
}

func (ss *session) send(data string) {
	if ss.s.Trace != nil {
		fmt.Fprintf(ss.s.Trace, "gdb <- %.200q\n", data)
	}
	ss.last = frame(data)
	ss.w.Write(ss.last)
}

// console sends text for gdb to print (O packets, only while gdb waits
// for a stop reply or a monitor command's answer).
func (ss *session) console(text string) {
	for len(text) > 0 {
		n := min(len(text), MaxPacket/2-8)
		ss.send("O" + hex.EncodeToString([]byte(text[:n])))
		text = text[n:]
	}
}

// reportStop sends the current stop as a stop reply.
func (ss *session) reportStop() {
	st := ss.s.cur
	if st.Message != "" {
		ss.console(strings.TrimSuffix(st.Message, "\n") + "\n")
	}
	ss.sendStop(st)
}

// sendStop sends a stop reply and makes the stopped vCPU the general
// thread again: gdb takes the thread a stop reply names as the one g, p and
// m act on from then on, without another Hg (after `info threads` left Hg
// on another vCPU, `next` would read that one's registers).
func (ss *session) sendStop(st Stop) {
	ss.gCPU = -1
	ss.send(stopReply(st))
}

func stopReply(st Stop) string {
	if st.Exited {
		if st.Signal != 0 {
			return fmt.Sprintf("X%02x", st.Signal&0xff)
		}
		return fmt.Sprintf("W%02x", st.Status&0xff)
	}
	r := fmt.Sprintf("T%02xthread:%x;", st.Signal&0xff, st.CPU+1)
	if st.SwBreak {
		r += "swbreak:;"
	}
	return r
}

// Error replies: gdb shows the number; these are errno values.
const (
	errFault   = "E0e" // EFAULT: unmapped memory
	errInvalid = "E16" // EINVAL: malformed packet or bad argument
	errState   = "E01" // not possible now (the run is over, the target runs)
)

// packet answers one packet.
func (ss *session) packet(p string) (end bool, err error) {
	t := ss.s.t
	if p == "" {
		ss.send("")
		return false, nil
	}
	if ss.s.ended && !strings.HasPrefix(p, "q") && p != "?" && p[0:1] != "D" && p[0:1] != "k" {
		ss.send(errState)
		return false, nil
	}
	if ss.s.running && p != "?" && !strings.HasPrefix(p, "q") && p[0:1] != "k" && p[0:1] != "D" {
		// Only Ctrl-C is meaningful while the target runs (all-stop).
		ss.send(errState)
		return false, nil
	}
	switch {
	case p == "?":
		if ss.s.running {
			ss.waiting = true
			t.Stop()
			return false, nil
		}
		ss.sendStop(ss.s.cur)
	case p == "QStartNoAckMode":
		ss.send("OK")
		ss.w.Flush()
		ss.noAck = true
	case strings.HasPrefix(p, "qSupported"):
		ss.send(fmt.Sprintf("PacketSize=%x;qXfer:features:read+;QStartNoAckMode+;swbreak+;vContSupported+", MaxPacket))
	case strings.HasPrefix(p, "qXfer:features:read:"):
		ss.send(xferFeatures(strings.TrimPrefix(p, "qXfer:features:read:")))
	case p == "qAttached":
		ss.send("1")
	case p == "qC":
		ss.send(fmt.Sprintf("QC%x", ss.s.cur.CPU+1))
	case p == "qfThreadInfo":
		ids := make([]string, t.CPUs())
		for i := range ids {
			ids[i] = strconv.FormatInt(int64(i+1), 16)
		}
		ss.send("m" + strings.Join(ids, ","))
	case p == "qsThreadInfo":
		ss.send("l")
	case strings.HasPrefix(p, "qThreadExtraInfo,"):
		cpu, ok := ss.thread(strings.TrimPrefix(p, "qThreadExtraInfo,"))
		if !ok {
			ss.send(errInvalid)
			break
		}
		ss.send(hex.EncodeToString([]byte(fmt.Sprintf("vCPU %d", cpu))))
	case strings.HasPrefix(p, "qRcmd,"):
		ss.monitor(strings.TrimPrefix(p, "qRcmd,"))
	case p == "qSymbol::":
		ss.send("OK")
	case p[0] == 'H' && len(p) > 2:
		cpu, ok := ss.thread(p[2:])
		switch {
		case !ok:
			ss.send(errInvalid)
		case p[1] == 'g':
			ss.gCPU = cpu
			ss.send("OK")
		default: // Hc: c and s act on the vCPU that stopped (all-stop)
			ss.send("OK")
		}
	case p[0] == 'T':
		if _, ok := ss.thread(p[1:]); ok {
			ss.send("OK")
		} else {
			ss.send(errInvalid)
		}
	case p == "g":
		r, err := t.ReadRegs(ss.cpu())
		if err != nil {
			ss.trace("g: %v", err)
			ss.send(errState)
			break
		}
		ss.send(encodeRegs(&r))
	case p[0] == 'G':
		ss.writeRegs(func(r *Regs) error { return decodeRegs(r, p[1:]) })
	case p[0] == 'p':
		ss.readReg(p[1:])
	case p[0] == 'P':
		ss.writeReg(p[1:])
	case p[0] == 'm':
		ss.readMem(p[1:])
	case p[0] == 'M' || p[0] == 'X':
		ss.writeMem(p)
	case p[0] == 'Z' || p[0] == 'z':
		ss.breakpoint(p)
	case p == "vCont?":
		ss.send("vCont;c;C;s;S")
	case strings.HasPrefix(p, "vCont;"):
		ss.vcont(p[len("vCont;"):])
	case p[0] == 'c' || p[0] == 'C':
		ss.resume(-1, false)
	case p[0] == 's' || p[0] == 'S':
		ss.resume(ss.s.cur.CPU, true)
	case p[0] == 'D':
		t.Detach()
		ss.s.running = true
		ss.send("OK")
		return true, nil
	case p == "k" || strings.HasPrefix(p, "vKill"):
		if p != "k" {
			ss.send("OK")
		}
		t.Kill()
		return true, nil
	default:
		ss.send("") // unsupported: the empty reply
	}
	return false, nil
}

// thread parses a thread id; 0 and -1 name the vCPU that stopped.
func (ss *session) thread(s string) (int, bool) {
	id, err := parseThread(s)
	if err != nil || id > ss.s.t.CPUs() {
		return 0, false
	}
	if id <= 0 {
		return -1, true
	}
	return id - 1, true
}

func (ss *session) cpu() int {
	if ss.gCPU < 0 {
		return ss.s.cur.CPU
	}
	return ss.gCPU
}

func (ss *session) resume(cpu int, step bool) {
	if err := ss.s.t.Resume(cpu, step); err != nil {
		ss.send(errState)
		return
	}
	ss.s.running, ss.waiting = true, true
}

// vcont runs the first step action (stepping that vCPU alone), else
// continues everything.
func (ss *session) vcont(actions string) {
	for _, a := range strings.Split(actions, ";") {
		act, th, _ := strings.Cut(a, ":")
		if act == "" {
			continue
		}
		switch act[0] {
		case 's', 'S':
			cpu := ss.s.cur.CPU
			if th != "" {
				c, ok := ss.thread(th)
				if !ok {
					ss.send(errInvalid)
					return
				}
				if c >= 0 {
					cpu = c
				}
			}
			ss.resume(cpu, true)
			return
		case 'c', 'C':
		default:
			ss.send(errInvalid)
			return
		}
	}
	ss.resume(-1, false)
}

func (ss *session) writeRegs(apply func(r *Regs) error) {
	t := ss.s.t
	r, err := t.ReadRegs(ss.cpu())
	if err != nil {
		ss.send(errState)
		return
	}
	if err := apply(&r); err != nil {
		ss.send(errInvalid)
		return
	}
	if err := t.WriteRegs(ss.cpu(), r); err != nil {
		ss.send(errState)
		return
	}
	ss.send("OK")
}

func (ss *session) regNum(s string) (regInfo, bool) {
	n, err := parseHex(s)
	if err != nil || n >= uint64(len(regTable)) {
		return regInfo{}, false
	}
	return regTable[n], true
}

func (ss *session) readReg(arg string) {
	ri, ok := ss.regNum(arg)
	if !ok {
		ss.send(errInvalid)
		return
	}
	r, err := ss.s.t.ReadRegs(ss.cpu())
	if err != nil {
		ss.send(errState)
		return
	}
	var b strings.Builder
	encodeReg(&b, &r, ri)
	ss.send(b.String())
}

func (ss *session) writeReg(arg string) {
	n, v, ok := strings.Cut(arg, "=")
	ri, ok2 := ss.regNum(n)
	if !ok || !ok2 {
		ss.send(errInvalid)
		return
	}
	ss.writeRegs(func(r *Regs) error { return setReg(r, ri, v) })
}

func (ss *session) readMem(arg string) {
	addr, n, err := parseAddrLen(arg)
	if err != nil {
		ss.send(errInvalid)
		return
	}
	n = min(n, MaxPacket/2-8) // a shorter answer is allowed: gdb asks again
	buf := make([]byte, n)
	if err := ss.s.t.ReadMem(ss.cpu(), addr, buf); err != nil {
		ss.send(errFault)
		return
	}
	ss.send(hex.EncodeToString(buf))
}

func (ss *session) writeMem(p string) {
	head, body, ok := strings.Cut(p[1:], ":")
	addr, n, err := parseAddrLen(head)
	if !ok || err != nil || n > MaxPacket {
		ss.send(errInvalid)
		return
	}
	var data []byte
	if p[0] == 'M' {
		data, err = hexBytes(body)
	} else {
		data, err = unescape([]byte(body))
	}
	if err != nil || uint64(len(data)) != n {
		ss.send(errInvalid)
		return
	}
	if err := ss.s.t.WriteMem(ss.cpu(), addr, data); err != nil {
		ss.send(errFault)
		return
	}
	ss.send("OK")
}

// breakpoint handles Z/z type,addr,kind.
func (ss *session) breakpoint(p string) {
	parts := strings.Split(p[1:], ",")
	if len(parts) < 3 || len(parts[0]) != 1 || parts[0][0] < '0' || parts[0][0] > '4' {
		ss.send(errInvalid)
		return
	}
	addr, err1 := parseHex(parts[1])
	size, err2 := parseHex(strings.SplitN(parts[2], ";", 2)[0])
	if err1 != nil || err2 != nil || size > 8 {
		ss.send(errInvalid)
		return
	}
	err := ss.s.t.Breakpoint(p[0] == 'Z', int(parts[0][0]-'0'), addr, int(size))
	switch {
	case errors.Is(err, ErrUnsupported):
		ss.send("")
	case err != nil:
		ss.send(errFault)
	default:
		ss.send("OK")
	}
}

// monitor runs qRcmd: output as console packets, then OK.
func (ss *session) monitor(arg string) {
	raw, err := hexBytes(arg)
	if err != nil {
		ss.send(errInvalid)
		return
	}
	out, err := ss.s.t.Monitor(strings.TrimSpace(string(raw)))
	if err != nil {
		out += "error: " + err.Error() + "\n"
	}
	ss.console(out)
	ss.send("OK")
}

// xferFeatures answers qXfer:features:read:annex:offset,length.
func xferFeatures(arg string) string {
	annex, rng, ok := strings.Cut(arg, ":")
	if !ok || annex != "target.xml" {
		return "E00"
	}
	off, n, err := parseAddrLen(rng)
	if err != nil {
		return errInvalid
	}
	if off >= uint64(len(targetXML)) {
		return "l"
	}
	n = min(n, MaxPacket/2, uint64(len(targetXML))-off)
	chunk := targetXML[off : off+n]
	if off+n == uint64(len(targetXML)) {
		return "l" + chunk
	}
	return "m" + chunk
}
