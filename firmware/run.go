package firmware

// The `vmm run` bundle: what the VMM hands the guest kernel's run workload,
// in the host blob region (BootInfo.TraceBase, TraceSize). It starts with a
// RunHeader; every offset is from the bundle's start and every region lies
// inside the bundle (the guest checks).
//
//	RunHeader
//	ELF image           ELFOff, ELFSize
//	argv strings        ArgvOff, ArgvSize: Argc NUL-terminated strings
//	envp strings        EnvOff, EnvSize: Envc NUL-terminated strings
//	16 random bytes     RandomOff (AT_RANDOM)
//	file system image   FSOff, FSSize (vmm run --dir; FSSize 0: none), see FSHeader

// RunMagic opens a bundle ("VMMRUN01" little-endian).
const RunMagic = 0x31304e55524d4d56

// RunMaxStrings bounds the argument and environment bytes a bundle may
// carry (they go on the program's initial stack).
const RunMaxStrings = 64 << 10

// RunHeader starts a bundle.
type RunHeader struct {
	Magic     uint64
	ELFOff    uint64
	ELFSize   uint64
	Argc      uint64
	ArgvOff   uint64
	ArgvSize  uint64
	Envc      uint64
	EnvOff    uint64
	EnvSize   uint64
	RandomOff uint64
	// WallNanos is the host's wall clock (Unix nanoseconds) when the VM
	// was built: CLOCK_REALTIME = WallNanos + guest time since boot.
	WallNanos uint64
	// VerifyNanos asks for a host checkpoint ("run-periodic") at the first
	// timer tick that interrupts the program after each such interval of
	// guest time (0: only at exec and exit).
	VerifyNanos uint64
	// FSOff, FSSize locate the --dir file system image (8-byte aligned;
	// FSSize 0: the program has no file system).
	FSOff  uint64
	FSSize uint64
	// FSCwd is the entry index of the program's working directory (a
	// directory of the image; 0: its root).
	FSCwd uint64
	_     [1]uint64
}

// RunHeaderSize is RunHeader's size in bytes.
const RunHeaderSize = 16 * 8
