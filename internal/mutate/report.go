package mutate

import (
	"fmt"
	"strings"

	"github.com/vmm-dev/vmm/guest/mm"
)

// describe says in a few words how the mutant was or was not caught.
func describe(m *Mutant, v Verdict) string {
	switch v.Status {
	case Killed, WrongExit:
		where := v.Caught.Checker
		if v.Caught.Checkpoint != "" {
			where += " at " + v.Caught.Checkpoint
		}
		return fmt.Sprintf("%s: %s on %s frame %s", where, v.Caught.Kind, m.Frames, pfnString(v.Caught.PFN))
	case WrongFrame:
		s := fmt.Sprintf("%d violations, none on a %s frame; first: %s %s frame %s", v.Findings, m.Frames, v.First.Checker, v.First.Kind, pfnString(v.First.PFN))
		if v.Detail != "" {
			s += "; " + v.Detail
		}
		return s
	}
	s := firstLine(v.Detail)
	if m.Frames == ProbeFrames && v.RightPFNs > 0 {
		s = strings.TrimPrefix(fmt.Sprintf("%s; the bug touched %d frames", s, v.RightPFNs), "; ")
	}
	return s
}

// cell escapes a markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func pfnString(pfn uint64) string {
	if pfn == mm.LinkNone {
		return "(none: summary)"
	}
	return fmt.Sprintf("%#x", pfn)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Table renders the verdicts as a markdown table with the kill rate.
func Table(ms []*Mutant, vs []Verdict) string {
	var b strings.Builder
	killed := 0
	fmt.Fprintf(&b, "| mutant | workload | bug | status | exit | how |\n| --- | --- | --- | --- | --- | --- |\n")
	for i, v := range vs {
		m := ms[i]
		if v.Status == Killed {
			killed++
		}
		wl := m.Workload
		if m.CPUs > 1 {
			wl += fmt.Sprintf(" --cpus %d", m.CPUs)
		}
		if len(m.BadFrames) > 0 {
			wl += " --bad-frames"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | **%s** | %d | %s |\n", m.Name, wl, cell(m.Bug), v.Status, v.ExitStatus, cell(describe(m, v)))
	}
	fmt.Fprintf(&b, "\nkilled %d of %d (%.0f%%)\n", killed, len(vs), 100*float64(killed)/float64(max(len(vs), 1)))
	return b.String()
}
