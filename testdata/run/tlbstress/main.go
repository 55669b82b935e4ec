// Command tlbstress checks that a page given back with madvise(DONTNEED)
// is no longer reachable from another thread. One thread (locked to its OS
// thread, so on another CPU when there are several) keeps storing a marker
// into page P; the main thread repeatedly drops P's frame with
// MADV_DONTNEED and then maps, touches and inspects a fresh page Q, which
// is likely to get P's old frame. If a CPU kept a stale translation for P
// after the madvise returned, the marker shows up in Q. It prints "ok" and
// counts, or the first corruption it saw (and exits 1).
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

const marker = 0x5afe5afe5afe5afe

// storeMarker is a call, not inlined: its prologue is where the Go
// scheduler can stop this goroutine for a GC (vmm run does not deliver the
// SIGURG of asynchronous preemption).
//
//go:noinline
func storeMarker(w *uint64) {
	for i := 0; i < 64; i++ {
		atomic.StoreUint64(w, marker)
	}
}

func main() {
	page := syscall.Getpagesize()
	p, err := syscall.Mmap(-1, 0, page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fmt.Println("mmap:", err)
		os.Exit(1)
	}
	word := (*uint64)(unsafe.Pointer(&p[0]))
	var stop, started atomic.Bool
	done := make(chan uint64)
	go func() {
		runtime.LockOSThread()
		stores := uint64(0)
		for !stop.Load() {
			storeMarker(word)
			stores++
			started.Store(true)
		}
		done <- stores
	}()
	for !started.Load() {
		runtime.Gosched()
	}
	const rounds = 3000
	bad := 0
	for r := 0; r < rounds && bad == 0; r++ {
		if err := syscall.Madvise(p, syscall.MADV_DONTNEED); err != nil {
			fmt.Println("madvise:", err)
			os.Exit(1)
		}
		q, err := syscall.Mmap(-1, 0, page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			fmt.Println("mmap:", err)
			os.Exit(1)
		}
		qw := (*[512]uint64)(unsafe.Pointer(&q[0]))
		qw[511] = 1 // fault it in
		for spin := 0; spin < 2000; spin++ {
			if atomic.LoadUint64(&qw[0]) != 0 {
				break
			}
		}
		if v := atomic.LoadUint64(&qw[0]); v != 0 {
			fmt.Printf("round %d: a fresh page holds %#x: another thread still wrote through a stale translation\n", r, v)
			bad++
		}
		if err := syscall.Munmap(q); err != nil {
			fmt.Println("munmap:", err)
			os.Exit(1)
		}
	}
	stop.Store(true)
	stores := <-done
	if bad != 0 {
		os.Exit(1)
	}
	fmt.Println("ok:", rounds, "rounds, writer ran:", stores > 0)
}
