package main

import "github.com/vmm-dev/vmm/internal/safefile"

// maxKernel bounds a --kernel file; it must also fit in guest RAM.
const maxKernel = 256 << 20

// readKernel reads a --kernel file: a regular file of at most maxKernel
// bytes and at most memBytes (what is loaded must fit in guest RAM, and
// the file is at least that).
func readKernel(path string, memBytes uint64) ([]byte, error) {
	return safefile.ReadRegular(path, int64(min(maxKernel, memBytes)))
}
