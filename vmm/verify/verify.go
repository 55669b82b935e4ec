// Package verify proves, from the host, that a guest's frame metadata is
// right: it runs guest/mm's invariant checker over guest RAM (live or from a
// dump) and checks every frame's refcount and flags against the page tables
// the guest registered. It decodes guest memory as bytes and trusts nothing
// in it: every link, count and address is bounds-checked.
package verify

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmm-dev/vmm/guest/mm"
)

// Memory is guest physical memory: live RAM or a dump. Verify calls Slice
// from several goroutines at once.
type Memory interface {
	Slice(gpa, n uint64) ([]byte, error)
}

// Input is what the verifier checks: the guest's registration, the boot
// info the VMM gave it, and the address spaces it registered.
type Input struct {
	Registration
	// Boot, when not nil, adds the boot-info rules (what the VMM placed is
	// never FREE and owns its frames; bad frames are POISONED).
	Boot  *Boot
	Roots []uint64 // PML4 physical addresses
	// SharedTables are page tables every address space links to but none
	// owns (the kernel's identity map): the walk does not descend into them.
	SharedTables []uint64
}

// Violation is one broken rule, located by frame.
type Violation struct {
	PFN      uint64 `json:"pfn"`
	Phys     uint64 `json:"phys"`
	Source   string `json:"source"` // "metadata" or "pagetable"
	Kind     string `json:"kind"`
	Field    string `json:"field"`
	Expected uint64 `json:"expected"`
	Actual   uint64 `json:"actual"`
}

func (v Violation) String() string {
	return fmt.Sprintf("frame %#x (phys %#x): %s: %s: expected %#x, actual %#x", v.PFN, v.Phys, v.Kind, v.Field, v.Expected, v.Actual)
}

// CPUCache is one vCPU's per-CPU page cache as found in guest memory.
type CPUCache struct {
	CPU    int      `json:"cpu"`
	Count  uint32   `json:"count"`
	Frames []uint64 `json:"frames"` // PFNs, oldest first
}

// FlagCount is how many frames carry one flag combination.
type FlagCount struct {
	Flags  string `json:"flags"`
	Raw    uint32 `json:"raw"`
	Frames uint64 `json:"frames"`
}

// Report is the verification result.
type Report struct {
	Frames          uint64               `json:"frames"`
	FreeBlocks      [mm.NumOrders]uint64 `json:"free_blocks"` // per order, like /proc/buddyinfo
	FreeFrames      uint64               `json:"free_frames"`
	ByFlags         []FlagCount          `json:"by_flags"`
	PerCPU          []CPUCache           `json:"per_cpu_caches"` // order-0 frames held per vCPU
	Roots           int                  `json:"roots"`
	TableFrames     uint64               `json:"table_frames"`
	Mappings        uint64               `json:"mappings"`
	Violations      []Violation          `json:"violations"`
	TotalViolations int                  `json:"total_violations"` // may exceed len(Violations)
	Nanos           int64                `json:"ns"`
}

// MaxListed bounds the violations kept in a report (all are counted).
const MaxListed = 1000

// NewView validates the registration (Registration.Validate) and returns
// the typed view of the metadata array and allocator state in mem (one RAM
// span, as guest/mm places them). The view aliases mem.
func NewView(mem Memory, in Input) (mm.View, error) {
	if err := in.Validate(mem, in.Boot, 0); err != nil {
		return mm.View{}, err
	}
	lo := min(in.MetaPhys, in.StatePhys)
	hi := max(in.MetaPhys+in.FrameCount*mm.FrameMetaSize, in.StatePhys+mm.StateSize)
	span, err := mem.Slice(lo, hi-lo)
	if err != nil {
		return mm.View{}, fmt.Errorf("metadata array and allocator state [%#x, %#x): %w", lo, hi, err)
	}
	view, aerr := mm.NewView(span, lo, in.MetaPhys, in.FrameCount, in.StatePhys)
	if aerr != mm.ErrNone {
		return mm.View{}, fmt.Errorf("metadata registration: %w", aerr)
	}
	return view, nil
}

// Verify checks everything the registration covers.
func Verify(mem Memory, in Input) (*Report, error) {
	start := time.Now()
	view, err := NewView(mem, in)
	if err != nil {
		return nil, err
	}
	r := &Report{Frames: in.FrameCount, Roots: len(in.Roots)}
	// The checker, the summary and the page-table walk each read the
	// records on their own: run them side by side on the host's CPUs.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.summarise(&view)
		r.PerCPU = decodeCaches(&view)
	}()
	var pt *ptResult
	if len(in.Roots) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := walkPageTables(mem, &view, in.Roots, in.SharedTables)
			pt = &res
		}()
	}
	out := make([]mm.Violation, MaxListed)
	total := mm.Check(&view, out)
	wg.Wait()
	r.TotalViolations = total
	for _, v := range out[:min(total, len(out))] {
		r.Violations = append(r.Violations, Violation{PFN: v.PFN, Phys: v.PFN * mm.PageSize, Source: "metadata",
			Kind: v.Kind.String(), Field: v.Kind.Field(), Expected: v.Expected, Actual: v.Actual})
	}
	if pt != nil {
		r.TableFrames, r.Mappings = pt.tableFrames, pt.mappings
		r.TotalViolations += pt.total
		for _, v := range pt.violations {
			if len(r.Violations) < MaxListed {
				r.Violations = append(r.Violations, v)
			}
		}
	}
	r.Nanos = time.Since(start).Nanoseconds()
	return r, nil
}

// The flags histogram counts in a small array: the defined flag bits are
// bits 0..2 (sharing modifiers) and 8..13 (state and owner), packed into a
// 9-bit index (a test checks the constants fit). Records with other bits
// (a corrupt guest) are counted in a map, off the per-frame fast path.
const (
	histLowBits  = mm.FlagCOW | mm.FlagDLL | mm.FlagAnonymous
	histHighBits = mm.FlagAllocated | mm.FlagFree | mm.FlagKernel | mm.FlagUser | mm.FlagPoisoned | mm.FlagPerCPU
	histSize     = 1 << 9
)

// histIndex packs flags into the histogram's index; ok is false for flags
// with undefined bits.
func histIndex(f uint32) (int, bool) {
	if f&^(histLowBits|histHighBits) != 0 {
		return 0, false
	}
	return int(f&7 | (f>>8)<<3), true
}

// histFlags undoes histIndex.
func histFlags(i int) uint32 { return uint32(i&7) | uint32(i>>3)<<8 }

// summarise fills the buddyinfo-style free counts and the flag histogram.
func (r *Report) summarise(v *mm.View) {
	var counts [histSize]uint64
	var odd map[uint32]uint64
	// Two fields a record: read them from the record's bytes rather than
	// copying the whole decoded Record (this loop is memory-bound).
	for pfn := uint64(0); pfn < r.Frames; pfn++ {
		rec := v.RecordBytes(pfn)
		flags, order := binary.LittleEndian.Uint32(rec[mm.OffFlags:]), rec[mm.OffOrder]
		if i, ok := histIndex(flags); ok {
			counts[i]++
		} else {
			if odd == nil {
				odd = map[uint32]uint64{}
			}
			odd[flags]++
		}
		if flags == mm.FlagFree {
			r.FreeFrames++
			if order <= mm.MaxOrder {
				r.FreeBlocks[order]++
			}
		}
	}
	for i, n := range counts {
		if n != 0 {
			raw := histFlags(i)
			r.ByFlags = append(r.ByFlags, FlagCount{Flags: FlagNames(raw), Raw: raw, Frames: n})
		}
	}
	for raw, n := range odd {
		r.ByFlags = append(r.ByFlags, FlagCount{Flags: FlagNames(raw), Raw: raw, Frames: n})
	}
	sort.Slice(r.ByFlags, func(i, j int) bool { return r.ByFlags[i].Raw < r.ByFlags[j].Raw })
}

// FlagNames renders flags as "ALLOCATED|USER|COW" ("-" for none).
func FlagNames(f uint32) string {
	names := []struct {
		bit  uint32
		name string
	}{{mm.FlagAllocated, "ALLOCATED"}, {mm.FlagFree, "FREE"}, {mm.FlagKernel, "KERNEL"}, {mm.FlagUser, "USER"},
		{mm.FlagPoisoned, "POISONED"}, {mm.FlagPerCPU, "PERCPU"}, {mm.FlagCOW, "COW"}, {mm.FlagDLL, "DLL"}, {mm.FlagAnonymous, "ANONYMOUS"}}
	var parts []string
	for _, n := range names {
		if f&n.bit != 0 {
			parts = append(parts, n.name)
			f &^= n.bit
		}
	}
	if f != 0 {
		parts = append(parts, fmt.Sprintf("%#x", f))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "|")
}

// decodeCaches lists the per-CPU caches the state records. The view
// clamps the guest's counts and indexes; the checker has already reported
// any that are out of range.
func decodeCaches(v *mm.View) []CPUCache {
	var out []CPUCache
	for cpu := uint64(0); cpu < uint64(min(v.NumCPUs(), mm.MaxCPUs)); cpu++ {
		h, _ := v.Cache(cpu)
		cc := CPUCache{CPU: int(cpu), Count: min(h.Count, mm.PCPCapacity)}
		for i := uint64(0); ; i++ {
			pfn, ok := v.CacheEntry(cpu, i)
			if !ok {
				break
			}
			cc.Frames = append(cc.Frames, pfn)
		}
		out = append(out, cc)
	}
	return out
}
