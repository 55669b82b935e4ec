package firmware

// Hypercalls. The guest fills its vCPU's Mailbox (at MailboxBase +
// cpu*MailboxStride) with Nr and Args, then stores Nr to HypercallDoorbell.
// That store exits to the VMM, which reads the mailbox of the vCPU that
// exited (never an address the guest chose), validates every argument
// against guest RAM, writes Ret and resumes the vCPU after the store.
const (
	HCExit         = 1  // Args[0]: exit status (0..255)
	HCConsoleFlush = 2  // drain the console ring now (the ring is full)
	HCRegisterMeta = 3  // Args: metadata phys, frame count, layout version, allocator-state phys
	HCCheckpoint   = 4  // Args: label phys, label length, CheckpointFlags; stops until the host has verified memory. Ret: violations found
	HCReport       = 5  // Args: key phys, key length, value: one named count for the run's summary
	HCRegisterRoot = 6  // Args: PML4 phys, 1 = add / 0 = remove: an address space the host verifies
	HCSleep        = 7  // block this vCPU until a wake or until Args[0] ns have passed
	HCWake         = 8  // Args[0]: vCPU index to wake
	HCFault        = 9  // Args: phys of a FaultFrame, of the trapRegs block (0: none): an exception the guest could not handle
	HCSetCR3       = 10 // Args[0]: PML4 phys to load (0: the kernel's); its PhysMapSlot entry must be the kernel's
	HCRegisterHeld = 11 // Args: phys of the guest's mm.Holdings (what its workloads hold), its size in bytes
	HCWrite        = 12 // Args: fd (1 stdout, 2 stderr), phys, length (<= MaxWriteLen): a user program's output
	HCExitProgram  = 13 // Args: the user program's exit status (0..255), the signal that killed it (0: it exited), its RIP and fault address then; ends the run (vmm run)
	HCRandom       = 14 // Args: phys, length (<= MaxWriteLen): fill with the host's cryptographic random bytes (getrandom)
	HCKick         = 15 // Args[0]: vCPU index: bring it out of the guest (or out of HCSleep) with a timer interrupt (TLB shootdowns, vmm run's exit)
	// HCRegisterReports: Args: phys of the guest's ReportRing, its size in
	// bytes (ReportRingSize), once. The guest then posts HCReport's calls
	// there without an exit; the host takes them, in order, before it serves
	// any hypercall and when the run ends.
	HCRegisterReports = 16
	HCCount           = 17
)

// HCCheckpoint flags (Args[2]). A hint can only make the host check more:
// an unknown bit is refused (HCErrInvalid), never ignored.
const (
	// CheckpointUnwatched says the interval after this checkpoint is not
	// worth watching with the dirty log: it rewrites most of the frame
	// metadata. The host then write-protects nothing for it (the guest takes no
	// dirty-log faults), checks the next checkpoint in full, and takes no
	// baseline at this one.
	CheckpointUnwatched = 1 << 0
	// CheckpointLast says the run ends after this checkpoint (the check at
	// exit is full anyway). The host keeps no baseline and leaves the dirty
	// log as it is: starting or stopping it would cost this checkpoint
	// more (1-4 ms at 16 GiB) than a short last interval's faults. With
	// CheckpointUnwatched too, logging stops.
	CheckpointLast       = 1 << 1
	CheckpointFlagsKnown = CheckpointUnwatched | CheckpointLast
)

// Hypercall results in Mailbox.Ret. Successful calls return 0 or a count.
const (
	HCErrUnknown = ^uint64(0) // no such hypercall
	HCErrInvalid = ^uint64(1) // an argument is out of range or points outside RAM
	HCErrState   = ^uint64(2) // the call is not valid now (e.g. registering twice)
	HCErrClosed  = ^uint64(3) // HCWrite: the host's end of that fd is closed (a reader that went away)

	// HCFaultResume is HCFault's answer when a debugger resumes the vCPU:
	// the guest returns to the interrupted code through its trap record and
	// register block, which the debugger may have changed. Without a
	// debugger HCFault never returns.
	HCFaultResume = 0x600d
)

// MailboxStride is the size of one Mailbox; it is a cache line so vCPUs
// never share one.
const MailboxStride = 64

// Mailbox is one vCPU's hypercall argument block.
type Mailbox struct {
	Nr   uint64
	Args [5]uint64
	Ret  uint64
	// Seq counts the hypercalls this vCPU has issued, this one included;
	// the VMM compares it with the number it handled, so an exit decoded
	// twice (or one lost) shows up in every run's summary.
	Seq uint64
}

// ConsoleHeader starts the console ring at ConsoleBase. The guest owns Head,
// the VMM owns Tail; both count bytes since boot, so Head-Tail is the number
// of unread bytes and neither ever wraps in practice.
type ConsoleHeader struct {
	Head uint64
	Tail uint64
	_    [6]uint64
}

const (
	ConsoleDataOff  = 0x1000
	ConsoleDataSize = 0x4000 // power of two: index = count & (size-1)
)

// ReportRing carries posted reports (HCRegisterReports): what HCReport
// would say, without the exit each call costs (a quarter of a default
// boot's hypercalls were reports). The guest owns Head and writes an entry
// before it publishes it by advancing Head; the host owns Tail, which it
// advances past the entries it took. Both count entries since boot. A
// guest that finds the ring full makes any hypercall (the host drains the
// ring first), or reports synchronously.
type ReportRing struct {
	Head    uint64
	Tail    uint64
	_       [6]uint64
	Entries [ReportRingEntries]ReportEntry
}

// ReportEntry is one posted report: HCReport's three arguments. The key
// must stay in place until the host has taken the entry (the guest kernel
// copies each key into a buffer of the entry's slot).
type ReportEntry struct {
	Key, KeyLen, Value uint64
}

const (
	ReportRingEntries = 64 // power of two: index = count & (entries-1)
	ReportRingSize    = 64 + ReportRingEntries*24
)

// Limits on hypercall arguments.
const (
	MaxLabelLen = 256
	MaxRoots    = 64
	MaxWriteLen = PageSize
)

// FaultFrame is what the guest's exception path hands to HCFault: the
// interrupted context, so that reports and dumps show the code that faulted
// rather than the handler that reports it.
type FaultFrame struct {
	Vector    uint64
	ErrorCode uint64
	CR2       uint64
	RIP       uint64
	CS        uint64
	RFLAGS    uint64
	RSP       uint64
	SS        uint64
	RBP       uint64
	// Regs are the interrupted general registers in x86 encoding order
	// (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15), as the trap entry
	// saved them.
	Regs [16]uint64
}

// FaultFrameSize is FaultFrame's size in bytes (25 words).
const FaultFrameSize = 25 * 8
