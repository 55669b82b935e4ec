package main

import (
	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// addressSpace is an x86-64 4-level page table built from buddy frames:
// table frames are KERNEL, data frames USER. Each leaf mapping holds one
// reference on its frame (the first is the allocation's own), which is the
// rule the host verifier checks: refcount == number of mappings.
type addressSpace struct {
	root uint64 // PML4 physical address
}

const (
	pteP    = firmware.PTEPresent
	pteW    = firmware.PTEWritable
	pteU    = firmware.PTEUser
	pteAddr = firmware.PTEAddrMask
	pteA    = firmware.PTEAccessed
	pteD    = firmware.PTEDirty
	// Intermediate entries allow everything; the leaf decides.
	pteTable = pteP | pteW | pteU | pteA
)

// allocZeroed allocates one zeroed frame with the given flags.
func allocZeroed(flags uint32) (uint64, bool) {
	tok := kernelMM.Lock()
	f, err := kernelMM.AllocFlags(0, &tok, flags)
	kernelMM.Unlock(&tok)
	if err != mm.ErrNone {
		return 0, false
	}
	clear(physPage(f.StartAddress())[:])
	return f.StartAddress(), true
}

// putFrame drops one reference to an order-0 frame (freeing it at zero).
func putFrame(phys uint64) bool {
	tok := kernelMM.Lock()
	_, err := kernelMM.Put(mm.ContainingAddress(phys), 0, &tok)
	kernelMM.Unlock(&tok)
	return err == mm.ErrNone
}

// newAddressSpace makes an empty address space that shares the kernel's
// physmap (PML4 entry firmware.PhysMapSlot), so the kernel keeps running when it is
// loaded into CR3; user mappings live at userBase and above.
func newAddressSpace() (addressSpace, bool) {
	root, ok := allocZeroed(mm.FlagKernel)
	if !ok {
		return addressSpace{}, false
	}
	physWords(root, 512)[firmware.PhysMapSlot] = physWords(firmware.PageTableBase, 512)[firmware.PhysMapSlot]
	if hypercall(firmware.HCRegisterRoot, root, 1, 0, 0) != 0 {
		putFrame(root)
		return addressSpace{}, false
	}
	return addressSpace{root: root}, true
}

// pte returns the level-1 entry for va, creating tables when create is set.
func (as *addressSpace) pte(va uint64, create bool) *uint64 {
	table := as.root
	for level := 4; level > 1; level-- {
		e := &physWords(table, 512)[va>>(12+9*(level-1))&511]
		if *e&pteP == 0 {
			if !create {
				return nil
			}
			t, ok := allocZeroed(mm.FlagKernel)
			if !ok {
				return nil
			}
			*e = t | pteTable
		}
		table = *e & pteAddr
	}
	return &physWords(table, 512)[va>>12&511]
}

// mapPage maps phys at va; the caller has given the mapping its reference.
func (as *addressSpace) mapPage(va, phys uint64, writable bool) bool {
	e := as.pte(va, true)
	if e == nil || *e&pteP != 0 {
		return false
	}
	*e = leafPTE(phys, writable)
	return true
}

// leafPTE is the entry mapping phys for the program, made Accessed (and
// Dirty when writable) up front: the frame is about to be used, and a
// shadow MMU that finds the bits clear takes an extra exit to set them.
func leafPTE(phys uint64, writable bool) uint64 {
	if writable {
		return phys | pteP | pteU | pteA | pteW | pteD
	}
	return phys | pteP | pteU | pteA
}

// lookup returns the leaf entry for va (nil when unmapped).
func (as *addressSpace) lookup(va uint64) *uint64 {
	e := as.pte(va, false)
	if e == nil || *e&pteP == 0 {
		return nil
	}
	return e
}

// clearPage removes the mapping at va and returns its frame, whose
// reference the caller now owns (to drop once no TLB can reach it).
func (as *addressSpace) clearPage(va uint64) (uint64, bool) {
	e := as.lookup(va)
	if e == nil {
		return 0, false
	}
	phys := *e & pteAddr
	*e = 0
	return phys, true
}

// unmapPage removes the mapping at va and drops its reference at once
// (for address spaces no other vCPU runs).
func (as *addressSpace) unmapPage(va uint64) bool {
	phys, ok := as.clearPage(va)
	return ok && putFrame(phys)
}

// destroy drops every mapping's reference, frees the tables and
// unregisters the root.
func (as *addressSpace) destroy() bool {
	ok := hypercall(firmware.HCRegisterRoot, as.root, 0, 0, 0) == 0
	ok = destroyTable(as.root, 4) && ok
	as.root = 0
	return ok
}

func destroyTable(table uint64, level int) bool {
	ok := true
	entries := physWords(table, 512)
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		if e&pteP == 0 || (level == 4 && i == firmware.PhysMapSlot) {
			continue // the physmap is the kernel's, shared, not ours
		}
		if level > 1 {
			ok = destroyTable(e&pteAddr, level-1) && ok
		} else {
			ok = putFrame(e&pteAddr) && ok
		}
		entries[i] = 0
	}
	return putFrame(table) && ok
}
