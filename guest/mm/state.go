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
// meaning. Version 2 added the per-CPU caches (NumCPUs, PCPFrames, PCP) and
// made FlagPerCPU a legal frame state.
const LayoutVersion uint32 = 2

// MaxCPUs is the number of per-CPU caches in BuddyState. It equals
// firmware.MaxCPUs (pinned by TestMaxCPUsMatchesFirmware; mm does not
// import firmware so that it stays a leaf package).
const MaxCPUs = 64

// Per-CPU cache sizing (order-0 frames only).
//
// PCPCapacity is the high watermark: when a FreeLocal brings a cache to
// PCPCapacity frames, PCPBatch frames (the oldest) go back to the buddy
// lists; when an AllocLocal finds the cache empty it takes PCPBatch frames
// from the buddy lists. This is Linux's per_cpu_pages (pcp->high,
// pcp->batch) scheme with Linux's numbers for a small zone: zone_batchsize
// is about managed_pages/1024/4 rounded to 2^n-1, i.e. 15 for a 256 MiB
// zone, and pcp->high was classically 6*batch (we use 4*batch). Why these
// values:
//   - batch 16 amortises one lock round trip (the only shared cache line)
//     over 16 frames, while a refill/drain holds the lock for only 16
//     split/merge steps (well under a microsecond), so other CPUs never
//     wait long;
//   - capacity 64 = 4*batch gives hysteresis: after a refill the cache holds
//     16 frames and needs 48 net frees before it drains; after a drain it
//     holds 48 and needs 48 net allocations before it refills, so a CPU
//     alternating allocations and frees never touches the lock;
//   - the PFN array is 64*8 = 512 bytes (8 cache lines) per CPU, and the
//     frames a cache can strand are bounded by 64 per CPU: 256 KiB per
//     vCPU, 2 MiB for 8 vCPUs, which a micro-VM can afford.
//
// Only order 0 is cached: it is the overwhelming majority of requests
// (99.8% of the allocations in the Linux trace that testdata/ holds a slice
// of are order 0; order 2 is next at 0.15%), and single frames keep the
// cache bookkeeping to one metadata record per entry.
const (
	PCPCapacity = 64
	PCPBatch    = 16
)

// CPUCache is one CPU's cache of free order-0 frames, in guest memory
// inside BuddyState so that a dump shows it. The live entries are the ring
// PFN[(Head+i) % PCPCapacity] for i in [0, Count), oldest first; AllocLocal
// pops and FreeLocal pushes at the young end, drains take the oldest. A
// cached frame's metadata says where it is: flags FlagPerCPU, next = the CPU
// index, prev = the index of its slot in PFN (the physical index, which does
// not change when Head moves), so Check can verify both directions
// without scratch memory.
//
// Only the owning CPU touches its cache (with no lock, like Linux's pcp
// lists with interrupts off); Synced and BuddyState.PCPFrames change only
// with the buddy lock held. Fixed layout (576 bytes, 9 cache lines, so two
// CPUs' caches never share a line):
//
//	off  size field
//	  0     4 Count    live entries (<= PCPCapacity)
//	  4     4 Head     slot of the oldest entry (< PCPCapacity)
//	  8     4 Synced   this cache's share of BuddyState.PCPFrames: Count as
//	                   of the last refill/drain/Drain of this cache
//	 12     4 Busy     non-zero while a *Local call runs on this CPU
//	                   (reentry guard: an exception handler that interrupts
//	                   a *Local call on the same CPU gets ErrReentered)
//	 16     8 Refills  refills from the buddy (statistics)
//	 24     8 Drains   batch drains and Drain calls (statistics)
//	 32    32 reserved zero
//	 64   512 PFN[64]  entries (slots outside the live ring are ignored)
//	576       (size)
type CPUCache struct {
	Count    uint32
	Head     uint32
	Synced   uint32
	Busy     uint32
	Refills  uint64
	Drains   uint64
	reserved [4]uint64
	PFN      [PCPCapacity]uint64
}

// CPUCache field offsets (pinned by TestBuddyStateLayout).
const (
	CacheOffCount   = 0
	CacheOffHead    = 4
	CacheOffSynced  = 8
	CacheOffBusy    = 12
	CacheOffRefills = 16
	CacheOffDrains  = 24
	CacheOffPFN     = 64
	CacheSize       = CacheOffPFN + 8*PCPCapacity
)

// BuddyState is the allocator's own state. It lives in guest physical
// memory (allocated by the boot allocator) so that the VMM can locate the
// free lists and the per-CPU caches in a memory dump. Fixed layout, all
// little-endian:
//
//	  off  size field
//	    0     8 Magic           Magic
//	    8     4 Version         LayoutVersion
//	   12     4 MaxOrder        MaxOrder
//	   16     4 lock            spinlock word: even = free, odd = held (generation)
//	   20     4 NumCPUs         CPUs with a cache (SetCPUs), 0..MaxCPUs
//	   24     8 MetaPhys        physical address of the FrameMeta array
//	   32     8 FrameCount      records in the array (PFN 0..FrameCount-1)
//	   40     8 StatePhys       physical address of this struct
//	   48     8 FreeFrames      frames on the free lists (not in caches)
//	   56     8 RAMFrames       frames that are RAM (flags != 0 after setup)
//	   64    88 Heads[11]       free-list head PFN per order, or LinkNone
//	  152    88 Counts[11]      blocks on each free list
//	  240     8 PoisonedFrames  frames marked POISONED (at setup and by Poison)
//	  248     8 ManagedFrames   frames handed to the buddy allocator at setup
//	  256     8 PCPFrames       sum of the caches' Synced (see below)
//	  264    56 reserved        zero
//	  320 36864 PCP[64]         per-CPU caches, CacheSize (576) bytes each
//	37184       (size)
//
// The fields up to PCPFrames are written only with the lock held. PCPFrames
// is the number of frames in per-CPU caches as last synchronised: each
// refill, batch drain and Drain adds its cache's Count-Synced to it under
// the lock. The exact count is the sum of the caches' Count (it changes
// without the lock on every AllocLocal/FreeLocal, and a shared counter
// would put one contended cache line back on the per-CPU fast path); the
// two agree whenever every cache has been drained or synced.
type BuddyState struct {
	Magic          uint64
	Version        uint32
	MaxOrder       uint32
	lock           uint32
	NumCPUs        uint32
	MetaPhys       uint64
	FrameCount     uint64
	StatePhys      uint64
	FreeFrames     uint64
	RAMFrames      uint64
	Heads          [NumOrders]uint64
	Counts         [NumOrders]uint64
	PoisonedFrames uint64
	ManagedFrames  uint64
	PCPFrames      uint64
	reserved       [7]uint64
	PCP            [MaxCPUs]CPUCache
}

// BuddyState field offsets (pinned by TestBuddyStateLayout).
const (
	StateOffMagic          = 0
	StateOffVersion        = 8
	StateOffMaxOrder       = 12
	StateOffLock           = 16
	StateOffNumCPUs        = 20
	StateOffMetaPhys       = 24
	StateOffFrameCount     = 32
	StateOffStatePhys      = 40
	StateOffFreeFrames     = 48
	StateOffRAMFrames      = 56
	StateOffHeads          = 64
	StateOffCounts         = StateOffHeads + 8*NumOrders
	StateOffPoisonedFrames = StateOffCounts + 8*NumOrders
	StateOffManagedFrames  = StateOffPoisonedFrames + 8
	StateOffPCPFrames      = StateOffManagedFrames + 8
	StateOffPCP            = 320
	StateSize              = StateOffPCP + MaxCPUs*CacheSize
)
