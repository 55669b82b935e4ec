package mm

import "testing"

// TestSetupPlacesMetadataPastBadFrames: bad frames where the boot
// allocator would put the metadata array and the state are skipped, so
// neither covers a bad frame; the bad frames are POISONED and the result
// checks clean.
func TestSetupPlacesMetadataPastBadFrames(t *testing.T) {
	const frames = 4096
	ram := []Range{{0, frames * PageSize}}
	inUse := []Range{{0, 16 * PageSize}}
	clean := newEnv(t, frames*PageSize, ram, inUse, nil)
	meta, _, state := clean.b.Registration()
	if meta != 16*PageSize {
		t.Fatalf("without bad frames the metadata is at %#x, want %#x", meta, 16*PageSize)
	}
	metaFrames := uint64(frames * FrameMetaSize / PageSize)
	bad := []uint64{16 * PageSize, (16 + metaFrames + 1) * PageSize, state + 8} // under the array, under it once moved, under the state
	e := newEnv(t, frames*PageSize, ram, inUse, bad)
	e.check(t)
	meta, n, state := e.b.Registration()
	for _, a := range bad {
		p := a >> PageShift
		if p >= meta>>PageShift && p < FrameCountFor(meta+n*FrameMetaSize) || p == state>>PageShift {
			t.Errorf("bad frame %#x under the metadata [%#x, %#x) or state %#x", p, meta, meta+n*FrameMetaSize, state)
		}
		if f, _ := e.b.FlagsOf(FrameFromPFN(p)); f != FlagPoisoned {
			t.Errorf("bad frame %#x: flags %#x", p, f)
		}
	}
}

// AllocMeta gives an array of at least MetaAlign bytes a MetaAlign-aligned
// place when there is one (the frames skipped stay free), falls back to
// page alignment when there is none, and page-aligns smaller arrays.
func TestAllocMetaAlignsLargeArrays(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name      string
		ram       []Range // {Base, Size}
		size      uint64
		want      uint64
		wantAfter uint64 // the next page-sized Alloc
	}{
		{"aligned room", []Range{{mib, 7 * mib}}, MetaAlign, 2 * mib, 4 * mib},
		{"no aligned room", []Range{{mib, 3*mib - PageSize}}, MetaAlign, mib, mib + MetaAlign},
		{"aligned room in a later range", []Range{{mib, mib}, {3 * mib, 4 * mib}}, MetaAlign, 4 * mib, 6 * mib},
		{"small array", []Range{{mib, 7 * mib}}, MetaAlign - PageSize, mib, mib + MetaAlign - PageSize},
	} {
		var boot BootAllocator
		boot.Init(c.ram, nil, nil)
		got, err := boot.AllocMeta(c.size)
		if err != ErrNone || got != c.want {
			t.Errorf("%s: AllocMeta(%#x) = %#x, %v; want %#x", c.name, c.size, got, err, c.want)
			continue
		}
		if next, err := boot.Alloc(PageSize, PageSize); err != ErrNone || next != c.wantAfter {
			t.Errorf("%s: next Alloc = %#x, %v; want %#x", c.name, next, err, c.wantAfter)
		}
	}

	// A whole setup: 32768 frames need a 2 MiB array, placed at 2 MiB past
	// the in-use first MiB; the frames between stay free and it checks clean.
	const frames = 32768
	e := newEnv(t, frames*PageSize, []Range{{0, frames * PageSize}}, []Range{{0, mib}}, nil)
	e.check(t)
	if meta, _, _ := e.b.Registration(); meta != 2*mib {
		t.Fatalf("metadata at %#x, want %#x", meta, 2*mib)
	}
	for pfn := uint64(mib >> PageShift); pfn < 2*mib>>PageShift; pfn++ {
		if f, _ := e.b.FlagsOf(FrameFromPFN(pfn)); f != FlagFree {
			t.Fatalf("frame %#x below the aligned array: flags %#x, want free", pfn, f)
		}
	}
}
