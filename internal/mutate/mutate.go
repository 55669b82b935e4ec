// Package mutate measures the verifier: it injects realistic allocator and
// kernel bugs into a temporary copy of the guest source, one at a time,
// builds each mutant guest with the project's recipe, boots it, and asks
// whether a checkpoint (the host verifier or the guest's own mm.Check)
// reported a violation naming the frame the bug damaged.
//
// A mutant is a list of exact search/replace edits on named files. An edit
// whose search text is missing, or found more than once, is an error: when
// the source drifts the catalogue fails loudly instead of silently testing
// nothing. The working tree is never written.
package mutate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Edit replaces the one occurrence of Old in File (a slash path relative
// to the repository root) with New. Probe edits only record which frames
// the bug touches (mm.MutantHit); they never change allocator state.
type Edit struct {
	File     string
	Old, New string
	Probe    bool
}

// FrameRule says which frames a violation must name for the mutant to
// count as caught at the right place.
type FrameRule int

const (
	// AnyFrame: the bug has no single frame (a summary counter); any
	// violation kills it.
	AnyFrame FrameRule = iota
	// ProbeFrames: one of the frames the mutant recorded with mm.MutantHit.
	ProbeFrames
	// BadFrames: one of the boot-time bad frames of the mutant's boot.
	BadFrames
	// KernelFrames: a frame of the kernel image (its PT_LOAD segments).
	KernelFrames
	// MetaFrames: a frame of the frame-metadata array or allocator state.
	MetaFrames
	// FirmwareFrames: a frame of the firmware area below the page tables.
	FirmwareFrames
)

func (r FrameRule) String() string {
	switch r {
	case AnyFrame:
		return "any"
	case ProbeFrames:
		return "probed"
	case BadFrames:
		return "bad-frames"
	case KernelFrames:
		return "kernel-image"
	case MetaFrames:
		return "metadata"
	case FirmwareFrames:
		return "firmware"
	}
	return "unknown"
}

// Mutant is one injected bug and the boot that should expose it.
type Mutant struct {
	Name      string
	Bug       string // what a kernel developer got wrong
	Workload  string
	CPUs      int      // 0 means 1
	BadFrames []uint64 // PFNs the boot info lists as bad
	Frames    FrameRule
	Edits     []Edit
	// Host: the edits also reach the host (they touch code both sides
	// run, such as mm.Check), so the VMM is rebuilt from the mutant tree
	// and booted as a process instead of in this one.
	Host bool
}

// ErrDrift means an edit's search text is not in the source exactly once.
var ErrDrift = errors.New("mutant does not apply")

// probeFile is added to guest/mm in every mutant tree: a fixed-size record
// of the frames an injected bug touched, read by the host after the run
// from the ELF symbols. Non-pointer globals: no write barrier, no
// allocation, so the guest discipline holds.
const probeFile = `package mm

// MutantN and MutantPFNs record the frames an injected bug touched (the
// mutation harness reads them from guest memory after the run).
var (
	MutantN    uint64
	MutantPFNs [ProbeSlots]uint64
)

// ProbeSlots bounds the recorded frames.
const ProbeSlots = 1024

// MutantHit records pfn (the first ProbeSlots distinct calls).
//
//go:nosplit
func MutantHit(pfn uint64) {
	if n := MutantN; n < ProbeSlots {
		MutantPFNs[n%ProbeSlots] = pfn
		MutantN = n + 1
	}
}
`

// ProbeSlots must match the constant in probeFile.
const ProbeSlots = 1024

// Probe symbol names in the guest ELF.
const (
	symProbeN    = "github.com/vmm-dev/vmm/guest/mm.MutantN"
	symProbePFNs = "github.com/vmm-dev/vmm/guest/mm.MutantPFNs"
)

// treeParts are what building the guest needs from the repository;
// hostParts what building bin/vmm needs besides.
var (
	treeParts = []string{"go.mod", "go.sum", "scripts", "firmware", "guest"}
	hostParts = []string{"cmd", "vmm", "internal"}
)

// CopyTree copies the parts of the repository at src that the guest build
// needs into dst (which must not exist yet or be empty).
func CopyTree(src, dst string) error { return copyParts(src, dst, treeParts) }

func copyParts(src, dst string, parts []string) error {
	for _, part := range parts {
		if err := copyPath(filepath.Join(src, part), filepath.Join(dst, part)); err != nil {
			return err
		}
	}
	return nil
}

func copyPath(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, info.Mode().Perm())
	})
}

// Apply makes the mutant's edits in the tree at root (a copy, never the
// working tree) and adds the probe file. It changes nothing unless every
// edit applies.
func Apply(root string, m *Mutant) error {
	pending := map[string]string{}
	for i, e := range m.Edits {
		path := filepath.Join(root, filepath.FromSlash(e.File))
		text, ok := pending[path]
		if !ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("%w: mutant %s edit %d: %v", ErrDrift, m.Name, i, err)
			}
			text = string(b)
		}
		switch n := strings.Count(text, e.Old); n {
		case 1:
		case 0:
			return fmt.Errorf("%w: mutant %s edit %d: search text not found in %s:\n%s", ErrDrift, m.Name, i, e.File, e.Old)
		default:
			return fmt.Errorf("%w: mutant %s edit %d: search text found %d times in %s (make it unique):\n%s", ErrDrift, m.Name, i, n, e.File, e.Old)
		}
		pending[path] = strings.Replace(text, e.Old, e.New, 1)
	}
	for path, text := range pending {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return fmt.Errorf("mutant %s: %w", m.Name, err)
		}
	}
	return os.WriteFile(filepath.Join(root, "guest", "mm", "zz_mutant_probe.go"), []byte(probeFile), 0o644)
}
