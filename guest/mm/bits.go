package mm

import "math/bits"

//go:nosplit
func trailingZeros64(x uint64) int { return bits.TrailingZeros64(x) }
