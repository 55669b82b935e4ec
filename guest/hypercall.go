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

// report hands the host one named count: posted in the report ring (no
// exit) once the host has accepted it, else, or when the ring is full or
// the key too long for it, as an HCReport hypercall (which the host serves
// after draining the ring, so the order holds).
func report(key string, value uint64) {
	if !postReport(key, nil, value) {
		hypercall(firmware.HCReport, stringPhys(key), uint64(len(key)), value, 0)
	}
}

// The report ring (firmware.ReportRing) and one key buffer per slot: a key
// is copied in, so one built in a reused buffer (reportNamed) survives
// until the host has taken its entry. The console lock guards both.
var (
	reportRing    firmware.ReportRing
	reportKeys    [firmware.ReportRingEntries][maxReportKey]byte
	reportsPosted bool // the host accepted the ring
)

// maxReportKey is the host's limit on a key (HCReport's).
const maxReportKey = 64

// registerReports offers the ring to the host: one exit, where every
// report would otherwise be one.
func registerReports() {
	reportsPosted = hypercall(firmware.HCRegisterReports, addrOf(&reportRing), firmware.ReportRingSize, 0, 0) == 0
}

// postReport puts the report of the key s+b in the ring, or returns false.
func postReport(s string, b []byte, value uint64) bool {
	n := len(s) + len(b)
	if !reportsPosted || n == 0 || n > maxReportKey {
		return false
	}
	lockConsole()
	h := reportRing.Head
	if h-atomic.LoadUint64(&reportRing.Tail) >= firmware.ReportRingEntries {
		unlockConsole()
		return false
	}
	slot := h % firmware.ReportRingEntries
	k := &reportKeys[slot]
	copy(k[copy(k[:], s):], b)
	reportRing.Entries[slot] = firmware.ReportEntry{Key: addrOf(k), KeyLen: uint64(n), Value: value}
	atomic.StoreUint64(&reportRing.Head, h+1) // publishes the entry (stores are ordered)
	unlockConsole()
	return true
}

// hypercallWrite hands n bytes at phys to the host as the user program's
// output on fd.
func hypercallWrite(fd, phys, n uint64) uint64 { return hypercall(firmware.HCWrite, fd, phys, n, 0) }

// reportBuf is report with the key in a kernel buffer.
func reportBuf(key []byte, value uint64) {
	if !postReport("", key, value) {
		hypercall(firmware.HCReport, bytesPhys(key), uint64(len(key)), value, 0)
	}
}

// checkpoint asks the host to verify memory now; it returns the number of
// violations the host found. flags are firmware's Checkpoint* hints.
func checkpoint(label string, flags uint64) uint64 {
	return hypercall(firmware.HCCheckpoint, stringPhys(label), uint64(len(label)), flags, 0)
}
