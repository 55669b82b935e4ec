package mm

import (
	"bytes"
	"sync"
	"testing"
)

func TestBootAllocator(t *testing.T) {
	ram := []Range{{0x1000, 0x9000}, {0x100000, 0x100000}}
	inUse := []Range{{0x100000, 0x3000}} // "kernel image"
	bad := []uint64{0x104123}
	var b BootAllocator
	b.Init(ram, inUse, bad)
	if _, err := b.Alloc(0, PageSize); err != ErrInvalidOrder {
		t.Errorf("size 0: %v", err)
	}
	if _, err := b.Alloc(1, 3*PageSize); err != ErrInvalidOrder {
		t.Errorf("align 3 pages: %v", err)
	}
	p, err := b.Alloc(100, 8) // rounded to one page, page aligned
	if err != ErrNone || p != 0x1000 {
		t.Fatalf("first alloc %#x %v", p, err)
	}
	p, err = b.Alloc(PageSize, 0x4000) // aligned: 0x4000
	if err != ErrNone || p != 0x4000 {
		t.Fatalf("aligned alloc %#x %v", p, err)
	}
	p, err = b.Alloc(0x8000, PageSize) // does not fit range 0 (ends at 0xa000): next range, skipping kernel and bad frame
	if err != ErrNone || p != 0x105000 {
		t.Fatalf("alloc across range %#x %v", p, err)
	}
	p, err = b.Alloc(PageSize, PageSize)
	if err != ErrNone || p != 0x10d000 {
		t.Fatalf("adjacent alloc %#x %v", p, err)
	}
	al := b.Allocations()
	want := []Range{{0x1000, 0x1000}, {0x4000, 0x1000}, {0x105000, 0x9000}}
	if len(al) != len(want) {
		t.Fatalf("allocations %v", al)
	}
	for i := range want {
		if al[i] != want[i] {
			t.Errorf("allocation %d: %v want %v", i, al[i], want[i])
		}
	}
	if _, err := b.Alloc(1<<30, PageSize); err != ErrOutOfMemory {
		t.Errorf("too big: %v", err)
	}
}

func TestSetupMarksFrames(t *testing.T) {
	const top = 8 << 20
	ram := []Range{{0x1000, 0x9F000}, {0x100000, top - 0x100000 - 0x800}} // hole 0xa0000-0x100000, partial last frame
	inUse := []Range{{0x100000, 0x200000}, {0x300000, 0x1}}               // kernel image, boot info (one byte)
	bad := []uint64{0x400000, 0x400fff, 0x7ff000, 0x50000000}             // duplicate, last partial frame (not RAM), beyond RAM
	e := newEnv(t, top, ram, inUse, bad)
	e.check(t)
	b := e.b
	mp, n, sp := b.Registration()
	if n != top/PageSize {
		t.Fatalf("frame count %d", n)
	}
	flags := func(pfn uint64) uint32 { f, _ := b.FlagsOf(FrameFromPFN(pfn)); return f }
	if flags(0) != 0 || flags(0xa0) != 0 || flags(0xff) != 0 || flags(n-1) != 0 {
		t.Errorf("non-RAM frames have flags: %#x %#x %#x %#x", flags(0), flags(0xa0), flags(0xff), flags(n-1))
	}
	for pfn := uint64(0x100); pfn < 0x300; pfn++ {
		if flags(pfn) != FlagAllocated|FlagKernel {
			t.Fatalf("kernel image pfn %#x flags %#x", pfn, flags(pfn))
		}
	}
	if flags(0x300) != FlagAllocated|FlagKernel || flags(0x301)&FlagFree == 0 {
		t.Errorf("boot info %#x / next %#x", flags(0x300), flags(0x301))
	}
	if flags(0x400) != FlagPoisoned {
		t.Errorf("bad frame flags %#x", flags(0x400))
	}
	for _, r := range e.boot.Allocations() {
		for a := r.Base; a < r.Base+r.Size; a += PageSize {
			if flags(a>>PageShift) != FlagAllocated|FlagKernel {
				t.Errorf("boot allocation %#x flags %#x", a, flags(a>>PageShift))
			}
			if rc, _ := b.Refcount(ContainingAddress(a)); rc != 1 {
				t.Errorf("boot allocation %#x refcount %d", a, rc)
			}
		}
	}
	if flags(mp>>PageShift) != FlagAllocated|FlagKernel || flags(sp>>PageShift) != FlagAllocated|FlagKernel {
		t.Error("metadata/state frames not KERNEL|ALLOCATED")
	}
	st := b.State()
	ramFrames := uint64(0x9F + (top-0x100000-0x1000)/PageSize)
	if st.RAMFrames != ramFrames || st.PoisonedFrames != 1 {
		t.Errorf("RAMFrames %d want %d, poisoned %d", st.RAMFrames, ramFrames, st.PoisonedFrames)
	}
	kernel := uint64(0x200 + 1)
	for _, r := range e.boot.Allocations() {
		kernel += r.Size / PageSize
	}
	if st.FreeFrames != ramFrames-kernel-1 || st.ManagedFrames != st.FreeFrames {
		t.Errorf("free %d managed %d want %d", st.FreeFrames, st.ManagedFrames, ramFrames-kernel-1)
	}
	if _, err := e.boot.Alloc(PageSize, PageSize); err != ErrOutOfMemory {
		t.Errorf("boot allocator not sealed: %v", err)
	}
	// Exhaust memory: no poisoned or non-RAM frame is ever handed out.
	tok := b.Lock()
	got := uint64(0)
	for {
		f, err := b.Alloc(0, &tok)
		if err == ErrOutOfMemory {
			break
		}
		if fl := flags(f.PFN()); fl != FlagAllocated|FlagKernel || f.PFN() == 0x400 {
			t.Fatalf("handed out %#x flags %#x", f.PFN(), fl)
		}
		got++
	}
	b.Unlock(&tok)
	if got != ramFrames-kernel-1 {
		t.Errorf("allocated %d frames", got)
	}
	e.check(t)
}

func TestSetupZeroRAM(t *testing.T) {
	var b Buddy
	var boot BootAllocator
	if err := b.Setup(0, &boot, nil, nil, nil); err != ErrOutOfMemory {
		t.Errorf("zero RAM: %v", err)
	}
	if b.FreeFrames() != 0 || b.Check(nil) == 0 {
		t.Error("empty allocator should report an uninitialised state")
	}
}

func TestExtraBootAllocations(t *testing.T) {
	a := newArena(t, 4<<20)
	var boot BootAllocator
	boot.Init([]Range{{0, 4 << 20}}, []Range{{0, 0x10000}}, nil)
	pt, err := boot.Alloc(3*PageSize, 2*PageSize) // e.g. page tables
	if err != ErrNone {
		t.Fatal(err)
	}
	var b Buddy
	if err := b.Init(a.off, &boot); err != ErrNone {
		t.Fatal(err)
	}
	for p := pt; p < pt+3*PageSize; p += PageSize {
		if f, _ := b.FlagsOf(ContainingAddress(p)); f != FlagAllocated|FlagKernel {
			t.Errorf("page table frame %#x flags %#x", p, f)
		}
	}
	if err := b.Init(a.off, &boot); err != ErrUninitialized {
		t.Errorf("second Init: %v", err)
	}
	// Attach rebuilds an equivalent handle.
	var b2 Buddy
	_, _, sp := b.Registration()
	if err := b2.Attach(a.off, sp); err != ErrNone || b2.meta != b.meta || b2.metaEnd != b.metaEnd {
		t.Errorf("Attach: %v", err)
	}
	if err := b2.Attach(a.off, sp+8); err != ErrUninitialized {
		t.Errorf("Attach at wrong address: %v", err)
	}
	// Boot-allocated frames can be freed to the buddy later; metadata cannot.
	tok := b.Lock()
	if err := b.Free(ContainingAddress(pt), 0, &tok); err != ErrNone {
		t.Errorf("free boot frame: %v", err)
	}
	mp, _, _ := b.Registration()
	if err := b.Free(ContainingAddress(mp), 0, &tok); err != ErrInvalidAddress {
		t.Errorf("free metadata frame: %v", err)
	}
	if err := b.Free(ContainingAddress(sp), 0, &tok); err != ErrInvalidAddress {
		t.Errorf("free state frame: %v", err)
	}
	b.Unlock(&tok)
	var out [8]Violation
	if n := b.Check(out[:]); n != 0 {
		t.Errorf("violations: %v", out[:n])
	}
}

func TestAllocFreeRestoresState(t *testing.T) {
	e := simpleEnv(t, 4096)
	before := e.snapshot()
	for order := uint8(0); order <= MaxOrder; order++ {
		f := e.alloc(t, order)
		if f.PFN()&(1<<order-1) != 0 {
			t.Errorf("order %d block misaligned: %#x", order, f.PFN())
		}
		rc, _ := e.b.Refcount(f)
		fl, _ := e.b.FlagsOf(f)
		if rc != 1 || fl != FlagAllocated|FlagKernel || e.b.meta.at(f.PFN()).Order() != order {
			t.Errorf("order %d head: rc %d flags %#x", order, rc, fl)
		}
		if order > 0 {
			tl := e.b.meta.at(f.PFN() + 1)
			if tl.Flags() != FlagAllocated|FlagKernel || tl.Order() != OrderTail || tl.Refcount() != 0 {
				t.Errorf("order %d tail: flags %#x order %d", order, tl.Flags(), tl.Order())
			}
		}
		e.check(t)
		if err := e.free(f, order); err != ErrNone {
			t.Fatalf("free order %d: %v", order, err)
		}
		e.check(t)
		if after := e.snapshot(); !bytes.Equal(before, after) {
			t.Fatalf("order %d: alloc+free did not restore the metadata", order)
		}
	}
}

func TestSplitAndMerge(t *testing.T) {
	// Free RAM = exactly one max-order block at PFN 1024: the first range
	// holds the kernel (16 frames), the metadata (32) and the state.
	e := newEnv(t, 2048*PageSize, []Range{{0, (48 + StateSize/PageSize + 1) * PageSize}, {1024 * PageSize, 1024 * PageSize}}, []Range{{0, 16 * PageSize}}, nil)
	st := e.b.State()
	if st.Counts[MaxOrder] != 1 || st.FreeFrames != 1024 {
		t.Fatalf("counts %v free %d", st.Counts, st.FreeFrames)
	}
	f := e.alloc(t, 0)
	if f.PFN() != 1024 {
		t.Fatalf("got %#x", f.PFN())
	}
	for k := 0; k < MaxOrder; k++ {
		if st.Counts[k] != 1 || st.Heads[k] != 1024+1<<k {
			t.Errorf("after split: order %d count %d head %#x", k, st.Counts[k], st.Heads[k])
		}
	}
	e.check(t)
	g := e.alloc(t, 0) // the buddy of f
	if g.PFN() != 1025 {
		t.Fatalf("buddy %#x", g.PFN())
	}
	e.free(f, 0) // buddy allocated: no merge
	if st.Counts[0] != 1 || st.Heads[0] != 1024 {
		t.Errorf("order 0 after free: %d %#x", st.Counts[0], st.Heads[0])
	}
	e.check(t)
	e.free(g, 0) // now everything merges back
	if st.Counts[MaxOrder] != 1 || st.FreeFrames != 1024 {
		t.Errorf("not merged back: %v", st.Counts)
	}
	e.check(t)
}

func TestNoMergeAcrossHoleOrPoison(t *testing.T) {
	// RAM 0..512 and 520..2048 frames: hole at 512..520, poisoned 1030.
	ram := []Range{{0, 512 * PageSize}, {520 * PageSize, (2048 - 520) * PageSize}}
	e := newEnv(t, 2048*PageSize, ram, []Range{{0, 16 * PageSize}}, []uint64{1030 * PageSize})
	e.check(t)
	// Allocate everything at order 0, free everything, and check that no
	// block covers the hole or the poisoned frame (Check verifies tails).
	var got []PhysFrame
	tok := e.b.Lock()
	for {
		f, err := e.b.Alloc(0, &tok)
		if err != ErrNone {
			break
		}
		got = append(got, f)
	}
	for i := len(got) - 1; i >= 0; i-- {
		if err := e.b.Free(got[i], 0, &tok); err != ErrNone {
			t.Fatal(err)
		}
	}
	e.b.Unlock(&tok)
	e.check(t)
	st := e.b.State()
	if st.FreeFrames != st.ManagedFrames {
		t.Errorf("free %d managed %d", st.FreeFrames, st.ManagedFrames)
	}
	for p := uint64(512); p < 520; p++ {
		if e.b.meta.at(p).Flags() != 0 {
			t.Errorf("hole frame %d flags %#x", p, e.b.meta.at(p).Flags())
		}
	}
	if e.b.meta.at(1030).Flags() != FlagPoisoned || e.b.meta.at(1024).Order() > 2 {
		t.Errorf("poisoned frame or its neighbours merged: flags %#x order %d", e.b.meta.at(1030).Flags(), e.b.meta.at(1024).Order())
	}
}

func TestFreeInvalidChangesNothing(t *testing.T) {
	e := newEnv(t, 4096*PageSize, []Range{{0, 3000 * PageSize}}, []Range{{0, 16 * PageSize}}, []uint64{2000 * PageSize})
	b := e.b
	blk := e.alloc(t, 3)
	shared := e.alloc(t, 0)
	if err := b.Get(shared); err != ErrNone {
		t.Fatal(err)
	}
	freed := e.alloc(t, 0)
	e.free(freed, 0)
	mp, _, _ := b.Registration()
	cases := []struct {
		name  string
		frame PhysFrame
		order uint8
		want  AllocError
	}{
		{"double free", freed, 0, ErrInvalidAddress},
		{"wrong order (smaller)", blk, 2, ErrInvalidAddress},
		{"wrong order (larger)", blk, 4, ErrInvalidAddress},
		{"tail frame", FrameFromPFN(blk.PFN() + 1), 0, ErrInvalidAddress},
		{"misaligned address", PhysFrame{start: blk.start + 8}, 3, ErrInvalidAddress},
		{"misaligned for order", FrameFromPFN(blk.PFN() + 4), 2, ErrInvalidAddress},
		{"out of range", FrameFromPFN(4096), 0, ErrInvalidAddress},
		{"far out of range", PhysFrame{start: ^uint64(0) &^ 0xFFF}, 0, ErrInvalidAddress},
		{"block past the end", FrameFromPFN(4096 - 8), 4, ErrInvalidAddress},
		{"hole", FrameFromPFN(3500), 0, ErrInvalidAddress},
		{"poisoned", FrameFromPFN(2000), 0, ErrInvalidAddress},
		{"metadata", ContainingAddress(mp), 0, ErrInvalidAddress},
		{"shared (refcount 2)", shared, 0, ErrInvalidAddress},
		{"bad order", blk, MaxOrder + 1, ErrInvalidOrder},
	}
	for _, c := range cases {
		before := e.snapshot()
		if err := e.free(c.frame, c.order); err != c.want {
			t.Errorf("%s: got %v want %v", c.name, err, c.want)
		}
		if !bytes.Equal(before, e.snapshot()) {
			t.Errorf("%s: state changed", c.name)
		}
	}
	e.check(t)
}

func TestTokens(t *testing.T) {
	e := simpleEnv(t, 1024)
	other := simpleEnv(t, 1024)
	b := e.b
	var zero IrqDisabledToken
	if _, err := b.Alloc(0, &zero); err != ErrNotLocked {
		t.Errorf("zero token: %v", err)
	}
	if _, err := b.Alloc(0, nil); err != ErrNotLocked {
		t.Errorf("nil token: %v", err)
	}
	tok := b.Lock()
	f, err := b.Alloc(0, &tok)
	if err != ErrNone {
		t.Fatal(err)
	}
	stale := tok
	b.Unlock(&tok)
	if err := b.Free(f, 0, &tok); err != ErrNotLocked {
		t.Errorf("token after Unlock: %v", err)
	}
	tok2 := b.Lock()
	if err := b.Free(f, 0, &stale); err != ErrNotLocked {
		t.Errorf("stale copy while relocked: %v", err)
	}
	otok := other.b.Lock()
	if err := b.Free(f, 0, &otok); err != ErrNotLocked {
		t.Errorf("other allocator's token: %v", err)
	}
	other.b.Unlock(&otok)
	if err := b.Unlock(&stale); err != ErrNotLocked {
		t.Errorf("unlock with stale token: %v", err)
	}
	if err := b.Free(f, 0, &tok2); err != ErrNone {
		t.Errorf("valid token: %v", err)
	}
	b.Unlock(&tok2)
	// IRQ hooks are called around the critical section.
	var saved, restored int
	b.IRQSave = func() uintptr { saved++; return 42 }
	b.IRQRestore = func(x uintptr) {
		if x == 42 {
			restored++
		}
	}
	tok = b.Lock()
	b.Unlock(&tok)
	if saved != 1 || restored != 1 {
		t.Errorf("irq hooks: %d %d", saved, restored)
	}
}

func TestRefcountAndFlags(t *testing.T) {
	e := simpleEnv(t, 1024)
	b := e.b
	tok := b.Lock()
	defer b.Unlock(&tok)
	f, err := b.AllocFlags(2, &tok, FlagUser|FlagAnonymous)
	if err != ErrNone {
		t.Fatal(err)
	}
	if fl, _ := b.FlagsOf(f); fl != FlagAllocated|FlagUser|FlagAnonymous {
		t.Errorf("flags %#x", fl)
	}
	if fl, _ := b.FlagsOf(FrameFromPFN(f.PFN() + 3)); fl != FlagAllocated|FlagUser {
		t.Errorf("tail flags %#x", fl)
	}
	if err := b.Get(f); err != ErrNone {
		t.Fatal(err)
	}
	if err := b.Get(FrameFromPFN(f.PFN() + 1)); err != ErrInvalidAddress {
		t.Errorf("Get on tail: %v", err)
	}
	if err := b.MarkShared(f, 2, FlagCOW, &tok); err != ErrNone {
		t.Errorf("COW: %v", err)
	}
	if err := b.MarkShared(f, 2, FlagDLL, &tok); err != ErrInvalidFlags {
		t.Errorf("DLL on COW: %v", err)
	}
	if rc, _ := b.Refcount(f); rc != 2 {
		t.Errorf("refcount %d", rc)
	}
	if freed, err := b.Put(f, 2, &tok); freed || err != ErrNone {
		t.Errorf("first put: %v %v", freed, err)
	}
	if err := b.ClearShared(f, 2, FlagCOW, &tok); err != ErrNone {
		t.Error(err)
	}
	if _, err := b.Put(f, 1, &tok); err != ErrInvalidAddress {
		t.Errorf("put wrong order: %v", err)
	}
	free0 := b.FreeFrames()
	if freed, err := b.Put(f, 2, &tok); !freed || err != ErrNone {
		t.Errorf("last put: %v %v", freed, err)
	}
	if b.FreeFrames() != free0+4 {
		t.Error("last put did not free")
	}
	if err := b.Get(f); err != ErrInvalidAddress {
		t.Errorf("Get on free frame: %v", err)
	}
	if _, err := b.Put(f, 2, &tok); err != ErrInvalidAddress {
		t.Errorf("Put on free frame: %v", err)
	}
	// DLL frames are never COW.
	d, _ := b.AllocFlags(0, &tok, FlagUser|FlagDLL)
	if err := b.MarkShared(d, 0, FlagCOW, &tok); err != ErrInvalidFlags {
		t.Errorf("COW on DLL: %v", err)
	}
	if err := b.MarkShared(d, 0, FlagAnonymous, &tok); err != ErrInvalidFlags {
		t.Errorf("ANONYMOUS on DLL: %v", err)
	}
	k, _ := b.Alloc(0, &tok)
	if err := b.MarkShared(k, 0, FlagCOW, &tok); err != ErrInvalidFlags {
		t.Errorf("COW on kernel frame: %v", err)
	}
	if err := b.MarkShared(k, 0, FlagFree, &tok); err != ErrInvalidFlags {
		t.Errorf("non-modifier flag: %v", err)
	}
	for _, fl := range []uint32{FlagKernel | FlagUser, FlagKernel | FlagCOW, FlagUser | FlagCOW | FlagDLL, FlagUser | FlagDLL | FlagAnonymous, FlagPerCPU, FlagUser | FlagPoisoned} {
		if _, err := b.AllocFlags(0, &tok, fl); err != ErrInvalidFlags {
			t.Errorf("AllocFlags(%#x): %v", fl, err)
		}
	}
	if _, err := b.Alloc(MaxOrder+1, &tok); err != ErrInvalidOrder {
		t.Errorf("order too big: %v", err)
	}
	if n := b.Check(nil); n != 0 {
		t.Errorf("%d violations", n)
	}
}

func TestConcurrentAllocFree(t *testing.T) {
	e := simpleEnv(t, 8192)
	b := e.b
	free0 := b.FreeFrames()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var held []PhysFrame
			for i := 0; i < 2000; i++ {
				tok := b.Lock()
				if i%3 != 2 {
					if f, err := b.Alloc(uint8(i%3), &tok); err == ErrNone {
						held = append(held, f)
						if f.PFN()%4 != 0 && i%3 == 2 {
							t.Error("misaligned")
						}
					}
				} else if len(held) > 0 {
					f := held[len(held)-1]
					held = held[:len(held)-1]
					fl := b.meta.at(f.PFN()).Order()
					if err := b.Free(f, fl, &tok); err != ErrNone {
						t.Errorf("free: %v", err)
					}
				}
				b.Unlock(&tok)
				_ = b.Get // lock-free path exercised below
			}
			for _, f := range held {
				if b.Get(f) != ErrNone {
					t.Error("Get")
				}
				tok := b.Lock()
				o := b.meta.at(f.PFN()).Order()
				b.Put(f, o, &tok)
				if freed, err := b.Put(f, o, &tok); !freed || err != ErrNone {
					t.Errorf("put: %v %v", freed, err)
				}
				b.Unlock(&tok)
			}
		}(g)
	}
	wg.Wait()
	e.check(t)
	if b.FreeFrames() != free0 {
		t.Errorf("free frames %d want %d", b.FreeFrames(), free0)
	}
}
