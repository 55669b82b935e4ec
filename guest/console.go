package main

import (
	"sync/atomic"

	"github.com/vmm-dev/vmm/firmware"
)

// consoleLock serialises writers on several vCPUs.
var consoleLock uint32

// lockConsole spins briefly, then waits asleep in the VMM (waitFor): the
// holder may be a descheduled vCPU.
func lockConsole() {
	if atomic.CompareAndSwapUint32(&consoleLock, 0, 1) {
		return
	}
	for !atomic.CompareAndSwapUint32(&consoleLock, 0, 1) {
		waitFor(func() bool { return atomic.LoadUint32(&consoleLock) == 0 })
	}
}

func unlockConsole() {
	atomic.StoreUint32(&consoleLock, 0)
	if atomic.LoadUint64(&sleepers) != 0 {
		wakeAll()
	}
}

// A burst of lines printed back to back, with no wait between them, rings
// the console doorbell once (each doorbell is an exit, 25-55 us here):
// holdDoorbell starts a burst on this vCPU, a newline in it marks the
// doorbell due instead of ringing it, and releaseDoorbell rings once if one
// is still due. A hypercall clears it: the VMM drains the ring at every
// hypercall before serving it (and at the end of every run), so nothing is
// lost or reordered, only held until the burst ends (a workload's result
// line: until its checkpoint, after the guest's own check of the allocator,
// which is the one burst that can take long, in large guests).
var doorbellHeld, doorbellDue [firmware.MaxCPUs]bool

func holdDoorbell() { doorbellHeld[thisCPU().Index%firmware.MaxCPUs] = true }

func releaseDoorbell() {
	i := thisCPU().Index % firmware.MaxCPUs
	doorbellHeld[i] = false
	if doorbellDue[i] {
		doorbellDue[i] = false
		ring(firmware.PhysMapBase+firmware.ConsoleDoorbell, 1)
	}
}

// ringOnNewline makes a newline ring the console doorbell (command line
// doorbell=1). By default nothing rings: the VMM drains the ring every few
// milliseconds, before every hypercall and at the end of the run, so
// printing costs no exit.
var ringOnNewline bool

// putBytes appends to the console ring. When the ring is full it asks the
// VMM to drain it synchronously; with ringOnNewline, a newline rings the
// (asynchronous) doorbell unless this vCPU is in a burst (holdDoorbell).
func putString(s string) {
	lockConsole()
	h := consoleHeader()
	data := consoleData()
	head := h.Head
	newline := false
	for i := 0; i < len(s); i++ {
		if head-atomic.LoadUint64(&h.Tail) >= firmware.ConsoleDataSize {
			atomic.StoreUint64(&h.Head, head)
			hypercall(firmware.HCConsoleFlush, 0, 0, 0, 0)
		}
		data[head&(firmware.ConsoleDataSize-1)] = s[i]
		head++
		newline = newline || s[i] == '\n'
	}
	atomic.StoreUint64(&h.Head, head)
	unlockConsole()
	if newline && ringOnNewline {
		if i := thisCPU().Index % firmware.MaxCPUs; doorbellHeld[i] {
			doorbellDue[i] = true
		} else {
			ring(firmware.PhysMapBase+firmware.ConsoleDoorbell, 1)
		}
	}
}

// consoleFlush makes sure everything written so far reached the VMM.
func consoleFlush() {
	h := consoleHeader()
	if atomic.LoadUint64(&h.Head) != atomic.LoadUint64(&h.Tail) {
		hypercall(firmware.HCConsoleFlush, 0, 0, 0, 0)
	}
}

// putDec prints v in decimal.
func putDec(v uint64) {
	var buf [20]byte
	putBuf(decimal(&buf, v))
}

// decimal formats v into the end of buf and returns the digits.
func decimal(buf *[20]byte, v uint64) []byte {
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return buf[i:]
}

// putHex prints v as 0x followed by at least width hex digits.
func putHex(v uint64, width int) {
	var buf [18]byte
	i := len(buf)
	for v != 0 || len(buf)-i < width {
		i--
		buf[i] = "0123456789abcdef"[v&15]
		v >>= 4
		if i == 2 {
			break
		}
	}
	i -= 2
	buf[i], buf[i+1] = '0', 'x'
	putBuf(buf[i:])
}

func putBuf(b []byte) {
	// Strings cannot be built without allocating, so print byte by byte
	// through a one-byte view of the stack buffer.
	for _, c := range b {
		putByte(c)
	}
}

func putByte(c byte) {
	lockConsole()
	h := consoleHeader()
	head := h.Head
	if head-atomic.LoadUint64(&h.Tail) >= firmware.ConsoleDataSize {
		hypercall(firmware.HCConsoleFlush, 0, 0, 0, 0)
	}
	consoleData()[head&(firmware.ConsoleDataSize-1)] = c
	atomic.StoreUint64(&h.Head, head+1)
	unlockConsole()
}
