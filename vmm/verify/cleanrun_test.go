package verify

import (
	"encoding/binary"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
)

// TestSpecCleanRunStopsExactly: cleanRun tests frames in groups, so a
// frame that is not clean at each position of a group, in each field,
// and runs that end mid-group (at hi or at a block's end) must stop it
// exactly where a per-frame loop would.
func TestSpecCleanRunStopsExactly(t *testing.T) {
	const tail = uint32(mm.FlagAllocated)
	le := binary.LittleEndian
	dirty := []struct {
		name     string
		off, val int
	}{
		{"flags", mm.OffFlags, 0x7f},
		{"order", mm.OffOrder, 3},
		{"reserved order byte", mm.OffOrder + 3, 1},
		{"refcount", mm.OffRefcount + 3, 0x80},
		{"next", mm.OffNext, 0xfe},
		{"prev", mm.OffPrev + 7, 0x7f},
	}
	for end := uint64(1); end <= 3*specGroup+2; end++ {
		for p := uint64(0); p < end && p <= specGroup+1; p++ {
			// Clean records after end too, which the run must not count.
			meta := make([]byte, (end+specGroup+1)*mm.FrameMetaSize)
			for i := uint64(0); i < end+specGroup+1; i++ {
				r := meta[i*mm.FrameMetaSize:]
				le.PutUint64(r[mm.OffNext:], mm.LinkNone)
				le.PutUint64(r[mm.OffPrev:], mm.LinkNone)
				le.PutUint32(r[mm.OffFlags:], tail)
				r[mm.OffOrder] = mm.OrderTail
			}
			s := &specCheck{meta: meta}
			if got := s.cleanTails(p, end, tail); got != end {
				t.Fatalf("clean [%d,%d): stopped at %d", p, end, got)
			}
			for j := p; j <= end; j++ {
				for _, d := range dirty {
					b := &meta[j*mm.FrameMetaSize+uint64(d.off)]
					old := *b
					*b = byte(d.val)
					if got := s.cleanTails(p, end, tail); got != min(j, end) {
						t.Fatalf("[%d,%d) with %s at %d: stopped at %d", p, end, d.name, j, got)
					}
					*b = old
				}
			}
		}
	}
}
