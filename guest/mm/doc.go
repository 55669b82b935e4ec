// Package mm is the guest kernel's physical frame allocator: a per-frame
// metadata array (one 64-byte FrameMeta per 4 KiB frame), a bump boot
// allocator, a binary buddy allocator whose free lists are threaded through
// the metadata by frame number, and an invariant checker that the guest runs
// at checkpoints and the VMM runs over a copy of guest RAM.
//
// # Guest discipline
//
// The guest kernel runs this package with no Go runtime behind it: no package
// initialisation, no heap, no goroutines, no maps, no defer, no panics, fixed
// stacks. Non-test files therefore import only unsafe, sync/atomic and
// math/bits; unsafe pointer arithmetic lives in *_unsafe.go files; functions
// on guest paths are //go:nosplit; nothing escapes to the heap (checked by
// TestNoHeapEscapes). There are no globals: all state lives in the arena
// (guest physical memory) and is reached through a virtual offset
// (host pointer = physical address + virtOffset; 0 in the identity-mapped
// guest).
//
// # Frame record (struct page equivalent)
//
//	offset size field      meaning
//	     0    8 next       PFN of the next block on the same free list, or LinkNone
//	     8    8 prev       PFN of the previous block on the free list, or LinkNone
//	    16    4 flags      Flag* bits, see below
//	    20    1 order      block order (head frames) or OrderTail (tail frames);
//	                       accessed atomically as the little-endian uint32 at 20
//	    21    3 reserved   always zero
//	    24    4 refcount   references to an allocated block (head frame only)
//	    28   36 padding    always zero; the record is one cache line
//
// # Legal frame states
//
// Every frame covered by the metadata array is in exactly one of these states
// (checked by Check):
//
//	state            flags                          order      refcount links
//	not RAM          0                              0          0        none
//	poisoned         POISONED                       0          0        none
//	free head        FREE                           0..MaxOrder 0       list
//	free tail        FREE                           OrderTail  0        none
//	allocated head   ALLOCATED|KERNEL               0..MaxOrder >=1     none
//	allocated head   ALLOCATED|USER[|ANONYMOUS][|COW or DLL]  (not DLL|ANONYMOUS)
//	allocated tail   ALLOCATED|(owner of head)      OrderTail  0        none
//
// "Not RAM" covers holes, reserved ranges and the partial frame at the end of
// RAM. POISONED frames (listed as bad by the boot info) are never handed out
// and never merged. A free block of order k is the 2^k frames starting at its
// head, which is aligned to 2^k; its tail frames are FREE with order
// OrderTail. Blocks never cross a frame that is not free RAM. An allocated
// block likewise is a head plus 2^k-1 tails that carry only the ownership
// bits (ALLOCATED plus KERNEL or USER); the sharing modifiers live in the
// head:
//
//   - COW: the block is shared copy-on-write between address spaces; a write
//     fault must copy it unless the refcount is 1.
//   - DLL: the block is a shared read-only library mapping; it is never COW
//     (setting COW on a DLL block, or DLL on a COW block, is ErrInvalidFlags).
//   - ANONYMOUS: the block backs anonymous memory (not a file or library), so
//     it is never DLL.
//
// The modifiers are legal only on USER blocks. Bit 13 (FlagPerCPU) is
// reserved for per-CPU caches in a later SMP change and is illegal today, as
// are all other undefined bits.
//
// # Refcounts
//
// Alloc sets the head's refcount to 1. Get adds a reference (only to a block
// whose refcount is already at least 1), Put drops one and frees the block
// when the last reference goes. Free requires the refcount to be exactly 1:
// a shared block must be released with Put.
//
// # Lists
//
// Free lists are doubly linked by PFN through next/prev, one list per order,
// with heads and counts in BuddyState (itself in guest memory), so a memory
// dump can be verified without guest pointers. The list head has prev ==
// LinkNone, the last block next == LinkNone.
package mm
