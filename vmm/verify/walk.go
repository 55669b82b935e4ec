package verify

import (
	"encoding/binary"
	"slices"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
)

// x86-64 page-table entry bits, from the guest ABI.
const (
	ptePresent  = firmware.PTEPresent
	pteWritable = firmware.PTEWritable
	pteUser     = firmware.PTEUser
	pteHuge     = firmware.PTEHuge
	pteAddr     = firmware.PTEAddrMask
)

// Walk limits: a hostile guest can point every entry of every level at the
// same table, so both the tables visited and the leaf entries seen are
// capped (a huge page is one leaf entry).
const (
	maxTableVisits = 1 << 20
	maxLeafEntries = 1 << 26
)

// Visitor receives what a page-table walk finds. Table is called for every
// table page (level 4 = PML4 ... 1 = PT) with the first virtual address it
// covers; Leaf for every present leaf entry mapping n frames from first.
// Either may be nil.
type Visitor struct {
	Table func(root, phys uint64, level int, va uint64)
	Leaf  func(root, va, first, n uint64, writable, user bool)
}

type walk struct {
	mem           Memory
	skip          []uint64
	v             Visitor
	tables, leafs int
	truncated     bool
}

// Walk walks the 4-level page tables of every root, reading guest memory as
// bytes. It does not descend into the tables listed in skip (tables every
// address space shares, like the kernel's physmap), skips tables it
// cannot read, and reports whether a limit cut the walk short.
func Walk(mem Memory, roots, skip []uint64, v Visitor) (truncated bool) {
	w := &walk{mem: mem, skip: skip, v: v}
	for _, r := range roots {
		w.table(r, r&pteAddr, 4, 0, true, true)
	}
	return w.truncated
}

// canonical sign-extends a 48-bit virtual address.
func canonical(va uint64) uint64 {
	if va&(1<<47) != 0 {
		return va | 0xffff<<48
	}
	return va
}

// table visits the table at phys; user and writable are the permissions
// accumulated from the upper levels (x86 ANDs them down the walk).
func (w *walk) table(root, phys uint64, level int, va uint64, user, writable bool) {
	if w.tables >= maxTableVisits || w.leafs >= maxLeafEntries {
		w.truncated = true
		return
	}
	w.tables++
	if w.v.Table != nil {
		w.v.Table(root, phys, level, canonical(va))
	}
	b, err := w.mem.Slice(phys, mm.PageSize)
	if err != nil {
		return
	}
	shift := uint(12 + 9*(level-1))
	for i := uint64(0); i < 512 && !w.truncated; i++ {
		e := binary.LittleEndian.Uint64(b[i*8:])
		if e&ptePresent == 0 || slices.Contains(w.skip, e&pteAddr) {
			continue
		}
		u, wr := user && e&pteUser != 0, writable && e&pteWritable != 0
		eva := va | i<<shift
		if level == 1 || (e&pteHuge != 0 && (level == 2 || level == 3)) {
			if w.leafs++; w.leafs > maxLeafEntries {
				w.truncated = true
				return
			}
			if w.v.Leaf != nil {
				n := uint64(1) << (9 * (level - 1))
				// &^(n-1): bit 12 of a huge entry is PAT, not address.
				w.v.Leaf(root, canonical(eva), (e&pteAddr)/mm.PageSize&^(n-1), n, wr, u)
			}
			continue
		}
		w.table(root, e&pteAddr, level-1, eva, u, wr)
	}
}
