package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// holdings declares to the host what the workloads hold outside page
// tables and kernel structures (their scratch blocks and the blocks their
// tables list), so that at a checkpoint every ALLOCATED block has an
// owner the host can check and anything else is a leak. Only vCPU 0's
// workloads change it; the host reads it with the world stopped.
var holdings mm.Holdings

// registerHoldings tells the VMM where the declarations live.
func registerHoldings() bool {
	holdings.Magic = mm.HoldingsMagic
	return hypercall(firmware.HCRegisterHeld, addrOf(&holdings), mm.HoldingsSize, 0, 0) == 0
}

// hold adds a declaration and returns its slot, or -1 when all are used
// (the host will then report the blocks as leaks, which is the truth: the
// guest lost track of what it declared).
func hold(h mm.Holding) int {
	for i := range holdings.Decl {
		if holdings.Decl[i] == (mm.Holding{}) {
			holdings.Decl[i] = h
			if uint64(i) >= holdings.N {
				holdings.N = uint64(i) + 1
			}
			return i
		}
	}
	return -1
}

// rehold replaces declaration i.
func rehold(i int, h mm.Holding) {
	if i >= 0 && i < len(holdings.Decl) {
		holdings.Decl[i] = h
	}
}

// unhold drops declaration i (the workload gave the blocks back).
func unhold(i int) {
	if i < 0 || i >= len(holdings.Decl) {
		return
	}
	holdings.Decl[i] = mm.Holding{}
	for holdings.N > 0 && holdings.Decl[holdings.N-1] == (mm.Holding{}) {
		holdings.N--
	}
}
