package mutate

// Files the mutants edit.
const (
	fBuddy  = "guest/mm/buddy.go"
	fPCP    = "guest/mm/pcp.go"
	fPoison = "guest/mm/poison.go"
	fSetup  = "guest/mm/setup.go"
	fCheck  = "guest/mm/check.go"
	fAspace = "guest/aspace.go"
	fMemory = "guest/memory.go"
	fFault  = "guest/fault.go"
	fPaging = "guest/wl_paging.go"
	fCOW    = "guest/wl_cow.go"
	fStress = "guest/wl_stress.go"
)

// badFrames are the boot-time bad frames of the mutants that need some:
// RAM above the kernel, per-CPU areas and metadata of a 128 MiB guest,
// two of them buddies' neighbours of ordinary free frames.
var badFrames = []uint64{0x3001, 0x4566, 0x5000}

// Catalogue is the list of injected bugs, one boot each.
var Catalogue = []Mutant{
	// ---- frame accounting: leaks and unowned frames ----
	{
		Name: "pt-leak", Workload: "paging", Frames: ProbeFrames,
		Bug: "address-space teardown frees only the PML4: PDPT/PD/PT frames stay KERNEL|ALLOCATED with no owner",
		Edits: []Edit{{File: fAspace, Old: "return putFrame(table) && ok",
			New: "if level == 4 {\n\t\treturn putFrame(table) && ok\n\t}\n\tmm.MutantHit(table >> 12)\n\treturn ok"}},
	},
	{
		Name: "stress-leak", Workload: "stress", Frames: ProbeFrames,
		Bug: "a kernel path forgets to free one block it allocated (KERNEL|ALLOCATED, owned by no one)",
		Edits: []Edit{{File: fStress, Old: "\tfor table.n > 0 {\n",
			New: "\tmm.MutantHit(table.slots[0] >> 12)\n\ttable.slots[0] = table.slots[table.n-1]\n\ttable.n--\n\tfor table.n > 0 {\n"}},
	},
	{
		Name: "unmap-no-put", Workload: "paging", Frames: ProbeFrames,
		Bug: "unmap clears the PTE but never drops the mapping's reference (refcount > mappings)",
		Edits: []Edit{{File: fAspace, Old: "\treturn ok && putFrame(phys)",
			New: "\tmm.MutantHit(phys >> 12)\n\treturn ok"}},
	},
	{
		Name: "cow-copy-no-put", Workload: "cow", Frames: ProbeFrames,
		Bug: "COW copy maps the new frame but keeps the reference on the old one",
		Edits: []Edit{{File: fCOW, Old: "\tst.copies++\n\treturn putFrame(old.StartAddress())",
			New: "\tst.copies++\n\tmm.MutantHit(old.PFN())\n\treturn true"}},
	},

	// ---- boot-time marking ----
	{
		Name: "bad-not-poisoned", Workload: "poison", BadFrames: badFrames, Frames: BadFrames,
		Bug:   "markBad uses the bad frame's address as its frame number, so no bad frame is poisoned",
		Edits: []Edit{{File: fSetup, Old: "p := bad[i] >> PageShift", New: "p := bad[i]"}},
	},
	{
		Name: "inuse-units", Workload: "hello", Frames: KernelFrames,
		Bug:   "the kernel copies in-use range sizes in pages, not bytes: most of the kernel image (and firmware, page tables) becomes FREE",
		Edits: []Edit{{File: fMemory, Old: "Size: bi.InUse[i].Size}", New: "Size: bi.InUse[i].Size >> mm.PageShift}"}},
	},
	{
		Name: "firmware-free", Workload: "hello", Frames: FirmwareFrames,
		Bug:   "markInUse starts at range 1: the firmware area (range 0) is given to the free lists",
		Edits: []Edit{{File: fSetup, Old: "for i := 0; i < len(inUse); i++ {", New: "for i := 1; i < len(inUse); i++ {"}},
	},
	{
		Name: "meta-free", Workload: "hello", Frames: MetaFrames,
		Bug:   "markInUse skips the first boot allocation: the metadata array and allocator state are FREE",
		Edits: []Edit{{File: fSetup, Old: "for i := 0; i < boot.n && i < MaxBootAllocs; i++ {", New: "for i := 1; i < boot.n && i < MaxBootAllocs; i++ {"}},
	},

	{
		Name: "inuse-last-frame", Workload: "hello", Frames: KernelFrames,
		Bug:   "markKernel stops one frame early (p < end-1): the last frame of every in-use range and boot allocation stays FREE",
		Edits: []Edit{{File: fSetup, Old: "for p := first; p < end && p < b.meta.count; p++ {", New: "for p := first; p+1 < end && p < b.meta.count; p++ {"}},
	},

	// ---- flags of user frames ----
	{
		Name: "dll-writable", Workload: "cow", Frames: ProbeFrames,
		Bug: "a DLL (shared library) frame is mapped writable",
		Edits: []Edit{
			{File: fCOW, Old: "!parent.mapPage(vas[cowPages+p], f, false)", New: "!parent.mapPage(vas[cowPages+p], f, true)"},
			{File: fCOW, Old: "f, ok := allocZeroed(mm.FlagUser | mm.FlagDLL)", New: "f, ok := allocZeroed(mm.FlagUser | mm.FlagDLL)\n\t\tmm.MutantHit(f >> 12)", Probe: true},
		},
	},
	{
		Name: "anon-missing", Workload: "paging", Frames: ProbeFrames,
		Bug: "private user pages are allocated USER without ANONYMOUS",
		Edits: []Edit{{File: fPaging, Old: "f, ok := allocZeroed(mm.FlagUser | mm.FlagAnonymous)",
			New: "f, ok := allocZeroed(mm.FlagUser)\n\t\t\tmm.MutantHit(f >> 12)"}},
	},
	{
		Name: "demand-anon-missing", Workload: "demand", Frames: ProbeFrames,
		Bug: "the demand-fault handler maps zeroed frames USER without ANONYMOUS",
		Edits: []Edit{{File: fFault, Old: "f, ok := allocZeroed(mm.FlagUser | mm.FlagAnonymous)",
			New: "f, ok := allocZeroed(mm.FlagUser)\n\t\tmm.MutantHit(f >> 12)"}},
	},
	{
		Name: "cow-not-cleared", Workload: "cow", Frames: ProbeFrames,
		Bug: "COW takeover of the last reference makes the PTE writable but forgets to clear COW",
		Edits: []Edit{{File: fCOW, Old: "err := kernelMM.ClearShared(old, 0, mm.FlagCOW, &tok)",
			New: "mm.MutantHit(old.PFN())\n\t\terr := mm.ErrNone"}},
	},
	{
		Name: "fork-keeps-writable", Workload: "cow", Frames: ProbeFrames,
		Bug:   "fork marks the frame COW but leaves the parent's PTE writable",
		Edits: []Edit{{File: fCOW, Old: "\t\t\t*e &^= pteW", New: "\t\t\tmm.MutantHit(frame.PFN())"}},
	},

	// ---- reference counts ----
	{
		Name: "share-no-get", Workload: "paging", Frames: ProbeFrames,
		Bug: "sharing a page maps it in another space without taking a reference",
		Edits: []Edit{{File: fPaging,
			Old: "\t\t\tif e == nil || kernelMM.Get(mm.ContainingAddress(*e&pteAddr)) != mm.ErrNone ||\n",
			New: "\t\t\tif e != nil {\n\t\t\t\tmm.MutantHit((*e & pteAddr) >> 12)\n\t\t\t}\n\t\t\tif e == nil ||\n"}},
	},
	{
		Name: "fork-no-get", Workload: "cow", Frames: ProbeFrames,
		Bug: "fork maps the parent's frames in the child without taking references",
		Edits: []Edit{{File: fCOW, Old: "if kernelMM.Get(frame) != mm.ErrNone || !child.mapPage(va, frame.StartAddress(), false) {",
			New: "mm.MutantHit(frame.PFN())\n\t\tif !child.mapPage(va, frame.StartAddress(), false) {"}},
	},
	{
		Name: "putlocal-early", Workload: "smp", CPUs: 2, Frames: ProbeFrames,
		Bug: "PutLocal frees on the second-to-last put (r <= 2): a frame is cached while a CPU still holds a reference",
		Edits: []Edit{{File: fPCP, Old: "\t\t\tif r == 1 {\n\t\t\t\tb.cacheFree(c, uint32(cpu), pfn)",
			New: "\t\t\tif r <= 2 {\n\t\t\t\tMutantHit(pfn)\n\t\t\t\tb.cacheFree(c, uint32(cpu), pfn)"}},
	},
	{
		Name: "double-free-accepted", Workload: "stress", Frames: ProbeFrames,
		Bug: "Free checks neither state nor refcount (stores 0), and a caller frees a block twice",
		Edits: []Edit{
			{File: fBuddy, Old: "atomic.LoadUint32(&m.flags)&(FlagAllocated|FlagFree|FlagPoisoned|FlagPerCPU) != FlagAllocated",
				New: "atomic.LoadUint32(&m.flags)&(FlagPoisoned|FlagPerCPU) != 0"},
			{File: fBuddy, Old: "\tif !atomic.CompareAndSwapUint32(&m.refcount, 1, 0) {\n\t\treturn ErrInvalidAddress\n\t}\n\tb.release(pfn, order)",
				New: "\tatomic.StoreUint32(&m.refcount, 0)\n\tb.release(pfn, order)"},
			{File: fStress, Old: "\tt.n--\n\tt.slots[i] = t.slots[t.n]",
				New: "\tif mm.MutantN == 0 {\n\t\tfor f := uint64(0); f < 1<<(t.slots[i]&0xfff); f++ {\n\t\t\tmm.MutantHit(t.slots[i]>>12 + f)\n\t\t}\n\t\tfreeBlockErr(t.slots[i])\n\t}\n\tt.n--\n\tt.slots[i] = t.slots[t.n]"},
		},
	},
	{
		Name: "poison-keeps-ref", Workload: "poison", BadFrames: badFrames, Frames: ProbeFrames,
		Bug: "run-time Poison of an allocated frame checks refcount 1 but never consumes it (POISONED with refcount 1)",
		Edits: []Edit{{File: fPoison, Old: "if !atomic.CompareAndSwapUint32(&m.refcount, 1, 0) {",
			New: "MutantHit(pfn)\n\t\tif atomic.LoadUint32(&m.refcount) != 1 {"}},
	},

	// ---- buddy lists and merging ----
	{
		Name: "merge-poisoned", Workload: "poison", BadFrames: badFrames, Frames: BadFrames,
		Bug: "isFreeHead takes \"not allocated\" for free: a block merges with a POISONED buddy",
		Edits: []Edit{{File: fBuddy, Old: "return atomic.LoadUint32(&m.flags) == FlagFree && m.orderWord == uint32(k)",
			New: "return atomic.LoadUint32(&m.flags)&(FlagFree|FlagPoisoned) != 0 && m.orderWord == uint32(k)"}},
	},
	{
		Name: "buddy-index", Workload: "stress", Frames: ProbeFrames,
		Bug: "buddyOf returns the right neighbour (pfn + 2^k) instead of pfn ^ 2^k: upper halves merge with the wrong block",
		Edits: []Edit{
			{File: fBuddy, Old: "func buddyOf(pfn uint64, k uint8) uint64 { return pfn ^ 1<<k }",
				New: "func buddyOf(pfn uint64, k uint8) uint64 { return pfn + 1<<k }"},
			{File: fBuddy, Old: "\t\tb.unlink(k, bud)\n\t\tif bud < pfn {",
				New: "\t\tif bud != pfn^1<<k {\n\t\t\tMutantHit(pfn)\n\t\t\tMutantHit(bud)\n\t\t}\n\t\tb.unlink(k, bud)\n\t\tif bud < pfn {", Probe: true},
		},
	},
	{
		Name: "alloc-tail-short", Workload: "stress", Frames: ProbeFrames,
		Bug: "AllocFlags marks tails up to 2^order-1 (off by one): the block's last frame stays FREE",
		Edits: []Edit{
			{File: fBuddy, Old: "\t\tfor i := uint64(1); i < 1<<order; i++ {\n\t\t\tt := b.meta.at(pfn + i)\n\t\t\tt.flags = tail",
				New: "\t\tMutantHit(pfn + 1<<order - 1)\n\t\tfor i := uint64(1); i < 1<<order-1; i++ {\n\t\t\tt := b.meta.at(pfn + i)\n\t\t\tt.flags = tail"},
		},
	},
	{
		Name: "split-order", Workload: "stress", Frames: ProbeFrames,
		Bug: "take puts the split-off upper half back at the order before the split (k+1)",
		Edits: []Edit{{File: fBuddy, Old: "\t\tb.push(k, pfn+1<<k)",
			New: "\t\tMutantHit(pfn + 1<<k)\n\t\tb.push(k+1, pfn+1<<k)"}},
	},
	{
		Name: "merge-keeps-order", Workload: "stress", Frames: ProbeFrames,
		Bug: "a merge leaves the upper half's order byte as a head order instead of OrderTail",
		Edits: []Edit{{File: fBuddy, Old: "b.meta.at(bud).orderWord = uint32(OrderTail) // the upper half becomes a tail",
			New: "MutantHit(bud)"}},
	},
	{
		Name: "unlink-keeps-links", Workload: "stress", Frames: ProbeFrames,
		Bug: "unlink does not clear the removed block's next/prev",
		Edits: []Edit{{File: fBuddy, Old: "\tm.next, m.prev = LinkNone, LinkNone\n\tst.Counts[k&MaxOrderMask]--",
			New: "\tif m.next != LinkNone || m.prev != LinkNone {\n\t\tMutantHit(pfn)\n\t}\n\tst.Counts[k&MaxOrderMask]--"}},
	},
	{
		Name: "free-count", Workload: "stress", Frames: AnyFrame,
		Bug:   "unlink subtracts one frame instead of 2^k from FreeFrames",
		Edits: []Edit{{File: fBuddy, Old: "st.FreeFrames -= 1 << k", New: "st.FreeFrames -= 1"}},
	},
	{
		Name: "no-merge", Workload: "stress", Frames: ProbeFrames,
		Bug:   "the merge loop's condition is inverted (k > MaxOrder): freed blocks never merge",
		Edits: noMerge,
	},
	{
		Name: "no-merge-guest-blind", Workload: "stress", Frames: ProbeFrames,
		Bug:   "no-merge, and the unmerged-buddy rule is deleted from the guest's mm.Check (the host keeps its own build)",
		Edits: append(append([]Edit(nil), noMerge...), dropUnmergedRule),
	},
	{
		Name: "no-merge-check-blind", Workload: "stress", Frames: ProbeFrames, Host: true,
		Bug:   "no-merge, and the unmerged-buddy rule is deleted from mm.Check, which guest and host both run (VMM rebuilt from the mutant tree)",
		Edits: append(append([]Edit(nil), noMerge...), dropUnmergedRule),
	},
	{
		Name: "poison-no-unlink", Workload: "poison", BadFrames: badFrames, Frames: ProbeFrames,
		Bug:   "run-time Poison splits a free block without taking it off its list first",
		Edits: []Edit{{File: fPoison, Old: "\t\tb.unlink(k, head)\n", New: "\t\tMutantHit(head)\n"}},
	},

	{
		Name: "poison-uncounted", Workload: "poison", BadFrames: badFrames, Frames: AnyFrame,
		Bug:   "run-time Poison forgets to count the frame in PoisonedFrames",
		Edits: []Edit{{File: fPoison, Old: "\tb.state().PoisonedFrames++\n", New: ""}},
	},

	// ---- per-CPU caches ----
	{
		Name: "pcp-lose", Workload: "smp", CPUs: 2, Frames: ProbeFrames,
		Bug: "drain drops the last frame of every batch: it leaves the cache but never reaches the free lists",
		Edits: []Edit{{File: fPCP, Old: "\t\tm.next, m.prev = LinkNone, LinkNone\n\t\tb.release(pfn, 0)",
			New: "\t\tm.next, m.prev = LinkNone, LinkNone\n\t\tif n == 1 {\n\t\t\tMutantHit(pfn)\n\t\t\tcontinue\n\t\t}\n\t\tb.release(pfn, 0)"}},
	},
	{
		Name: "pcp-pop-links", Workload: "smp", CPUs: 2, Frames: ProbeFrames,
		Bug:   "pcpPop hands out a frame with its cache tags (next = CPU, prev = slot) still set",
		Edits: []Edit{{File: fPCP, Old: "\tm.next, m.prev = LinkNone, LinkNone\n\treturn pfn", New: "\tMutantHit(pfn)\n\treturn pfn"}},
	},
	{
		Name: "refill-stale-order", Workload: "smp", CPUs: 2, Frames: ProbeFrames,
		Bug:   "refill caches a split-off head without resetting its order byte to 0",
		Edits: []Edit{{File: fPCP, Old: "\t\tb.meta.at(pfn).orderWord = 0\n", New: "\t\tif o := b.meta.at(pfn).orderWord; o != 0 && o <= MaxOrder {\n\t\t\tfor i := uint64(0); i < 1<<o; i++ {\n\t\t\t\tMutantHit(pfn + i)\n\t\t\t}\n\t\t}\n"}},
	},
	{
		Name: "pcp-count", Workload: "smp", CPUs: 2, Frames: AnyFrame,
		Bug:   "sync folds Count into PCPFrames but forgets to record it as Synced",
		Edits: []Edit{{File: fPCP, Old: "\tc.Synced = c.Count\n", New: ""}},
	},
}

// noMerge inverts the merge loop's condition; the probe records the lower
// block of every pair left unmerged.
var noMerge = []Edit{
	{File: fBuddy, Old: "\tfor k < MaxOrder {\n\t\tbud := buddyOf(pfn, k)", New: "\tfor k > MaxOrder {\n\t\tbud := buddyOf(pfn, k)"},
	{File: fBuddy, Old: "\t\tk++\n\t}\n\tb.push(k, pfn)",
		New: "\t\tk++\n\t}\n\tif k < MaxOrder && b.isFreeHead(buddyOf(pfn, k), k) {\n\t\tMutantHit(min(pfn, buddyOf(pfn, k)))\n\t}\n\tb.push(k, pfn)", Probe: true},
}

// dropUnmergedRule deletes the unmerged-buddy rule from mm.Check.
var dropUnmergedRule = Edit{File: fCheck, Old: "c.add(p, VUnmergedBuddy, uint64(order)+1, uint64(order))", New: "// rule deleted"}
