// Command guest is the guest kernel: runtime-free Go entered from
// entry_amd64.s at CPL3. No package initialisation runs, so package-level
// variables must be constant-initialised; nothing may allocate.
package main

import (
	"sync/atomic"

	"github.com/vmm-dev/vmm/firmware"
)

func main() {} // required by the toolchain; the runtime's startup never runs

// Code reached only from assembly, named here so that dead-code analysis
// (staticcheck's U1000) starts from the real entry points.
var _, _, _, _ = kmain, handleTrap, trapEntry, sseAtRing0

// kmain is the first Go code every vCPU runs.
func kmain(cpu, bootInfoPhys uint64) {
	bi := bootInfo()
	if bi.Magic != firmware.BootInfoMagic || bi.Version != firmware.BootInfoVersion {
		putString("guest: bad boot info magic/version\n")
		exit(exitBadBootInfo)
	}
	if cpu != 0 {
		secondaryMain(cpu)
	}
	bootMain(bi)
}

// Guest exit statuses (firmware.GuestExit*, above the VMM's own).
const (
	exitOK           = 0
	exitBadBootInfo  = firmware.GuestExitBadBootInfo
	exitBadWorkload  = firmware.GuestExitBadWorkload
	exitMMInitFailed = firmware.GuestExitMMInitFailed
	exitWorkloadFail = firmware.GuestExitWorkloadFail
	exitViolations   = firmware.GuestExitViolations
)

func bootMain(bi *firmware.BootInfo) {
	cmdline := bi.Cmdline[:min(int(bi.CmdlineLen), len(bi.Cmdline))]
	if v, ok := cmdlineValue(cmdline, "doorbell="); ok && v == 1 {
		ringOnNewline = true
	}
	holdDoorbell() // the banner, memory map and command line: one burst
	putString("vmm guest kernel: Go, runtime-free, CPL3; ")
	putDec(uint64(bi.NumCPUs))
	putString(" vCPU(s), ")
	putDec(bi.RAMBytes >> 20)
	putString(" MiB RAM, TSC ")
	putDec(bi.TSCKHz)
	putString(" kHz\n")
	printMemoryMap(bi)
	installIDT()
	atomic.StoreUint64(&idtReady, 1)
	wakeAll()
	initTrapRecord()
	putString("command line: ")
	putBuf(cmdline)
	putString("\n")
	releaseDoorbell()

	registerReports()
	name := workloadName(bi)
	holdDoorbell() // the mm lines and the first workload's start line: one burst (runOne ends it)
	if !equal(name, "help") && !mmInit(bi) {
		exit(exitMMInitFailed)
	}
	status := runWorkloads(bi, name)
	if v, ok := cmdlineValue(cmdline, "exit="); ok && status == exitOK {
		status = v
	}
	if t := thisCPU().Ticks; t > 0 {
		report("timer.ticks", t)
	}
	report("traps.handled", thisCPU().Traps)
	holdDoorbell() // the exit hypercall drains the line
	putString("guest: exiting with status ")
	putDec(status)
	putString("\n")
	exit(status)
}

func printMemoryMap(bi *firmware.BootInfo) {
	n := min(int(bi.NumMem), len(bi.Mem))
	for i := 0; i < n; i++ {
		r := &bi.Mem[i]
		putString("BIOS-e820: [mem ")
		putHex(r.Base, 16)
		putString("-")
		putHex(r.Base+r.Size-1, 16)
		putString("] ")
		switch r.Kind {
		case firmware.MemRAM:
			putString("usable\n")
		case firmware.MemReserved:
			putString("reserved\n")
		case firmware.MemMMIO:
			putString("mmio\n")
		default:
			putString("type ")
			putDec(uint64(r.Kind))
			putString("\n")
		}
	}
}

func workloadName(bi *firmware.BootInfo) []byte {
	n := 0
	for n < len(bi.Workload) && bi.Workload[n] != 0 {
		n++
	}
	return bi.Workload[:n]
}

// cmdlineValue finds key (e.g. "exit=") in a space-separated command line
// and parses the decimal number after it.
func cmdlineValue(cmdline []byte, key string) (uint64, bool) {
	for i := 0; i+len(key) <= len(cmdline); i++ {
		if (i > 0 && cmdline[i-1] != ' ') || !hasPrefix(cmdline[i:], key) {
			continue
		}
		v, digits := uint64(0), 0
		for j := i + len(key); j < len(cmdline) && cmdline[j] >= '0' && cmdline[j] <= '9'; j++ {
			v = v*10 + uint64(cmdline[j]-'0')
			digits++
		}
		return v, digits > 0
	}
	return 0, false
}

func hasPrefix(b []byte, p string) bool {
	if len(b) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if b[i] != p[i] {
			return false
		}
	}
	return true
}

func equal(b []byte, s string) bool { return len(b) == len(s) && hasPrefix(b, s) }
