package mm

import (
	"testing"
	"unsafe"
)

// TestCleanRunStopsExactly: cleanRun tests frames in groups, so a frame
// that is not clean at each position of a group, in each field, and runs
// that end mid-group (at hi or at a block's end) must stop it exactly
// where a per-frame loop would. The records after end are clean too, so
// a loop that reads past frame end-1 returns more than end.
func TestCleanRunStopsExactly(t *testing.T) {
	const fo = uint64(FlagAllocated) | uint64(OrderTail)<<32
	dirty := []struct {
		name string
		set  func(m *FrameMeta)
	}{
		{"flags", func(m *FrameMeta) { m.flags = FlagFree }},
		{"order", func(m *FrameMeta) { m.orderWord = 3 }},
		{"reserved order byte", func(m *FrameMeta) { m.orderWord |= 1 << 24 }},
		{"refcount", func(m *FrameMeta) { m.refcount = 1 << 31 }},
		{"next", func(m *FrameMeta) { m.next = 5 }},
		{"prev", func(m *FrameMeta) { m.prev = LinkNone - 1 }},
	}
	for end := uint64(1); end <= 3*cleanGroup+2; end++ {
		for p := uint64(0); p < end && p <= cleanGroup+1; p++ {
			recs := make([]FrameMeta, end+cleanGroup+1)
			b := recBase{unsafe.Pointer(&recs[0])}
			for i := range recs {
				recs[i] = FrameMeta{next: LinkNone, prev: LinkNone, flags: FlagAllocated, orderWord: uint32(OrderTail)}
			}
			if got := cleanRun(b, p, end, fo); got != end {
				t.Fatalf("clean [%d,%d): stopped at %d", p, end, got)
			}
			for j := p; j <= end; j++ {
				for _, d := range dirty {
					clean := recs[j]
					d.set(&recs[j])
					if got := cleanRun(b, p, end, fo); got != min(j, end) {
						t.Fatalf("[%d,%d) with %s at %d: stopped at %d", p, end, d.name, j, got)
					}
					recs[j] = clean
				}
			}
		}
	}
}
