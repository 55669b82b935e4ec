package mm

import (
	"testing"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
)

func TestFrameMetaLayout(t *testing.T) {
	var m FrameMeta
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(m), FrameMetaSize},
		{"next", unsafe.Offsetof(m.next), OffNext},
		{"prev", unsafe.Offsetof(m.prev), OffPrev},
		{"flags", unsafe.Offsetof(m.flags), OffFlags},
		{"order", unsafe.Offsetof(m.orderWord), OffOrder},
		{"refcount", unsafe.Offsetof(m.refcount), OffRefcount},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %d want %d", c.name, c.got, c.want)
		}
	}
	// Raw bytes through the accessors, in an arena record.
	a := newArena(t, PageSize)
	arr := InitMetadata(a.off, 0, 2)
	r := a.mem[FrameMetaSize : 2*FrameMetaSize]
	for i := 0; i < 16; i++ {
		if r[i] != 0xFF {
			t.Fatalf("fresh links byte %d = %#x, want 0xff (LinkNone)", i, r[i])
		}
	}
	mm := arr.at(1)
	mm.SetNext(0x1122334455667788)
	mm.SetPrev(0x99aabbccddeeff00)
	mm.SetFlags(FlagAllocated | FlagUser | FlagCOW)
	mm.SetOrder(7)
	mm.IncRef()
	mm.IncRef()
	if le64(r[OffNext:]) != 0x1122334455667788 || le64(r[OffPrev:]) != 0x99aabbccddeeff00 {
		t.Errorf("links bytes % x", r[:16])
	}
	if le32(r[OffFlags:]) != FlagAllocated|FlagUser|FlagCOW {
		t.Errorf("flags bytes % x", r[16:20])
	}
	if r[20] != 7 || r[21] != 0 || r[22] != 0 || r[23] != 0 {
		t.Errorf("order bytes % x", r[20:24])
	}
	if le32(r[OffRefcount:]) != 2 {
		t.Errorf("refcount bytes % x", r[24:28])
	}
	for i := 28; i < 64; i++ {
		if r[i] != 0 {
			t.Errorf("padding byte %d = %#x", i, r[i])
		}
	}
	if mm.DecRef() != 2 || mm.Refcount() != 1 || !mm.IsCOW() || mm.IsDLL() || mm.Order() != 7 {
		t.Error("accessors")
	}
	mm.ResetRefcount()
	if mm.Refcount() != 0 {
		t.Error("ResetRefcount")
	}
	if LinkNone != 0xFFFFFFFFFFFFFFFF {
		t.Error("LinkNone")
	}
	// Flag values are part of the layout the host decodes.
	want := []uint32{1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12, 1, 2, 4, 1 << 13}
	got := []uint32{FlagAllocated, FlagFree, FlagKernel, FlagUser, FlagPoisoned, FlagCOW, FlagDLL, FlagAnonymous, FlagPerCPU}
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("flag %d: %#x want %#x", i, got[i], want[i])
		}
	}
}

func TestBuddyStateLayout(t *testing.T) {
	var s BuddyState
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(s), StateSize},
		{"Magic", unsafe.Offsetof(s.Magic), StateOffMagic},
		{"Version", unsafe.Offsetof(s.Version), StateOffVersion},
		{"MaxOrder", unsafe.Offsetof(s.MaxOrder), StateOffMaxOrder},
		{"lock", unsafe.Offsetof(s.lock), StateOffLock},
		{"MetaPhys", unsafe.Offsetof(s.MetaPhys), StateOffMetaPhys},
		{"FrameCount", unsafe.Offsetof(s.FrameCount), StateOffFrameCount},
		{"StatePhys", unsafe.Offsetof(s.StatePhys), StateOffStatePhys},
		{"FreeFrames", unsafe.Offsetof(s.FreeFrames), StateOffFreeFrames},
		{"RAMFrames", unsafe.Offsetof(s.RAMFrames), StateOffRAMFrames},
		{"Heads", unsafe.Offsetof(s.Heads), StateOffHeads},
		{"Counts", unsafe.Offsetof(s.Counts), StateOffCounts},
		{"PoisonedFrames", unsafe.Offsetof(s.PoisonedFrames), StateOffPoisonedFrames},
		{"ManagedFrames", unsafe.Offsetof(s.ManagedFrames), StateOffManagedFrames},
		{"NumCPUs", unsafe.Offsetof(s.NumCPUs), StateOffNumCPUs},
		{"PCPFrames", unsafe.Offsetof(s.PCPFrames), StateOffPCPFrames},
		{"PCP", unsafe.Offsetof(s.PCP), StateOffPCP},
		{"PCP[1]", unsafe.Offsetof(s.PCP) + unsafe.Sizeof(s.PCP[0]), StateOffPCP + CacheSize},
		{"CPUCache size", unsafe.Sizeof(s.PCP[0]), CacheSize},
		{"Cache.Count", unsafe.Offsetof(s.PCP[0].Count), CacheOffCount},
		{"Cache.Head", unsafe.Offsetof(s.PCP[0].Head), CacheOffHead},
		{"Cache.Synced", unsafe.Offsetof(s.PCP[0].Synced), CacheOffSynced},
		{"Cache.Busy", unsafe.Offsetof(s.PCP[0].Busy), CacheOffBusy},
		{"Cache.Refills", unsafe.Offsetof(s.PCP[0].Refills), CacheOffRefills},
		{"Cache.Drains", unsafe.Offsetof(s.PCP[0].Drains), CacheOffDrains},
		{"Cache.PFN", unsafe.Offsetof(s.PCP[0].PFN), CacheOffPFN},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %d want %d", c.name, c.got, c.want)
		}
	}
	if StateSize != 37184 || StateOffHeads != 64 || StateOffCounts != 152 || StateOffPCPFrames != 256 || StateOffPCP != 320 ||
		CacheSize != 576 || CacheOffPFN != 64 || LayoutVersion != 2 || MaxCPUs != 64 || PCPCapacity != 64 || PCPBatch != 16 {
		t.Errorf("state layout constants changed: size %d heads %d counts %d pcp %d cache %d", StateSize, StateOffHeads, StateOffCounts, StateOffPCP, CacheSize)
	}
	if string([]byte{0x47, 0x4f, 0x4d, 0x4d, 0x42, 0x55, 0x44, 0x59}) != "GOMMBUDY" || le64([]byte("GOMMBUDY")) != Magic {
		t.Errorf("Magic %#x", Magic)
	}
	// Raw bytes of a live state.
	e := simpleEnv(t, 2048)
	sb := e.a.stateBytes(e.b)
	mp, n, sp := e.b.Registration()
	if le64(sb[StateOffMagic:]) != Magic || le32(sb[StateOffVersion:]) != LayoutVersion || le32(sb[StateOffMaxOrder:]) != MaxOrder ||
		le64(sb[StateOffMetaPhys:]) != mp || le64(sb[StateOffFrameCount:]) != n || le64(sb[StateOffStatePhys:]) != sp {
		t.Errorf("state header bytes % x", sb[:48])
	}
	if le64(sb[StateOffFreeFrames:]) != e.b.FreeFrames() {
		t.Error("FreeFrames bytes")
	}
	sum := uint64(0)
	for k := 0; k < NumOrders; k++ {
		sum += le64(sb[StateOffCounts+8*k:]) << k
	}
	if sum != e.b.FreeFrames() {
		t.Errorf("counts sum %d != free %d", sum, e.b.FreeFrames())
	}
}

func TestMaxCPUsMatchesFirmware(t *testing.T) {
	if MaxCPUs != firmware.MaxCPUs {
		t.Fatalf("mm.MaxCPUs %d != firmware.MaxCPUs %d", MaxCPUs, firmware.MaxCPUs)
	}
}

// TestCPUCacheBytes: a live cache decodes from raw state bytes at the
// pinned offsets (what the host verifier reads).
func TestCPUCacheBytes(t *testing.T) {
	e := simpleEnv(t, 2048)
	if err := e.b.SetCPUs(3); err != ErrNone {
		t.Fatal(err)
	}
	f, err := e.b.AllocLocal(2, 0)
	if err != ErrNone {
		t.Fatal(err)
	}
	sb := e.a.stateBytes(e.b)
	c := sb[StateOffPCP+2*CacheSize:]
	if le32(sb[StateOffNumCPUs:]) != 3 || le32(c[CacheOffCount:]) != PCPBatch-1 || le32(c[CacheOffHead:]) != 0 ||
		le32(c[CacheOffSynced:]) != PCPBatch || le64(c[CacheOffRefills:]) != 1 || le64(sb[StateOffPCPFrames:]) != PCPBatch {
		t.Errorf("cache header bytes % x", c[:32])
	}
	for i := 0; i < PCPBatch-1; i++ {
		pfn := le64(c[CacheOffPFN+8*i:])
		r := e.a.rawMeta(e.b, pfn)
		if le32(r[OffFlags:]) != FlagPerCPU || le64(r[OffNext:]) != 2 || le64(r[OffPrev:]) != uint64(i) || pfn == f.PFN() {
			t.Errorf("entry %d pfn %#x: record % x", i, pfn, r[:28])
		}
	}
}

func TestMetadataSizing(t *testing.T) {
	for _, c := range []struct{ ram, want uint64 }{
		{0, 0}, {1, 64}, {PageSize, 64}, {PageSize + 1, 128}, {1 << 30, (1 << 18) * 64},
	} {
		if got := MetadataSizeFor(c.ram); got != c.want {
			t.Errorf("MetadataSizeFor(%d) = %d want %d", c.ram, got, c.want)
		}
	}
}

func TestInitMetadataAndGet(t *testing.T) {
	var empty MetaArray
	if _, err := empty.Get(0); err != ErrUninitialized {
		t.Errorf("Get on uninitialised array: %v", err)
	}
	a := newArena(t, 16*PageSize)
	var boot BootAllocator
	boot.Init([]Range{{0, 16 * PageSize}}, nil, nil)
	arr, _, err := InitMetadataArray(a.off, 0, &boot)
	if err != ErrNone || arr.FrameCount() != 0 {
		t.Fatalf("zero RAM: %v count %d", err, arr.FrameCount())
	}
	if _, err := arr.Get(0); err != ErrUninitialized {
		t.Errorf("zero RAM Get: %v", err)
	}
	arr, phys, err := InitMetadataArray(a.off, 10*PageSize+1, &boot)
	if err != ErrNone || arr.FrameCount() != 11 {
		t.Fatalf("init: %v count %d", err, arr.FrameCount())
	}
	if phys%PageSize != 0 || len(boot.Allocations()) != 1 {
		t.Errorf("metadata placement %#x allocs %v", phys, boot.Allocations())
	}
	for pfn := uint64(0); pfn < 11; pfn++ {
		m, err := arr.Get(pfn*PageSize + 123)
		if err != ErrNone || m.Next() != LinkNone || m.Prev() != LinkNone || m.Flags() != 0 || m.Order() != 0 || m.Refcount() != 0 {
			t.Errorf("pfn %d: fresh record wrong (%v)", pfn, err)
		}
	}
	if _, err := arr.Get(11 * PageSize); err != ErrInvalidAddress {
		t.Errorf("out of range Get: %v", err)
	}
	if _, err := arr.Get(^uint64(0)); err != ErrInvalidAddress {
		t.Errorf("huge Get: %v", err)
	}
}

func TestPhysFrame(t *testing.T) {
	if f := ContainingAddress(0x12345); f.StartAddress() != 0x12000 || f.PFN() != 0x12 {
		t.Errorf("ContainingAddress: %#x", f.StartAddress())
	}
	if _, err := FromStartAddress(0x12345); err != ErrInvalidAddress {
		t.Errorf("misaligned FromStartAddress: %v", err)
	}
	if f, err := FromStartAddress(0x3000); err != ErrNone || f.PFN() != 3 {
		t.Errorf("FromStartAddress: %v", err)
	}
	r := RangeInclusive(FrameFromPFN(2), FrameFromPFN(5))
	var got []uint64
	for f, ok := r.Next(); ok; f, ok = r.Next() {
		got = append(got, f.PFN())
	}
	if len(got) != 4 || got[0] != 2 || got[3] != 5 {
		t.Errorf("range: %v", got)
	}
	r = RangeInclusive(FrameFromPFN(5), FrameFromPFN(2))
	if _, ok := r.Next(); ok {
		t.Error("empty range yielded")
	}
	top := ContainingAddress(^uint64(0))
	r = RangeInclusive(top, top)
	n := 0
	for _, ok := r.Next(); ok && n < 10; _, ok = r.Next() {
		n++
	}
	if n != 1 {
		t.Errorf("range at top of address space yielded %d frames", n)
	}
}

func TestAllocErrorStrings(t *testing.T) {
	var e error = ErrOutOfMemory
	if e.Error() != "mm: out of memory" {
		t.Error(e.Error())
	}
	for k := ErrNone; k <= ErrReentered+1; k++ {
		if k.Error() == "" {
			t.Errorf("empty string for %d", k)
		}
	}
	for k := VNone; k <= numViolationKinds; k++ {
		if k.String() == "" || (k != VNone && k < numViolationKinds && (k.String() == "unknown" || k.Field() == "")) {
			t.Errorf("kind %d: %q %q", k, k.String(), k.Field())
		}
	}
}
