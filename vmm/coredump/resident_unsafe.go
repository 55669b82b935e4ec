package coredump

import (
	"bufio"
	"encoding/binary"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Which pages of guest RAM can hold data. Guest RAM is an anonymous
// MAP_NORESERVE mapping: a page that was never touched (by the guest
// through KVM, or by the VMM) has no host page and reads as zero, so the
// dump need not read it. Asking the kernel which pages exist costs one byte
// (mincore) or eight (pagemap) per page instead of faulting in and
// zero-testing 4 KiB.

// residency returns one byte per page of data, non-zero where the page may
// hold data, or nil when that cannot be known (data not page-aligned, the
// query failed): then every page must be tested.
func residency(data []byte) []byte {
	var vec []byte
	return residencyInto(data, &vec)
}

// residencyWindow is how much of guest RAM one residency query covers: the
// dump asks window by window, reusing one 64 KiB vector that stays in
// cache, instead of allocating (and faulting in) a byte per page of all
// RAM, 4 MiB at 16 GiB.
const residencyWindow = 256 << 20

// residencyInto is residency with the vector taken from, and grown in,
// *vec; the result aliases it.
func residencyInto(data []byte, vec *[]byte) []byte {
	if len(data) == 0 || uintptr(unsafe.Pointer(&data[0]))%pageSize != 0 {
		return nil
	}
	pages := (len(data) + pageSize - 1) / pageSize
	if cap(*vec) < pages {
		*vec = make([]byte, pages)
	}
	v := (*vec)[:pages]
	if swapOn() {
		return pagemapResidency(data, v)
	}
	return mincoreResidency(data, v)
}

// mincoreResidency: mincore(2) reports a page resident when a host page
// backs it. A swapped-out anonymous page reads as not resident (unless in
// the swap cache), so this is only exact without swap.
func mincoreResidency(data, vec []byte) []byte {
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)),
		uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return nil
	}
	for i := range vec {
		vec[i] &= 1 // the other bits are reserved
	}
	return vec
}

// pagemapResidency reads /proc/self/pagemap: a page may hold data when it
// is present or swapped (bits 63 and 62).
func pagemapResidency(data, vec []byte) []byte {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil
	}
	defer f.Close()
	pages := len(vec)
	buf := make([]byte, 8<<10*8)
	first := int64(uintptr(unsafe.Pointer(&data[0])) / pageSize)
	for p := 0; p < pages; {
		n := min(pages-p, len(buf)/8)
		if _, err := f.ReadAt(buf[:8*n], (first+int64(p))*8); err != nil {
			return nil
		}
		for i := range n {
			vec[p+i] = 0 // the vector is reused: every byte is set
			if binary.LittleEndian.Uint64(buf[8*i:])&(3<<62) != 0 {
				vec[p+i] = 1
			}
		}
		p += n
	}
	return vec
}

// forcePagemap makes residency use pagemap even without swap (tests).
var forcePagemap bool

var swapOnce = sync.OnceValue(func() bool {
	f, err := os.Open("/proc/swaps")
	if err != nil {
		return true // unknown: take the path that is exact with swap
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	lines := 0
	for s.Scan() {
		lines++
	}
	return lines > 1 // a header line, then one line per swap area
})

func swapOn() bool { return forcePagemap || swapOnce() }
