// Package mm is the guest kernel's physical frame allocator: a per-frame
// metadata array (one 64-byte FrameMeta per 4 KiB frame), a bump boot
// allocator, a binary buddy allocator whose free lists are threaded through
// the metadata by frame number, per-CPU caches of order-0 frames in front
// of it for SMP, and an invariant checker that the guest runs at
// checkpoints and the VMM runs over a copy of guest RAM.
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
// (host pointer = physical address + virtOffset; firmware.PhysMapBase in
// the guest, which sees physical memory through its physmap).
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
// A frame in a per-CPU cache reuses next and prev as tags: next = the CPU
// index, prev = its slot in that CPU's CPUCache.PFN.
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
//	per-CPU cached   PERCPU                         0          0        next=cpu, prev=slot
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
// The modifiers are legal only on USER blocks. FlagPerCPU (bit 13) is legal
// only alone, on a free order-0 frame held in a per-CPU cache; all other
// undefined bits are illegal.
//
// # Refcounts
//
// Alloc sets the head's refcount to 1. Get adds a reference (only to a block
// whose refcount is already at least 1), Put drops one and frees the block
// when the last reference goes. Free requires the refcount to be exactly 1:
// a shared block must be released with Put.
//
// # Locking and SMP
//
// The buddy free lists and BuddyState change only with the allocator lock
// held; the IrqDisabledToken that Alloc/Free/Put/MarkShared require can
// only be obtained from Lock (which disables interrupts through IRQSave),
// so every free-list change happens under the lock. Lock spins; every
// RelaxSpins failed attempts it calls Buddy.Relax if set (the guest yields
// the vCPU with a hypercall, because with more vCPUs than host CPUs a
// spinner can burn whole host time slices while the holder is
// descheduled). Get is lock-free (increment from non-zero only); the last
// Put or PutLocal frees exactly once because the count moves by CAS.
//
// # Per-CPU caches
//
// Order-0 frames (99.8% of the allocations in the Linux trace) also go
// through per-CPU caches, like Linux's per_cpu_pages: AllocLocal/FreeLocal/
// PutLocal(cpu, ...) pop and push on CPU cpu's CPUCache without the lock;
// an empty cache is refilled with PCPBatch (16) frames and a cache that
// reaches PCPCapacity (64) drains its PCPBatch oldest frames, each under
// the lock once per batch; Drain(cpu) empties it. A frame may be freed on
// any CPU. The caches live in BuddyState.PCP (MaxCPUs = 64 of them, one
// per CPU index up to NumCPUs, set by SetCPUs), so a memory dump shows
// them. A cached frame is accounted for: flags PERCPU, order 0, refcount
// 0, next = CPU, prev = slot; FreeFrames counts only free-list frames, the
// caches' Count fields the cached ones (BuddyState.PCPFrames is their
// total as of each cache's last batch operation). Check verifies every
// live entry against its frame's tags and every PERCPU frame against the
// slot its tags name, so a frame is never in two caches, nor in a cache and
// on a free list (whose frames are FREE).
//
// Each cache has a single owner: only CPU cpu may pass cpu, and the guest
// must not call a *Local function from an exception or interrupt handler
// that can interrupt another *Local call on the same CPU (the nested call
// gets ErrReentered from the CPUCache.Busy guard and changes nothing). The
// checker and the host verifier read the caches only while the world is
// stopped (all vCPUs paused at a checkpoint, or on the host after the
// goroutines standing in for CPUs have joined).
//
// # Layout version
//
// LayoutVersion is 2: version 1 plus NumCPUs (at the old reserved word
// 20), PCPFrames (256) and the PCP caches (320, CacheSize bytes each), with
// StateSize 37184. Init still places the metadata array and then the state
// with the boot allocator, so the VMM can read [metaPhys, statePhys +
// StateSize) as one span.
//
// # Lists
//
// Free lists are doubly linked by PFN through next/prev, one list per order,
// with heads and counts in BuddyState (itself in guest memory), so a memory
// dump can be verified without guest pointers. The list head has prev ==
// LinkNone, the last block next == LinkNone.
package mm
