package inspect

import (
	"fmt"
	"io"

	"github.com/vmm-dev/vmm/vmm/coredump"
)

// Header is the dump's metadata in a JSON-friendly shape.
type Header struct {
	Path         string                 `json:"path"`
	Reason       string                 `json:"reason"`
	VCPUs        []VCPU                 `json:"vcpus"`
	Memory       []Range                `json:"memory_map"`
	Registration *coredump.Registration `json:"registration"`
	Roots        []uint64               `json:"roots"`
}

// VCPU is the part of a vCPU's registers worth a first look.
type VCPU struct {
	Index int    `json:"index"`
	RIP   uint64 `json:"rip"`
	RSP   uint64 `json:"rsp"`
	CR3   uint64 `json:"cr3"`
	CR2   uint64 `json:"cr2"`
}

// Range is one memory-map range.
type Range struct {
	Base uint64 `json:"base"`
	Size uint64 `json:"size"`
	Kind string `json:"kind"`
}

// Header returns what the dump's notes say.
func (in *Inspection) Header() Header {
	h := Header{Path: in.Path, Reason: in.Info.Reason, Registration: in.Info.Reg,
		Roots: in.Info.Roots, VCPUs: []VCPU{}, Memory: []Range{}}
	if h.Roots == nil {
		h.Roots = []uint64{}
	}
	for _, v := range in.VCPUs {
		h.VCPUs = append(h.VCPUs, VCPU{Index: v.Index, RIP: v.RIP, RSP: v.RSP, CR3: v.CR3, CR2: v.CR2})
	}
	for _, r := range in.Info.Map {
		h.Memory = append(h.Memory, Range{Base: r.Base, Size: r.Size, Kind: r.Kind.String()})
	}
	return h
}

// WriteText prints the header as "key: value" lines, the memory map the
// way Linux prints the E820 table.
func (h *Header) WriteText(w io.Writer) {
	fmt.Fprintf(w, "dump:         %s\n", h.Path)
	fmt.Fprintf(w, "reason:       %s\n", h.Reason)
	for _, v := range h.VCPUs {
		fmt.Fprintf(w, "%-13s rip %#x rsp %#x cr3 %#x cr2 %#x\n", fmt.Sprintf("vcpu %d:", v.Index), v.RIP, v.RSP, v.CR3, v.CR2)
	}
	fmt.Fprintln(w, "memory map:")
	for _, r := range h.Memory {
		fmt.Fprintf(w, "  [mem 0x%016x-0x%016x] %s\n", r.Base, r.Base+r.Size-1, r.Kind)
	}
	if r := h.Registration; r != nil {
		fmt.Fprintf(w, "registration: metadata at %#x, %d frames, layout version %d, allocator state at %#x\n",
			r.MetaPhys, r.FrameCount, r.Version, r.StatePhys)
	} else {
		fmt.Fprintln(w, "registration: none")
	}
	fmt.Fprintf(w, "roots:        %d", len(h.Roots))
	for _, r := range h.Roots {
		fmt.Fprintf(w, " %#x", r)
	}
	fmt.Fprintln(w)
}
