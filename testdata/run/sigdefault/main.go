// Command sigdefault puts SIGSEGV back to its default action behind the Go
// runtime's back (a raw rt_sigaction), then dereferences nil: with no
// handler to run, the kernel kills it with SIGSEGV, on Linux as under vmm run.
package main

import (
	"fmt"
	"syscall"
	"unsafe"
)

type T struct{ x int }

var p *T

func main() {
	var act [4]uint64 // handler SIG_DFL, flags, restorer, mask
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGSEGV), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
		fmt.Println("rt_sigaction:", e)
		return
	}
	fmt.Println("before")
	fmt.Println(p.x)
}
