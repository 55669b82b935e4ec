package mm

// MaxOrder is the largest block order: 2^10 frames = 4 MiB blocks.
//
// Justification: it is Linux's MAX_PAGE_ORDER, so the Linux trace (orders
// 0..10) replays unchanged; a 2 MiB huge page is order 9, so every page size
// the guest maps fits in one block; larger blocks buy nothing for a
// micro-VM (RAM is usually a few hundred MiB, and the metadata, kernel image
// and holes fragment the top orders anyway) while each extra order adds a
// free list, a merge step on every free and a split step on allocations
// from the top list.
const MaxOrder = 10

// NumOrders is the number of free lists (orders 0..MaxOrder).
const NumOrders = MaxOrder + 1

// Magic identifies a BuddyState ("GOMMBUDY" little-endian).
const Magic uint64 = 0x594455424d4d4f47

// LayoutVersion is bumped whenever FrameMeta or BuddyState change layout or
// meaning.
const LayoutVersion uint32 = 1

// BuddyState is the allocator's own state. It lives in guest physical
// memory (allocated by the boot allocator) so that the VMM can locate the
// free lists in a memory dump. Fixed layout, all little-endian:
//
//	off  size field
//	  0     8 Magic           Magic
//	  8     4 Version         LayoutVersion
//	 12     4 MaxOrder        MaxOrder
//	 16     4 lock            spinlock word: even = free, odd = held (generation)
//	 20     4 reserved        zero
//	 24     8 MetaPhys        physical address of the FrameMeta array
//	 32     8 FrameCount      records in the array (PFN 0..FrameCount-1)
//	 40     8 StatePhys       physical address of this struct
//	 48     8 FreeFrames      frames on the free lists
//	 56     8 RAMFrames       frames that are RAM (flags != 0 after setup)
//	 64    88 Heads[11]       free-list head PFN per order, or LinkNone
//	152    88 Counts[11]      blocks on each free list
//	240     8 PoisonedFrames  frames marked POISONED at setup
//	248     8 ManagedFrames   frames handed to the buddy allocator at setup
//	256       (size)
//
// The fields are written only with the lock held.
type BuddyState struct {
	Magic          uint64
	Version        uint32
	MaxOrder       uint32
	lock           uint32
	reserved       uint32
	MetaPhys       uint64
	FrameCount     uint64
	StatePhys      uint64
	FreeFrames     uint64
	RAMFrames      uint64
	Heads          [NumOrders]uint64
	Counts         [NumOrders]uint64
	PoisonedFrames uint64
	ManagedFrames  uint64
}

// BuddyState field offsets (pinned by TestBuddyStateLayout).
const (
	StateOffMagic          = 0
	StateOffVersion        = 8
	StateOffMaxOrder       = 12
	StateOffLock           = 16
	StateOffMetaPhys       = 24
	StateOffFrameCount     = 32
	StateOffStatePhys      = 40
	StateOffFreeFrames     = 48
	StateOffRAMFrames      = 56
	StateOffHeads          = 64
	StateOffCounts         = StateOffHeads + 8*NumOrders
	StateOffPoisonedFrames = StateOffCounts + 8*NumOrders
	StateOffManagedFrames  = StateOffPoisonedFrames + 8
	StateSize              = StateOffManagedFrames + 8
)
