package diag

import (
	"encoding/binary"
	"slices"
)

// DefaultMaxFrames is the frame limit Backtrace uses when max <= 0.
const DefaultMaxFrames = 64

// maxStackSwitches is how often a frame chain may move to a lower address
// (onto another stack) before Backtrace calls it corrupt.
const maxStackSwitches = 2

// Backtrace walks the guest's frame-pointer chain and returns the code
// addresses of up to max frames (DefaultMaxFrames if max <= 0), starting
// with rip. Go on amd64 keeps frame pointers: at rbp sits the caller's rbp,
// at rbp+8 the return address.
//
// read copies guest virtual memory at gva into buf and reports success; it
// may be nil (then only rip is returned). The walk stops at rbp == 0, a
// misaligned rbp, a failed read, a zero return address, a caller rbp already
// visited (a cycle), a third time the chain moves down the address space
// (once or twice is a stack switch: an exception handler's stack back to the
// interrupted one; more is a cycle or a corrupt chain) or after max frames,
// so it ends on any memory contents.
//
// Limit of the method: if the guest faulted in a function's prologue before
// it saved rbp, the caller of that function is missing from the trace.
func Backtrace(read func(gva uint64, buf []byte) bool, rip, rbp uint64, max int) []uint64 {
	if max <= 0 {
		max = DefaultMaxFrames
	}
	pcs := []uint64{rip}
	if read == nil {
		return pcs
	}
	var rec [16]byte
	switches := 0
	var seen []uint64
	for len(pcs) < max && rbp != 0 && rbp%8 == 0 && rbp <= ^uint64(0)-uint64(len(rec)) {
		if !read(rbp, rec[:]) {
			break
		}
		next := binary.LittleEndian.Uint64(rec[0:8])
		ret := binary.LittleEndian.Uint64(rec[8:16])
		if ret == 0 {
			break
		}
		pcs = append(pcs, ret)
		seen = append(seen, rbp)
		if slices.Contains(seen, next) {
			break // a cycle
		}
		if next < rbp {
			if switches++; switches > maxStackSwitches {
				break
			}
		}
		rbp = next
	}
	return pcs
}
