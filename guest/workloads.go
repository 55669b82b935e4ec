package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// workload is one named guest workload; run returns a guest exit status.
type workload struct {
	name string
	help string
	// labels are the checkpoints it reaches when it succeeds, in order,
	// space separated (the names --dump-at accepts); a parenthesis says
	// when the label before it is reached. Keep them in step with the
	// checkAndCheckpoint calls (TestWorkloadLabels checks).
	labels string
	inAll  bool // part of the default set
	run    func(bi *firmware.BootInfo) uint64
	// rewrites says whether it rewrites most of the frame metadata (it
	// takes or frees most of the free frames): the checkpoint before it
	// asks the host not to watch it (firmware.CheckpointUnwatched).
	rewrites metaWrites
}

// metaWrites says how much of the metadata a workload rewrites.
type metaWrites uint8

const (
	rewritesLittle    metaWrites = iota
	rewritesMost                 // always
	rewritesWithTrace            // when a trace was given
)

// rewritesMeta reports whether w, run now, rewrites most of the metadata.
func rewritesMeta(bi *firmware.BootInfo, w *workload) bool {
	return w.rewrites == rewritesMost || w.rewrites == rewritesWithTrace && bi.TraceSize != 0
}

// workloads is constant-initialised (no init code runs in the guest).
var workloads = [...]workload{
	{"hello", "print the banner and memory map, then exit", "hello", true, runHello, rewritesLittle},
	{"stress", "random mixed-order alloc/free to exhaustion and back", "stress-full stress", true, runStress, rewritesMost},
	{"paging", "x86-64 address spaces from buddy frames, shared refcounted mappings", "paging-mapped paging-unmapped paging", true, runPaging, rewritesLittle},
	{"cow", "fork-like clone, copy-on-write faults resolved in software, DLL frames", "cow-forked cow-written cow", true, runCOW, rewritesLittle},
	{"replay", "replay the page-allocation trace given with --trace", "replay-end (with --trace) replay", true, runReplay, rewritesWithTrace},
	{"smp", "all vCPUs: per-CPU caches, cross-CPU frees, racing puts (--cpus > 1)", "smp-held smp-caches (with --cpus > 1) smp", true, runSMP, rewritesLittle},
	{"fault", "store to address 0: the VMM reports a page fault", "", false, runFault, rewritesLittle},
	{"ud", "execute UD2: the VMM reports an invalid opcode", "", false, runUD, rewritesLittle},
	{"spin", "loop forever: the VMM's --timeout ends it", "", false, runSpin, rewritesLittle},
	{"demand", "demand paging: first touches of a reserved range fault in zeroed frames", "demand-touched demand", true, runDemand, rewritesLittle},
	{"ticks", "busy-wait 200 ms of TSC time (count --tick interrupts)", "ticks", false, runTicks, rewritesLittle},
	{"smpbench", "order-0 pairs per second through the per-CPU caches on every vCPU", "smpbench", false, runSMPBench, rewritesLittle},
	{"trapbench", "median cost of an exception round trip, a demand fault, a COW fault", "trapbench", false, runTrapBench, rewritesLittle},
	{"irqmask", "an exception inside an irqSave region returns still masked", "irqmask", false, runIRQMask, rewritesLittle},
	{"exc-de", "divide by zero: unhandled #DE report", "", false, runDivide, rewritesLittle},
	{"exc-gp", "non-canonical load: unhandled #GP report", "", false, runGP, rewritesLittle},
	{"exc-nested", "the #UD handler itself faults: reported, not a triple fault", "", false, runNested, rewritesLittle},
	{"exc-stack", "unbounded recursion into the stack guard page", "", false, runStackOverflow, rewritesLittle},
	{"exc-double", "a fault while delivering a fault: #DF on its own stack", "", false, runDoubleFault, rewritesLittle},
	{"segv", "touch outside every reserved range: segmentation fault", "", false, runSegv, rewritesLittle},
	{"emulfail", "run Go (SSE) code at ring 0: KVM's emulator gives up on the PVM host", "", false, runEmulFail, rewritesLittle},
	{"badcall", "make hypercalls with bad arguments and check each is refused", "badcall", false, runBadCall, rewritesLittle},
	{"badexit", "ask to exit with status 256: the VMM ends the run as a guest fault", "", false, runBadExit, rewritesLittle},
	{"poison", "boot-time bad frames never handed out; frames poisoned at run time leave circulation", "poison-drained poison", true, runPoison, rewritesMost},
	{"run", "run the static Linux program vmm run hands over, as a user process", "run-loaded run-periodic (with --verify-every) run", false, runProgram, rewritesLittle},
	{"bench", "time the allocator loops of guest/mm/benchloop.go with the TSC (vmm bench compares with the host)", "bench", false, runBench, rewritesLittle},
}

func runWorkloads(bi *firmware.BootInfo, name []byte) uint64 {
	if len(name) == 0 || equal(name, "all") {
		for i := range workloads {
			if !workloads[i].inAll {
				continue
			}
			next := i + 1
			for next < len(workloads) && !workloads[next].inAll {
				next++
			}
			// The checkpoint after this workload goes unwatched when the
			// next one rewrites the metadata; the last one before the exit
			// says it is the last.
			hint := uint64(hintLast)
			if next < len(workloads) {
				hint = 0
				if rewritesMeta(bi, &workloads[next]) {
					hint = hintUnwatched
				}
			}
			if st := runOne(bi, &workloads[i], hint); st != exitOK {
				return st
			}
		}
		return exitOK
	}
	if equal(name, "help") {
		putString("workloads (default: every one marked *):\n")
		for i := range workloads {
			w := &workloads[i]
			if w.inAll {
				putString("  * ")
			} else {
				putString("    ")
			}
			putString(w.name)
			putString(": ")
			putString(w.help)
			putString("\n")
			if w.labels != "" {
				putString("        checkpoints: ")
				putString(w.labels)
				putString("\n")
			}
		}
		putString("--dump-at takes a checkpoint label; every run also verifies at \"exit\"\n")
		return exitOK
	}
	for i := range workloads {
		if equal(name, workloads[i].name) {
			return runOne(bi, &workloads[i], hintLast)
		}
	}
	putString("guest: unknown workload \"")
	putBuf(name)
	putString("\" (try --workload help)\n")
	return exitBadWorkload
}

// runOne runs w and, when it succeeded, the checkpoint named after it
// with the hint flags (hintUnwatched, hintLast). The result line and the
// checkpoint are one console burst: the checkpoint's hypercall drains the
// line, no doorbell needed.
func runOne(bi *firmware.BootInfo, w *workload, hint uint64) uint64 {
	putString("workload ")
	putString(w.name)
	putString(": start\n")
	releaseDoorbell() // rings for this line now (it ends bootMain's burst)
	st := w.run(bi)
	holdDoorbell()
	st = resultAndCheckpoint(w, st, hint)
	releaseDoorbell()
	return st
}

func resultAndCheckpoint(w *workload, st uint64, hint uint64) uint64 {
	putString("workload ")
	putString(w.name)
	if st == exitOK {
		putString(": ok\n")
	} else {
		putString(": FAILED with status ")
		putDec(st)
		putString("\n")
		return st
	}
	if !checkAndCheckpoint(w.name, hint) {
		return exitViolations
	}
	return exitOK
}

func runHello(bi *firmware.BootInfo) uint64 {
	putString("hello from the guest\n")
	return exitOK
}

func runFault(bi *firmware.BootInfo) uint64 {
	consoleFlush()
	faultNilWrite()
	return exitWorkloadFail
}

func runUD(bi *firmware.BootInfo) uint64 {
	consoleFlush()
	faultUD()
	return exitWorkloadFail
}

func runSpin(bi *firmware.BootInfo) uint64 {
	consoleFlush()
	for spins := uint64(1); ; spins++ {
		if spins == 0 { // never: keeps the loop from being optimised away
			return exitWorkloadFail
		}
	}
}

func runBadExit(bi *firmware.BootInfo) uint64 {
	exit(256) // never returns: the VMM stops the run
	return exitWorkloadFail
}

// runBadCall checks that the VMM refuses hostile hypercalls with an error
// code instead of trusting them; it reports how many were refused.
func runBadCall(bi *firmware.BootInfo) uint64 {
	type call struct {
		nr, a0, a1, a2, a3 uint64
		want               uint64
	}
	const ver = uint64(mm.LayoutVersion)
	calls := [...]call{
		{999, 0, 0, 0, 0, firmware.HCErrUnknown},
		{0, 0, 0, 0, 0, firmware.HCErrUnknown},
		{firmware.HCReport, 0xfffffffffff0, 8, 1, 0, firmware.HCErrInvalid},              // key outside RAM
		{firmware.HCReport, firmware.BootInfoBase, 1 << 20, 1, 0, firmware.HCErrInvalid}, // key too long
		{firmware.HCCheckpoint, ^uint64(0) - 4, 16, 0, 0, firmware.HCErrInvalid},         // wraps around
		// A good label with flag bits the host does not know: refused, never
		// taken as a hint (the one hint there is may only strengthen checks).
		{firmware.HCCheckpoint, stringPhys("badcall"), 7, ^uint64(firmware.CheckpointFlagsKnown), 0, firmware.HCErrInvalid},
		{firmware.HCCheckpoint, stringPhys("badcall"), 7, firmware.CheckpointUnwatched | 1<<63, 0, firmware.HCErrInvalid},
		{firmware.HCRegisterMeta, 0x1001, 10, 1, 0x2000, firmware.HCErrInvalid},        // misaligned
		{firmware.HCRegisterMeta, 0x100000, 1 << 40, 1, 0x2000, firmware.HCErrInvalid}, // past RAM
		{firmware.HCRegisterMeta, 0x100000, 16, 99, 0x2000, firmware.HCErrInvalid},     // wrong version
		// Registrations that could never verify (the layout version is right):
		{firmware.HCRegisterMeta, 0x100000, 0, ver, 0x200000, firmware.HCErrInvalid},                         // no frames
		{firmware.HCRegisterMeta, 0x100000, 16, ver, 0x200008, firmware.HCErrInvalid},                        // state unaligned
		{firmware.HCRegisterMeta, firmware.BootInfoBase, 16, ver, 0x200000, firmware.HCErrInvalid},           // over the boot info
		{firmware.HCRegisterMeta, firmware.GDTBase, 16, ver, 0x200000, firmware.HCErrInvalid},                // over the firmware area
		{firmware.HCRegisterMeta, bi.KernelStart, 16, ver, bi.KernelStart + 0x100000, firmware.HCErrInvalid}, // over the kernel image
		{firmware.HCRegisterRoot, 0x1234, 1, 0, 0, firmware.HCErrInvalid},
		{firmware.HCRegisterRoot, 0x200000, 0, 0, 0, firmware.HCErrState}, // remove unknown
		{firmware.HCWake, 1 << 20, 0, 0, 0, firmware.HCErrInvalid},
		{firmware.HCFault, 0xffffffff000, 0, 0, 0, firmware.HCErrInvalid},
	}
	refused := uint64(0)
	for i := range calls {
		c := &calls[i]
		got := hypercall(c.nr, c.a0, c.a1, c.a2, c.a3)
		if got != c.want {
			putString("badcall: hypercall ")
			putDec(c.nr)
			putString(" returned ")
			putHex(got, 1)
			putString(", want ")
			putHex(c.want, 1)
			putString("\n")
			return exitWorkloadFail
		}
		refused++
	}
	report("badcall.refused", refused)
	putString("badcall: all ")
	putDec(refused)
	putString(" bad hypercalls refused\n")
	return exitOK
}
