// Command recover survives its own faults: a nil dereference, a write to a
// read-only page and a hardware division by zero (divZero, in assembly: Go
// code checks its divisors itself) each become a Go panic (the runtime's SIGSEGV
// handler, entered through the kernel's signal frame) that recover stops;
// the program then carries on, its goroutines and heap intact, and exits 0.
package main

import (
	"fmt"
	"runtime/debug"
	"syscall"
	"unsafe"
)

type T struct{ x int }

var p *T

func nilDeref() (err any) {
	defer func() { err = recover() }()
	return p.x
}

func divZero() // div_amd64.s: DIVQ by zero, a #DE

func div() (err any) {
	defer func() { err = recover() }()
	divZero()
	return nil
}

// readOnlyWrite writes to a PROT_READ page: a fault at a high address,
// which Go turns into a panic only under SetPanicOnFault.
func readOnlyWrite() (err any, ok bool) {
	b, e := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if e != nil {
		return e, false
	}
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		err = recover()
		if re, isAddr := err.(interface{ Addr() uintptr }); isAddr {
			ok = re.Addr() == uintptr(unsafe.Pointer(&b[0]))
		}
	}()
	b[0] = 1
	return nil, false
}

func main() {
	for i := 0; i < 3; i++ {
		fmt.Println("recovered:", nilDeref())
	}
	fmt.Println("divide:", div())
	err, ok := readOnlyWrite()
	fmt.Println("read-only write:", err, "at the page:", ok)
	done := make(chan int)
	go func() {
		defer func() { done <- len(fmt.Sprint(recover())) }()
		fmt.Println(p.x)
	}()
	fmt.Println("in a goroutine:", <-done > 0)
	fmt.Println("after")
}
