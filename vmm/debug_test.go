package vmm

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/internal/guestbuild"
)

func requireGDB(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("skipping: gdb is not installed (.ci/run installs it)")
	}
	return p
}

// gdbBoot starts a VM that waits for gdb on a loopback port; the result
// arrives on the channel once the run is over (the VM is closed by then).
func gdbBoot(t testing.TB, cfg Config) (string, <-chan *Result) {
	t.Helper()
	requireKVM(t)
	cfg.GDB = "127.0.0.1:0"
	vm, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ch := make(chan *Result, 1)
	go func() {
		r := vm.Run()
		vm.Close()
		ch <- r
	}()
	return vm.GDBAddr(), ch
}

// runGDB runs gdb in batch mode against addr with the guest's symbols.
func runGDB(t *testing.T, addr string, cmds ...string) string {
	t.Helper()
	gdb := requireGDB(t)
	elf, err := guestbuild.Path(t)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-nx", "-batch", "-ex", "set pagination off", "-ex", "set confirm off",
		"-ex", "target remote " + addr}
	for _, c := range cmds {
		args = append(args, "-ex", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, gdb, append(args, elf)...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("gdb did not finish: %v\n%s", err, out)
	}
	return string(out)
}

func result(t testing.TB, ch <-chan *Result) *Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Minute):
		t.Fatal("the VM did not end after gdb finished")
		return nil
	}
}

func wantIn(t *testing.T, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("gdb output lacks %q", s)
		}
	}
}

// metaPhys is where the guest puts its FrameMeta array (2 MiB, aligned to
// mm.MetaAlign) in a 128 MiB guest: the tests write to records at fixed
// addresses. gdb sees memory as the kernel does, through the physmap: metaVA.
const (
	metaPhys = 0x200000
	metaVA   = firmware.PhysMapBase + metaPhys
)

// TestGDBSession drives a whole session with the real gdb: breakpoint on
// the buddy allocator, backtrace, arguments, a frame record, stepi,
// threads = vCPUs, monitor commands, and a clean exit.
func TestGDBSession(t *testing.T) {
	cfg := bootConfig(t)
	cfg.CPUs, cfg.Workload = 2, "bench"
	addr, ch := gdbBoot(t, cfg)
	out := runGDB(t, addr,
		"break 'github.com/vmm-dev/vmm/guest/mm.(*Buddy).Alloc'",
		"continue",
		"bt",
		"print b",
		"frame 1",
		"print n",
		fmt.Sprintf("x/8gx %#x", metaVA+0x100*64),
		"frame 0",
		"x/2i $pc",
		"stepi",
		"printf \"pc after stepi: %#lx\\n\", $pc",
		"info threads",
		"monitor frame 0x100",
		"monitor verify",
		"monitor buddyinfo",
		"monitor bogus",
		"delete",
		"continue",
		"continue",
	)
	t.Logf("gdb:\n%s", out)
	wantIn(t, out,
		"hit Breakpoint 1.1, ", "mm.(*Buddy).Alloc (b=",
		"#1  github.com/vmm-dev/vmm/guest/mm.BenchAllocFree (b=", "in main.runBench", "in main.runWorkloads", // bt (Alloc is inlined)
		"<main[kernelMM]>",                   // print b
		"$2 = 200000",                        // print n (BenchAllocFree's argument)
		fmt.Sprintf("%#x:", metaVA+0x100*64), // x/8gx
		"Thread 1 ", "Thread 2 ", "vCPU 1",   // info threads
		"frame:", "ALLOCATED|KERNEL", // monitor frame
		"violations: none", // monitor verify
		"free:",            // monitor buddyinfo
		`unknown monitor command "bogus"`,
		"guest called exit(0)",
		"exited normally")
	// stepi moved exactly one instruction: to the second line of x/2i.
	m := regexp.MustCompile(`=> 0x[0-9a-f]+ .*\n\s+(0x[0-9a-f]+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no x/2i output")
	}
	wantIn(t, out, "pc after stepi: "+m[1])
	if r := result(t, ch); r.Outcome != OutcomeExit || r.ExitStatus != 0 {
		t.Errorf("run ended %s with status %d: %s", r.Outcome, r.ExitStatus, r.Reason)
	}
}

// TestGDBStopsAtViolation: gdb corrupts a free frame's refcount, and the
// next checkpoint stops in gdb, where monitor verify shows the violation.
func TestGDBStopsAtViolation(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "hello"
	addr, ch := gdbBoot(t, cfg)
	pfn := uint64(0x3000) // free in a 128 MiB guest after hello
	out := runGDB(t, addr,
		"break main.checkAndCheckpoint",
		"continue",
		"delete",
		"set language c",
		fmt.Sprintf("set {unsigned int}%#x = 7", metaVA+pfn*64+24), // FrameMeta.Refcount
		"continue",
		"bt 3",
		"monitor verify",
		fmt.Sprintf("set {unsigned int}%#x = 0", metaVA+pfn*64+24),
		"monitor verify",
		"kill",
	)
	t.Logf("gdb:\n%s", out)
	wantIn(t, out, "host verification found 1 violation(s) at checkpoint \"hello\"", "SIGABRT",
		"in main.checkpoint", "violations: 1", "frame 0x3000", "violations: none")
	if r := result(t, ch); r.Outcome != OutcomeError || !strings.Contains(r.Reason, "killed by the debugger") {
		t.Errorf("run ended %s: %s", r.Outcome, r.Reason)
	}
}

// TestGDBHostileClient: garbage, bad checksums and an oversized packet
// from a raw TCP client are refused or cut off; the next client is served
// and its kill ends the run.
func TestGDBHostileClient(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "hello"
	addr, ch := gdbBoot(t, cfg)
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c, bufio.NewReader(c)
	}
	c, r := dial()
	c.Write([]byte("\xff\x00garbage$g#00"))
	if b, err := r.ReadByte(); err != nil || b != '-' {
		t.Errorf("bad checksum: got %q, %v; want '-'", b, err)
	}
	c.Write([]byte("$" + strings.Repeat("A", 20000) + "#00"))
	if _, err := r.ReadString('#'); err == nil {
		t.Error("oversized packet: the connection stayed open")
	}
	c.Close()

	c, _ = dial() // vanishes in the middle of a packet
	c.Write([]byte("$m47"))
	c.Close()

	// The stub notices the vanished client when its read fails; until
	// then a new client is turned away like any second one: retry.
	var first string
	for try := 0; ; try++ {
		c, r = dial()
		c.Write(rawPacket("?"))
		line, err := r.ReadString('#')
		if err == nil {
			r.Discard(2)
			first = strings.TrimLeft(line, "+")
			break
		}
		c.Close()
		if try == 100 {
			t.Fatalf("no client served after the vanished one: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer c.Close()
	send := func(p string) string {
		c.Write(rawPacket(p))
		line, err := r.ReadString('#')
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		r.Discard(2)
		return strings.TrimLeft(line, "+")
	}
	if first != "$T05thread:1;#" {
		t.Errorf("?: %q", first)
	}
	c2, r2 := dial() // one client at a time: a second one is turned away
	if _, err := r2.ReadByte(); err == nil {
		t.Error("a second client was served")
	}
	c2.Close()
	if got := send("m0,8"); got != "$E0e#" { // page 0 is unmapped
		t.Errorf("m0,8: %q", got)
	}
	if got := send("m8000000000000000,8"); got != "$E0e#" {
		t.Errorf("non-canonical read: %q", got)
	}
	if got := send("P28=0000000000000000"); got != "$E01#" { // fs_base is read-only
		t.Errorf("write fs_base: %q", got)
	}
	if got := send("P0=0500000000000000"); got != "$OK#" {
		t.Errorf("write rax: %q", got)
	}
	if got := send("p0"); got != "$0500000000000000#" {
		t.Errorf("rax after P: %q", got)
	}
	c.Write(rawPacket("k"))
	if res := result(t, ch); res.Outcome != OutcomeError || !strings.Contains(res.Reason, "killed") {
		t.Errorf("run ended %s: %s", res.Outcome, res.Reason)
	}
}

func rawPacket(p string) []byte {
	var sum byte
	for i := 0; i < len(p); i++ {
		sum += p[i]
	}
	return fmt.Appendf(nil, "$%s#%02x", p, sum)
}

// TestGDBTimeout: a VM waiting for a debugger that never comes still ends
// at --timeout.
func TestGDBTimeout(t *testing.T) {
	cfg := bootConfig(t)
	cfg.CPUs, cfg.Workload, cfg.Timeout = 2, "hello", 2*time.Second
	_, ch := gdbBoot(t, cfg)
	if r := result(t, ch); r.Outcome != OutcomeTimeout {
		t.Errorf("run ended %s: %s", r.Outcome, r.Reason)
	}
}

// rawClient speaks the protocol without gdb (acks on, as gdb starts).
type rawClient struct {
	tb testing.TB
	c  net.Conn
	r  *bufio.Reader
}

func dialRaw(tb testing.TB, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &rawClient{tb: tb, c: c, r: bufio.NewReader(c)}
}

// cmd sends p and returns the reply body (acks and console packets skipped).
func (rc *rawClient) cmd(p string) string {
	rc.c.Write(rawPacket(p))
	return rc.reply()
}

func (rc *rawClient) reply() string {
	p := "reply"
	rc.c.SetDeadline(time.Now().Add(30 * time.Second))
	for {
		if _, err := rc.r.ReadString('$'); err != nil {
			rc.tb.Fatalf("%s: %v", p, err)
		}
		body, err := rc.r.ReadString('#')
		if err != nil {
			rc.tb.Fatalf("%s: %v", p, err)
		}
		rc.r.Discard(2)
		rc.c.Write([]byte("+"))
		body = strings.TrimSuffix(body, "#")
		if !strings.HasPrefix(body, "O") || body == "OK" {
			return body
		}
	}
}

// symbolAddr finds a function's address in the guest ELF.
func symbolAddr(tb testing.TB, name string) uint64 {
	path, err := guestbuild.Path(tb)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value
		}
	}
	tb.Fatalf("no symbol %s", name)
	return 0
}

// BenchmarkGDBRoundTrip times, over the wire as gdb drives it: a trivial
// packet (the floor), one single-step (s -> stop), and continuing to a
// breakpoint hit once per iteration of the bench workload's alloc/free
// loop ((*Buddy).Free) the way gdb does it (step over the breakpoint:
// z0, s, Z0, then c -> stop).
//
//	go test -run '^$' -bench GDBRoundTrip -benchtime 200x ./vmm/
func BenchmarkGDBRoundTrip(b *testing.B) {
	cfg := bootConfig(b)
	cfg.Workload, cfg.Timeout = "bench", 10*time.Minute
	addr, ch := gdbBoot(b, cfg)
	rc := dialRaw(b, addr)
	if r := rc.cmd("?"); !strings.HasPrefix(r, "T05") {
		b.Fatalf("?: %q", r)
	}
	bp := fmt.Sprintf("%x,1", symbolAddr(b, "github.com/vmm-dev/vmm/guest/mm.(*Buddy).Free"))
	if r := rc.cmd("Z0," + bp); r != "OK" {
		b.Fatalf("Z0: %q", r)
	}
	if r := rc.cmd("c"); !strings.Contains(r, "swbreak") {
		b.Fatalf("c: %q", r)
	}
	measure := func(name string, op func()) {
		start := time.Now()
		for range b.N {
			op()
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), name+"-µs/op")
	}
	b.ResetTimer()
	measure("packet", func() { rc.cmd("qC") })
	measure("step", func() {
		if r := rc.cmd("vCont;s:1"); !strings.HasPrefix(r, "T05") {
			b.Fatalf("step: %q", r)
		}
	})
	if r := rc.cmd("c"); !strings.Contains(r, "swbreak") { // back onto the breakpoint
		b.Fatalf("c: %q", r)
	}
	var cont time.Duration
	measure("breakpoint", func() {
		rc.cmd("z0," + bp)
		rc.cmd("vCont;s:1")
		rc.cmd("Z0," + bp)
		t0 := time.Now()
		if r := rc.cmd("c"); !strings.Contains(r, "swbreak") {
			b.Fatalf("c: %q", r)
		}
		cont += time.Since(t0)
	})
	b.ReportMetric(float64(cont.Microseconds())/float64(b.N), "continue-µs/op")
	b.StopTimer()
	rc.c.Write(rawPacket("k"))
	result(b, ch)
}

// TestGDBInterruptAndFault: Ctrl-C stops a spinning guest on every vCPU;
// an unhandled exception stops with its signal and, continued, faults
// again at the same instruction.
func TestGDBInterruptAndFault(t *testing.T) {
	cfg := bootConfig(t)
	cfg.CPUs, cfg.Workload = 2, "spin"
	addr, ch := gdbBoot(t, cfg)
	rc := dialRaw(t, addr)
	rc.cmd("?")
	rc.c.Write(rawPacket("c"))
	time.Sleep(200 * time.Millisecond)
	rc.c.Write([]byte{0x03})
	if r := rc.reply(); !strings.HasPrefix(r, "T02thread:") {
		t.Errorf("Ctrl-C: %q", r)
	}
	if r := rc.cmd("Hg2"); r != "OK" {
		t.Errorf("Hg2: %q", r)
	}
	if r := rc.cmd("g"); len(r) < 100 || strings.HasPrefix(r, "E") {
		t.Errorf("registers of vCPU 1: %q", r)
	}
	rc.c.Write(rawPacket("k"))
	result(t, ch)

	cfg.CPUs, cfg.Workload = 1, "ud"
	addr, ch = gdbBoot(t, cfg)
	rc = dialRaw(t, addr)
	rc.cmd("?")
	first := rc.cmd("c")
	if !strings.HasPrefix(first, "T04thread:1;") {
		t.Errorf("UD2: %q", first)
	}
	pc1 := rc.cmd("p10")
	if r := rc.cmd("c"); r != first || rc.cmd("p10") != pc1 {
		t.Errorf("continued #UD: %q at %s, want %q at %s", r, rc.cmd("p10"), first, pc1)
	}
	rc.c.Write(rawPacket("k"))
	if r := result(t, ch); r.ExitStatus != StatusVMMError {
		t.Errorf("kill: status %d (%s)", r.ExitStatus, r.Reason)
	}
}

// TestGDBBreakpointOnTwoVCPUs: a breakpoint both vCPUs hit, continued the
// way gdb does it (step over, reinsert) many times, then removed: the run
// still ends cleanly, so no hit was lost or left the guest mid-instruction.
func TestGDBBreakpointOnTwoVCPUs(t *testing.T) {
	cfg := bootConfig(t)
	cfg.CPUs, cfg.Workload = 2, "smp"
	var log syncBuffer
	cfg.Log = &log
	defer func() {
		if t.Failed() {
			t.Logf("VMM log:\n%s", log.String())
		}
	}()
	addr, ch := gdbBoot(t, cfg)
	rc := dialRaw(t, addr)
	rc.cmd("?")
	bp := fmt.Sprintf("%x,1", symbolAddr(t, "github.com/vmm-dev/vmm/guest/mm.(*Buddy).FreeLocal"))
	rc.cmd("Z0," + bp)
	seen := map[string]bool{}
	stop := rc.cmd("c")
	for i := 0; i < 40 && strings.Contains(stop, "swbreak"); i++ {
		th := regexp.MustCompile(`thread:([0-9a-f]+);`).FindStringSubmatch(stop)[1]
		seen[th] = true
		rc.cmd("z0," + bp)
		if r := rc.cmd("vCont;s:" + th); !strings.HasPrefix(r, "T05") {
			t.Fatalf("step thread %s: %q", th, r)
		}
		rc.cmd("Z0," + bp)
		stop = rc.cmd("c")
	}
	if !strings.Contains(stop, "swbreak") {
		t.Fatalf("stopped for another reason: %q", stop)
	}
	t.Logf("threads that hit the breakpoint: %v", seen)
	rc.cmd("z0," + bp)
	if r := rc.cmd("c"); !strings.HasPrefix(r, "T05") { // the exit stop
		t.Errorf("after removing the breakpoint: %q", r)
	}
	if r := rc.cmd("c"); r != "W00" {
		t.Errorf("end: %q", r)
	}
	if r := result(t, ch); r.Outcome != OutcomeExit || r.ExitStatus != 0 {
		t.Errorf("run ended %s with status %d: %s", r.Outcome, r.ExitStatus, r.Reason)
	}
}

// TestGDBDetach: detaching takes the breakpoints out and the guest runs
// to its normal end.
func TestGDBDetach(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload = "hello"
	addr, ch := gdbBoot(t, cfg)
	rc := dialRaw(t, addr)
	rc.cmd("?")
	rc.cmd(fmt.Sprintf("Z0,%x,1", symbolAddr(t, "main.checkAndCheckpoint")))
	if r := rc.cmd("D"); r != "OK" {
		t.Errorf("D: %q", r)
	}
	if r := result(t, ch); r.Outcome != OutcomeExit || r.ExitStatus != 0 {
		t.Errorf("run ended %s with status %d: %s", r.Outcome, r.ExitStatus, r.Reason)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
