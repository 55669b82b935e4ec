// Command heaphold holds a live heap of MIB MiB (every page written) for
// SECONDS seconds of the program's clock, busy without allocating, so that
// a host verifying memory periodically (vmm run --verify-every) checks an
// address space of that size several times. Usage: heaphold MIB [SECONDS]
// (default 1 second).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: heaphold MIB [SECONDS]")
		os.Exit(2)
	}
	mib, err := strconv.Atoi(os.Args[1])
	secs := 1.0
	if len(os.Args) > 2 {
		secs, _ = strconv.ParseFloat(os.Args[2], 64)
	}
	if err != nil || mib < 1 || secs <= 0 {
		fmt.Fprintln(os.Stderr, "usage: heaphold MIB [SECONDS]")
		os.Exit(2)
	}
	chunks := make([][]byte, mib)
	for i := range chunks {
		chunks[i] = make([]byte, 1<<20)
		for j := 0; j < len(chunks[i]); j += 4096 {
			chunks[i][j] = byte(i)
		}
	}
	runtime.GC()
	// Busy, not asleep: vmm run checks at timer ticks that interrupt the
	// program, and a sleeping program is not interrupted.
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	spins := 0
	for time.Now().Before(deadline) {
		for range 1 << 16 {
			spins++
		}
	}
	sum := spins & 0
	for i := range chunks {
		sum += int(chunks[i][4096])
	}
	fmt.Printf("heaphold: %d MiB held, sum %d\n", mib, sum)
}
