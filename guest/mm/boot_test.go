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
