package verify

import (
	"fmt"
	"io"
)

// WriteText prints the report the way kernel developers read allocator
// state: a /proc/buddyinfo line, frames per flag combination, then every
// violation (frame, physical address, field, expected, actual).
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "frames: %d, free: %d, address spaces: %d (%d table frames, %d mappings)\n",
		r.Frames, r.FreeFrames, r.Roots, r.TableFrames, r.Mappings)
	fmt.Fprintf(w, "buddyinfo: Node 0, zone   Normal")
	for _, n := range r.FreeBlocks {
		fmt.Fprintf(w, " %6d", n)
	}
	fmt.Fprintln(w)
	if len(r.PerCPU) > 0 {
		fmt.Fprint(w, "per-CPU caches (order-0 frames):")
		for _, c := range r.PerCPU {
			fmt.Fprintf(w, " cpu%d=%d", c.CPU, c.Count)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "frames by flags:")
	for _, f := range r.ByFlags {
		fmt.Fprintf(w, "  %-32s %10d\n", f.Flags, f.Frames)
	}
	if r.TotalViolations == 0 {
		fmt.Fprintln(w, "violations: none")
		return
	}
	fmt.Fprintf(w, "violations: %d\n", r.TotalViolations)
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  [%s] %s\n", v.Source, v)
	}
	if n := r.TotalViolations - len(r.Violations); n > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", n)
	}
}
