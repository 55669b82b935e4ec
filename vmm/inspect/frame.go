package inspect

import (
	"fmt"
	"io"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/memmap"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// maxListedMappings bounds FrameInfo.Mappings (all are counted).
const maxListedMappings = 64

// Mapping is one virtual address at which a frame is mapped.
type Mapping struct {
	Root     uint64 `json:"root"`
	Space    string `json:"space"` // "registered", "extra" or "cr3 of vcpu N"
	VA       uint64 `json:"va"`
	PageSize uint64 `json:"page_size"`
	Writable bool   `json:"writable"`
	User     bool   `json:"user"`
}

// TableUse says that a frame is a page-table page of an address space.
type TableUse struct {
	Root  uint64 `json:"root"`
	Space string `json:"space"`
	Level int    `json:"level"` // 4 = PML4 ... 1 = PT
	VA    uint64 `json:"va"`    // first virtual address the table covers
}

// FrameInfo is one frame's metadata record decoded, plus its uses.
type FrameInfo struct {
	PFN        uint64  `json:"pfn"`
	Phys       uint64  `json:"phys"`
	Memory     string  `json:"memory"` // memory-map kind: "usable", "reserved", "not in map"
	RecordPhys uint64  `json:"record_phys"`
	Raw        []byte  `json:"raw"`
	Next       *uint64 `json:"next"` // nil: LinkNone
	Prev       *uint64 `json:"prev"`
	Flags      uint32  `json:"flags"`
	FlagNames  string  `json:"flag_names"`
	Order      uint8   `json:"order"` // raw byte; OrderTail for tails
	Tail       bool    `json:"tail"`
	Reserved   uint32  `json:"reserved"` // bytes 21..23
	Refcount   uint32  `json:"refcount"`
	BlockHead  *uint64 `json:"block_head,omitempty"` // head of the block a tail belongs to
	BlockOrder uint8   `json:"block_order,omitempty"`
	// IdentityMapped says the kernel's physmap (va == PhysMapBase + phys,
	// built by the VMM and shared by every address space) covers the frame; every
	// RAM frame is, so it is no use of the frame. Identity is that entry.
	IdentityMapped bool     `json:"identity_mapped"`
	Identity       *Mapping `json:"identity,omitempty"`
	// Mappings are the real mappings: page tables the guest built, outside
	// the identity map.
	Mappings  []Mapping  `json:"mappings"`
	MapCount  int        `json:"map_count"` // may exceed len(Mappings)
	Tables    []TableUse `json:"tables"`
	Truncated bool       `json:"walk_truncated,omitempty"`
}

// link turns a next/prev value into nil for LinkNone.
func link(v uint64) *uint64 {
	if v == mm.LinkNone {
		return nil
	}
	return &v
}

// Frame decodes the record of the frame holding physical address addr and
// finds where the registered (and extra) page tables map it.
func (in *Inspection) Frame(addr uint64) (FrameInfo, error) {
	v, err := in.view()
	if err != nil {
		return FrameInfo{}, err
	}
	pfn := addr / mm.PageSize
	if n := v.FrameCount(); pfn >= n {
		return FrameInfo{}, fmt.Errorf("address %#x is frame %#x, outside the metadata array (%#x frames, up to phys %#x)",
			addr, pfn, n, n*mm.PageSize)
	}
	fi := decodeRecord(&v, pfn)
	fi.RecordPhys = in.Info.Reg.MetaPhys + pfn*mm.FrameMetaSize
	fi.Memory = in.memoryKind(fi.Phys)
	if fi.Tail {
		if h, k, ok := v.BlockOf(pfn); ok {
			fi.BlockHead, fi.BlockOrder = &h, k
		}
	}
	in.findUses(&fi)
	return fi, nil
}

// decodeRecord decodes record pfn (pfn < v.FrameCount()).
func decodeRecord(v *mm.View, pfn uint64) FrameInfo {
	r, _ := v.Record(pfn)
	fi := FrameInfo{PFN: pfn, Phys: pfn * mm.PageSize, Raw: append([]byte(nil), v.RecordBytes(pfn)...),
		Next: link(r.Next), Prev: link(r.Prev), Flags: r.Flags, Order: r.Order, Reserved: r.Reserved,
		Refcount: r.Refcount, Tail: r.IsTail()}
	fi.FlagNames = verify.FlagNames(fi.Flags)
	return fi
}

// memoryKind names the memory-map range holding phys.
func (in *Inspection) memoryKind(phys uint64) string {
	for _, r := range in.Info.Map {
		if (memmap.Range{Base: r.Base, Size: r.Size}).Contains(phys, 1) {
			return r.Kind.String()
		}
	}
	return "not in map"
}

// findUses walks every root once, recording the mappings of the frame and
// the tables that live in it, apart from the shared identity map, which is
// walked on its own.
func (in *Inspection) findUses(fi *FrameInfo) {
	pfn := fi.PFN
	roots, label := in.spaces()
	identity := verify.Walk(in.mem, []uint64{firmware.PageTableBase}, nil, verify.Visitor{
		Leaf: func(root, va, first, n uint64, writable, user bool) {
			if pfn >= first && pfn-first < n && va == firmware.PhysToVirt(first*mm.PageSize) && fi.Identity == nil {
				fi.IdentityMapped = true
				fi.Identity = &Mapping{Root: root, Space: "identity map", VA: va + (pfn-first)*mm.PageSize,
					PageSize: n * mm.PageSize, Writable: writable, User: user}
			}
		},
	})
	fi.Truncated = identity || verify.Walk(in.mem, roots, []uint64{firmware.KernelPDPT}, verify.Visitor{
		Table: func(root, phys uint64, level int, va uint64) {
			if phys/mm.PageSize == pfn && len(fi.Tables) < maxListedMappings {
				fi.Tables = append(fi.Tables, TableUse{Root: root, Space: label[root], Level: level, VA: va})
			}
		},
		Leaf: func(root, va, first, n uint64, writable, user bool) {
			if pfn < first || pfn-first >= n {
				return
			}
			fi.MapCount++
			if len(fi.Mappings) < maxListedMappings {
				fi.Mappings = append(fi.Mappings, Mapping{Root: root, Space: label[root], VA: va + (pfn-first)*mm.PageSize,
					PageSize: n * mm.PageSize, Writable: writable, User: user})
			}
		},
	})
	if fi.Mappings == nil {
		fi.Mappings = []Mapping{}
	}
	if fi.Tables == nil {
		fi.Tables = []TableUse{}
	}
}

var levelNames = map[int]string{4: "PML4", 3: "PDPT", 2: "PD", 1: "PT"}

// WriteText prints the frame as "key: value" lines, readelf style.
func (fi *FrameInfo) WriteText(w io.Writer) {
	kv := func(k, format string, args ...any) {
		fmt.Fprintf(w, "%-13s "+format+"\n", append([]any{k + ":"}, args...)...)
	}
	kv("frame", "%#x (phys %#x-%#x, %s)", fi.PFN, fi.Phys, fi.Phys+mm.PageSize-1, fi.Memory)
	kv("record", "phys %#x, %d bytes", fi.RecordPhys, len(fi.Raw))
	for off := 0; off+16 <= len(fi.Raw); off += 16 {
		kv(fmt.Sprintf("raw +%#02x", off), "% x", fi.Raw[off:off+16])
	}
	kv("next", "%s", linkText(fi.Next))
	kv("prev", "%s", linkText(fi.Prev))
	kv("flags", "%#x %s", fi.Flags, fi.FlagNames)
	switch {
	case fi.Tail && fi.BlockHead != nil:
		kv("order", "tail (block head %#x, order %d)", *fi.BlockHead, fi.BlockOrder)
	case fi.Tail:
		kv("order", "tail (no block head found)")
	default:
		kv("order", "%d (block of %d frame%s)", fi.Order, uint64(1)<<min(fi.Order, 63), plural(fi.Order))
	}
	if fi.Reserved != 0 {
		kv("reserved", "%#x (bytes 21..23, must be zero)", fi.Reserved)
	}
	kv("refcount", "%d", fi.Refcount)
	if m := fi.Identity; m != nil {
		kv("identity map", "va %#016x %s %s (%d KiB page), as every RAM frame: not a use", m.VA, rw(m.Writable), us(m.User), m.PageSize>>10)
	} else {
		kv("identity map", "not covered")
	}
	kv("mappings", "%d (outside the identity map)", fi.MapCount)
	for _, m := range fi.Mappings {
		kv("  mapped", "%s root %#x va %#016x %s %s (%d KiB page)", m.Space, m.Root, m.VA, rw(m.Writable), us(m.User), m.PageSize>>10)
	}
	for _, t := range fi.Tables {
		kv("page table", "%s root %#x level %d (%s) covering va %#016x", t.Space, t.Root, t.Level, levelNames[t.Level], t.VA)
	}
	if fi.Truncated {
		kv("warning", "page-table walk stopped at its limit; mappings may be incomplete")
	}
}

func linkText(p *uint64) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("%#x", *p)
}

func rw(b bool) string {
	if b {
		return "writable"
	}
	return "read-only"
}

func us(b bool) string {
	if b {
		return "user"
	}
	return "supervisor"
}

func plural(order uint8) string {
	if order == 0 {
		return ""
	}
	return "s"
}
