package vmm

import (
	"fmt"
	"math/bits"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
)

// Dirty logging: KVM records every guest write to a slot created with
// KVM_MEM_LOG_DIRTY_PAGES in a bitmap (one bit per 4 KiB page of the slot);
// KVM_GET_DIRTY_LOG copies the bitmap out and clears it. Incremental
// checkpoints re-check only what those pages hold. KVM logs only the
// guest's writes: a write by the VMM itself through the host mapping (a
// debugger's memory write) is not in the log, so such writers mark the
// tracker stale and the next checkpoint is a full one.

// memLogDirtyPages is KVM_MEM_LOG_DIRTY_PAGES, the slot flag.
const memLogDirtyPages = 1 << 0

// kvmGetDirtyLogNr is KVM_GET_DIRTY_LOG's ioctl number (_IOW(KVMIO, 0x42,
// struct kvm_dirty_log)). gokvm's GetDirtyLog treats ENOENT (no such slot,
// or a slot without dirty logging) as success with an untouched bitmap,
// which would read as "nothing changed": this wrapper reports it.
const kvmGetDirtyLogNr = 0x42

// getDirtyLog fetches and clears slot's dirty bitmap into bitmap, which
// must hold one bit per page of the slot (rounded up to 64 bits).
func getDirtyLog(vmFd uintptr, slot uint32, bitmap []uint64) error {
	if len(bitmap) == 0 {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot=%d: empty bitmap", slot)
	}
	dl := kvm.DirtyLog{Slot: slot, BitMap: uint64(uintptr(unsafe.Pointer(&bitmap[0])))}
	if _, err := kvm.Ioctl(vmFd, kvm.IIOW(kvmGetDirtyLogNr, unsafe.Sizeof(dl)), uintptr(unsafe.Pointer(&dl))); err != nil {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot=%d: %w", slot, err)
	}
	return nil
}

// bitmapWords is the bitmap size for a slot of size bytes.
func bitmapWords(size uint64) int { return int((size/pageSize + 63) / 64) }

const pageSize = 4096

// forEachBit calls fn with the index of every set bit.
func forEachBit(bitmap []uint64, fn func(i uint64)) {
	for w, word := range bitmap {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			fn(uint64(w)*64 + uint64(b))
			word &= word - 1
		}
	}
}
