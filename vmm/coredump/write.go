package coredump

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/internal/safefile"
	"github.com/vmm-dev/vmm/vmm/memmap"
	"golang.org/x/sys/unix"
)

// Write writes guest RAM as an ELF64 core file to path. ram is the single
// host mapping backing the guest, laid out per m.Slots(); every RAM range of
// m becomes one PT_LOAD. All-zero pages are not written, leaving holes, so
// the file is sparse. The file is written beside path, synced and renamed
// over it when complete (safefile.CreateAtomic): on error the file at path,
// if any, is unchanged. A path that is not a regular file is refused.
func Write(path string, m memmap.Map, ram []byte, vcpus []VCPU, info Info) (Stats, error) {
	return WriteWith(path, m, ram, vcpus, info, Options{Sync: true})
}

// Options say how a dump reaches its file.
type Options struct {
	// Sync makes the dump durable before it replaces path: writeback
	// started every WritebackStep bytes as the dump is written, fsync,
	// rename, directory fsync, so the file survives a crash of the machine
	// (safefile.File.Commit). Without it the dump is renamed over path
	// once written to the page cache (safefile.File.Replace), as gdb's
	// gcore and QEMU's dump-guest-memory leave theirs: whole or absent for
	// every process, at the speed of memory rather than of the disk.
	Sync bool
}

// WriteWith is Write with the options opt.
func WriteWith(path string, m memmap.Map, ram []byte, vcpus []VCPU, info Info, opt Options) (Stats, error) {
	loads, err := planLoads(m, ram)
	if err != nil {
		return Stats{}, err
	}
	info.Map = m.Ranges()
	notes, err := buildNotes(vcpus, info)
	if err != nil {
		return Stats{}, err
	}
	head, size := buildHeaders(loads, notes)

	f, err := safefile.CreateAtomic(path)
	if err != nil {
		return Stats{}, fmt.Errorf("coredump: %w", err)
	}
	defer f.Abort() // removes only the temporary file, if Commit was not reached
	st, err := writeFile(f.File, head, loads, ram, size, opt.Sync)
	if err != nil {
		return Stats{}, err
	}
	commit := f.Replace
	if opt.Sync {
		commit = f.Commit
	}
	if err := commit(); err != nil {
		return Stats{}, fmt.Errorf("coredump: %w", err)
	}
	return st, nil
}

// load is one PT_LOAD to write: guest [gpa, gpa+size) from ram[host:].
type load struct {
	gpa, size, host uint64
	off             uint64 // file offset, filled by buildHeaders
}

// planLoads returns one load per RAM range of m, checking each is backed by
// ram.
func planLoads(m memmap.Map, ram []byte) ([]load, error) {
	var loads []load
	for _, r := range m.Ranges() {
		if r.Kind != memmap.RAM {
			continue
		}
		host, ok := m.Translate(r.Base, r.Size)
		if !ok || r.Size == 0 {
			return nil, fmt.Errorf("coredump: RAM range %s is not inside one memory slot", r)
		}
		if end, ok := memmap.CheckedAdd(host, r.Size); !ok || end > uint64(len(ram)) {
			return nil, fmt.Errorf("coredump: RAM range %s maps to host [%#x, +%#x), past the %#x-byte RAM mapping",
				r, host, r.Size, len(ram))
		}
		loads = append(loads, load{gpa: r.Base, size: r.Size, host: host})
	}
	if len(loads) == 0 {
		return nil, errors.New("coredump: memory map has no RAM range")
	}
	if len(m.Ranges()) > MaxRanges {
		return nil, fmt.Errorf("coredump: memory map has %d ranges, more than %d", len(m.Ranges()), MaxRanges)
	}
	return loads, nil
}

// buildNotes returns the note segment: NT_PRSTATUS per vCPU, one more per
// handler context, QEMU state per vCPU, then the VMM note. The first
// NT_PRSTATUS is the thread gdb shows first.
func buildNotes(vcpus []VCPU, info Info) ([]byte, error) {
	if len(vcpus) > MaxVCPUs {
		return nil, fmt.Errorf("coredump: %d vCPUs, more than %d", len(vcpus), MaxVCPUs)
	}
	if len(info.Roots) > MaxRoots {
		return nil, fmt.Errorf("coredump: %d page-table roots, more than %d", len(info.Roots), MaxRoots)
	}
	// Linux writes the signal that killed the process as every thread's
	// pr_cursig, and gdb (bfd) takes the last note's as the core's "Program
	// terminated with signal": the thread's own signal is in si_signo.
	fatal := 0
	for _, v := range vcpus {
		if fatal == 0 {
			fatal = v.Signal
		}
	}
	var b []byte
	for _, v := range vcpus {
		if v.Index < 0 || v.Index >= 1<<31-1 {
			return nil, fmt.Errorf("coredump: vCPU index %d out of range", v.Index)
		}
		b = appendNote(b, noteNameCore, ntPRStatus, encode(prstatusOf(v, int32(v.Index+1), fatal)))
	}
	for _, v := range vcpus {
		if h := v.Handler; h != nil {
			b = appendNote(b, noteNameCore, ntPRStatus, encode(prstatusOf(*h, int32(HandlerPIDBase+v.Index+1), fatal)))
		}
	}
	for _, v := range vcpus {
		b = appendNote(b, noteNameQEMU, ntQEMU, encode(qemuStateOf(v)))
	}
	return appendNote(b, NoteName, NoteTypeInfo, encodeInfo(info, len(vcpus))), nil
}

func prstatusOf(v VCPU, pid int32, fatal int) *elfPrstatus {
	return &elfPrstatus{
		Info: [3]int32{int32(v.Signal)}, Cursig: uint16(fatal),
		Pid: pid,
		Reg: userRegs{
			R15: v.R15, R14: v.R14, R13: v.R13, R12: v.R12,
			RBP: v.RBP, RBX: v.RBX, R11: v.R11, R10: v.R10,
			R9: v.R9, R8: v.R8, RAX: v.RAX, RCX: v.RCX, RDX: v.RDX,
			RSI: v.RSI, RDI: v.RDI, RIP: v.RIP, CS: uint64(v.CS),
			EFLAGS: v.RFLAGS, RSP: v.RSP, SS: uint64(v.SS),
			FSBase: v.FSBase, GSBase: v.GSBase,
			DS: uint64(v.DS), ES: uint64(v.ES), FS: uint64(v.FS), GS: uint64(v.GS),
		},
	}
}

func qemuStateOf(v VCPU) *qemuCPUState {
	return &qemuCPUState{
		Version: qemuStateVersion, Size: qemuStateSize,
		RAX: v.RAX, RBX: v.RBX, RCX: v.RCX, RDX: v.RDX,
		RSI: v.RSI, RDI: v.RDI, RSP: v.RSP, RBP: v.RBP,
		R8: v.R8, R9: v.R9, R10: v.R10, R11: v.R11,
		R12: v.R12, R13: v.R13, R14: v.R14, R15: v.R15,
		RIP: v.RIP, RFLAGS: v.RFLAGS,
		CS: qemuSegment{Selector: uint32(v.CS)}, DS: qemuSegment{Selector: uint32(v.DS)},
		ES: qemuSegment{Selector: uint32(v.ES)}, SS: qemuSegment{Selector: uint32(v.SS)},
		FS: qemuSegment{Selector: uint32(v.FS), Base: v.FSBase},
		GS: qemuSegment{Selector: uint32(v.GS), Base: v.GSBase},
		CR: [5]uint64{v.CR0, 0, v.CR2, v.CR3, v.CR4},
	}
}

// encodeInfo returns the VMM note's desc (layout in the package comment).
func encodeInfo(info Info, nvcpus int) []byte {
	reason := info.Reason
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	h := vmmNoteHeader{
		Version: NoteVersion, NRanges: uint32(len(info.Map)), NRoots: uint32(len(info.Roots)),
		NVCPUs: uint32(nvcpus), ReasonLen: uint32(len(reason)),
	}
	if r := info.Reg; r != nil {
		h.Flags |= vmmFlagReg
		h.Reg = [4]uint64{r.MetaPhys, r.FrameCount, r.Version, r.StatePhys}
	}
	if info.Holdings != 0 {
		h.Flags |= vmmFlagHeld
	}
	b := encode(&h)
	for _, r := range info.Map {
		b = append(b, encode(&vmmNoteRange{Base: r.Base, Size: r.Size, Kind: uint32(r.Kind)})...)
	}
	for _, root := range info.Roots {
		b = le.AppendUint64(b, root)
	}
	b = append(b, reason...)
	if info.Holdings != 0 {
		b = le.AppendUint64(b, info.Holdings)
	}
	return b
}

// buildHeaders lays out the file, fills each load's offset, and returns the
// ELF header, program headers and notes as one buffer, and the file size.
func buildHeaders(loads []load, notes []byte) ([]byte, uint64) {
	phnum := uint64(1 + len(loads))
	noteOff := uint64(ehdrSize) + phnum*phdrSize
	off := alignPage(noteOff + uint64(len(notes)))
	for i := range loads {
		loads[i].off = off
		off = alignPage(off + loads[i].size)
	}
	size := off
	if n := len(loads); n > 0 {
		size = loads[n-1].off + loads[n-1].size
	}

	hdr := elf.Header64{
		Type: uint16(elf.ET_CORE), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: ehdrSize, Ehsize: ehdrSize, Phentsize: phdrSize, Phnum: uint16(phnum),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	hdr.Ident[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)

	b := encode(&hdr)
	b = append(b, encode(&elf.Prog64{
		Type: uint32(elf.PT_NOTE), Off: noteOff, Filesz: uint64(len(notes)), Memsz: uint64(len(notes)), Align: 4,
	})...)
	for _, l := range loads {
		b = append(b, encode(&elf.Prog64{
			Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_W | elf.PF_X),
			Off: l.off, Vaddr: firmware.PhysToVirt(l.gpa), Paddr: l.gpa, Filesz: l.size, Memsz: l.size, Align: pageSize,
		})...)
	}
	return append(b, notes...), size
}

func alignPage(n uint64) uint64 { return (n + pageSize - 1) &^ (pageSize - 1) }

// writeFile writes the headers and each load sparsely, then sets the file
// size so trailing zero pages are holes too.
func writeFile(f *os.File, head []byte, loads []load, ram []byte, size uint64, sync bool) (Stats, error) {
	st := Stats{FileSize: size}
	if _, err := f.WriteAt(head, 0); err != nil {
		return st, fmt.Errorf("coredump: write headers: %w", err)
	}
	st.Written = uint64(len(head))
	wb := writeback{allocate: hasBlocks(f), start: sync}
	for _, l := range loads {
		if err := writeSparse(f, l.off, ram[l.host:l.host+l.size], &st, &wb); err != nil {
			return st, fmt.Errorf("coredump: write guest [%#x, +%#x): %w", l.gpa, l.size, err)
		}
	}
	if err := f.Truncate(int64(size)); err != nil {
		return st, fmt.Errorf("coredump: set file size %#x: %w", size, err)
	}
	return st, nil
}

// writeSparse writes data at file offset off, one write per run of pages
// that are not all zero; zero pages are skipped (holes). Pages with no host
// page behind them (see residency) are zero without being read, so the cost
// follows what the guest touched, not the size of its RAM.
func writeSparse(f *os.File, off uint64, data []byte, st *Stats, wb *writeback) error {
	run := -1 // start of the current run of non-zero pages, -1 if none
	flush := func(end int) error {
		if run < 0 {
			return nil
		}
		at := int64(off) + int64(run)
		if wb.allocate {
			// Allocating the run's blocks first spares the page cache a
			// delayed-allocation reservation per 4 KiB block and the
			// writeback its block allocation. Only blocks about to be
			// written are allocated, so the holes are the same; a file
			// system that cannot (EOPNOTSUPP) allocates as it writes, as
			// before, and any real failure (ENOSPC) is the write's to
			// report.
			unix.Fallocate(int(f.Fd()), 0, at, int64(end-run))
		}
		if _, err := f.WriteAt(data[run:end], at); err != nil {
			return err
		}
		st.Written += uint64(end - run)
		wb.wrote(f, at+int64(end-run))
		run = -1
		return nil
	}
	var vec []byte // residency of one window, reused
	for w := 0; w < len(data); w += residencyWindow {
		win := data[w:min(w+residencyWindow, len(data))]
		res := residencyInto(win, &vec)
		for p := 0; p < len(win); p += pageSize {
			if res != nil && res[p/pageSize] == 0 {
				// A run of pages without host pages: skip it whole.
				end := nextResident(res, p/pageSize)
				st.PagesSkipped += uint64(end - p/pageSize)
				if err := flush(w + p); err != nil {
					return err
				}
				p = end*pageSize - pageSize
				continue
			}
			page := win[p:min(p+pageSize, len(win))]
			if isZero(page) {
				st.PagesSkipped++
				if err := flush(w + p); err != nil {
					return err
				}
				continue
			}
			st.PagesWritten++
			if run < 0 {
				run = w + p
			}
			if w+p+pageSize-run >= WritebackStep {
				// A long run is written in steps so its writeback starts early.
				if err := flush(min(w+p+pageSize, len(data))); err != nil {
					return err
				}
			}
		}
	}
	return flush(len(data))
}

// writeback starts the disk writes of what is already in the page cache
// while the rest is still being copied: Commit's fsync then waits for the
// tail only, instead of for the whole file after the last byte is written.
// A dump that is not synced leaves writeback to the kernel: started early
// it only competes with the copy.
type writeback struct {
	from     int64 // file offset up to which writeback has been started
	allocate bool  // fallocate each run before writing it
	start    bool  // start writeback at all (Options.Sync)
}

// hasBlocks reports whether f's file system allocates disk blocks, which
// fallocate can do ahead of the writes. tmpfs and ramfs have only pages:
// preallocating them is a second pass over the pages (measured: 8% more
// CPU for a 256 MiB dump to tmpfs), so they are written as before.
func hasBlocks(f *os.File) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return true // fallocate is only a hint
	}
	return st.Type != unix.TMPFS_MAGIC && st.Type != unix.RAMFS_MAGIC
}

// WritebackStep is how much written data starts writing back at once (the
// durable write floor, vmm.DurableWriteFloor, uses the same step).
const WritebackStep = 16 << 20

// wrote notes that the file has been written up to end, and starts
// writeback of [from, end) once that is WritebackStep or more. It is only
// a hint (SYNC_FILE_RANGE_WRITE waits for nothing); its error is dropped
// because Commit's fsync reports any write error.
func (wb *writeback) wrote(f *os.File, end int64) {
	if !wb.start || end-wb.from < WritebackStep {
		return
	}
	unix.SyncFileRange(int(f.Fd()), wb.from, end-wb.from, unix.SYNC_FILE_RANGE_WRITE)
	wb.from = end
}

// nextResident returns the index of the first non-zero byte of res at or
// after i, or len(res); it steps eight bytes at a time over zeros.
func nextResident(res []byte, i int) int {
	for i%8 != 0 && i < len(res) && res[i] == 0 {
		i++
	}
	for i+8 <= len(res) && le.Uint64(res[i:]) == 0 {
		i += 8
	}
	for i < len(res) && res[i] == 0 {
		i++
	}
	return i
}

// isZero reports whether b is all zero, eight bytes at a time.
func isZero(b []byte) bool {
	for len(b) >= 64 {
		w := le.Uint64(b) | le.Uint64(b[8:]) | le.Uint64(b[16:]) | le.Uint64(b[24:]) |
			le.Uint64(b[32:]) | le.Uint64(b[40:]) | le.Uint64(b[48:]) | le.Uint64(b[56:])
		if w != 0 {
			return false
		}
		b = b[64:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
