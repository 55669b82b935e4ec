package vmm

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// Event floors: the least one event of each kind the default workloads
// cause can cost on this machine, measured in a VM that does nothing else
// (`vmm bench --floors` prints them; BENCHMARKS.md multiplies them by a
// boot's counts for its lower bound). The VM is KVMFloor's (writeFloorRAM)
// plus an IDT whose #UD gate is a three-instruction ring-0 stub, and a
// second memory slot of fresh host pages for first touches.

// EventFloorTiming is the cost of one event of each kind (nanoseconds).
type EventFloorTiming struct {
	// ExceptionNanos: UD2 at CPL3 -> IDT gate -> ring-0 stub (count it,
	// step over the UD2, IRETQ) -> the next instruction at CPL3.
	ExceptionNanos float64 `json:"exception_ns"`
	// MMIOExitNanos: a CPL3 store to an unbacked address -> KVM_RUN
	// returns KVM_EXIT_MMIO -> the VMM enters the vCPU again.
	MMIOExitNanos float64 `json:"mmio_exit_ns"`
	// FirstTouchNanos: the first store to a guest page whose host page was
	// never touched (4 KiB host pages under a 2 MiB guest mapping, like
	// guest RAM outside the huge-page-advised parts): KVM's page fault and
	// the host's.
	FirstTouchNanos float64 `json:"first_touch_ns"`
	// Counts of each, checked by the VMM against what the guest reports.
	Exceptions int `json:"exceptions"`
	MMIOExits  int `json:"mmio_exits"`
	Touches    int `json:"touches"`
}

const (
	evIDT        = 0x5000 // vector 6's gate only (IDTR limit covers 0..6)
	evRing0Top   = 0x7000 // TSS.RSP0; the stack is the page below
	evCounter    = 0x7800 // the stub's exception count
	evStub       = 0x8000 // ring-0 #UD handler
	evUDLoop     = 0x8100 // CPL3: RCX times UD2, then exit
	evMMIOLoop   = 0x8200 // CPL3: RCX stores to floorMMIO, then one of evMMIOEnd
	evTouchLoop  = 0x8300 // CPL3: store to RCX pages from RAX on, then exit
	evTouchBase  = 4 << 20
	evTouchSize  = 4 << 20 // slot 1, fresh host pages: 1,024 first touches
	evMMIOEnd    = 43
	evMaxTouches = evTouchSize / 4096
)

// EventFloors measures each event n times in one VM (n >= 2; touches at
// most 1,024) and returns the per-event cost: each loop's time to its
// final MMIO exit, less the median time of a run that only exits, over n.
func EventFloors(n int) (EventFloorTiming, error) {
	var t EventFloorTiming
	if n < 2 || n > evMaxTouches {
		return t, fmt.Errorf("event floors: %d events each, want 2..%d", n, evMaxTouches)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := openFloorVM()
	defer f.release()
	if err != nil {
		return t, err
	}
	ram := f.ram
	touch, err := f.mmap(evTouchSize)
	if err != nil {
		return t, fmt.Errorf("mmap touch region: %w", err)
	}
	unix.Madvise(touch, unix.MADV_NOHUGEPAGE) // 4 KiB host pages, one fault each
	writeEventFloorRAM(ram)
	for i, r := range []struct {
		gpa uint64
		b   []byte
	}{{0, ram}, {evTouchBase, touch}} {
		region := kvm.UserspaceMemoryRegion{Slot: uint32(i), GuestPhysAddr: r.gpa, MemorySize: uint64(len(r.b)), UserspaceAddr: uint64(uintptrOf(r.b))}
		if err := kvm.SetUserMemoryRegion(f.vmFd, &region); err != nil {
			return t, fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d: %w", i, err)
		}
	}
	if err := f.addVCPU(); err != nil {
		return t, err
	}
	cpuFd, run := f.cpuFd, f.run
	sregs, err := kvm.GetSregs(cpuFd)
	if err != nil {
		return t, fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	sregs.IDT = kvm.Descriptor{Base: evIDT, Limit: 7*16 - 1}
	if err := kvm.SetSregs(cpuFd, sregs); err != nil {
		return t, fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	// runFrom enters at rip with the loop count in RCX and the touch
	// address in RAX, and returns the time to the exit storing end, with
	// the number of other MMIO exits on the way.
	runFrom := func(rip, rcx, rax uint64, end uint64) (time.Duration, int, error) {
		if err := kvm.SetRegs(cpuFd, &kvm.Regs{RIP: rip, RCX: rcx, RAX: rax, RSP: floorRAM - 8, RFLAGS: 0x2}); err != nil {
			return 0, 0, fmt.Errorf("KVM_SET_REGS: %w", err)
		}
		exits := 0
		start := time.Now()
		for {
			run.ExitReason = uint32(kvm.EXITINTR)
			if err := kvm.Run(cpuFd); err != nil {
				return 0, 0, fmt.Errorf("KVM_RUN: %w", err)
			}
			e := decodeExit(run)
			if e.Reason == kvm.EXITINTR {
				continue
			}
			if e.Reason != kvm.EXITMMIO || e.MMIOAddr != floorMMIO || !e.MMIOWrite {
				return 0, 0, fmt.Errorf("event floor VM: unexpected exit %v at RIP from %#x (MMIO addr %#x)", e.Reason, rip, e.MMIOAddr)
			}
			if e.MMIOData&0xff == end {
				return time.Since(start), exits, nil
			}
			exits++
		}
	}
	var exitOnly []time.Duration
	for range 7 {
		d, _, err := runFrom(floorCode, 0, 0, floorMMIOVal)
		if err != nil {
			return t, err
		}
		exitOnly = append(exitOnly, d)
	}
	base := slices.Sorted(slices.Values(exitOnly))[len(exitOnly)/2]
	per := func(d time.Duration, events int) float64 {
		return float64(max(d-base, 0).Nanoseconds()) / float64(events)
	}

	d, _, err := runFrom(evUDLoop, uint64(n), 0, floorMMIOVal)
	if err != nil {
		return t, err
	}
	t.Exceptions = int(binary.LittleEndian.Uint64(ram[evCounter:]))
	t.ExceptionNanos = per(d, n)

	d, exits, err := runFrom(evMMIOLoop, uint64(n), 0, evMMIOEnd)
	if err != nil {
		return t, err
	}
	t.MMIOExits = exits
	t.MMIOExitNanos = per(d, n)

	d, _, err = runFrom(evTouchLoop, uint64(n), evTouchBase, floorMMIOVal)
	if err != nil {
		return t, err
	}
	for i := 0; i < len(touch); i += 4096 {
		if touch[i] == 1 {
			t.Touches++
		}
	}
	t.FirstTouchNanos = per(d, n)
	return t, nil
}

// writeEventFloorRAM is writeFloorRAM plus three more 2 MiB pages (up to
// 8 MiB, where the touch slot is), the #UD gate, its stub, RSP0 and the
// three CPL3 loops.
func writeEventFloorRAM(ram []byte) {
	writeFloorRAM(ram)
	put := func(off int, v uint64) { binary.LittleEndian.PutUint64(ram[off:], v) }
	const pte = 0x7 | 0x80 // present, writable, user, 2 MiB
	for i := 1; i < 4; i++ {
		put(floorPML4+0x2000+8*i, uint64(i)<<21|pte)
	}
	put(floorTSS+4, evRing0Top)
	// 64-bit interrupt gate: selector 0x10, present, DPL 0, type 0xE.
	put(evIDT+6*16, evStub&0xffff|0x10<<16|0x8e<<40|(evStub>>16&0xffff)<<48)
	put(evIDT+6*16+8, evStub>>32)
	mmioStore := func(v byte) []byte { // movb $v, floorMMIO
		b := []byte{0xc6, 0x04, 0x25, 0, 0, 0, 0, v}
		binary.LittleEndian.PutUint32(b[3:], floorMMIO)
		return b
	}
	counter := []byte{0x48, 0xff, 0x04, 0x25, 0, 0, 0, 0} // incq evCounter
	binary.LittleEndian.PutUint32(counter[4:], evCounter)
	stub := append(append([]byte{}, counter...),
		0x48, 0x83, 0x04, 0x24, 0x02, // addq $2, (%rsp): step over the UD2
		0x48, 0xcf) // iretq
	copy(ram[evStub:], stub)
	decJNZ := func(back int) []byte { return []byte{0x48, 0xff, 0xc9, 0x75, byte(-(back + 5))} } // dec %rcx; jnz
	exit := append(mmioStore(floorMMIOVal), 0xeb, 0xfe)                                          // jmp .
	ud := append(append([]byte{0x0f, 0x0b}, decJNZ(2)...), exit...)
	copy(ram[evUDLoop:], ud)
	stores := append(append(mmioStore(floorMMIOVal), decJNZ(8)...), append(mmioStore(evMMIOEnd), 0xeb, 0xfe)...)
	copy(ram[evMMIOLoop:], stores)
	touch := []byte{0xc6, 0x00, 0x01, 0x48, 0x05, 0, 0x10, 0, 0} // movb $1, (%rax); add $4096, %rax
	copy(ram[evTouchLoop:], append(append(touch, decJNZ(len(touch))...), exit...))
}
