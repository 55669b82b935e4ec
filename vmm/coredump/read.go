package coredump

import (
	"bytes"
	"cmp"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vmm-dev/vmm/internal/safefile"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// Dump is an open, validated dump. Its methods are safe for concurrent use
// until Close.
type Dump struct {
	data   []byte   // the whole file, mapped read-only (or in memory)
	file   *os.File // nil when parsed from memory
	mapped bool
	info   Info
	vcpus  []VCPU
	segs   []Segment // sorted by PAddr, disjoint, inside data
}

// Open maps the dump at path read-only and validates it. path must be a
// regular file (a FIFO or device is refused without blocking). If the file
// shrinks while open, reading the mapping past its new end faults (SIGBUS):
// run every access to the dump's bytes inside Guard, which turns that
// fault into ErrChanged.
func Open(path string) (*Dump, error) {
	f, err := safefile.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("coredump: %w", err)
	}
	d, err := openFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("coredump: %s: %w", path, err)
	}
	return d, nil
}

func openFile(f *os.File) (*Dump, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	size := fi.Size()
	if size < ehdrSize { // too small to map usefully; let parse say why
		b, err := io.ReadAll(io.LimitReader(f, ehdrSize))
		if err != nil {
			return nil, err
		}
		_, err = parse(b)
		if err == nil {
			err = errors.New("file changed while being read")
		}
		return nil, err
	}
	if uint64(size) > math.MaxInt {
		return nil, fmt.Errorf("file is %#x bytes, too large to map", size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %#x bytes: %w", size, err)
	}
	var d *Dump
	err = guard(data, func() error {
		var err error
		d, err = parse(data)
		return err
	})
	if err != nil {
		unix.Munmap(data)
		return nil, err
	}
	d.file, d.mapped = f, true
	return d, nil
}

// ErrChanged: the dump file shrank while it was being read (another
// `vmm boot --dump` rewrote it, or it was truncated).
var ErrChanged = errors.New("the dump file changed while being read (was it rewritten or truncated?)")

// Guard runs fn, which reads the dump's bytes (Slice, or anything given
// the Dump, such as the verifier), and turns a fault on the dump's mapping
// into an error wrapping ErrChanged instead of a crash. Faults elsewhere
// still crash. fn must not start goroutines that read the dump: the fault
// handling is per goroutine.
func (d *Dump) Guard(fn func() error) error {
	if !d.mapped {
		return fn()
	}
	return guard(d.data, fn)
}

// faultAddr is the runtime.Error a fault panics with under
// debug.SetPanicOnFault.
type faultAddr interface{ Addr() uintptr }

func guard(data []byte, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if fa, ok := r.(faultAddr); ok && len(data) > 0 {
			base := uintptr(unsafe.Pointer(&data[0]))
			if a := fa.Addr(); a >= base && a-base < uintptr(len(data)) {
				err = fmt.Errorf("coredump: reading file offset %#x: %w", a-base, ErrChanged)
				return
			}
		}
		panic(r)
	}()
	return fn()
}

// Close unmaps the dump and closes the file. Slices returned by Slice must
// not be used after Close. Close is idempotent.
func (d *Dump) Close() error {
	var err error
	if d.mapped && d.data != nil {
		err = unix.Munmap(d.data)
	}
	d.data, d.mapped = nil, false
	if d.file != nil {
		if cerr := d.file.Close(); err == nil {
			err = cerr
		}
		d.file = nil
	}
	return err
}

// Info returns a copy of what the VMM note carries.
func (d *Dump) Info() Info { return d.info.clone() }

// VCPUs returns a copy of the vCPU register states, in note order.
func (d *Dump) VCPUs() []VCPU { return slices.Clone(d.vcpus) }

// Segments returns a copy of the PT_LOAD segments, sorted by PAddr.
func (d *Dump) Segments() []Segment { return slices.Clone(d.segs) }

// Slice returns the bytes of guest physical [gpa, gpa+n) if the whole span
// lies within one PT_LOAD; holes read as zero. The slice aliases the
// read-only mapping: do not write to it, or use it after Close. n == 0
// returns an empty slice if gpa lies in a segment.
func (d *Dump) Slice(gpa, n uint64) ([]byte, error) {
	if d.data == nil {
		return nil, errors.New("coredump: Slice on a closed dump")
	}
	for _, s := range d.segs {
		if (memmap.Range{Base: s.PAddr, Size: s.Size}).Contains(gpa, n) {
			off := s.FileOff + (gpa - s.PAddr) // validated: off+n <= len(d.data)
			return d.data[off : off+n : off+n], nil
		}
	}
	return nil, fmt.Errorf("coredump: guest physical [%#x, +%#x) is not inside one PT_LOAD segment", gpa, n)
}

// parse validates a whole dump held in b.
func parse(b []byte) (*Dump, error) {
	size := uint64(len(b))
	phoff, phnum, err := parseEhdr(b)
	if err != nil {
		return nil, err
	}
	var notes []noteSeg
	d := &Dump{data: b}
	var loadPh []uint64 // file offset of each load's phdr, parallel to d.segs
	for i := range phnum {
		at := phoff + i*phdrSize
		var ph elf.Prog64
		decode(b[at:at+phdrSize], &ph)
		switch elf.ProgType(ph.Type) {
		case elf.PT_NOTE, elf.PT_LOAD:
		default:
			return nil, formatErr(ErrCorrupt, at, "program header %d has type %s; vmm dumps hold only PT_NOTE and PT_LOAD",
				i, elf.ProgType(ph.Type))
		}
		if end, ok := memmap.CheckedAdd(ph.Off, ph.Filesz); !ok || end > size {
			return nil, formatErr(ErrTruncated, at+8, "program header %d (%s): data [%#x, +%#x) ends past end of file (size %#x)",
				i, elf.ProgType(ph.Type), ph.Off, ph.Filesz, size)
		}
		if elf.ProgType(ph.Type) == elf.PT_NOTE {
			notes = append(notes, noteSeg{off: ph.Off, b: b[ph.Off : ph.Off+ph.Filesz]})
			continue
		}
		if ph.Filesz != ph.Memsz {
			return nil, formatErr(ErrCorrupt, at+32, "program header %d (PT_LOAD): p_filesz %#x != p_memsz %#x",
				i, ph.Filesz, ph.Memsz)
		}
		if _, ok := memmap.CheckedAdd(ph.Paddr, ph.Memsz); !ok {
			return nil, formatErr(ErrCorrupt, at+24, "program header %d (PT_LOAD): guest [%#x, +%#x) wraps past 2^64",
				i, ph.Paddr, ph.Memsz)
		}
		d.segs = append(d.segs, Segment{PAddr: ph.Paddr, Size: ph.Memsz, FileOff: ph.Off})
		loadPh = append(loadPh, at)
	}
	if len(notes) == 0 {
		return nil, formatErr(ErrNotVMMDump, phoff, "core file has no PT_NOTE segment")
	}
	if err := d.parseNotes(notes); err != nil {
		return nil, err
	}
	if err := checkLoads(d.segs, loadPh, d.info.Map); err != nil {
		return nil, err
	}
	slices.SortFunc(d.segs, func(x, y Segment) int { return cmp.Compare(x.PAddr, y.PAddr) })
	return d, nil
}

// parseEhdr checks the ELF header and that the program header table lies
// inside the file; it returns the table's offset and entry count.
func parseEhdr(b []byte) (phoff, phnum uint64, err error) {
	size := uint64(len(b))
	if size < ehdrSize {
		return 0, 0, formatErr(ErrTruncated, 0, "file is %d bytes, shorter than the %d-byte ELF header", size, ehdrSize)
	}
	if !bytes.Equal(b[:4], []byte(elf.ELFMAG)) {
		return 0, 0, formatErr(ErrNotELF, 0, "magic is % x, want 7f 45 4c 46", b[:4])
	}
	var h elf.Header64
	decode(b[:ehdrSize], &h)
	switch {
	case elf.Class(h.Ident[elf.EI_CLASS]) != elf.ELFCLASS64:
		return 0, 0, formatErr(ErrNotCore, elf.EI_CLASS, "ELF class is %s, want ELFCLASS64", elf.Class(h.Ident[elf.EI_CLASS]))
	case elf.Data(h.Ident[elf.EI_DATA]) != elf.ELFDATA2LSB:
		return 0, 0, formatErr(ErrNotCore, elf.EI_DATA, "ELF data encoding is %s, want ELFDATA2LSB", elf.Data(h.Ident[elf.EI_DATA]))
	case elf.Version(h.Ident[elf.EI_VERSION]) != elf.EV_CURRENT:
		return 0, 0, formatErr(ErrNotCore, elf.EI_VERSION, "ELF ident version is %d, want 1", h.Ident[elf.EI_VERSION])
	case elf.Type(h.Type) != elf.ET_CORE:
		return 0, 0, formatErr(ErrNotCore, 0x10, "ELF type is %s, want ET_CORE: not a core file", elf.Type(h.Type))
	case elf.Machine(h.Machine) != elf.EM_X86_64:
		return 0, 0, formatErr(ErrNotCore, 0x12, "ELF machine is %s, want EM_X86_64", elf.Machine(h.Machine))
	case elf.Version(h.Version) != elf.EV_CURRENT:
		return 0, 0, formatErr(ErrCorrupt, 0x14, "ELF version is %d, want 1", h.Version)
	case h.Phentsize != phdrSize:
		return 0, 0, formatErr(ErrCorrupt, 0x36, "e_phentsize is %d, want %d", h.Phentsize, phdrSize)
	case h.Phnum == 0:
		return 0, 0, formatErr(ErrCorrupt, 0x38, "core file has no program headers")
	case h.Phnum == 0xffff:
		return 0, 0, formatErr(ErrCorrupt, 0x38, "e_phnum is PN_XNUM (extended numbering), which vmm dumps never use")
	}
	phoff, phnum = h.Phoff, uint64(h.Phnum)
	if end, ok := memmap.CheckedAdd(phoff, phnum*phdrSize); !ok || end > size {
		return 0, 0, formatErr(ErrTruncated, 0x20, "program header table [%#x, +%d*%d) ends past end of file (size %#x)",
			phoff, phnum, phdrSize, size)
	}
	return phoff, phnum, nil
}

// checkLoads checks the PT_LOADs are exactly the RAM ranges of the map.
func checkLoads(segs []Segment, phAt []uint64, ranges []memmap.Range) error {
	ram := 0
	for _, r := range ranges {
		if r.Kind == memmap.RAM {
			ram++
		}
	}
	for i, s := range segs {
		n := 0
		for _, r := range ranges {
			if r.Kind == memmap.RAM && r.Base == s.PAddr && r.Size == s.Size {
				n++
			}
		}
		if n != 1 {
			return formatErr(ErrCorrupt, phAt[i], "PT_LOAD guest [%#x, +%#x) is not a RAM range of the dump's memory map", s.PAddr, s.Size)
		}
		for _, t := range segs[:i] {
			if t.PAddr == s.PAddr {
				return formatErr(ErrCorrupt, phAt[i], "two PT_LOADs for guest [%#x, +%#x)", s.PAddr, s.Size)
			}
		}
	}
	if len(segs) != ram {
		return formatErr(ErrCorrupt, 0x38, "%d PT_LOAD segments for %d RAM ranges in the memory map", len(segs), ram)
	}
	return nil
}

// DataRanges returns the parts of the dump's segments that hold file data,
// found with lseek SEEK_DATA/SEEK_HOLE: every page outside them is a hole
// and reads as zero, so a scan of a sparse dump can skip it. Spans may
// include zero pages. Where the file system cannot report holes, the whole
// segments are returned.
func (d *Dump) DataRanges() ([]Segment, error) {
	if d.data == nil {
		return nil, errors.New("coredump: DataRanges on a closed dump")
	}
	if d.file == nil {
		return d.Segments(), nil
	}
	fd := int(d.file.Fd())
	var out []Segment
	for _, s := range d.segs {
		pos, end := s.FileOff, s.FileOff+s.Size
		for pos < end {
			data, err := unix.Seek(fd, int64(pos), unix.SEEK_DATA)
			if err == unix.ENXIO { // no data after pos
				break
			}
			if err != nil {
				return d.Segments(), nil // no SEEK_DATA here: treat everything as data
			}
			if uint64(data) >= end {
				break
			}
			hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
			if err != nil {
				return d.Segments(), nil
			}
			stop := min(uint64(hole), end)
			out = append(out, Segment{PAddr: s.PAddr + (uint64(data) - s.FileOff), Size: stop - uint64(data), FileOff: uint64(data)})
			pos = stop
		}
	}
	return out, nil
}
