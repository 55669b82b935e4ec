package vmm

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/memmap"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// Config describes one boot. Validate it before creating any VM.
type Config struct {
	MemBytes  uint64
	CPUs      int
	Kernel    []byte // guest ELF image
	Workload  string
	Cmdline   string
	Timeout   time.Duration
	Tick      time.Duration // timer period (0: no timer)
	BadFrames []uint64      // PFNs reported to the guest as bad
	Trace     []byte        // trace for the replay workload, copied into guest RAM
	// Program is the `vmm run` bundle (firmware.RunHeader) for the run
	// workload, in pieces laid end to end (so the megabytes of the ELF are
	// copied once, into guest RAM); it takes the trace's place in guest
	// RAM (BootInfo.TraceBase).
	Program  [][]byte
	DumpPath string // write an ELF core of guest memory at exit ("" = none)
	DumpAt   string // write it at the checkpoint with this label instead (world stopped)
	// DumpSync makes the dump durable before it replaces DumpPath (fsync;
	// see coredump.Options): without it the dump is complete or absent for
	// every process but not across a crash of the machine.
	DumpSync bool
	GDB      string // serve gdb's remote protocol on this address; the guest waits for it ("" = none)
	// Verify is how checkpoints the guest asks for are checked:
	// VerifyFull (the default, "") checks everything every time;
	// VerifyIncremental re-checks what the guest wrote since the last one,
	// found with KVM's dirty log; VerifyAuto (vmm's default) is
	// incremental for guests of at least AutoIncrementalMin bytes of RAM
	// and full below. The final check is always full.
	Verify string
	// HugePages backs guest RAM with transparent huge pages (see
	// GuestMemory.AdviseHuge): `vmm run` sets it, since a Go heap touches
	// fresh frames fast and each host fault is an exit.
	HugePages bool

	Console io.Writer // guest console output (nil: discarded)
	Stdout  io.Writer // a user program's fd 1 (vmm run; nil: discarded)
	Stderr  io.Writer // a user program's fd 2 (vmm run; nil: discarded)
	Log     io.Writer // -v diagnostics (nil: quiet)

	// Progress gets a line per step of long work as it happens (each
	// checkpoint, a dump's start and end); nil: none.
	Progress io.Writer
}

// Verification modes (Config.Verify).
const (
	VerifyIncremental = verify.KindIncremental
	VerifyFull        = verify.KindFull
	VerifyAuto        = "auto"
)

// AutoIncrementalMin is the guest RAM from which VerifyAuto checks
// incrementally. Below it a full check costs less than the dirty log's
// fixed costs (a baseline, the guest's first write to each watched page
// after a checkpoint exiting to KVM): see BENCHMARKS.md, "Incremental
// checkpoints".
const AutoIncrementalMin = 1 << 30

// incremental reports whether checkpoints are checked incrementally.
func (c *Config) incremental() bool {
	return c.Verify == VerifyIncremental || c.Verify == VerifyAuto && c.MemBytes >= AutoIncrementalMin
}

// ErrConfig wraps every configuration error; the CLI maps it to StatusUsage.
var ErrConfig = errors.New("invalid configuration")

// Validate checks the configuration against the firmware's and KVM's limits
// (maxCPUs is KVM_CAP_MAX_VCPUS, or 0 if unknown).
func (c *Config) Validate(maxCPUs int) error {
	if _, err := memmap.Build(c.MemBytes); err != nil {
		return fmt.Errorf("%w: --mem: %w", ErrConfig, err)
	}
	limit := firmware.MaxCPUs
	if maxCPUs > 0 {
		limit = min(limit, maxCPUs)
	}
	if c.CPUs < 1 || c.CPUs > limit {
		return fmt.Errorf("%w: --cpus %d: must be between 1 and %d", ErrConfig, c.CPUs, limit)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: --timeout %v: must be positive", ErrConfig, c.Timeout)
	}
	if c.Tick < 0 || (c.Tick > 0 && c.Tick < 100*time.Microsecond) {
		return fmt.Errorf("%w: --tick %v: must be at least 100µs", ErrConfig, c.Tick)
	}
	if len(c.Kernel) == 0 {
		return fmt.Errorf("%w: no guest kernel", ErrConfig)
	}
	if len(c.Cmdline) > firmware.CmdlineMax {
		return fmt.Errorf("%w: --cmdline is %d bytes, at most %d", ErrConfig, len(c.Cmdline), firmware.CmdlineMax)
	}
	if _, _, err := ExitRequest(c.Cmdline); err != nil {
		return fmt.Errorf("%w: --cmdline %w", ErrConfig, err)
	}
	if len(c.Workload) >= firmware.WorkloadMax {
		return fmt.Errorf("%w: --workload %q: name too long", ErrConfig, c.Workload)
	}
	if len(c.Trace) > 0 && len(c.Program) > 0 {
		return fmt.Errorf("%w: a trace and a program cannot share one boot", ErrConfig)
	}
	if c.Verify != "" && c.Verify != VerifyIncremental && c.Verify != VerifyFull && c.Verify != VerifyAuto {
		return fmt.Errorf("%w: --verify %q: want %s, %s or %s", ErrConfig, c.Verify, VerifyAuto, VerifyFull, VerifyIncremental)
	}
	if c.DumpAt != "" && c.DumpPath == "" {
		return fmt.Errorf("%w: --dump-at needs --dump FILE", ErrConfig)
	}
	if c.DumpSync && c.DumpPath == "" {
		return fmt.Errorf("%w: --dump-sync needs --dump FILE", ErrConfig)
	}
	if len(c.BadFrames) > firmware.MaxBadFrames {
		return fmt.Errorf("%w: --bad-frames: %d frames, at most %d", ErrConfig, len(c.BadFrames), firmware.MaxBadFrames)
	}
	for _, pfn := range c.BadFrames {
		if pfn >= c.MemBytes/firmware.PageSize*2 { // generous: RAM above 4 GiB is shifted
			return fmt.Errorf("%w: --bad-frames: frame %#x is beyond guest RAM", ErrConfig, pfn)
		}
	}
	return nil
}

// checkBadFrames refuses bad frames in what the VMM places before the guest
// runs (the in-use ranges: firmware area with the boot info, physmap page
// tables, kernel image, per-CPU areas, trace): the guest cannot do without
// them, so the run could only fail or verify a lie. Called once the layout
// is known, before any vCPU exists.
func checkBadFrames(bad []uint64, inUse []firmware.MemRange) error {
	for _, pfn := range bad {
		for _, r := range inUse {
			first, end := r.Base/firmware.PageSize, (r.Base+r.Size+firmware.PageSize-1)/firmware.PageSize
			if pfn >= first && pfn < end {
				return fmt.Errorf("%w: --bad-frames: frame %#x is in the %s [%#x, %#x), which the VMM fills before the guest runs; it cannot be bad",
					ErrConfig, pfn, verify.InUseName(r.Kind), r.Base, r.Base+r.Size)
			}
		}
	}
	return nil
}
