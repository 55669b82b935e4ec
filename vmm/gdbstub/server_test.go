package gdbstub

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeTarget is two vCPUs over 64 KiB of flat memory at 0x10000.
type fakeTarget struct {
	regs    [2]Regs
	mem     []byte
	stops   chan Stop
	resumed []string
	bps     map[uint64]bool
	killed  bool
	detach  bool
	manual  bool // Resume queues no stop: the test sends it
}

const fakeBase = 0x10000

func newFake() *fakeTarget {
	f := &fakeTarget{mem: make([]byte, 0x10000), stops: make(chan Stop, 1), bps: map[uint64]bool{}}
	f.regs[0].RIP, f.regs[1].RIP = 0x10100, 0x10200
	f.regs[0].GPR[0] = 0x1122334455667788
	f.regs[0].Seg[0] = 0x33
	f.regs[0].FSBase = 0x601000
	return f
}

func (f *fakeTarget) CPUs() int { return 2 }
func (f *fakeTarget) ReadRegs(cpu int) (Regs, error) {
	if cpu < 0 || cpu > 1 {
		return Regs{}, fmt.Errorf("no cpu %d", cpu)
	}
	return f.regs[cpu], nil
}
func (f *fakeTarget) WriteRegs(cpu int, r Regs) error { f.regs[cpu] = r; return nil }
func (f *fakeTarget) span(addr uint64, n int) ([]byte, error) {
	if addr < fakeBase || addr-fakeBase+uint64(n) > uint64(len(f.mem)) || addr-fakeBase+uint64(n) < addr-fakeBase {
		return nil, fmt.Errorf("unmapped")
	}
	return f.mem[addr-fakeBase : addr-fakeBase+uint64(n)], nil
}
func (f *fakeTarget) ReadMem(cpu int, addr uint64, p []byte) error {
	s, err := f.span(addr, len(p))
	if err == nil {
		copy(p, s)
	}
	return err
}
func (f *fakeTarget) WriteMem(cpu int, addr uint64, p []byte) error {
	s, err := f.span(addr, len(p))
	if err == nil {
		copy(s, p)
	}
	return err
}
func (f *fakeTarget) Breakpoint(insert bool, kind int, addr uint64, size int) error {
	if kind != 0 {
		return ErrUnsupported
	}
	if _, err := f.span(addr, 1); err != nil {
		return err
	}
	f.bps[addr] = insert
	return nil
}
func (f *fakeTarget) Resume(cpu int, step bool) error {
	f.resumed = append(f.resumed, fmt.Sprintf("%d/%v", cpu, step))
	if !f.manual {
		f.stops <- Stop{CPU: max(cpu, 0), Signal: SigTrap}
	}
	return nil
}
func (f *fakeTarget) Stop() {
	select {
	case f.stops <- Stop{CPU: 0, Signal: SigInt}:
	default:
	}
}
func (f *fakeTarget) Stops() <-chan Stop { return f.stops }
func (f *fakeTarget) Monitor(cmd string) (string, error) {
	if cmd == "boom" {
		return "", fmt.Errorf("no such thing")
	}
	return "you said " + cmd + "\n", nil
}
func (f *fakeTarget) Detach() { f.detach = true }
func (f *fakeTarget) Kill()   { f.killed = true }

// client is a minimal gdb: it sends packets and reads replies in ack mode.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func start(t *testing.T, f *fakeTarget) (*client, chan error) {
	t.Helper()
	a, b := net.Pipe()
	s := NewServer(f)
	f.stops <- Stop{CPU: 0, Signal: SigTrap} // the initial stop
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(b); b.Close() }()
	t.Cleanup(func() { a.Close() })
	return &client{t: t, c: a, r: bufio.NewReader(a)}, done
}

// cmd sends one packet and returns the reply's body, skipping acks and
// collecting O packets into out.
func (c *client) cmd(p string) (reply, out string) {
	c.t.Helper()
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write(rawFrame(p)); err != nil {
		c.t.Fatalf("send %q: %v", p, err)
	}
	for {
		r := c.read()
		if strings.HasPrefix(r, "O") && r != "OK" {
			b, _ := hex.DecodeString(r[1:])
			out += string(b)
			continue
		}
		return r, out
	}
}

// rawFrame frames p as gdb does for binary data it has escaped itself.
func rawFrame(p string) []byte {
	var sum byte
	for i := 0; i < len(p); i++ {
		sum += p[i]
	}
	return fmt.Appendf(nil, "$%s#%02x", p, sum)
}

func (c *client) read() string {
	c.t.Helper()
	var f framer
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if kind, pkt := f.feed(b); kind == evPacket {
			return string(pkt)
		} else if kind == evBadSum {
			c.t.Fatal("reply with a bad checksum")
		}
	}
}

func TestSessionBasics(t *testing.T) {
	f := newFake()
	c, _ := start(t, f)
	for _, tc := range []struct{ in, want string }{
		{"qSupported:swbreak+;xmlRegisters=i386", "PacketSize=4000;qXfer:features:read+;QStartNoAckMode+;swbreak+;vContSupported+"},
		{"?", "T05thread:1;"},
		{"qfThreadInfo", "m1,2"},
		{"qsThreadInfo", "l"},
		{"qC", "QC1"},
		{"qAttached", "1"},
		{"T2", "OK"},
		{"T3", "E16"},
		{"Hg3", "E16"},
		{"p10", "0001010000000000"},     // rip of vCPU 0
		{"p0", "8877665544332211"},      // rax
		{"p12", "33000000"},             // cs: 4 bytes
		{"p18", "xxxxxxxxxxxxxxxxxxxx"}, // st0: unavailable
		{"p28", "0010600000000000"},     // fs_base
		{"p2a", "E16"},                  // beyond the table
		{"Hg2", "OK"},                   // registers of vCPU 1 from now on
		{"p10", "0002010000000000"},     // rip of vCPU 1
		{"P10=0003010000000000", "OK"},  // set vCPU 1's rip
		{"p10", "0003010000000000"},
		{"Hg0", "OK"},
		{"m10000,4", "00000000"},
		{"M10000,4:deadbeef", "OK"},
		{"m10000,4", "deadbeef"},
		{"X10004,2:}\x03}\x04", "OK"}, // escaped binary: 0x23 0x24
		{"m10004,2", "2324"},
		{"m0,4", "E0e"},                 // unmapped
		{"mffffffffffffffff,10", "E0e"}, // wraps
		{"M10000,4:dead", "E16"},        // length mismatch
		{"mzz,4", "E16"},
		{"m10000", "E16"},
		{"Z0,10100,1", "OK"},
		{"z0,10100,1", "OK"},
		{"Z0,0,1", "E0e"},
		{"Z2,10100,8", ""}, // watchpoints: not on this target
		{"Z9,10100,1", "E16"},
		{"vCont?", "vCont;c;C;s;S"},
		{"vMustReplyEmpty", ""},
		{"", ""},
		{"qXfer:features:read:other.xml:0,10", "E00"},
	} {
		if got, _ := c.cmd(tc.in); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
	if f.regs[1].RIP != 0x10300 {
		t.Errorf("P did not set vCPU 1's rip: %#x", f.regs[1].RIP)
	}
}

func TestRegistersRoundTrip(t *testing.T) {
	f := newFake()
	c, _ := start(t, f)
	g, _ := c.cmd("g")
	want := 16*16 + 16 + 8 + 6*8 + 8*20 + 8*8 + 2*16
	if len(g) != want {
		t.Fatalf("g is %d hex digits, want %d", len(g), want)
	}
	// Change rbx (second register) and write everything back.
	g2 := g[:16] + "0100000000000000" + g[32:]
	if r, _ := c.cmd("G" + g2); r != "OK" {
		t.Fatalf("G: %q", r)
	}
	if f.regs[0].GPR[1] != 1 || f.regs[0].GPR[0] != 0x1122334455667788 || f.regs[0].RIP != 0x10100 {
		t.Errorf("after G: %+v", f.regs[0])
	}
	if r, _ := c.cmd("G" + g2[:20]); r != "E16" {
		t.Errorf("short G: %q", r)
	}
}

func TestTargetXML(t *testing.T) {
	f := newFake()
	c, _ := start(t, f)
	var doc string
	for off := 0; ; {
		r, _ := c.cmd(fmt.Sprintf("qXfer:features:read:target.xml:%x,100", off))
		if r == "" || (r[0] != 'm' && r[0] != 'l') {
			t.Fatalf("reply %q", r)
		}
		doc += r[1:]
		off += len(r) - 1
		if r[0] == 'l' {
			break
		}
	}
	if doc != targetXML {
		t.Fatal("reassembled target.xml differs")
	}
	// Every register of the table is described, in order.
	at := 0
	for _, ri := range regTable {
		i := strings.Index(doc[at:], `<reg name="`+ri.name+`"`)
		if i < 0 {
			t.Fatalf("register %s missing or out of order", ri.name)
		}
		at += i
		if !strings.Contains(doc[at:min(at+80, len(doc))], fmt.Sprintf(`bitsize="%d"`, 8*ri.size)) {
			t.Errorf("register %s: size differs from the table", ri.name)
		}
	}
}

func TestResumeStepAndStopReplies(t *testing.T) {
	f := newFake()
	c, _ := start(t, f)
	if r, _ := c.cmd("c"); r != "T05thread:1;" {
		t.Errorf("c: %q", r)
	}
	if r, _ := c.cmd("vCont;s:2;c"); r != "T05thread:2;" {
		t.Errorf("vCont step thread 2: %q", r)
	}
	if r, _ := c.cmd("vCont;c"); r != "T05thread:1;" {
		t.Errorf("vCont;c: %q", r)
	}
	if r, _ := c.cmd("vCont;s:9"); r != "E16" {
		t.Errorf("vCont bad thread: %q", r)
	}
	if got := strings.Join(f.resumed, " "); got != "-1/false 1/true -1/false" {
		t.Errorf("resumes: %s", got)
	}
}

// TestStopResetsTheGeneralThread: `info threads` leaves Hg on another vCPU;
// gdb takes the thread a stop reply names as the general thread again and
// reads its registers without a new Hg (what `next` does after it).
func TestStopResetsTheGeneralThread(t *testing.T) {
	f := newFake()
	c, _ := start(t, f)
	if r, _ := c.cmd("Hg2"); r != "OK" {
		t.Fatalf("Hg2: %q", r)
	}
	g2, _ := c.cmd("g")
	if r, _ := c.cmd("vCont;s:1"); r != "T05thread:1;" {
		t.Fatalf("step thread 1: %q", r)
	}
	g1, _ := c.cmd("g")
	if g1 == g2 || !strings.Contains(g1, "0001010000000000") { // vCPU 0's RIP 0x10100
		t.Errorf("after the stop, g read vCPU 1's registers again:\n%s", g1)
	}
}

func TestMonitor(t *testing.T) {
	f := newFake()
	c, _ := start(t, f)
	r, out := c.cmd("qRcmd," + hex.EncodeToString([]byte("frame 0x10")))
	if r != "OK" || out != "you said frame 0x10\n" {
		t.Errorf("monitor: %q %q", r, out)
	}
	r, out = c.cmd("qRcmd," + hex.EncodeToString([]byte("boom")))
	if r != "OK" || !strings.Contains(out, "error: no such thing") {
		t.Errorf("failing monitor: %q %q", r, out)
	}
	if r, _ := c.cmd("qRcmd,zz"); r != "E16" {
		t.Errorf("bad hex: %q", r)
	}
}

func TestExitAndKill(t *testing.T) {
	f := newFake()
	c, done := start(t, f)
	c.cmd("?")
	f.manual = true
	// The run ends while gdb waits for a stop: W with the status.
	c.c.Write(frame("c"))
	if b, _ := c.r.ReadByte(); b != '+' {
		t.Fatalf("c not acknowledged: %q", b)
	}
	f.stops <- Stop{Exited: true, Status: 3}
	if r := c.read(); r != "W03" {
		t.Errorf("exit: %q", r)
	}
	if r, _ := c.cmd("c"); r != "E01" {
		t.Errorf("continue after exit: %q", r)
	}
	go func() { // drain the ack: net.Pipe writes block until read
		for {
			if _, err := c.r.ReadByte(); err != nil {
				return
			}
		}
	}()
	c.c.Write(frame("k"))
	if err := <-done; err != nil {
		t.Errorf("kill ended the session with %v", err)
	}
	if !f.killed {
		t.Error("k did not kill")
	}
}

func TestDetach(t *testing.T) {
	f := newFake()
	c, done := start(t, f)
	if r, _ := c.cmd("D"); r != "OK" {
		t.Errorf("D: %q", r)
	}
	<-done
	if !f.detach {
		t.Error("D did not detach")
	}
}

// TestHostileClient: bad checksums get '-', garbage is ignored, too many
// bad packets or an oversized one close the connection.
func TestHostileClient(t *testing.T) {
	f := newFake()
	c, done := start(t, f)
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	c.c.Write([]byte("garbage\x00\xff$?#00"))
	if b, _ := c.r.ReadByte(); b != '-' {
		t.Errorf("bad checksum answered %q, want '-'", b)
	}
	c.c.Write([]byte("$?#zz"))
	if b, _ := c.r.ReadByte(); b != '-' {
		t.Errorf("non-hex checksum answered %q, want '-'", b)
	}
	if r, _ := c.cmd("?"); r != "T05thread:1;" {
		t.Errorf("after noise: %q", r)
	}
	go c.c.Write([]byte("$" + strings.Repeat("m", MaxPacket+10) + "#00"))
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "longer") {
			t.Errorf("oversized packet: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("oversized packet did not end the session")
	}

	f2 := newFake()
	c2, done2 := start(t, f2)
	go func() {
		for range maxBadPackets + 2 {
			if _, err := c2.c.Write([]byte("$g#00")); err != nil {
				return
			}
		}
	}()
	go func() {
		for {
			if _, err := c2.r.ReadByte(); err != nil {
				return
			}
		}
	}()
	select {
	case err := <-done2:
		if err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("bad checksums: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stream of bad packets did not end the session")
	}
}

func TestClientVanishes(t *testing.T) {
	f := newFake()
	c, done := start(t, f)
	c.c.Write([]byte("$m10000,"))
	c.c.Close()
	if err := <-done; err != ErrClientGone {
		t.Errorf("vanished client: %v", err)
	}
}

func TestNoAckMode(t *testing.T) {
	f := newFake()
	c, _ := start(t, f)
	if r, _ := c.cmd("QStartNoAckMode"); r != "OK" {
		t.Fatal(r)
	}
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	c.c.Write(frame("qC"))
	b, _ := c.r.ReadByte()
	if b != '$' {
		t.Errorf("no-ack mode still acks: first byte %q", b)
	}
}

func TestFramerChecksums(t *testing.T) {
	var f framer
	var got []string
	for _, b := range []byte("+$qC#b4-\x03$x#00$}]#da") {
		kind, pkt := f.feed(b)
		switch kind {
		case evPacket:
			got = append(got, "pkt:"+string(pkt))
		case evBadSum:
			got = append(got, "bad")
		case evInterrupt:
			got = append(got, "intr")
		case evAck:
			got = append(got, "+")
		case evNack:
			got = append(got, "-")
		}
	}
	if s := strings.Join(got, " "); s != "+ pkt:qC - intr bad pkt:}]" {
		t.Errorf("events: %s", s)
	}
	if s := string(frame("a#b")); s != "$a}\x03b#"+fmt.Sprintf("%02x", ('a'+'}'+0x03+'b')&0xff) {
		t.Errorf("frame escapes: %q", s)
	}
}

// FuzzFramer: any byte stream gives events without panics, and the
// buffered packet never exceeds MaxPacket.
func FuzzFramer(f *testing.F) {
	for _, s := range []string{"$qC#b4", "+-\x03", "$" + strings.Repeat("a", 100) + "#00", "$}#", "##$$"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr framer
		for _, b := range data {
			if _, pkt := fr.feed(b); len(pkt) > MaxPacket {
				t.Fatalf("packet of %d bytes", len(pkt))
			}
		}
	})
}

// FuzzPacket: any packet body gets a reply (or ends the session) without
// panics, against the fake target.
func FuzzPacket(f *testing.F) {
	for _, s := range []string{"g", "G00", "p10", "P10=00", "m10000,4", "M10000,2:0102", "X10000,1:}", "Z0,10000,1",
		"z1,0,0", "vCont;s:1", "vCont;x", "Hg-1", "Hcp1.2", "qRcmd,6865", "qXfer:features:read:target.xml:ffff,ffffffff",
		"qThreadExtraInfo,1", "T0", "s", "c", "?", "D", "k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		tg := newFake()
		s := NewServer(tg)
		s.running = false
		var out strings.Builder
		ss := &session{s: s, w: bufio.NewWriter(&out), gCPU: -1}
		ss.packet(p)
		// A resume made the fake queue a stop; drain it.
		select {
		case <-tg.stops:
		default:
		}
	})
}
