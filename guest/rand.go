package main

// rng is a xorshift64* generator: deterministic workloads, no runtime.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s ^= r.s >> 12
	r.s ^= r.s << 25
	r.s ^= r.s >> 27
	return r.s * 2685821657736338717
}

// below returns a value in [0, n).
func (r *rng) below(n uint64) uint64 { return r.next() % n }
