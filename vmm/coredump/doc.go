// Package coredump writes and reads guest memory dumps: ELF64 core files in
// the layout QEMU's dump-guest-memory writes, so tools that read QEMU guest
// dumps (crash, gdb, readelf, volatility) read ours, plus a note of our own
// carrying the memory map and the frame-metadata registration.
//
// File layout (offsets in bytes; every PT_LOAD's data is page aligned):
//
//	0x0000            +--------------------------------------------+
//	                  | ELF64 header (ET_CORE, EM_X86_64, LSB)     |
//	0x0040            +--------------------------------------------+
//	                  | phdr 0: PT_NOTE, covers all notes          |
//	                  | phdr 1..n: PT_LOAD, one per RAM range,     |
//	                  |   p_paddr = guest physical, p_vaddr =    |
//	                  |   its physmap address (kernel's view)    |
//	0x40+56*(n+1)     +--------------------------------------------+
//	                  | "CORE" NT_PRSTATUS, one per vCPU           |
//	                  | "QEMU" QEMUCPUState (type 0), one per vCPU |
//	                  | "VMM"  NoteTypeInfo, exactly one           |
//	                  +--------------------------------------------+
//	                  | padding to the next page                   |
//	page aligned      +--------------------------------------------+
//	                  | RAM range 1 bytes; all-zero pages are      |
//	                  | holes (the file is sparse)                 |
//	                  | RAM range 2 bytes ...                      |
//	                  +--------------------------------------------+
//
// NT_PRSTATUS notes carry struct elf_prstatus for x86_64 (336 bytes) with
// pr_pid = vCPU index + 1, as QEMU writes them. QEMU notes carry
// QEMUCPUState version 1 (440 bytes), from which the control registers are
// read back.
//
// The VMM note (name "VMM", type NoteTypeInfo) has this little-endian
// layout, version NoteVersion:
//
//	off  size  field
//	0    4     version (1)
//	4    4     flags: bit 0 set if a registration is present, bit 1 if a
//	           holdings address follows the reason
//	8    4     nranges: memory map ranges that follow
//	12   4     nroots: page-table roots that follow
//	16   4     nvcpus: number of vCPUs (= NT_PRSTATUS notes)
//	20   4     reasonlen: bytes of the reason string that follow
//	24   32    registration: MetaPhys, FrameCount, Version, StatePhys
//	           (uint64 each; zero if bit 0 of flags is clear)
//	56   24*nranges  ranges: Base uint64, Size uint64, Kind uint32, pad uint32
//	...  8*nroots    roots: uint64 each
//	...  reasonlen   reason: UTF-8 text, not NUL terminated
//	...  8           holdings: physical address of the guest's mm.Holdings
//	                 (only if bit 1 of flags is set)
//
// A reader refuses a version it does not know. Later versions may append
// fields after the reason; version 1 readers ignore trailing bytes.
//
// Reading is hostile-input safe: every field is checked before use, size
// arithmetic is done in uint64 with overflow checks, nothing is read outside
// the file, and errors name the file offset of the bad field.
package coredump
