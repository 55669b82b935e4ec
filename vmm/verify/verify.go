// Package verify proves, from the host, that a guest's frame metadata is
// right: it runs guest/mm's invariant checker over guest RAM (live or from a
// dump) and checks every frame's refcount and flags against the page tables
// the guest registered. It decodes guest memory as bytes and trusts nothing
// in it: every link, count and address is bounds-checked.
package verify

import (
	"fmt"
	"runtime/debug"
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
	// Holdings is the physical address of the guest's mm.Holdings (0: none).
	Holdings uint64
	// SharedTables are page tables every address space links to but none
	// owns (the kernel's physmap): the walk does not descend into them.
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
	// Scope is where a violation that is not about one frame applies
	// ("order 3", "cpu 1", "allocator state", "free lists"); empty for a
	// frame's violation. PFN then holds the checker's raw locator.
	Scope  string `json:"scope,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func (v Violation) String() string {
	where := fmt.Sprintf("frame %#x (phys %#x)", v.PFN, v.Phys)
	if v.Scope != "" {
		where = v.Scope
	}
	s := fmt.Sprintf("%s: %s: %s: expected %#x, actual %#x", where, v.Kind, v.Field, v.Expected, v.Actual)
	if v.Field == "" && v.Expected == 0 && v.Actual == 0 {
		s = where + ": " + v.Kind // nothing was compared: the detail says it all
	}
	if v.Detail != "" {
		s += " (" + v.Detail + ")"
	}
	return s
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

// Verify checks everything the registration covers, using every host CPU
// for the passes over the frame records.
func Verify(mem Memory, in Input) (*Report, error) { return verifyWith(mem, in, fanout{}) }

func verifyWith(mem Memory, in Input, fo fanout) (*Report, error) {
	start := time.Now()
	view, err := NewView(mem, in)
	if err != nil {
		return nil, err
	}
	r := &Report{Frames: in.FrameCount, Roots: len(in.Roots)}
	// guest/mm's checker, in its steps: header, the pass over the records
	// (beside the host's own, on every CPU), the rest.
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	out := sc.out[:]
	total, stateOK := mm.CheckHeader(&view, out)
	// The page-table walk and the owners beside the host check's lists
	// and caches (for a guest of more than one piece: see fanout.parallel):
	// the pass over the records needs both.
	pt := &mapCounter{}
	var own *owners
	tables := func() {
		if len(in.Roots) > 0 {
			pt = walkTables(mem, &view, in.Roots, in.SharedTables)
		}
		if in.Boot != nil {
			own = markOwners(mem, &view, in, pt, &ptResult{})
		}
	}
	wait := tables
	if fo.parallel(in.FrameCount) {
		wait = goLikeCaller(tables)
	}
	hist := &sc.hist
	*hist = histogram{}
	s := newSpecCheck(&view, hist, nil)
	fp, h, specOK := s.beforeFrames()
	wait()
	if own != nil {
		s.own, s.leaks = own, own.res
	}
	if specOK {
		listed := min(total, len(out))
		fr := checkFrames(&view, s, fp, pt, len(out)-listed, fo, &sc.pieces)
		listed += copy(out[listed:], fr.mmOut)
		total += fr.mmTotal
		if stateOK {
			total += mm.CheckRest(&view, &fr.lp, out[listed:])
		}
		s.poisonedTotal(h, fr.fp.poisoned)
	} else {
		pt.judge(0, view.FrameCount(), &pt.res)
	}

	if own != nil {
		// The owner rules' findings, then the leaks, after the mapping
		// rules' (as one pass in that order would find them).
		pt.res.merge(own.res)
	}
	spec, specTotal := s.out, s.tot
	r.TotalViolations = total
	for _, v := range out[:min(total, len(out))] {
		cv := fromChecker(v, view.FrameCount())
		switch {
		case v.Covers > 0:
			cv.Detail = coversDetail(v.Covers)
		case v.Kind == mm.VTailOrder || v.Kind == mm.VTailFlags:
			if h, k, ok := view.BlockOf(v.PFN); ok {
				cv.Detail = fmt.Sprintf("inside the order-%d block headed by frame %#x", k, h)
			}
		}
		r.Violations = append(r.Violations, cv)
	}
	r.addSpec(spec, specTotal)
	r.summarise(hist)
	r.PerCPU = decodeCaches(&view)
	r.TableFrames, r.Mappings = pt.res.tableFrames, pt.res.mappings
	r.TotalViolations += pt.res.total
	for _, v := range pt.res.violations {
		if len(r.Violations) < MaxListed {
			r.Violations = append(r.Violations, v)
		}
	}
	bytePool.put(fp.on)
	boolPool.put(fp.cached)
	uint32Pool.put(pt.maps)
	uint64Pool.put(pt.touched)
	if own != nil {
		bytePool.put(own.owner)
	}
	r.Nanos = time.Since(start).Nanoseconds()
	return r, nil
}

// goLikeCaller runs fn on another goroutine as if on the caller's: with
// the caller's panic-on-fault setting (a reader of a mapped dump turns a
// fault into an error, see coredump.Guard), and any panic re-raised in the
// caller by wait, where the caller's recovery sees it.
func goLikeCaller(fn func()) (wait func()) {
	onFault := debug.SetPanicOnFault(false)
	debug.SetPanicOnFault(onFault)
	var wg sync.WaitGroup
	var caught any
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { caught = recover() }()
		debug.SetPanicOnFault(onFault)
		fn()
	}()
	return func() {
		wg.Wait()
		if caught != nil {
			panic(caught)
		}
	}
}

// addSpec adds the independent check's findings that the shared checker
// did not already report (same frame, or same scope): agreeing checkers
// report each problem once, and a problem only the host's own check sees
// still reaches the report.
func (r *Report) addSpec(spec []Violation, total int) {
	frames, scopes := map[uint64]bool{}, map[string]bool{}
	for _, v := range r.Violations {
		if v.Scope == "" {
			frames[v.PFN] = true
		} else {
			scopes[scopeClass(v.Scope)] = true
		}
	}
	dup := 0
	for _, v := range spec {
		if (v.Scope == "" && frames[v.PFN]) || (v.Scope != "" && scopes[scopeClass(v.Scope)]) {
			dup++
			continue
		}
		if len(r.Violations) < MaxListed {
			r.Violations = append(r.Violations, v)
		}
	}
	r.TotalViolations += total - dup
}

// scopeClass groups scopes that name the same structure ("allocator state
// magic" and "allocator state +0x0").
func scopeClass(s string) string {
	if strings.HasPrefix(s, "allocator state") {
		return "allocator state"
	}
	return s
}

// fromChecker converts a guest/mm violation, naming the scope of those
// that are not about one frame (see the kinds' documentation), so that an
// order, a CPU index, a field offset or LinkNone never reads as a frame.
func fromChecker(v mm.Violation, frames uint64) Violation {
	out := Violation{PFN: v.PFN, Phys: v.PFN * mm.PageSize, Source: "metadata",
		Kind: v.Kind.String(), Field: v.Kind.Field(), Expected: v.Expected, Actual: v.Actual}
	switch {
	case v.Kind == mm.VStateHeader:
		out.Scope = fmt.Sprintf("allocator state +%#x", v.PFN)
	case v.Kind == mm.VBlockCount || v.Kind == mm.VListHeads:
		out.Scope = fmt.Sprintf("free list of order %d", v.PFN)
	case v.Kind == mm.VPCPHeader && v.PFN != mm.LinkNone:
		out.Scope = fmt.Sprintf("per-CPU cache of cpu %d", v.PFN)
	case v.Kind == mm.VPCPHeader:
		out.Scope = "per-CPU caches"
	case v.Kind == mm.VPCPEntry && v.PFN >= frames:
		out.Scope = fmt.Sprintf("per-CPU cache of cpu %d, slot %d (entry %#x)", v.Expected>>32, v.Expected&0xFFFFFFFF, v.PFN)
	case v.Kind == mm.VNextRange && v.PFN == mm.LinkNone:
		out.Scope = "a free-list head"
	case v.PFN == mm.LinkNone:
		out.Scope = "allocator totals"
	}
	if out.Scope != "" {
		out.Phys = 0
	}
	return out
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

// histogram counts frames per flag combination and FREE heads per order
// during the host's pass over the records.
type histogram struct {
	counts     [histSize]uint64
	odd        map[uint32]uint64
	freeFrames uint64
	freeBlocks [mm.NumOrders]uint64
}

func (h *histogram) add(r mm.Record) {
	if i, ok := histIndex(r.Flags); ok {
		h.counts[i]++
	} else {
		if h.odd == nil {
			h.odd = map[uint32]uint64{}
		}
		h.odd[r.Flags]++
	}
	if r.Flags == mm.FlagFree {
		h.freeFrames++
		if r.Order <= mm.MaxOrder {
			h.freeBlocks[r.Order]++
		}
	}
}

// addTails counts n tails of a block with the given tail flags (always
// defined flags, never a FREE head), as add would one by one.
func (h *histogram) addTails(tail uint32, n uint64) {
	if n == 0 {
		return
	}
	i, _ := histIndex(tail)
	h.counts[i] += n
	if tail == mm.FlagFree {
		h.freeFrames += n
	}
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	for i, n := range o.counts {
		h.counts[i] += n
	}
	for f, n := range o.odd {
		if h.odd == nil {
			h.odd = map[uint32]uint64{}
		}
		h.odd[f] += n
	}
	h.freeFrames += o.freeFrames
	for k, n := range o.freeBlocks {
		h.freeBlocks[k] += n
	}
}

// summarise fills the buddyinfo-style free counts and the flag histogram.
func (r *Report) summarise(h *histogram) {
	r.FreeFrames, r.FreeBlocks = h.freeFrames, h.freeBlocks
	for i, n := range h.counts {
		if n != 0 {
			raw := histFlags(i)
			r.ByFlags = append(r.ByFlags, FlagCount{Flags: FlagNames(raw), Raw: raw, Frames: n})
		}
	}
	for raw, n := range h.odd {
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
