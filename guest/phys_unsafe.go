package main

import (
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// ptr turns a physical address into a pointer: the kernel sees physical
// memory through the physmap at firmware.PhysMapBase, in every address
// space.
func ptr(phys uintptr) unsafe.Pointer { return vptr(phys + firmware.PhysMapBase) }

// vptr turns a virtual address (a user address in the current address
// space, or a kernel one such as a stack pointer) into a pointer. The
// double conversion keeps vet's uintptr check quiet; there is no Go heap
// here for it to protect.
func vptr(va uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&va)) }

// physOf is the physical address of a kernel virtual address.
func physOf(va uintptr) uint64 { return uint64(va) - firmware.PhysMapBase }

func bootInfo() *firmware.BootInfo { return (*firmware.BootInfo)(ptr(firmware.BootInfoBase)) }

// thisCPU is this vCPU's CPU struct in its per-CPU block (cpuBlock is a
// virtual address: FS:-8 holds the g pointer Go code uses).
func thisCPU() *cpuData { return (*cpuData)(vptr(cpuBlock() + firmware.PerCPUDataOff)) }

func mailbox(cpu uint64) *firmware.Mailbox {
	return (*firmware.Mailbox)(ptr(uintptr(firmware.MailboxBase + cpu*firmware.MailboxStride)))
}

func consoleHeader() *firmware.ConsoleHeader {
	return (*firmware.ConsoleHeader)(ptr(firmware.ConsoleBase))
}

func consoleData() *[firmware.ConsoleDataSize]byte {
	return (*[firmware.ConsoleDataSize]byte)(ptr(firmware.ConsoleBase + firmware.ConsoleDataOff))
}

// stringPhys is the physical address of a string's bytes, for hypercalls.
func stringPhys(s string) uint64 { return physOf(uintptr(unsafe.Pointer(unsafe.StringData(s)))) }

// bytesPhys is the physical address of a kernel byte buffer, for hypercalls.
func bytesPhys(b []byte) uint64 { return physOf(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

// fxBelow is the 512-byte FXSAVE area the entry stubs put right below a
// saved register block (trapEntry's trapRegs, syscallEntry's userCtx).
func fxBelow[T any](regs *T) *[512]byte {
	return (*[512]byte)(vptr(uintptr(unsafe.Pointer(regs)) - 512))
}

// physWords returns n uint64s of physical memory at phys as a slice (the
// memory is a kernel block from the buddy allocator, not Go heap).
func physWords(phys uint64, n int) []uint64 {
	return unsafe.Slice((*uint64)(ptr(uintptr(phys))), n)
}

// physPage returns the 4 KiB frame at phys.
func physPage(phys uint64) *[4096]byte { return (*[4096]byte)(ptr(uintptr(phys))) }

// physBytes returns n bytes of physical memory at phys.
func physBytes(phys uint64, n int) []byte {
	return unsafe.Slice((*byte)(ptr(uintptr(phys))), n)
}

// addrOf returns the physical address of a kernel object, for hypercalls.
func addrOf[T any](p *T) uint64 { return physOf(uintptr(unsafe.Pointer(p))) }

// setRelax installs the allocator lock's back-off. A plain assignment of a
// func value into the global kernelMM would go through the GC write
// barrier (the runtime is not there to run it); no GC ever runs in the
// guest, so storing the pointer bits as a uintptr is sound.
func setRelax(b *mm.Buddy, f func()) {
	*(*uintptr)(unsafe.Pointer(&b.Relax)) = *(*uintptr)(unsafe.Pointer(&f))
}

// setIRQHooks installs the allocator's interrupt save/restore the same way.
func setIRQHooks(b *mm.Buddy, save func() uintptr, restore func(uintptr)) {
	*(*uintptr)(unsafe.Pointer(&b.IRQSave)) = *(*uintptr)(unsafe.Pointer(&save))
	*(*uintptr)(unsafe.Pointer(&b.IRQRestore)) = *(*uintptr)(unsafe.Pointer(&restore))
}

// registerTrap sets (h != nil) or clears the handler of a vector. The func
// value's bits go into a uintptr table: a func value stored into a global
// would need the GC write barrier, and no GC runs here.
func registerTrap(vector int, h trapHandler) {
	trapHandlers[vector] = *(*uintptr)(unsafe.Pointer(&h))
}

// handlerAt turns a registered vector's bits back into a callable func.
func handlerAt(vector uint64) trapHandler {
	return *(*trapHandler)(unsafe.Pointer(&trapHandlers[vector]))
}
