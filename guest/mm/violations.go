package mm

// The violation catalogue: every rule Check (and the host verifier, which
// reports these kinds by name) can find broken, with the meaning of a
// Violation's fields for each.

// ViolationKind says which rule a Violation breaks. Field() names the
// FrameMeta or BuddyState field involved.
type ViolationKind uint8

const (
	VNone ViolationKind = iota
	// VStateHeader: a BuddyState header field is wrong (bad magic, version,
	// MaxOrder, or registration mismatch). PFN = the field's StateOff*.
	VStateHeader
	// VIllegalFlags: flags is not one of the legal combinations. Actual = flags.
	VIllegalFlags
	// VReservedBits: bytes 21..23 are not zero. Actual = the word at 20.
	VReservedBits
	// VOrderRange: a head's order is above MaxOrder. Actual = order.
	VOrderRange
	// VMisaligned: a block head is not aligned to its size.
	// Expected = 1<<order, Actual = pfn % (1<<order).
	VMisaligned
	// VBlockOverrun: a block extends past the metadata array.
	// Expected = frame count, Actual = pfn + 1<<order.
	VBlockOverrun
	// VTailFlags: a frame inside a block does not carry the block's tail
	// flags (a free block crossing a hole, reserved, poisoned or allocated
	// frame, or an allocated block with mixed owners).
	VTailFlags
	// VTailOrder: a tail frame's order is not OrderTail, or a frame outside
	// any block has order OrderTail.
	VTailOrder
	// VStaleOrder: a non-RAM or poisoned frame has a non-zero order.
	VStaleOrder
	// VStaleLinks: a frame that is not a free head has next/prev set.
	// Expected = LinkNone, Actual = the offending link.
	VStaleLinks
	// VFreeRefcount: a FREE frame has refcount != 0.
	VFreeRefcount
	// VAllocRefcount: an ALLOCATED head has refcount 0.
	VAllocRefcount
	// VTailRefcount: a tail, non-RAM or poisoned frame has refcount != 0.
	VTailRefcount
	// VUnmergedBuddy: this free block and its buddy are both free at the
	// same order below MaxOrder. Expected = order+1, Actual = order;
	// reported on the lower block.
	VUnmergedBuddy
	// VNextRange: a next link (or a list head in BuddyState; then PFN =
	// LinkNone) points outside the array. Actual = the link.
	VNextRange
	// VPrevMismatch: a list node's prev is not the node it was reached from
	// (broken link, or a node reachable from two lists or twice from one).
	VPrevMismatch
	// VListTarget: a list node is not a FREE head of the list's order.
	// Expected = the list's order, Actual = flags<<8 | order byte.
	VListTarget
	// VListCycle: a list walk exceeded the frame count.
	VListCycle
	// VNotOnList: a FREE head is not on its order's list (its links say
	// so). Expected = the list head or the prev it should have, Actual =
	// the frame or its prev's next.
	VNotOnList
	// VBlockCount: BuddyState.Counts[order] does not match the list.
	// PFN = order, Expected = blocks on the list, Actual = Counts[order].
	VBlockCount
	// VFreeFrames: BuddyState.FreeFrames does not match the lists.
	// PFN = LinkNone, Expected = frames on the lists, Actual = FreeFrames.
	VFreeFrames
	// VPCPHeader: a per-CPU cache header is out of range. PFN = the CPU
	// index (LinkNone for NumCPUs > MaxCPUs); Expected = the limit, Actual =
	// the value: Count or Synced > PCPCapacity, Head >= PCPCapacity, or
	// Count != 0 on a CPU >= NumCPUs (Expected 0).
	VPCPHeader
	// VPCPEntry: a live cache entry does not name a frame that is cached
	// in exactly that slot. PFN = the entry, Expected = cpu<<32 | slot;
	// Actual = LinkNone if the entry is outside the array, the frame's
	// flags if they are not FlagPerCPU, else its next<<32 | prev (low 32 bits).
	VPCPEntry
	// VPCPFrame: a FlagPerCPU frame is not in the live cache slot its
	// next (CPU) and prev (slot) name. Expected = the frame's PFN, Actual =
	// the entry in that slot, or LinkNone if the tags are out of range or
	// the slot is not live.
	VPCPFrame
	// VPCPCount: the caches' Counts do not add up to the number of
	// FlagPerCPU frames. PFN = LinkNone, Expected = FlagPerCPU frames,
	// Actual = sum of Count.
	VPCPCount
	// VPCPFrames: BuddyState.PCPFrames is not the sum of the caches'
	// Synced. PFN = LinkNone, Expected = sum of Synced, Actual = PCPFrames.
	VPCPFrames
	// VListHeads: the number of FREE heads of an order differs from the
	// blocks on its list (a summary: some FREE head is off its list, or a
	// list holds a separate cycle). PFN = order, Expected = blocks on the
	// list, Actual = FREE heads of that order.
	VListHeads
	// VPoisonedFrames: BuddyState.PoisonedFrames is not the number of
	// POISONED frames. PFN = LinkNone, Expected = POISONED frames, Actual =
	// PoisonedFrames.
	VPoisonedFrames
	numViolationKinds
)

// String returns the kind's name (a constant: no allocation, no init).
//
//go:nosplit
func (k ViolationKind) String() string {
	switch k {
	case VNone:
		return "none"
	case VStateHeader:
		return "state-header"
	case VIllegalFlags:
		return "illegal-flags"
	case VReservedBits:
		return "reserved-bits"
	case VOrderRange:
		return "order-range"
	case VMisaligned:
		return "misaligned"
	case VBlockOverrun:
		return "block-overrun"
	case VTailFlags:
		return "tail-flags"
	case VTailOrder:
		return "tail-order"
	case VStaleOrder:
		return "stale-order"
	case VStaleLinks:
		return "stale-links"
	case VFreeRefcount:
		return "free-refcount"
	case VAllocRefcount:
		return "alloc-refcount"
	case VTailRefcount:
		return "tail-refcount"
	case VUnmergedBuddy:
		return "unmerged-buddy"
	case VNextRange:
		return "next-range"
	case VPrevMismatch:
		return "prev-mismatch"
	case VListTarget:
		return "list-target"
	case VListCycle:
		return "list-cycle"
	case VNotOnList:
		return "not-on-list"
	case VBlockCount:
		return "block-count"
	case VFreeFrames:
		return "free-frames"
	case VPCPHeader:
		return "pcp-header"
	case VPCPEntry:
		return "pcp-entry"
	case VPCPFrame:
		return "pcp-frame"
	case VPCPCount:
		return "pcp-count"
	case VPCPFrames:
		return "pcp-frames"
	case VListHeads:
		return "list-heads"
	case VPoisonedFrames:
		return "poisoned-frames"
	}
	return "unknown"
}

// Field returns the field involved: next, prev, flags, order, refcount,
// list, count, state or pcp (a per-CPU cache in BuddyState).
//
//go:nosplit
func (k ViolationKind) Field() string {
	switch k {
	case VStateHeader:
		return "state"
	case VIllegalFlags, VTailFlags:
		return "flags"
	case VReservedBits, VOrderRange, VMisaligned, VBlockOverrun, VTailOrder, VStaleOrder, VUnmergedBuddy:
		return "order"
	case VStaleLinks, VNextRange, VPCPFrame:
		return "next"
	case VPCPHeader, VPCPEntry:
		return "pcp"
	case VFreeRefcount, VAllocRefcount, VTailRefcount:
		return "refcount"
	case VPrevMismatch:
		return "prev"
	case VListTarget, VListCycle, VNotOnList, VListHeads:
		return "list"
	case VBlockCount, VFreeFrames, VPCPCount, VPCPFrames, VPoisonedFrames:
		return "count"
	}
	return ""
}

// Violation is one broken invariant: the frame (see the kind for the
// meaning of PFN when it is not a frame), the rule, and the expected and
// actual values.
type Violation struct {
	PFN      uint64
	Kind     ViolationKind
	Expected uint64
	Actual   uint64
	// Covers is how many frames after PFN this violation stands for: the
	// tails of a bad block head, which Check does not report one by one
	// (see badHead). 0 for every other violation.
	Covers uint64
}
