package vmm

// The VM side of `vmm boot --gdb ADDR`: a gdbstub.Target over the vCPUs.
//
// Guest debug through KVM (KVM_SET_GUEST_DEBUG) does not reach the VMM on
// the paravirtual kvm_pvm host: #DB and #BP are delivered to the guest's
// own IDT. So breakpoints are int3 bytes written into guest memory and
// taken by the guest's #BP gate, whose dispatcher hands the exception to
// HCFault with its saved register block; the debugger answers
// HCFaultResume to send the vCPU back to the interrupted code, restored
// from the trap record (RIP, RSP, RFLAGS) and register block, both of
// which it may have edited. Single-step puts temporary int3s on every
// possible next instruction (gdbstub.NextPCs) and runs that vCPU alone.
// int3 at CPL3 reaches the guest's IDT on VMX and SVM hosts too, so the
// same path serves every host.
//
// Stopping the world shares the VM's pause bookkeeping (pauseMu,
// pauseCnd, parked): a vCPU held by the debugger counts as parked, so a
// checkpoint stop-the-world and a debugger stop never wait for each other.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/coredump"
	"github.com/vmm-dev/vmm/vmm/gdbstub"
	"github.com/vmm-dev/vmm/vmm/inspect"
	"github.com/vmm-dev/vmm/vmm/verify"
)

type resumeAct int

const (
	actNone resumeAct = iota
	actContinue
	actStep
	actQuit // the run ends (kill, stop, timeout)
)

// trapCtx is the interrupted context of a vCPU stopped in its #BP (or
// other exception) path: the guest restores it when HCFault returns.
type trapCtx struct {
	rec, regs uint64 // guest physical: TrapRecord, trapRegs block
	resumable bool   // the guest will resume it (not a fault inside the handler)
	bp        uint64 // the breakpoint it stopped at (0: none)
	step      bool   // bp is a single-step breakpoint
}

// debugger is the Target; the fields under "pauseMu" are guarded by the
// VM's pauseMu.
type debugger struct {
	vm    *VM
	ln    net.Listener
	srv   *gdbstub.Server
	stops chan gdbstub.Stop

	interrupt atomic.Bool // Ctrl-C: the next vCPU at its gate stops
	detached  atomic.Bool
	started   bool // vCPU 0 made its first stop (vCPU 0's goroutine only)

	// pauseMu
	held     bool // vCPUs wait at their gate
	reporter int  // vCPU whose stop is current, -1 none
	stepping int  // vCPU that may run while held, -1 none
	resumed  bool
	action   resumeAct
	stepCPU  int
	ctx      []*trapCtx
	snaps    []snapshot

	bpMu  sync.Mutex
	bps   map[uint64]bp // gdb's breakpoints by virtual address
	steps map[uint64]bp // temporary single-step breakpoints
}

// snapshot is a held vCPU's registers, read on its own thread when it
// stopped (KVM's register ioctls are only trusted from the vCPU's thread)
// and written back there, if gdb changed them, before it runs again.
type snapshot struct {
	ok, dirty bool
	regs      kvm.Regs
	sregs     kvm.Sregs
}

type bp struct {
	phys uint64
	orig byte
}

const int3 = 0xcc

// newDebugger binds the listener (loopback unless the address names a
// host) and serves clients one at a time.
func newDebugger(vm *VM, addr string) (*debugger, error) {
	if !strings.Contains(addr, ":") {
		addr = "127.0.0.1:" + addr
	} else if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--gdb %s: %w", addr, err)
	}
	d := &debugger{vm: vm, ln: ln, stops: make(chan gdbstub.Stop, 1),
		held: true, reporter: -1, stepping: -1, ctx: make([]*trapCtx, vm.cfg.CPUs), snaps: make([]snapshot, vm.cfg.CPUs),
		bps: map[uint64]bp{}, steps: map[uint64]bp{}}
	d.srv = gdbstub.NewServer(d)
	d.srv.Trace = vm.cfg.Log
	fmt.Fprintf(os.Stderr, "vmm: waiting for gdb on %s (%s); the guest stops before its first instruction\n", ln.Addr(), hostDebugPath())
	go d.srv.Serve(ln)
	return d, nil
}

// hostDebugPath says how breakpoints work on this host.
func hostDebugPath() string {
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return "kvm_pvm host: breakpoints through the guest's #BP gate"
	}
	return "breakpoints through the guest's #BP gate"
}

func (d *debugger) quit() bool { return d.vm.stopped.Load() || d.vm.halting.Load() }

// gate runs at the top of each vCPU loop iteration: the first stop, a
// pending Ctrl-C, or waiting while the debugger holds the world. It
// reports whether the loop should look at the VM's state again.
func (d *debugger) gate(v *vcpu) bool {
	if d.detached.Load() {
		return false
	}
	if v.index == 0 && !d.started {
		d.started = true
		return d.stopHere(v, gdbstub.Stop{Signal: gdbstub.SigTrap}, nil, false) != actNone
	}
	if d.interrupt.CompareAndSwap(true, false) {
		d.stopHere(v, gdbstub.Stop{Signal: gdbstub.SigInt}, nil, false)
		return true
	}
	vm := d.vm
	vm.pauseMu.Lock()
	held := d.held && d.stepping != v.index
	vm.pauseMu.Unlock()
	if !held {
		return false
	}
	d.capture(v)
	vm.pauseMu.Lock()
	vm.parked++
	vm.pauseCnd.Broadcast()
	for d.held && d.stepping != v.index && !d.quit() && !d.interrupt.Load() {
		vm.pauseCnd.Wait()
	}
	vm.parked--
	vm.pauseMu.Unlock()
	d.restore(v)
	return true
}

// capture snapshots v's registers (on v's thread) for the client.
func (d *debugger) capture(v *vcpu) {
	var sn snapshot
	r, err1 := kvm.GetRegs(v.fd)
	sr, err2 := kvm.GetSregs(v.fd)
	if err1 == nil && err2 == nil {
		sn = snapshot{ok: true, regs: *r, sregs: *sr}
	}
	d.vm.pauseMu.Lock()
	d.snaps[v.index] = sn
	d.vm.pauseMu.Unlock()
}

// restore writes back registers gdb changed, before v runs again.
func (d *debugger) restore(v *vcpu) {
	d.vm.pauseMu.Lock()
	sn := d.snaps[v.index]
	d.snaps[v.index] = snapshot{}
	d.vm.pauseMu.Unlock()
	if sn.dirty {
		if err := kvm.SetRegs(v.fd, &sn.regs); err != nil {
			d.vm.logf("debugger: KVM_SET_REGS vCPU %d: %v", v.index, err)
		}
	}
}

// stopHere stops every vCPU with v as the reporter, hands st to the
// client and waits until it resumes. owner says v already stopped the
// world (a checkpoint). ctx is v's interrupted context, if it trapped.
func (d *debugger) stopHere(v *vcpu, st gdbstub.Stop, ctx *trapCtx, owner bool) resumeAct {
	vm := d.vm
	st.CPU = v.index
	d.capture(v)
	defer d.restore(v)
	vm.pauseMu.Lock()
	for {
		// Wait our turn: another vCPU reports, or single-steps (its step
		// breakpoints must stay until it stops), or a checkpoint holds the world.
		for !d.quit() && (d.reporter >= 0 || (d.stepping >= 0 && d.stepping != v.index) || (!owner && vm.pausing.Load())) {
			vm.parked++ // waiting counts as stopped
			vm.pauseCnd.Broadcast()
			vm.pauseCnd.Wait()
			vm.parked--
		}
		if d.quit() || d.detached.Load() {
			vm.pauseMu.Unlock()
			return actQuit
		}
		d.reporter, d.held, d.stepping = v.index, true, -1
		d.ctx[v.index] = ctx
		vm.pauseMu.Unlock()
		for _, o := range vm.vcpus {
			if o != v {
				o.interrupt()
			}
		}
		vm.pauseMu.Lock()
		for vm.parked < len(vm.vcpus)-1 && !d.quit() && (owner || !vm.pausing.Load()) {
			vm.pauseCnd.Wait()
		}
		if owner || !vm.pausing.Load() || d.quit() {
			break
		}
		// A checkpoint began stopping the world at the same time: it
		// waits for us to park, so give the turn back until it is done.
		d.reporter, d.ctx[v.index] = -1, nil
		vm.pauseCnd.Broadcast()
	}
	d.removeSteps()
	d.interrupt.Store(false) // this stop answers any pending Ctrl-C
	if ctx != nil && ctx.bp != 0 && !ctx.step && !d.isBreakpoint(ctx.bp) {
		// gdb removed the breakpoint while this vCPU waited its turn: the
		// hit is stale, and RIP already points back at the instruction.
		d.release(actContinue)
		vm.pauseMu.Unlock()
		return actContinue
	}
	if ctx != nil && ctx.bp != 0 {
		d.bpMu.Lock()
		_, st.SwBreak = d.bps[ctx.bp]
		d.bpMu.Unlock()
	}
	d.resumed = false
	vm.pauseMu.Unlock()
	select { // at most one stop is outstanding; drop one nobody read
	case <-d.stops:
	default:
	}
	d.stops <- st
	vm.pauseMu.Lock()
	defer vm.pauseMu.Unlock()
	for !d.resumed && !d.quit() {
		vm.pauseCnd.Wait()
	}
	if d.quit() {
		d.release(actQuit)
		return actQuit
	}
	act := d.action
	d.release(act)
	return act
}

// release ends the current stop (pauseMu held).
func (d *debugger) release(act resumeAct) {
	if d.reporter >= 0 {
		d.ctx[d.reporter] = nil
	}
	d.reporter = -1
	if act == actStep {
		d.held, d.stepping = true, d.stepCPU
	} else {
		d.held, d.stepping = false, -1
	}
	d.vm.pauseCnd.Broadcast()
}

// trap handles HCFault under the debugger; true means the hypercall is
// answered (resume, or the run is ending anyway), false that the fault
// ends the run as it would without a debugger.
func (d *debugger) trap(v *vcpu, ff *firmware.FaultFrame, regs uint64) bool {
	if d.detached.Load() {
		return false
	}
	vm := d.vm
	rec := vm.layout.perCPU(v.index) + firmware.PerCPUTrapOff
	var depth uint64
	view, err := guestView[firmware.TrapRecord](vm.mem, rec)
	if err == nil {
		depth = view.Depth
		vm.mem.NoteWrite(rec, firmware.TrapRecordSize) // the stub may store through view
	}
	_, rerr := vm.mem.Slice(regs, uint64(unsafe.Sizeof(trapRegs{})))
	ctx := &trapCtx{rec: rec, regs: regs, resumable: err == nil && depth == 1 && regs != 0 && rerr == nil}
	st := gdbstub.Stop{Signal: signalFor(ff.Vector)}
	if ff.Vector == 3 && ctx.resumable {
		d.bpMu.Lock()
		_, user := d.bps[ff.RIP-1]
		_, step := d.steps[ff.RIP-1]
		d.bpMu.Unlock()
		if user || step {
			ctx.bp, ctx.step = ff.RIP-1, step
			view.RIP = ctx.bp // back onto the instruction
		} else if d.removedBreakpoint(v, ff.RIP-1) {
			view.RIP = ff.RIP - 1
			return true
		}
	}
	if ctx.bp == 0 {
		st.Message = vm.faultFrameReport(v, ff).Text
		if !ctx.resumable {
			st.Message += "(not resumable: continuing ends the run)\n"
		}
	}
	act := d.stopHere(v, st, ctx, false)
	return act == actQuit || ctx.resumable
}

// removedBreakpoint reports that the int3 v trapped on is gone from
// memory: one of ours, taken out while v was still on its way from the
// int3 to HCFault (the ring-0 stub and dispatcher run for tens of µs, and
// a stop of the world can fall in between). The guest's own int3s stay.
func (d *debugger) removedBreakpoint(v *vcpu, addr uint64) bool {
	var b [1]byte
	return d.access(v.index, addr, b[:], false) == nil && b[0] != int3
}

// signalFor maps an exception vector to the signal gdb shows.
func signalFor(vec uint64) int {
	switch vec {
	case 1, 3:
		return gdbstub.SigTrap
	case 0, 16, 19:
		return gdbstub.SigFPE
	case 6:
		return gdbstub.SigIll
	}
	return gdbstub.SigSegv
}

// fatal stops in the debugger on a crash the guest cannot survive (triple
// fault, emulation failure...); continuing ends the run.
func (d *debugger) fatal(v *vcpu, why string) {
	if !d.detached.Load() {
		d.stopHere(v, gdbstub.Stop{Signal: gdbstub.SigSegv,
			Message: "vmm: " + why + " (continuing ends the run)"}, nil, false)
	}
}

// atExit stops when the guest calls exit; continuing ends the run.
func (d *debugger) atExit(v *vcpu, status int) {
	if !d.detached.Load() {
		d.stopHere(v, gdbstub.Stop{Signal: gdbstub.SigTrap,
			Message: fmt.Sprintf("vmm: guest called exit(%d); continue to end the run", status)}, nil, false)
	}
}

// violation stops at a checkpoint whose verification failed (v holds the
// world stopped).
func (d *debugger) violation(v *vcpu, label string, n uint64) {
	if !d.detached.Load() {
		d.stopHere(v, gdbstub.Stop{Signal: gdbstub.SigAbrt,
			Message: fmt.Sprintf("vmm: host verification found %d violation(s) at checkpoint %q (monitor verify lists them)", n, label)}, nil, true)
	}
}

// end reports the end of the run to the client and closes the listener.
func (d *debugger) end(status int) {
	st := gdbstub.Stop{Exited: true, Status: status}
	select {
	case <-d.stops:
	default:
	}
	d.stops <- st
	// Give a connected client a moment to read the exit, then stop serving.
	if d.srv.Connected() {
		select {
		case <-d.srv.Finished():
		case <-time.After(2 * time.Second):
		}
	}
	d.close()
}

func (d *debugger) close() { d.ln.Close() }

// GDBAddr is the address the debugger listens on ("" without --gdb).
func (vm *VM) GDBAddr() string {
	if vm.dbg == nil {
		return ""
	}
	return vm.dbg.ln.Addr().String()
}

// --- gdbstub.Target ---

func (d *debugger) CPUs() int                  { return len(d.vm.vcpus) }
func (d *debugger) Stops() <-chan gdbstub.Stop { return d.stops }

func (d *debugger) vcpu(cpu int) (*vcpu, error) {
	if cpu < 0 || cpu >= len(d.vm.vcpus) {
		return nil, fmt.Errorf("no vCPU %d", cpu)
	}
	return d.vm.vcpus[cpu], nil
}

func (d *debugger) trapCtx(cpu int) *trapCtx {
	d.vm.pauseMu.Lock()
	defer d.vm.pauseMu.Unlock()
	return d.ctx[cpu]
}

// ReadRegs gives the interrupted context of a trapped vCPU, else KVM's.
func (d *debugger) ReadRegs(cpu int) (gdbstub.Regs, error) {
	v, err := d.vcpu(cpu)
	if err != nil {
		return gdbstub.Regs{}, err
	}
	var r gdbstub.Regs
	k, sregs, err := d.regs(v)
	if err != nil {
		return r, err
	}
	r.Seg = [6]uint64{uint64(sregs.CS.Selector), uint64(sregs.SS.Selector), uint64(sregs.DS.Selector),
		uint64(sregs.ES.Selector), uint64(sregs.FS.Selector), uint64(sregs.GS.Selector)}
	r.FSBase, r.GSBase = sregs.FS.Base, sregs.GS.Base
	if c := d.trapCtx(cpu); c != nil {
		return r, d.readTrapRegs(c, &r)
	}
	r.GPR = [16]uint64{k.RAX, k.RBX, k.RCX, k.RDX, k.RSI, k.RDI, k.RBP, k.RSP,
		k.R8, k.R9, k.R10, k.R11, k.R12, k.R13, k.R14, k.R15}
	r.RIP, r.RFLAGS = k.RIP, k.RFLAGS
	return r, nil
}

// regs returns v's snapshot, or (a vCPU the debugger does not hold
// itself, e.g. parked by a checkpoint) asks KVM from this thread.
func (d *debugger) regs(v *vcpu) (*kvm.Regs, *kvm.Sregs, error) {
	d.vm.pauseMu.Lock()
	sn := d.snaps[v.index]
	d.vm.pauseMu.Unlock()
	if sn.ok {
		return &sn.regs, &sn.sregs, nil
	}
	r, err := kvm.GetRegs(v.fd)
	if err != nil {
		return nil, nil, fmt.Errorf("KVM_GET_REGS vCPU %d: %w", v.index, err)
	}
	sr, err := kvm.GetSregs(v.fd)
	if err != nil {
		return nil, nil, fmt.Errorf("KVM_GET_SREGS vCPU %d: %w", v.index, err)
	}
	return r, sr, nil
}

// trapRegs is the register block the guest's dispatcher saves (guest/trap.go
// trapRegs): AX BX CX DX SI DI BP R8..R15 ResumeSP; gdb's order has RSP
// after RBP (trapSlot).
type trapRegs [16]uint64

func trapSlot(i int) int {
	if i < 7 {
		return i
	}
	return i - 1
}

// loadTrap reads the registers the dispatcher saved for c and returns a
// view of its trap record (stores through the view reach guest memory).
func (d *debugger) loadTrap(c *trapCtx) (regs trapRegs, rec *firmware.TrapRecord, err error) {
	if err = readGuest(d.vm.mem, c.regs, &regs); err != nil {
		return regs, nil, err
	}
	rec, err = guestView[firmware.TrapRecord](d.vm.mem, c.rec)
	d.vm.mem.NoteWrite(c.rec, firmware.TrapRecordSize) // callers may store through rec
	return regs, rec, err
}

func (d *debugger) readTrapRegs(c *trapCtx, r *gdbstub.Regs) error {
	regs, rec, err := d.loadTrap(c)
	if err != nil {
		return err
	}
	for i := range r.GPR {
		if i != 7 {
			r.GPR[i] = regs[trapSlot(i)]
		}
	}
	r.GPR[7] = rec.RSP
	r.RIP, r.RFLAGS = rec.RIP, rec.RFLAGS
	r.Seg[0], r.Seg[1] = rec.CS, rec.SS
	return nil
}

// tfFlag is RFLAGS.TF: never set it, the ring-0 stub would step itself.
const tfFlag = 1 << 8

func (d *debugger) WriteRegs(cpu int, r gdbstub.Regs) error {
	v, err := d.vcpu(cpu)
	if err != nil {
		return err
	}
	r.RFLAGS &^= tfFlag
	cur, err := d.ReadRegs(cpu)
	if err != nil {
		return err
	}
	if r.Seg != cur.Seg || r.FSBase != cur.FSBase || r.GSBase != cur.GSBase {
		return errors.New("segment registers and bases are read-only")
	}
	if c := d.trapCtx(cpu); c != nil {
		regs, rec, err := d.loadTrap(c)
		if err != nil {
			return err
		}
		for i := range r.GPR {
			if i != 7 {
				regs[trapSlot(i)] = r.GPR[i]
			}
		}
		if err := writeGuest(d.vm.mem, c.regs, &regs); err != nil {
			return err
		}
		rec.RSP, rec.RIP, rec.RFLAGS = r.GPR[7], r.RIP, r.RFLAGS
		return nil
	}
	g := r.GPR
	k := &kvm.Regs{RAX: g[0], RBX: g[1], RCX: g[2], RDX: g[3], RSI: g[4], RDI: g[5], RBP: g[6], RSP: g[7],
		R8: g[8], R9: g[9], R10: g[10], R11: g[11], R12: g[12], R13: g[13], R14: g[14], R15: g[15],
		RIP: r.RIP, RFLAGS: r.RFLAGS}
	d.vm.pauseMu.Lock()
	if sn := &d.snaps[cpu]; sn.ok {
		sn.regs, sn.dirty = *k, true
		d.vm.pauseMu.Unlock()
		return nil
	}
	d.vm.pauseMu.Unlock()
	if err := kvm.SetRegs(v.fd, k); err != nil {
		return fmt.Errorf("KVM_SET_REGS vCPU %d: %w", cpu, err)
	}
	return nil
}

// Page-table entry bits for translation (the guest ABI's).
const (
	ptePresent = firmware.PTEPresent
	pteHuge    = firmware.PTEHuge
	pteAddr    = firmware.PTEAddrMask
)

// translate walks cr3's four levels for va; unmapped is an error.
func (d *debugger) translate(cr3, va uint64) (uint64, error) {
	table := cr3 & pteAddr
	for level := 4; level >= 1; level-- {
		shift := uint(12 + 9*(level-1))
		e, err := d.vm.mem.ReadU64(table + (va>>shift&511)*8)
		if err != nil {
			return 0, fmt.Errorf("page table at %#x: %w", table, err)
		}
		if e&ptePresent == 0 {
			return 0, fmt.Errorf("%#x is not mapped", va)
		}
		if level == 1 || (level <= 3 && e&pteHuge != 0) {
			mask := uint64(1)<<shift - 1
			return e&pteAddr&^mask | va&mask, nil
		}
		table = e & pteAddr
	}
	panic("unreachable")
}

// access copies between p and cpu's virtual memory page by page.
func (d *debugger) access(cpu int, addr uint64, p []byte, write bool) error {
	v, err := d.vcpu(cpu)
	if err != nil {
		return err
	}
	_, sregs, err := d.regs(v)
	if err != nil {
		return err
	}
	for len(p) > 0 {
		phys, err := d.translate(sregs.CR3, addr)
		if err != nil {
			return err
		}
		n := min(uint64(len(p)), firmware.PageSize-addr%firmware.PageSize)
		host, err := d.vm.mem.Slice(phys, n)
		if err != nil {
			return err
		}
		if write {
			copy(host, p[:n])
			d.vm.mem.NoteWrite(phys, n)
		} else {
			copy(p[:n], host)
		}
		p, addr = p[n:], addr+n
	}
	return nil
}

func (d *debugger) ReadMem(cpu int, addr uint64, p []byte) error {
	if err := d.access(cpu, addr, p, false); err != nil {
		return err
	}
	// Show the original bytes under temporary step breakpoints.
	d.bpMu.Lock()
	defer d.bpMu.Unlock()
	showOriginal(d.steps, addr, p)
	return nil
}

// showOriginal puts back, in p read from addr, the bytes the breakpoints
// in m replaced. The caller holds bpMu.
func showOriginal(m map[uint64]bp, addr uint64, p []byte) {
	for a, b := range m {
		if a-addr < uint64(len(p)) {
			p[a-addr] = b.orig
		}
	}
}

func (d *debugger) WriteMem(cpu int, addr uint64, p []byte) error {
	return d.access(cpu, addr, p, true)
}

// Breakpoint supports software breakpoints; the debug registers are not
// offered (KVM's guest debug does not reach the VMM on kvm_pvm, and a
// guest-side #DB path is not built).
func (d *debugger) Breakpoint(insert bool, kind int, addr uint64, size int) error {
	if kind != 0 {
		return gdbstub.ErrUnsupported
	}
	d.bpMu.Lock()
	defer d.bpMu.Unlock()
	if !insert {
		b, ok := d.bps[addr]
		if !ok {
			return nil
		}
		delete(d.bps, addr)
		return d.writeByte(b.phys, b.orig)
	}
	if _, ok := d.bps[addr]; ok {
		return nil
	}
	b, err := d.plant(addr)
	if err != nil {
		return err
	}
	d.bps[addr] = b
	return nil
}

// plant writes int3 at addr (translated through vCPU 0's page tables:
// the kernel's text is mapped the same way in every address space).
func (d *debugger) plant(addr uint64) (bp, error) {
	_, sregs, err := d.regs(d.vm.vcpus[0])
	if err != nil {
		return bp{}, err
	}
	phys, err := d.translate(sregs.CR3, addr)
	if err != nil {
		return bp{}, err
	}
	s, err := d.vm.mem.Slice(phys, 1)
	if err != nil {
		return bp{}, err
	}
	b := bp{phys: phys, orig: s[0]}
	return b, d.writeByte(phys, int3) // noted: the dirty log sees only the guest's writes
}

// unplantAll puts the original bytes back under every breakpoint, with
// the world stopped, and returns what plants them again; bpMu is held in
// between, so gdb plants or removes none meanwhile. Contents end as they
// were: nothing to note for the dirty log.
func (d *debugger) unplantAll() (replant func()) {
	d.bpMu.Lock()
	var under []bp
	for _, m := range []map[uint64]bp{d.bps, d.steps} {
		for _, b := range m {
			if s, err := d.vm.mem.Slice(b.phys, 1); err == nil && s[0] == int3 {
				s[0] = b.orig
				under = append(under, b)
			}
		}
	}
	return func() {
		for _, b := range under {
			if s, err := d.vm.mem.Slice(b.phys, 1); err == nil {
				s[0] = int3
			}
		}
		d.bpMu.Unlock()
	}
}

func (d *debugger) writeByte(phys uint64, b byte) error {
	return d.vm.mem.Write(phys, []byte{b})
}

func (d *debugger) isBreakpoint(addr uint64) bool {
	d.bpMu.Lock()
	defer d.bpMu.Unlock()
	_, a := d.bps[addr]
	_, b := d.steps[addr]
	return a || b
}

// removeSteps takes out every temporary breakpoint, last planted first
// (two at one address restore in the right order).
func (d *debugger) removeSteps() {
	d.bpMu.Lock()
	defer d.bpMu.Unlock()
	for a, b := range d.steps {
		d.writeByte(b.phys, b.orig)
		delete(d.steps, a)
	}
}

func (d *debugger) Resume(cpu int, step bool) error {
	vm := d.vm
	if step {
		if err := d.planSteps(cpu); err != nil {
			return err
		}
	}
	vm.pauseMu.Lock()
	defer vm.pauseMu.Unlock()
	if d.reporter < 0 {
		return errors.New("the target is not stopped")
	}
	d.action, d.stepCPU, d.resumed = actContinue, cpu, true
	if step {
		d.action = actStep
	}
	vm.pauseCnd.Broadcast()
	return nil
}

// planSteps plants a temporary breakpoint on each next instruction of cpu.
func (d *debugger) planSteps(cpu int) error {
	r, err := d.ReadRegs(cpu)
	if err != nil {
		return err
	}
	read := func(a uint64, p []byte) error { return d.readClean(cpu, a, p) }
	code := make([]byte, 15)
	for len(code) > 0 && read(r.RIP, code) != nil { // the instruction may end before a page gap
		code = code[:len(code)-1]
	}
	pcs, err := gdbstub.NextPCs(code, r, read)
	if err != nil {
		return err
	}
	d.bpMu.Lock()
	defer d.bpMu.Unlock()
	for _, pc := range pcs {
		if _, ok := d.steps[pc]; ok {
			continue
		}
		b, err := d.plant(pc)
		if err != nil {
			return fmt.Errorf("single-step breakpoint at %#x: %w", pc, err)
		}
		d.steps[pc] = b
	}
	return nil
}

// readClean reads memory with gdb's breakpoints shown as the original bytes.
func (d *debugger) readClean(cpu int, addr uint64, p []byte) error {
	if err := d.ReadMem(cpu, addr, p); err != nil {
		return err
	}
	d.bpMu.Lock()
	defer d.bpMu.Unlock()
	showOriginal(d.bps, addr, p)
	return nil
}

// Stop is Ctrl-C: the first vCPU back at its gate reports it.
// Nothing runs before the first stop or while a vCPU reports one.
func (d *debugger) Stop() {
	d.vm.pauseMu.Lock()
	running := d.reporter < 0 && (!d.held || d.stepping >= 0)
	d.vm.pauseMu.Unlock()
	if !running { // a stop is on its way already (the first one, or a vCPU's)
		return
	}
	d.interrupt.Store(true)
	for _, v := range d.vm.vcpus {
		v.interrupt()
	}
	d.vm.pauseMu.Lock()
	d.vm.pauseCnd.Broadcast()
	d.vm.pauseMu.Unlock()
}

// Detach takes out every breakpoint and lets the guest run on as without
// a debugger.
func (d *debugger) Detach() {
	d.bpMu.Lock()
	for a, b := range d.bps {
		d.writeByte(b.phys, b.orig)
		delete(d.bps, a)
	}
	d.bpMu.Unlock()
	d.removeSteps()
	d.detached.Store(true)
	vm := d.vm
	vm.pauseMu.Lock()
	d.action, d.resumed = actContinue, true
	if d.reporter < 0 {
		d.release(actContinue)
	}
	vm.pauseCnd.Broadcast()
	vm.pauseMu.Unlock()
}

func (d *debugger) Kill() {
	d.vm.stop(OutcomeError, StatusVMMError, "killed by the debugger", nil)
}

// Monitor runs `monitor CMD` commands.
func (d *debugger) Monitor(cmd string) (string, error) {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		f = []string{"help"}
	}
	var b strings.Builder
	switch f[0] {
	case "help":
		b.WriteString("monitor commands:\n" +
			"  frame PFN    decode frame PFN's FrameMeta record and list its mappings\n" +
			"  verify       run the host verifier on the stopped guest and print its report\n" +
			"  buddyinfo    free blocks per order, from the frame metadata\n" +
			"  help         this list\n")
	case "verify", "buddyinfo":
		rep, err := d.verify()
		if err != nil {
			return "", err
		}
		if f[0] == "verify" {
			rep.WriteText(&b)
			break
		}
		b.WriteString("order:")
		for o := range rep.FreeBlocks {
			fmt.Fprintf(&b, " %6d", o)
		}
		b.WriteString("\nfree: ")
		for _, n := range rep.FreeBlocks {
			fmt.Fprintf(&b, " %6d", n)
		}
		b.WriteString("\n")
	case "frame":
		if len(f) != 2 {
			return "", errors.New("usage: monitor frame PFN")
		}
		pfn, err := strconv.ParseUint(f[1], 0, 64)
		if err != nil || pfn > 1<<40 {
			return "", fmt.Errorf("bad frame number %q", f[1])
		}
		in, err := d.live()
		if err != nil {
			return "", err
		}
		fi, err := in.Frame(pfn * firmware.PageSize)
		if err != nil {
			return "", err
		}
		fi.WriteText(&b)
	default:
		return "", fmt.Errorf("unknown monitor command %q (monitor help lists them)", f[0])
	}
	return b.String(), nil
}

// live is an inspect.Inspection over the stopped guest's RAM.
func (d *debugger) live() (*inspect.Inspection, error) {
	vm := d.vm
	vm.mu.Lock()
	info := coredump.Info{Map: vm.mem.Map.Ranges(), Roots: append([]uint64(nil), vm.hc.roots...), Holdings: vm.hc.held}
	if r := vm.hc.reg; r != nil {
		info.Reg = &coredump.Registration{MetaPhys: r.MetaPhys, FrameCount: r.FrameCount, Version: r.Version, StatePhys: r.StatePhys}
	}
	vm.mu.Unlock()
	if info.Reg == nil {
		return nil, inspect.ErrNoRegistration
	}
	var vcpus []coredump.VCPU
	for _, v := range vm.vcpus {
		if _, s, err := d.regs(v); err == nil {
			vcpus = append(vcpus, coredump.VCPU{Index: v.index, CR3: s.CR3})
		}
	}
	return inspect.Live(vm.mem, info, vcpus), nil
}

func (d *debugger) verify() (*verify.Report, error) {
	in, err := d.live()
	if err != nil {
		return nil, err
	}
	return in.Verify()
}

// --- hooks for the vCPU loop and hypercalls (no-ops without --gdb) ---

func (vm *VM) startDebugger() error {
	if vm.cfg.GDB == "" {
		return nil
	}
	d, err := newDebugger(vm, vm.cfg.GDB)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	vm.dbg = d
	return nil
}

func (vm *VM) closeDebugger() {
	if vm.dbg != nil {
		vm.dbg.close()
	}
}

func (vm *VM) debugGate(v *vcpu) bool { return vm.dbg != nil && vm.dbg.gate(v) }

func (vm *VM) debugTrap(v *vcpu, ff *firmware.FaultFrame, regs uint64) bool {
	return vm.dbg != nil && vm.dbg.trap(v, ff, regs)
}

func (vm *VM) debugFatal(v *vcpu, why string) {
	if vm.dbg != nil {
		vm.dbg.fatal(v, why)
	}
}

func (vm *VM) debugExit(v *vcpu, status int) {
	if vm.dbg != nil {
		vm.dbg.atExit(v, status)
	}
}

func (vm *VM) debugViolation(v *vcpu, label string, n uint64) {
	if vm.dbg != nil && n > 0 {
		vm.dbg.violation(v, label, n)
	}
}

func (vm *VM) debugEnd() {
	if vm.dbg != nil {
		vm.mu.Lock()
		st := vm.result.ExitStatus
		vm.mu.Unlock()
		vm.dbg.end(st)
	}
}
