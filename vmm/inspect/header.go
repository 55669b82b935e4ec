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
	CPU int    `json:"cpu"`
	RIP uint64 `json:"rip"`
	RSP uint64 `json:"rsp"`
	RBP uint64 `json:"rbp"`
	CR3 uint64 `json:"cr3"`
	CR2 uint64 `json:"cr2"`
	// Handler is set when the registers above are the context an
	// exception interrupted: these are the reporting handler's.
	Handler *VCPU `json:"handler"`
}

func vcpuOf(v *coredump.VCPU) VCPU {
	out := VCPU{CPU: v.Index, RIP: v.RIP, RSP: v.RSP, RBP: v.RBP, CR3: v.CR3, CR2: v.CR2}
	if v.Handler != nil {
		h := vcpuOf(v.Handler)
		out.Handler = &h
	}
	return out
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
	for i := range in.VCPUs {
		h.VCPUs = append(h.VCPUs, vcpuOf(&in.VCPUs[i]))
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
		fmt.Fprintf(w, "%-13s rip %#x rsp %#x cr3 %#x cr2 %#x", fmt.Sprintf("vcpu %d:", v.CPU), v.RIP, v.RSP, v.CR3, v.CR2)
		if v.Handler != nil {
			fmt.Fprintf(w, " (where it faulted; gdb thread 1)\n%-13s rip %#x rsp %#x (the handler that reported it; gdb thread LWP %d)",
				"", v.Handler.RIP, v.Handler.RSP, coredump.HandlerPIDBase+v.CPU+1)
		}
		fmt.Fprintln(w)
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
