package main

import (
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/internal/safefile"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/diag"
)

// `vmm run PROG [ARGS...]`: an unmodified static x86-64 Linux program as
// the one user process of the guest kernel (its run workload). The
// program's fd 1 and 2 are vmm's stdout and stderr; the guest kernel's own
// console is kept (printed on stderr only when the run fails, or with -v);
// the summary goes to stderr after the program's output.

const schemaRun = "vmm.run/1"

// maxProgram bounds the ELF vmm run reads (it goes into guest RAM whole).
const maxProgram = 256 << 20

type runFlags struct {
	mem        string
	cpus       int
	env        []string
	timeout    time.Duration
	tick       time.Duration
	verify     time.Duration
	verifyMode verifyMode // --verify: auto, full or incremental
	kernel     string
	dump       string
	dumpSync   bool
	jsonOut    string
	verbose    bool
	dir        string
	cwd        string
	prog       string
	args       []string
}

type envFlag struct{ vals *[]string }

func (e envFlag) String() string { return "" }
func (e envFlag) Set(v string) error {
	if !strings.Contains(v, "=") || strings.HasPrefix(v, "=") || strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e.vals = append(*e.vals, v)
	return nil
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.mem, "mem", "512M", "guest RAM `SIZE`: "+memSyntax)
	fs.IntVar(&f.cpus, "cpus", 1, "`N` vCPUs the program's threads run on in parallel (one kernel lock; TLB shootdowns between them)")
	fs.Var(envFlag{&f.env}, "env", "add `KEY=VALUE` to the program's environment (repeatable; default: empty)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "stop the program after `DURATION`")
	fs.DurationVar(&f.tick, "tick", 10*time.Millisecond, "timer `PERIOD` that preempts the program's threads")
	fs.DurationVar(&f.verify, "verify-every", 0, "verify guest memory from the host every `INTERVAL` of guest time, at a timer tick that interrupted the program (0: at exec and exit only)")
	f.verifyMode = vmm.VerifyAuto
	fs.Var(&f.verifyMode, "verify", verifyUsage)
	fs.StringVar(&f.kernel, "kernel", "", "use this guest kernel ELF `FILE` instead of the embedded one")
	fs.StringVar(&f.dump, "dump", "", "write guest memory as an ELF core `FILE` when the run ends")
	fs.BoolVar(&f.dumpSync, "dump-sync", false, "make the --dump durable (fsync) before it replaces FILE")
	fs.StringVar(&f.jsonOut, "json-out", "", "write the summary as JSON to `FILE`")
	fs.StringVar(&f.dir, "dir", "", "copy the host directory tree `HOSTDIR` into guest RAM as the program's read-only file system (its / and working directory; /tmp is a writable tmpfs over it)")
	fs.StringVar(&f.cwd, "cwd", "/", "the program's working directory: `PATH` inside the --dir tree")
	fs.BoolVar(&f.verbose, "v", false, "log VMM events and the guest kernel's console on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: vmm run [flags] PROG [ARGS...]")
			fs.PrintDefaults()
			return nil, err
		}
		return nil, usagef("%v", err)
	}
	if fs.NArg() == 0 {
		return nil, usagef("no program given (usage: vmm run [flags] PROG [ARGS...])")
	}
	if f.verify < 0 || (f.verify > 0 && f.verify < time.Millisecond) {
		return nil, usagef("--verify-every %v: must be 0 or at least 1ms", f.verify)
	}
	if f.verify > 0 && f.tick == 0 {
		return nil, usagef("--verify-every needs --tick (the checks run at timer ticks)")
	}
	f.prog, f.args = fs.Arg(0), fs.Args()[1:]
	return f, nil
}

// ErrBadProgram wraps every reason a PROG is refused before any VM exists.
var ErrBadProgram = errors.New("cannot run this program")

// checkProgram refuses, with its own message each, a file that is not an
// ELF, one for another machine, and a dynamically linked one.
func checkProgram(image []byte) error {
	if len(image) < 4 || !bytes.Equal(image[:4], []byte(elf.ELFMAG)) {
		return fmt.Errorf("%w: not an ELF file", ErrBadProgram)
	}
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return fmt.Errorf("%w: malformed ELF: %w", ErrBadProgram, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%w: built for %v %v; vmm run needs a 64-bit x86-64 Linux program (GOARCH=amd64)", ErrBadProgram, f.Class, f.Machine)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("%w: built for %v; vmm run needs a Linux program (GOOS=linux)", ErrBadProgram, f.OSABI)
	}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			return fmt.Errorf("%w: dynamically linked (it names an interpreter, PT_INTERP); build it static, e.g. CGO_ENABLED=0 go build", ErrBadProgram)
		case elf.PT_DYNAMIC:
			return fmt.Errorf("%w: dynamically linked (PT_DYNAMIC); build it static, e.g. CGO_ENABLED=0 go build", ErrBadProgram)
		}
	}
	if f.Type != elf.ET_EXEC {
		return fmt.Errorf("%w: %v, not a fixed-address executable (ET_EXEC); build with -buildmode=exe", ErrBadProgram, f.Type)
	}
	loads := 0
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		loads++
		if p.Vaddr < 0x10000 || p.Vaddr+p.Memsz < p.Vaddr || p.Vaddr+p.Memsz > firmware.PhysMapBase ||
			p.Filesz > p.Memsz || p.Off+p.Filesz < p.Off || p.Off+p.Filesz > uint64(len(image)) || p.Vaddr%4096 != p.Off%4096 {
			return fmt.Errorf("%w: segment %d [%#x, +%#x) at file offset %#x cannot be loaded (below 64 KiB, above %#x, or outside the file)",
				ErrBadProgram, i, p.Vaddr, p.Memsz, p.Off, uint64(firmware.PhysMapBase))
		}
	}
	if loads == 0 || len(f.Progs) > 64 {
		return fmt.Errorf("%w: %d loadable segments among %d program headers", ErrBadProgram, loads, len(f.Progs))
	}
	return nil
}

// syscallCPL says where SYSCALL lands on this host (tests replace it).
var syscallCPL = vmm.SyscallCPL

// ErrSyscallAtRing0 means this KVM runs SYSCALL at CPL0, which vmm run's
// guest kernel does not support.
var ErrSyscallAtRing0 = errors.New("vmm run is not supported on this KVM")

// checkSyscallPath refuses to run a program where SYSCALL does not stay at
// CPL3: the guest kernel's system-call entry is ring-3 code (it is Go), so
// on VMX/SVM, where SYSCALL enters LSTAR at CPL0, the program's first
// system call would run it with the kernel's privileges on the program's
// stack. Without usable KVM it lets the VM's creation say why.
func checkSyscallPath(probe func() (int, error), module string) error {
	cpl, err := probe()
	if errors.Is(err, vmm.ErrNoKVM) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: cannot tell where SYSCALL lands: %w", ErrSyscallAtRing0, err)
	}
	if cpl != 3 {
		if module == "" {
			module = "no kvm_pvm module"
		}
		return fmt.Errorf("%w (%s): SYSCALL enters the guest at CPL%d here, and the guest kernel's system-call entry runs at CPL3; "+
			"vmm run needs a kvm_pvm host, where SYSCALL stays at CPL3 (docs/kvm-hosts.md). vmm boot and vmm bench work here", ErrSyscallAtRing0, module, cpl)
	}
	return nil
}

// runBundle lays out firmware's run bundle: header, ELF, argv, envp,
// AT_RANDOM bytes, then the file-system image, as pieces to be laid end to
// end in guest RAM (the ELF is not copied here).
func runBundle(image []byte, argv, env []string, verify time.Duration, fsImage []byte, fsCwd uint64) ([][]byte, error) {
	strs := func(ss []string) []byte {
		var b []byte
		for _, s := range ss {
			b = append(append(b, s...), 0)
		}
		return b
	}
	av, ev := strs(argv), strs(env)
	if len(av)+len(ev) > firmware.RunMaxStrings {
		return nil, usagef("arguments and environment take %d bytes, at most %d", len(av)+len(ev), firmware.RunMaxStrings)
	}
	for _, s := range argv {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, usagef("argument %q contains a NUL byte", s)
		}
	}
	h := firmware.RunHeader{Magic: firmware.RunMagic, Argc: uint64(len(argv)), Envc: uint64(len(env)),
		WallNanos: uint64(time.Now().UnixNano()), VerifyNanos: uint64(verify.Nanoseconds())}
	off := uint64(firmware.RunHeaderSize)
	h.ELFOff, h.ELFSize = off, uint64(len(image))
	off += h.ELFSize
	h.ArgvOff, h.ArgvSize = off, uint64(len(av))
	off += h.ArgvSize
	h.EnvOff, h.EnvSize = off, uint64(len(ev))
	off += h.EnvSize
	h.RandomOff = off
	off += 16
	pad := (8 - off%8) % 8
	if len(fsImage) > 0 {
		h.FSOff, h.FSSize, h.FSCwd = off+pad, uint64(len(fsImage)), fsCwd
	}
	var random [16]byte
	if _, err := rand.Read(random[:]); err != nil {
		return nil, fmt.Errorf("AT_RANDOM bytes: %w", err)
	}
	var hb bytes.Buffer
	if err := binary.Write(&hb, binary.LittleEndian, &h); err != nil {
		return nil, err
	}
	parts := [][]byte{hb.Bytes(), image, append(append(av, ev...), random[:]...)}
	if len(fsImage) > 0 {
		parts = append(parts, make([]byte, pad), fsImage)
	}
	return parts, nil
}

func (f *runFlags) config(stdout, stderr io.Writer, console io.Writer) (vmm.Config, []byte, error) {
	cfg := vmm.Config{CPUs: f.cpus, Workload: "run", Timeout: f.timeout, Tick: f.tick, DumpPath: f.dump, DumpSync: f.dumpSync,
		Stdout: stdout, Stderr: stderr, Console: console, HugePages: true, Verify: string(f.verifyMode)}
	var err error
	if cfg.MemBytes, err = parseMem(f.mem); err != nil {
		return cfg, nil, usagef("--mem: %v", err)
	}
	if f.kernel != "" {
		if cfg.Kernel, err = readKernel(f.kernel, cfg.MemBytes); err != nil {
			return cfg, nil, usagef("--kernel: %v", err)
		}
	} else if k, ok := embeddedKernel(); ok {
		cfg.Kernel = k
	} else {
		return cfg, nil, usagef("this vmm was built without an embedded guest (run make) and no --kernel was given")
	}
	image, err := safefile.ReadRegular(f.prog, int64(min(maxProgram, cfg.MemBytes/2)))
	if err != nil {
		return cfg, nil, usagef("%v", err)
	}
	if err := checkProgram(image); err != nil {
		return cfg, nil, usagef("%s: %v", f.prog, err)
	}
	var fsImage []byte
	var fsCwd uint64
	if f.dir == "" && f.cwd != "/" {
		return cfg, nil, usagef("--cwd needs --dir (without it the file system is an empty / with a writable /tmp)")
	}
	if f.dir == "" {
		fsImage = emptyRootImage() // / for the /tmp mount point
	} else {
		// The program and the tree share low guest RAM: together at most
		// half of it, the rest for the kernel's frames.
		limit := min(uint64(maxDirImage), cfg.MemBytes/2-min(cfg.MemBytes/2, uint64(len(image))))
		if fsImage, fsCwd, err = packDir(f.dir, f.cwd, limit); err != nil {
			return cfg, nil, usagef("--dir: %v", err)
		}
	}
	if cfg.Program, err = runBundle(image, append([]string{f.prog}, f.args...), f.env, f.verify, fsImage, fsCwd); err != nil {
		return cfg, nil, err
	}
	for _, p := range []string{f.dump, f.jsonOut} {
		if p != "" {
			if err := safefile.CheckTarget(p); err != nil {
				return cfg, nil, usagef("%v", err)
			}
			if sameFile(p, f.prog) {
				return cfg, nil, usagef("%s is PROG: writing it would replace the program", p)
			}
		}
	}
	if f.dump != "" && f.jsonOut != "" && sameFile(f.dump, f.jsonOut) {
		return cfg, nil, usagef("--dump and --json-out name the same file (%s)", f.dump)
	}
	if f.verbose {
		cfg.Log = stderr
	}
	if err := cfg.Validate(0); err != nil {
		return cfg, nil, usagef("%v", err)
	}
	return cfg, image, nil
}

func cmdRun(args []string, stdout, stderr io.Writer) (int, error) {
	f, err := parseRunFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	}
	if err != nil {
		return vmm.StatusUsage, err
	}
	// A reader of the program's output that goes away (`vmm run prog |
	// head`) is the program's broken pipe, not the VMM's: vmm gets EPIPE
	// and the guest kernel gives the program SIGPIPE, while the summary,
	// --json-out and --dump are still written.
	signal.Ignore(syscall.SIGPIPE)
	var console bytes.Buffer
	var cons io.Writer = &console
	if f.verbose {
		cons = stderr
	}
	// The probe VM runs while the program is read and checked (a few ms
	// each): with a second host CPU it takes no wall time.
	type cplAnswer struct {
		cpl int
		err error
	}
	probed, probeCPL := make(chan cplAnswer, 1), syscallCPL
	go func() {
		cpl, err := probeCPL()
		probed <- cplAnswer{cpl, err}
	}()
	cfg, image, err := f.config(stdout, stderr, cons)
	if err != nil {
		return vmm.StatusUsage, err
	}
	probe := func() (int, error) { a := <-probed; return a.cpl, a.err }
	if err := checkSyscallPath(probe, vmm.HostModule()); err != nil {
		return vmm.StatusVMMError, err
	}
	vm, res, st, err := runVM(cfg)
	if err != nil {
		return st, err
	}
	defer vm.Close()
	if res.ProgramExitStatus == nil && res.Outcome == vmm.OutcomeExit && res.ExitStatus <= vmm.GuestStatusMax {
		// The guest kernel ended the run itself: its status (10..14) must
		// not pass for the program's.
		res.Reason = fmt.Sprintf("the guest kernel failed (its status %d) before the program finished", res.ExitStatus)
		res.Outcome, res.ExitStatus = vmm.OutcomeFault, vmm.StatusFault
	}
	if (res.ProgramExitStatus == nil || res.Outcome != vmm.OutcomeExit) && !f.verbose {
		stderr.Write(console.Bytes()) // the program did not exit by itself: show what the kernel said
	}
	var sym *diag.Symbolizer // from the program's own line table
	if f, err := elf.NewFile(bytes.NewReader(image)); err == nil {
		sym, _ = diag.NewSymbolizer(f)
	}
	if k := res.ProgramKilled; k != nil {
		if sym != nil {
			k.Where = sym.Describe(k.RIP)
		}
		fmt.Fprintf(stderr, "vmm run: program killed by signal %d at %#x %s, fault address %#x\n", k.Signal, k.RIP, k.Where, k.Address)
	}
	placeProgramVCPUs(stderr, res, sym)
	sum := summarizeRun(res)
	printRunSummary(stderr, res, sum)
	if f.jsonOut != "" {
		out := struct {
			Schema string `json:"schema"`
			*vmm.Result
			Run runSummary `json:"run"`
		}{schemaRun, res, sum}
		if err := writeJSONFile(f.jsonOut, out); err != nil {
			return vmm.StatusVMMError, fmt.Errorf("--json-out: %w", err)
		}
	}
	return res.ExitStatus, nil
}

// placeProgramVCPUs symbolizes, from the program's own line table, where
// each vCPU stopped in the program (the VMM knows only the kernel's), and
// says so when the run was stopped before the program finished.
func placeProgramVCPUs(w io.Writer, r *vmm.Result, sym *diag.Symbolizer) {
	for i := range r.VCPUs {
		v := &r.VCPUs[i]
		if sym == nil || v.RIP >= firmware.PhysMapBase {
			continue
		}
		v.Where = sym.Describe(v.RIP)
		if r.Outcome == vmm.OutcomeTimeout || r.Outcome == vmm.OutcomeSignal {
			fmt.Fprintf(w, "vmm run: vCPU %d was in the program at %s\n", v.CPU, v.Where)
		}
	}
}

// runSummary is what the guest kernel reported about the program.
type runSummary struct {
	Syscalls   []namedCount `json:"syscalls"` // by name, most frequent first
	Refused    []namedCount `json:"refused"`  // answered -ENOSYS
	PageFaults uint64       `json:"page_faults"`
	PeakFrames uint64       `json:"peak_frames"`
	Threads    uint64       `json:"threads"`
	Leaked     uint64       `json:"frames_leaked"`
	Signals    uint64       `json:"signals_delivered"` // faults the program's own handler took
	TmpfsPeak  uint64       `json:"tmpfs_peak_pages"`  // data pages /tmp held at most
	// Reported is false when the kernel never sent these (the program was
	// stopped by a timeout, signal or fault first): the zeros mean unknown.
	Reported bool `json:"reported"`
	// Violations is the host verifier's total over every checkpoint (each
	// checkpoint's own count is in checkpoints[]).
	Violations int `json:"violations"`
}

type namedCount struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

func summarizeRun(r *vmm.Result) runSummary {
	s := runSummary{Violations: r.Violations()}
	for _, rep := range r.Reports {
		switch {
		case strings.HasPrefix(rep.Key, "sys.refused."):
			s.Refused = append(s.Refused, namedCount{strings.TrimPrefix(rep.Key, "sys.refused."), rep.Value})
		case strings.HasPrefix(rep.Key, "sys."):
			s.Syscalls = append(s.Syscalls, namedCount{strings.TrimPrefix(rep.Key, "sys."), rep.Value})
		case rep.Key == "run.page_faults":
			s.PageFaults, s.Reported = rep.Value, true
		case rep.Key == "run.peak_frames":
			s.PeakFrames = rep.Value
		case rep.Key == "run.threads":
			s.Threads = rep.Value
		case rep.Key == "run.frames_leaked":
			s.Leaked = rep.Value
		case rep.Key == "run.signals_delivered":
			s.Signals = rep.Value
		case rep.Key == "run.tmpfs_peak_pages":
			s.TmpfsPeak = rep.Value
		}
	}
	for _, l := range [][]namedCount{s.Syscalls, s.Refused} {
		sort.SliceStable(l, func(i, j int) bool { return l[i].Count > l[j].Count })
	}
	return s
}

func printRunSummary(w io.Writer, r *vmm.Result, s runSummary) {
	if r.Crash != nil {
		fmt.Fprint(w, r.Crash.Text)
	}
	fmt.Fprintf(w, "vmm run: %s: %s (exit status %d)\n", r.Outcome, r.Reason, r.ExitStatus)
	if !s.Reported {
		fmt.Fprintf(w, "vmm run: %d checkpoints, %d violations; the program did not finish, so the guest kernel reported no frames, page faults or system calls\n",
			len(r.Checkpoints), r.Violations())
		return
	}
	fmt.Fprintf(w, "vmm run: %d checkpoints, %d violations; peak %d frames held by the program, %d page faults, %d threads, %d frames leaked\n",
		len(r.Checkpoints), r.Violations(), s.PeakFrames, s.PageFaults, s.Threads, s.Leaked)
	list := func(l []namedCount) string {
		var parts []string
		for _, c := range l {
			parts = append(parts, fmt.Sprintf("%s %d", c.Name, c.Count))
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, ", ")
	}
	fmt.Fprintf(w, "vmm run: syscalls: %s\n", list(s.Syscalls))
	fmt.Fprintf(w, "vmm run: refused (ENOSYS): %s\n", list(s.Refused))
}

// writeJSONFile writes v to path atomically.
func writeJSONFile(path string, v any) error {
	out, err := safefile.CreateAtomic(path)
	if err != nil {
		return err
	}
	defer out.Abort()
	if err := writeJSON(out, v); err != nil {
		return err
	}
	return out.Commit()
}
