package coredump

import (
	"debug/elf"
	"encoding/binary"
)

// ELF sizes and the constants this package writes.
const (
	ehdrSize = 64 // sizeof(Elf64_Ehdr)
	phdrSize = 56 // sizeof(Elf64_Phdr)
	nhdrSize = 12 // sizeof(Elf64_Nhdr): namesz, descsz, type

	// pageSize is the alignment of PT_LOAD data and the hole granularity.
	pageSize = 4096

	noteNameCore = "CORE"
	noteNameQEMU = "QEMU"

	// ntPRStatus is NT_PRSTATUS; ntQEMU is the type QEMU gives its
	// QEMUCPUState notes.
	ntPRStatus = uint32(elf.NT_PRSTATUS)
	ntQEMU     = uint32(0)

	prstatusSize     = 336 // sizeof(struct elf_prstatus) on x86_64
	qemuStateSize    = 440 // sizeof(QEMUCPUState) with kernel_gs_base
	qemuStateMinSize = 432 // sizeof(QEMUCPUState) without kernel_gs_base
	qemuStateVersion = 1
)

// Our own note.
const (
	// NoteName is the name of the note carrying Info.
	NoteName = "VMM"
	// NoteTypeInfo is the type of the note carrying Info ("VMM\0" read as
	// a big-endian uint32).
	NoteTypeInfo = uint32(0x564D4D00)
	// NoteVersion is the layout version of the Info note this package
	// writes and the only one it reads.
	NoteVersion = uint32(1)
)

// Limits on what a dump may hold. Write refuses more; Open reports a dump
// with more as corrupt, so hostile input cannot make it allocate much.
const (
	MaxVCPUs     = 1024
	MaxRanges    = 1024
	MaxRoots     = 1 << 16
	MaxReasonLen = 4096 // longer reasons are truncated by Write
)

var le = binary.LittleEndian

// userRegs is struct user_regs_struct on x86_64 (the pr_reg of prstatus):
// 27 uint64 in the kernel's order.
type userRegs struct {
	R15, R14, R13, R12, RBP, RBX, R11, R10 uint64
	R9, R8, RAX, RCX, RDX, RSI, RDI        uint64
	OrigRAX, RIP, CS, EFLAGS, RSP, SS      uint64
	FSBase, GSBase, DS, ES, FS, GS         uint64
}

// elfPrstatus is struct elf_prstatus on x86_64 (336 bytes), padding made
// explicit. Layout pinned by TestABILayout.
type elfPrstatus struct {
	Info    [3]int32 // pr_info: si_signo, si_code, si_errno
	Cursig  uint16
	_       [2]byte
	Sigpend uint64
	Sighold uint64
	Pid     int32
	Ppid    int32
	Pgrp    int32
	Sid     int32
	Utime   [2]int64 // struct timeval
	Stime   [2]int64
	Cutime  [2]int64
	Cstime  [2]int64
	Reg     userRegs
	Fpvalid int32
	_       [4]byte
}

// qemuSegment is QEMUCPUSegment (24 bytes).
type qemuSegment struct {
	Selector, Limit, Flags, Pad uint32
	Base                        uint64
}

// qemuCPUState is QEMU's QEMUCPUState for x86 (version 1, 440 bytes),
// from target/i386/arch_dump.c. Layout pinned by TestABILayout.
type qemuCPUState struct {
	Version, Size                          uint32
	RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
	CS, DS, ES, FS, GS, SS                 qemuSegment
	LDT, TR, GDT, IDT                      qemuSegment
	CR                                     [5]uint64
	KernelGSBase                           uint64
}

// vmmNoteHeader is the fixed head of the VMM note (56 bytes).
type vmmNoteHeader struct {
	Version   uint32
	Flags     uint32
	NRanges   uint32
	NRoots    uint32
	NVCPUs    uint32
	ReasonLen uint32
	Reg       [4]uint64 // MetaPhys, FrameCount, Version, StatePhys
}

// vmmNoteRange is one memory map range in the VMM note (24 bytes).
type vmmNoteRange struct {
	Base, Size uint64
	Kind       uint32
	_          uint32
}

const (
	vmmHeaderSize = 56
	vmmRangeSize  = 24
	vmmFlagReg    = 1 << 0
	vmmFlagHeld   = 1 << 1 // a holdings address follows the reason
)

// encode returns the little-endian bytes of a fixed-size struct.
func encode(v any) []byte {
	b := make([]byte, binary.Size(v))
	if _, err := binary.Encode(b, le, v); err != nil {
		panic("coredump: encode: " + err.Error()) // fixed-size types only: a bug
	}
	return b
}

// decode fills v from b, which the caller has checked is big enough.
func decode(b []byte, v any) {
	if _, err := binary.Decode(b, le, v); err != nil {
		panic("coredump: decode: " + err.Error()) // callers check sizes: a bug
	}
}

// align4 rounds n up to a multiple of 4 (n is at most 2^32, no overflow).
func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// appendNote appends one ELF note (header, padded name, padded desc).
func appendNote(b []byte, name string, typ uint32, desc []byte) []byte {
	namesz := uint64(len(name) + 1)
	b = le.AppendUint32(b, uint32(namesz))
	b = le.AppendUint32(b, uint32(len(desc)))
	b = le.AppendUint32(b, typ)
	b = append(b, name...)
	b = append(b, make([]byte, align4(namesz)-uint64(len(name)))...)
	b = append(b, desc...)
	return append(b, make([]byte, align4(uint64(len(desc)))-uint64(len(desc)))...)
}
