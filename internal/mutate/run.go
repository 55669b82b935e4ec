package mutate

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/coredump"
)

// Status is what became of one mutant.
type Status string

const (
	// Killed: a checkpoint reported a violation naming a right frame.
	Killed Status = "killed"
	// WrongExit: a violation named a right frame but the run's exit status
	// does not say "violations" (a user's script would miss it).
	WrongExit Status = "wrong-exit"
	// WrongFrame: checkpoints reported violations, none naming a right frame.
	WrongFrame Status = "wrong-frame"
	// WorkloadOnly: no violation; the workload's own result check failed.
	WorkloadOnly Status = "workload-only"
	// Crashed: no violation; the guest faulted or timed out.
	Crashed Status = "crashed"
	// Survived: no violation and nothing else noticed.
	Survived Status = "survived"
	// Broken: the mutant could not be applied, built or booted.
	Broken Status = "broken"
)

// Finding is one violation seen at a checkpoint.
type Finding struct {
	Checker    string // "host" or "guest"
	Checkpoint string // checkpoint label ("" for the guest's console line)
	PFN        uint64
	Kind       string
}

// Verdict is the harness's answer for one mutant.
type Verdict struct {
	Mutant     string
	Status     Status
	ExitStatus int
	Outcome    string
	Findings   int     // violations seen (host + guest lines)
	Caught     Finding // the first finding naming a right frame (Killed)
	First      Finding // the first finding of all (WrongFrame)
	RightPFNs  int     // how many frames the rule accepts (for the report)
	Detail     string
	Sample     []Finding // the first few findings, for the log
	Probed     []uint64  // the first few probed frames, for the log
}

// Observation is what one boot of a mutant produced, reduced to what the
// classifier needs (so it can be tested without KVM).
type Observation struct {
	Result    *vmm.Result
	Console   string
	Probe     []uint64 // frames recorded by mm.MutantHit
	Kernel    [2]uint64
	Meta      [2]uint64 // PFN range [lo, hi) of the metadata array and state
	BadFrames []uint64
}

// firmwareFrames is the firmware area's size in frames (below the page tables).
const firmwareFrames = firmware.PageTableBase / firmware.PageSize

// guestLine matches the guest checker's console report (guest/memory.go).
var guestLine = regexp.MustCompile(`(?m)^mm check: frame (0x[0-9a-f]+): ([a-z0-9-]+) `)

// findings lists every violation of the run: host reports per checkpoint,
// then the guest checker's console lines.
func findings(o *Observation) []Finding {
	var out []Finding
	if o.Result != nil {
		for _, cp := range o.Result.Checkpoints {
			if cp.Error != "" {
				out = append(out, Finding{Checker: "host", Checkpoint: cp.Label, PFN: mm.LinkNone, Kind: "registration: " + cp.Error})
			}
			if cp.Report == nil {
				continue
			}
			for _, v := range cp.Report.Violations {
				out = append(out, Finding{Checker: "host", Checkpoint: cp.Label, PFN: v.PFN, Kind: v.Source + "/" + v.Kind})
			}
		}
	}
	for _, m := range guestLine.FindAllStringSubmatch(o.Console, -1) {
		pfn, err := strconv.ParseUint(m[1], 0, 64)
		if err != nil {
			continue
		}
		out = append(out, Finding{Checker: "guest", PFN: pfn, Kind: m[2]})
	}
	return out
}

// rightFrame reports whether pfn is a frame the mutant's rule accepts.
func rightFrame(m *Mutant, o *Observation, pfn uint64) bool {
	switch m.Frames {
	case AnyFrame:
		return true
	case ProbeFrames:
		return contains(o.Probe, pfn)
	case BadFrames:
		return contains(o.BadFrames, pfn)
	case KernelFrames:
		return pfn >= o.Kernel[0] && pfn < o.Kernel[1]
	case MetaFrames:
		return pfn >= o.Meta[0] && pfn < o.Meta[1]
	case FirmwareFrames:
		return pfn < firmwareFrames
	}
	return false
}

func contains(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Classify decides a mutant's status from its boot.
func Classify(m *Mutant, o *Observation) Verdict {
	v := Verdict{Mutant: m.Name}
	if o.Result != nil {
		v.ExitStatus, v.Outcome = o.Result.ExitStatus, o.Result.Outcome
	}
	switch m.Frames {
	case ProbeFrames:
		v.RightPFNs = len(o.Probe)
	case BadFrames:
		v.RightPFNs = len(o.BadFrames)
	case KernelFrames:
		v.RightPFNs = int(o.Kernel[1] - o.Kernel[0])
	case MetaFrames:
		v.RightPFNs = int(o.Meta[1] - o.Meta[0])
	case FirmwareFrames:
		v.RightPFNs = firmwareFrames
	}
	fs := findings(o)
	v.Findings = len(fs)
	v.Sample = fs[:min(len(fs), 6)]
	v.Probed = o.Probe[:min(len(o.Probe), 6)]
	if len(fs) > 0 {
		v.First = fs[0]
		for _, f := range fs {
			if rightFrame(m, o, f.PFN) {
				v.Status, v.Caught = Killed, f
				if !violationExit(v.ExitStatus) {
					v.Status = WrongExit
				}
				return v
			}
		}
		v.Status = WrongFrame
		if m.Frames == ProbeFrames && len(o.Probe) == 0 {
			v.Detail = "the bug never ran (no probed frame)"
		}
		return v
	}
	switch {
	case o.Result == nil:
		v.Status = Broken
	case o.Result.Outcome == vmm.OutcomeFault || o.Result.Outcome == vmm.OutcomeTimeout:
		v.Status, v.Detail = Crashed, o.Result.Reason
	case o.Result.ExitStatus != 0:
		v.Status, v.Detail = WorkloadOnly, o.Result.Reason
	default:
		v.Status = Survived
	}
	if m.Frames == ProbeFrames && len(o.Probe) == 0 {
		v.Detail = strings.TrimPrefix(v.Detail+"; the bug never ran (no probed frame)", "; ")
	}
	return v
}

// violationExit reports whether status is one that says "violations":
// the VMM's (host verifier) or the guest's own checker's.
func violationExit(status int) bool {
	return status == vmm.StatusViolation || status == firmware.GuestExitViolations
}

// Options are the harness's settings.
type Options struct {
	Root    string        // repository root to copy (the working tree is only read)
	WorkDir string        // where mutant trees are made (a temp dir if "")
	Mem     uint64        // guest RAM (default 128 MiB)
	Timeout time.Duration // per boot (default 60 s)
}

// Run applies, builds and boots one mutant and classifies the result.
func Run(m *Mutant, opt Options) Verdict {
	o, err := observe(m, opt)
	if err != nil {
		return Verdict{Mutant: m.Name, Status: Broken, Detail: err.Error()}
	}
	return Classify(m, o)
}

func observe(m *Mutant, opt Options) (*Observation, error) {
	dir, err := os.MkdirTemp(opt.WorkDir, "mutant-"+m.Name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	parts := treeParts
	if m.Host {
		parts = append(append([]string(nil), treeParts...), hostParts...)
	}
	if err := copyParts(opt.Root, dir, parts); err != nil {
		return nil, fmt.Errorf("copying the tree: %w", err)
	}
	if err := Apply(dir, m); err != nil {
		return nil, err
	}
	elfPath := filepath.Join(dir, "guest.elf")
	if m.Host {
		elfPath = filepath.Join(dir, "cmd", "vmm", "kernel", "guest.elf") // embedded in the mutant bin/vmm
		if err := os.MkdirAll(filepath.Dir(elfPath), 0o755); err != nil {
			return nil, err
		}
	}
	if err := runIn(dir, filepath.Join(dir, "scripts", "build-guest.sh"), elfPath); err != nil {
		return nil, fmt.Errorf("building the mutant guest: %w", err)
	}
	img, err := os.ReadFile(elfPath)
	if err != nil {
		return nil, err
	}
	syms, kernel, err := elfFacts(img)
	if err != nil {
		return nil, err
	}
	if opt.Mem == 0 {
		opt.Mem = 128 << 20
	}
	if opt.Timeout == 0 {
		opt.Timeout = 60 * time.Second
	}
	o := &Observation{Kernel: kernel, BadFrames: m.BadFrames}
	if m.Host {
		err = bootProcess(dir, m, opt, syms, o)
	} else {
		err = bootHere(img, m, opt, syms, o)
	}
	if err != nil {
		return nil, err
	}
	if r := o.Result.Registration; r != nil {
		lo, hi := min(r.MetaPhys, r.StatePhys), max(r.MetaPhys+r.FrameCount*mm.FrameMetaSize, r.StatePhys+mm.StateSize)
		o.Meta = [2]uint64{lo / firmware.PageSize, (hi + firmware.PageSize - 1) / firmware.PageSize}
	}
	return o, nil
}

func runIn(dir, prog string, args ...string) error {
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(prog), err, out)
	}
	return nil
}

// bootHere boots the mutant guest with this process's (unmutated) VMM.
func bootHere(img []byte, m *Mutant, opt Options, syms map[string]uint64, o *Observation) error {
	cfg := vmm.Config{MemBytes: opt.Mem, CPUs: max(m.CPUs, 1), Kernel: img, Workload: m.Workload,
		Timeout: opt.Timeout, BadFrames: m.BadFrames}
	var console bytes.Buffer
	cfg.Console = &console
	vm, err := vmm.New(cfg)
	if err != nil {
		return fmt.Errorf("creating the VM: %w", err)
	}
	defer vm.Close()
	o.Result = vm.Run()
	o.Console = console.String()
	o.Probe = readProbe(vm.Memory().Slice, syms)
	return nil
}

// bootProcess builds bin/vmm from the mutant tree (mutant guest embedded)
// and boots it with --json and --dump; the probe is read from the dump.
func bootProcess(dir string, m *Mutant, opt Options, syms map[string]uint64, o *Observation) error {
	bin := filepath.Join(dir, "bin", "vmm")
	if err := runIn(dir, "go", "build", "-o", bin, "./cmd/vmm"); err != nil {
		return fmt.Errorf("building the mutant VMM: %w", err)
	}
	core := filepath.Join(dir, "core")
	args := []string{"boot", "--json", "--mem", strconv.FormatUint(opt.Mem>>20, 10) + "M", "--cpus", strconv.Itoa(max(m.CPUs, 1)),
		"--workload", m.Workload, "--timeout", opt.Timeout.String(), "--dump", core}
	if len(m.BadFrames) > 0 {
		var l []string
		for _, f := range m.BadFrames {
			l = append(l, fmt.Sprintf("%#x", f))
		}
		args = append(args, "--bad-frames", strings.Join(l, ","))
	}
	var stdout, stderr bytes.Buffer
	// The VMM stops the guest at --timeout; the context is only a backstop
	// against a mutant VMM that never returns.
	ctx, cancel := context.WithTimeout(context.Background(), opt.Timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return fmt.Errorf("running the mutant VMM: %w", err)
	}
	var res vmm.Result
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		return fmt.Errorf("mutant VMM summary (exit %v): %w\n%s", err, jerr, stderr.String())
	}
	o.Result, o.Console = &res, stderr.String()
	d, derr := coredump.Open(core)
	if derr != nil {
		return fmt.Errorf("mutant dump: %w", derr)
	}
	defer d.Close()
	o.Probe = readProbe(d.Slice, syms)
	return nil
}

// elfFacts returns the probe symbols' addresses and the kernel image's PFN
// range (its PT_LOAD segments).
func elfFacts(img []byte) (map[string]uint64, [2]uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, [2]uint64{}, fmt.Errorf("reading the mutant ELF: %w", err)
	}
	syms := map[string]uint64{}
	all, err := f.Symbols()
	if err != nil {
		return nil, [2]uint64{}, fmt.Errorf("mutant ELF symbols: %w", err)
	}
	for _, s := range all {
		if s.Name == symProbeN || s.Name == symProbePFNs {
			syms[s.Name] = s.Value - firmware.PhysMapBase // the kernel is linked in the physmap
		}
	}
	lo, hi := ^uint64(0), uint64(0)
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Memsz > 0 {
			pa := p.Paddr - firmware.PhysMapBase // the linker sets Paddr = Vaddr
			lo, hi = min(lo, pa), max(hi, pa+p.Memsz)
		}
	}
	if hi == 0 {
		return nil, [2]uint64{}, fmt.Errorf("mutant ELF has no PT_LOAD segment")
	}
	return syms, [2]uint64{lo / firmware.PageSize, (hi + firmware.PageSize - 1) / firmware.PageSize}, nil
}

// readProbe reads the frames the bug recorded (nil if the probe is not in
// the image: no edit referenced it, so the linker dropped it). syms holds
// physical addresses.
func readProbe(slice func(gpa, n uint64) ([]byte, error), syms map[string]uint64) []uint64 {
	na, ok1 := syms[symProbeN]
	pa, ok2 := syms[symProbePFNs]
	if !ok1 || !ok2 {
		return nil
	}
	nb, err := slice(na, 8)
	if err != nil {
		return nil
	}
	n := min(binary.LittleEndian.Uint64(nb), ProbeSlots)
	if n == 0 {
		return nil
	}
	buf, err := slice(pa, 8*n)
	if err != nil {
		return nil
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
	return out
}
