package diag

import (
	"encoding/binary"
	"slices"
	"testing"
)

// memImage is guest memory [base, base+len(data)) for tests; reads outside
// it fail.
type memImage struct {
	base uint64
	data []byte
}

func (m *memImage) read(gva uint64, buf []byte) bool {
	if gva < m.base {
		return false
	}
	off := gva - m.base
	if off > uint64(len(m.data)) || uint64(len(buf)) > uint64(len(m.data))-off {
		return false
	}
	copy(buf, m.data[off:])
	return true
}

// frame writes a frame record (saved rbp, return address) at gva.
func (m *memImage) frame(gva, savedRBP, ret uint64) {
	off := gva - m.base
	binary.LittleEndian.PutUint64(m.data[off:], savedRBP)
	binary.LittleEndian.PutUint64(m.data[off+8:], ret)
}

func newImage() *memImage { return &memImage{base: 0x9000, data: make([]byte, 0x1000)} }

func TestBacktrace(t *testing.T) {
	const rip = 0x401005
	tests := []struct {
		name  string
		setup func(m *memImage)
		rbp   uint64
		max   int
		want  []uint64
	}{
		{
			name: "three frames",
			setup: func(m *memImage) {
				m.frame(0x9100, 0x9200, 0x401050)
				m.frame(0x9200, 0x9300, 0x401090)
				m.frame(0x9300, 0, 0x4010c0)
			},
			rbp: 0x9100, want: []uint64{rip, 0x401050, 0x401090, 0x4010c0},
		},
		{
			name: "chain ends in zero return address",
			setup: func(m *memImage) {
				m.frame(0x9100, 0x9200, 0x401050)
				m.frame(0x9200, 0x9300, 0)
			},
			rbp: 0x9100, want: []uint64{rip, 0x401050},
		},
		{
			name: "cycle",
			setup: func(m *memImage) {
				m.frame(0x9100, 0x9200, 0x401050)
				m.frame(0x9200, 0x9100, 0x401090) // points back down
			},
			rbp: 0x9100, want: []uint64{rip, 0x401050, 0x401090},
		},
		{
			name:  "self loop",
			setup: func(m *memImage) { m.frame(0x9100, 0x9100, 0x401050) },
			rbp:   0x9100, want: []uint64{rip, 0x401050},
		},
		{
			name: "unreadable next frame",
			setup: func(m *memImage) {
				m.frame(0x9100, 0x9200, 0x401050)
				m.frame(0x9200, 0xdead0000, 0x401090)
			},
			rbp: 0x9100, want: []uint64{rip, 0x401050, 0x401090},
		},
		{
			name:  "unreadable first frame",
			setup: func(m *memImage) {},
			rbp:   0x1000, want: []uint64{rip},
		},
		{
			name:  "frame record straddles end of memory",
			setup: func(m *memImage) {},
			rbp:   0x9ff8, want: []uint64{rip},
		},
		{
			name:  "rbp zero",
			setup: func(m *memImage) { m.frame(0x9000, 0x9100, 0x401050) },
			rbp:   0, want: []uint64{rip},
		},
		{
			name:  "misaligned rbp",
			setup: func(m *memImage) { m.frame(0x9104, 0x9200, 0x401050) },
			rbp:   0x9104, want: []uint64{rip},
		},
		{
			name:  "rbp near 2^64",
			setup: func(m *memImage) {},
			rbp:   ^uint64(0) - 7, want: []uint64{rip},
		},
		{
			name: "max frames",
			setup: func(m *memImage) {
				m.frame(0x9100, 0x9200, 0x401050)
				m.frame(0x9200, 0x9300, 0x401090)
				m.frame(0x9300, 0, 0x4010c0)
			},
			rbp: 0x9100, max: 2, want: []uint64{rip, 0x401050},
		},
		{
			name: "long increasing chain stops at default max",
			setup: func(m *memImage) {
				for a := uint64(0x9000); a < 0x9ff0; a += 16 {
					m.frame(a, a+16, 0x401000+a)
				}
			},
			rbp: 0x9000, want: nil, // checked by length below
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newImage()
			tt.setup(m)
			got := Backtrace(m.read, rip, tt.rbp, tt.max)
			if tt.want == nil {
				if len(got) != DefaultMaxFrames {
					t.Errorf("got %d frames, want %d", len(got), DefaultMaxFrames)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Backtrace = %#x, want %#x", got, tt.want)
			}
		})
	}
	if got := Backtrace(nil, rip, 0x9100, 5); !slices.Equal(got, []uint64{rip}) {
		t.Errorf("nil read: %#x", got)
	}
}

func FuzzBacktrace(f *testing.F) {
	m := newImage()
	m.frame(0x9100, 0x9200, 0x401050)
	m.frame(0x9200, 0x9100, 0x401090)
	f.Add(m.data, uint64(0x9000), uint64(0x9100), 0)
	f.Add([]byte{}, uint64(0), uint64(8), 3)
	f.Fuzz(func(t *testing.T, data []byte, base, rbp uint64, max int) {
		m := &memImage{base: base, data: data}
		reads := 0
		read := func(gva uint64, buf []byte) bool { reads++; return m.read(gva, buf) }
		got := Backtrace(read, 0x401000, rbp, max)
		limit := max
		if limit <= 0 {
			limit = DefaultMaxFrames
		}
		if len(got) < 1 || len(got) > limit || reads > limit {
			t.Fatalf("Backtrace: %d frames, %d reads, limit %d", len(got), reads, limit)
		}
	})
}
