// Command getpid times a system-call round trip: N getpid calls, timed by
// the program's own clock (on the host through the vDSO; under vmm run each
// clock read is a system call too, two in all).
package main

import (
	"fmt"
	"syscall"
	"time"
)

func main() {
	const n = 200000
	start := time.Now()
	for i := 0; i < n; i++ {
		syscall.Getpid()
	}
	fmt.Printf("getpid: %d calls, %.0f ns each\n", n, float64(time.Since(start).Nanoseconds())/n)
}
