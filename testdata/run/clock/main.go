// Command clock reads the clocks the way Go programs do, many times: the
// monotonic clock never goes back, a sleep lasts at least as long as asked,
// and the wall clock read by time.Now (through the vDSO where there is one)
// agrees with clock_gettime(CLOCK_REALTIME) made as a real system call
// between two time.Now calls (to within that call's round trip).
package main

import (
	"fmt"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	const n = 200000
	prev := time.Now()
	back := 0
	for i := 0; i < n; i++ {
		now := time.Now()
		if now.Before(prev) {
			back++
		}
		prev = now
	}
	fmt.Println("reads", n, "backwards", back)
	t0 := time.Now()
	time.Sleep(20 * time.Millisecond)
	fmt.Println("slept at least 20ms:", time.Since(t0) >= 20*time.Millisecond)
	disorder := 0
	for i := 0; i < 1000; i++ {
		a := time.Now().UnixNano()
		var ts syscall.Timespec
		if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 0, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
			fmt.Println("clock_gettime:", e)
			return
		}
		c := time.Now().UnixNano()
		if b := ts.Nano(); a > b || b > c {
			disorder++
		}
	}
	fmt.Println("time.Now and clock_gettime(CLOCK_REALTIME) out of order:", disorder)
	fmt.Println("wall clock after 2025:", time.Now().Year() > 2025)
}
