// Command allocmix is an allocation-heavy program of another shape than
// binary-trees: buffers of mixed sizes (64 B to 256 KiB) and small maps,
// kept in a sliding window of LIVE MiB (default 32) so that the heap grows,
// is collected and is reused, as a server's request buffers are. Usage:
// allocmix [TOTAL_MIB [LIVE_MIB]] (default 2048 32). The checksum goes to
// stdout, the elapsed time to stderr.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func arg(i, def int) int {
	if len(os.Args) <= i {
		return def
	}
	v, err := strconv.Atoi(os.Args[i])
	if err != nil || v < 1 {
		fmt.Fprintln(os.Stderr, "usage: allocmix [TOTAL_MIB [LIVE_MIB]]")
		os.Exit(2)
	}
	return v
}

func main() {
	start := time.Now()
	total, live := arg(1, 2048)<<20, arg(2, 32)<<20
	const slots = 1024
	var window [slots][]byte
	var held int
	rng := uint64(0x9e3779b97f4a7c15)
	sum, allocated, maps := 0, 0, 0
	for i := 0; allocated < total; i++ {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		size := 64 << (rng % 13) // 64 B .. 256 KiB
		s := i % slots
		held -= len(window[s])
		window[s] = nil
		if held+size > live {
			// Drop the oldest-looking half to stay within the window.
			for j := range slots / 2 {
				k := (s + 1 + j) % slots
				held -= len(window[k])
				window[k] = nil
			}
		}
		b := make([]byte, size)
		for j := 0; j < size; j += 512 {
			b[j] = byte(i + j)
		}
		window[s] = b
		held += size
		allocated += size
		sum += int(b[size/2])
		if i%64 == 0 {
			m := make(map[int]int, 16)
			for j := range 64 {
				m[j*i] = j
			}
			sum += len(m)
			maps++
		}
	}
	fmt.Printf("allocmix: %d MiB allocated, live window %d MiB, %d maps, sum %d\n", total>>20, live>>20, maps, sum)
	fmt.Fprintf(os.Stderr, "allocmix: %d ms\n", time.Since(start).Milliseconds())
}
