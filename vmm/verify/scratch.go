package verify

import (
	"sync"

	"github.com/vmm-dev/vmm/guest/mm"
)

// The per-frame arrays of a verification (free-list orders, cached
// frames, owners, mapping counts) come from pools and go back when the
// report is built: allocated afresh at every checkpoint they cost a page
// fault a page (16 GiB of guest: some 30 MiB). The garbage collector may
// drop pooled arrays; get then allocates.
type arrayPool[T any] struct{ p sync.Pool }

var (
	bytePool   arrayPool[uint8]
	boolPool   arrayPool[bool]
	uint32Pool arrayPool[uint32]
	uint64Pool arrayPool[uint64]
)

// get returns a zeroed array of n elements.
func (p *arrayPool[T]) get(n uint64) []T {
	if a, _ := p.p.Get().(*[]T); a != nil {
		if uint64(cap(*a)) >= n {
			s := (*a)[:n]
			clear(s)
			return s
		}
		p.p.Put(a) // too small for this guest: leave it for a smaller one
	}
	return make([]T, n)
}

// put returns s to the pool; nothing may use it afterwards.
func (p *arrayPool[T]) put(s []T) {
	if cap(s) > 0 {
		p.p.Put(&s)
	}
}

// scratch is the rest of a verification's working memory that does not
// grow with the guest (guest/mm's violation list, the flags histogram, the
// pieces' states): some 50 KiB, which a fresh allocation at every
// checkpoint pays for in page faults.
type scratch struct {
	out    [MaxListed]mm.Violation // only the first total entries are read
	hist   histogram
	pieces []piece
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}
