package main

import (
	"sync/atomic"

	"github.com/vmm-dev/vmm/firmware"
)

// cpuData is the start of the per-CPU data area (the VMM writes Index).
type cpuData struct {
	Index uint64
	Ticks uint64 // timer interrupts taken
	Traps uint64 // exceptions and interrupts handled
	Space uint64 // root of the address space in CR3 (0: the kernel's)
	// System-call slots user_amd64.s reaches through GS (user_offsets.h).
	SysUSP uint64 // user RSP at SYSCALL; on resume, the RSP to load
	SysKSP uint64 // kernel stack top for system calls (set by enterUser)
	SysRIP uint64 // on resume, the RIP to jump to
}

// hypercall fills this vCPU's mailbox and rings the doorbell; the VMM has
// written the result into the mailbox by the time the store completes. The
// VMM drains the console ring before serving any hypercall, so a pending
// console doorbell is no longer due and nothing needs flushing first.
func hypercall(nr, a0, a1, a2, a3 uint64) uint64 {
	mb := mailbox(thisCPU().Index)
	doorbellDue[thisCPU().Index%firmware.MaxCPUs] = false // the VMM drains the console first
	mb.Nr = nr
	mb.Args[0], mb.Args[1], mb.Args[2], mb.Args[3] = a0, a1, a2, a3
	atomic.StoreUint64(&mb.Ret, 0)
	mb.Seq++
	ring(firmware.PhysMapBase+firmware.HypercallDoorbell, nr)
	return atomic.LoadUint64(&mb.Ret)
}

func exit(status uint64) {
	hypercall(firmware.HCExit, status, 0, 0, 0)
	//lint:ignore SA5002 the VMM never resumes a vCPU after exit
	for {
	}
}

func report(key string, value uint64) {
	hypercall(firmware.HCReport, stringPhys(key), uint64(len(key)), value, 0)
}

// hypercallWrite hands n bytes at phys to the host as the user program's
// output on fd.
func hypercallWrite(fd, phys, n uint64) uint64 { return hypercall(firmware.HCWrite, fd, phys, n, 0) }

// hypercallReportBuf is report with the key in a kernel buffer.
func hypercallReportBuf(key []byte, value uint64) {
	hypercall(firmware.HCReport, bytesPhys(key), uint64(len(key)), value, 0)
}

// checkpoint asks the host to verify memory now; it returns the number of
// violations the host found. flags are firmware's Checkpoint* hints.
func checkpoint(label string, flags uint64) uint64 {
	return hypercall(firmware.HCCheckpoint, stringPhys(label), uint64(len(label)), flags, 0)
}
