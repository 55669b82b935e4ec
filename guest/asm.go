package main

// Implemented in entry_amd64.s.

func cpuBlock() uintptr
func ring(addr, val uint64)
func rdtsc() uint64
func cpuPause()
func faultNilWrite()
func faultUD()
