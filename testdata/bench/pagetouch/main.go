// Command pagetouch measures what the first write to a page of fresh
// anonymous memory costs: it maps MIB MiB (default 128), writes one byte
// per 4 KiB page, writes them again (mapped: the floor), then gives the
// pages back with MADV_DONTNEED and writes them a third time (faulted in
// again, now without the host's own first touch of that memory). Usage:
// pagetouch [MIB]. The figures go to stderr, as "pagetouch: ...".
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	mib := 128
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 1 {
			fmt.Fprintln(os.Stderr, "usage: pagetouch [MIB]")
			os.Exit(2)
		}
		mib = v
	}
	size := mib << 20
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pagetouch: mmap:", err)
		os.Exit(1)
	}
	pages := size / 4096
	pass := func(v byte) float64 {
		start := time.Now()
		for i := 0; i < size; i += 4096 {
			b[i] = v
		}
		return float64(time.Since(start).Nanoseconds()) / float64(pages)
	}
	first := pass(1)
	again := pass(2)
	if err := syscall.Madvise(b, syscall.MADV_DONTNEED); err != nil {
		fmt.Fprintln(os.Stderr, "pagetouch: madvise:", err)
		os.Exit(1)
	}
	refault := pass(3)
	fmt.Fprintf(os.Stderr, "pagetouch: %d pages, first write %.0f ns, mapped %.0f ns, after MADV_DONTNEED %.0f ns a page\n", pages, first, again, refault)
}
