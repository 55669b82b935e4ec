package inspect

import (
	"encoding/binary"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// x86-64 page-table entry bits.
const (
	ptePresent  = 1 << 0
	pteWritable = 1 << 1
	pteUser     = 1 << 2
	pteHuge     = 1 << 7
	pteAddr     = 0x000ffffffffff000
)

// Walk limits: a hostile dump can point every entry at the same table, so
// both the tables visited and the leaf entries seen are capped (leaves are
// visited as ranges, so a huge page costs one step).
const (
	maxTableVisits = 1 << 20
	maxLeafEntries = 1 << 26
)

// visitor receives what a page-table walk finds. table is called for every
// table page (level 4 = PML4 ... 1 = PT) with the first virtual address it
// covers; leaf for every present leaf entry mapping n frames from first.
type visitor struct {
	table func(root, phys uint64, level int, va uint64)
	leaf  func(root, va, first, n uint64, writable, user bool)
}

type walker struct {
	mem           verify.Memory
	v             visitor
	tables, leafs int
	truncated     bool
}

// walkRoots walks every root; it reports whether a limit cut the walk short.
func walkRoots(mem verify.Memory, roots []uint64, v visitor) (truncated bool) {
	w := &walker{mem: mem, v: v}
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

// table visits the table at phys; user/writable are the permissions
// accumulated from the upper levels (x86 ANDs them down the walk).
func (w *walker) table(root, phys uint64, level int, va uint64, user, writable bool) {
	if w.tables >= maxTableVisits || w.leafs >= maxLeafEntries {
		w.truncated = true
		return
	}
	w.tables++
	if w.v.table != nil {
		w.v.table(root, phys, level, canonical(va))
	}
	b, err := w.mem.Slice(phys, mm.PageSize)
	if err != nil {
		return // outside the dump: the verifier reports it
	}
	shift := uint(12 + 9*(level-1))
	for i := uint64(0); i < 512; i++ {
		e := binary.LittleEndian.Uint64(b[i*8:])
		if e&ptePresent == 0 {
			continue
		}
		u, wr := user && e&pteUser != 0, writable && e&pteWritable != 0
		eva := va | i<<shift
		switch {
		case level == 1 || (e&pteHuge != 0 && (level == 2 || level == 3)):
			w.leafs++
			if w.leafs > maxLeafEntries {
				w.truncated = true
				return
			}
			if w.v.leaf != nil {
				n := uint64(1) << (9 * (level - 1))
				w.v.leaf(root, canonical(eva), (e&pteAddr)/mm.PageSize&^(n-1), n, wr, u) // &^: bit 12 of a huge entry is PAT
			}
		case level > 1:
			w.table(root, e&pteAddr, level-1, eva, u, wr)
		}
		if w.truncated {
			return
		}
	}
}
