package coredump

import (
	"slices"

	"github.com/vmm-dev/vmm/vmm/memmap"
)

// noteSeg is the bytes of one PT_NOTE segment and their file offset.
type noteSeg struct {
	off uint64
	b   []byte
}

// note is one parsed ELF note; off is the file offset of its header.
type note struct {
	name string
	typ  uint32
	desc []byte
	off  uint64
	doff uint64 // file offset of desc
}

// walkNotes calls fn for each note of s, checking every size against the
// segment first.
func walkNotes(s noteSeg, fn func(note) error) error {
	if s.off%4 != 0 {
		return formatErr(ErrCorrupt, s.off, "note segment offset %#x is not 4-byte aligned", s.off)
	}
	n := uint64(len(s.b))
	for pos := uint64(0); pos < n; {
		at := s.off + pos
		if n-pos < nhdrSize {
			return formatErr(ErrCorrupt, at, "note header needs %d bytes, only %d left in the note segment", nhdrSize, n-pos)
		}
		namesz, descsz := uint64(le.Uint32(s.b[pos:])), uint64(le.Uint32(s.b[pos+4:]))
		typ := le.Uint32(s.b[pos+8:])
		nameAt := pos + nhdrSize
		descAt := nameAt + align4(namesz) // < 2^34: no overflow
		if descAt > n {
			return formatErr(ErrCorrupt, at, "note namesz %#x runs past the end of the note segment [%#x, +%#x)", namesz, s.off, n)
		}
		end := descAt + align4(descsz)
		if end > n {
			return formatErr(ErrCorrupt, at+4, "note descsz %#x runs past the end of the note segment [%#x, +%#x)", descsz, s.off, n)
		}
		var name string
		if namesz > 0 {
			raw := s.b[nameAt : nameAt+namesz]
			if raw[namesz-1] != 0 {
				return formatErr(ErrCorrupt, s.off+nameAt, "note name is not NUL terminated")
			}
			name = string(raw[:namesz-1])
		}
		if err := fn(note{name: name, typ: typ, desc: s.b[descAt : descAt+descsz], off: at, doff: s.off + descAt}); err != nil {
			return err
		}
		pos = end
	}
	return nil
}

// parseNotes reads the vCPU states and Info from the note segments.
func (d *Dump) parseNotes(segs []noteSeg) error {
	var prs, handlers []elfPrstatus
	var qemu []qemuCPUState
	var prAt, handlerAt []uint64
	var vmm *note
	var nvcpus uint32
	for _, s := range segs {
		err := walkNotes(s, func(n note) error {
			switch {
			case n.name == noteNameCore && n.typ == ntPRStatus:
				if len(n.desc) != prstatusSize {
					return formatErr(ErrCorrupt, n.off+4, "NT_PRSTATUS descsz is %d, want %d (x86-64 elf_prstatus)", len(n.desc), prstatusSize)
				}
				if len(prs) == MaxVCPUs {
					return formatErr(ErrCorrupt, n.off, "more than %d NT_PRSTATUS notes", MaxVCPUs)
				}
				var pr elfPrstatus
				decode(n.desc, &pr)
				if pr.Pid > HandlerPIDBase {
					if len(handlers) == MaxVCPUs {
						return formatErr(ErrCorrupt, n.off, "more than %d handler NT_PRSTATUS notes", MaxVCPUs)
					}
					handlers, handlerAt = append(handlers, pr), append(handlerAt, n.doff)
					break
				}
				prs, prAt = append(prs, pr), append(prAt, n.doff)
			case n.name == noteNameQEMU && n.typ == ntQEMU:
				st, err := decodeQEMU(n)
				if err != nil {
					return err
				}
				if len(qemu) == MaxVCPUs {
					return formatErr(ErrCorrupt, n.off, "more than %d QEMU notes", MaxVCPUs)
				}
				qemu = append(qemu, st)
			case n.name == NoteName && n.typ == NoteTypeInfo:
				if vmm != nil {
					return formatErr(ErrCorrupt, n.off, "second VMM note (first at %#x)", vmm.off)
				}
				vmm = &n
				info, nv, err := decodeInfo(n)
				if err != nil {
					return err
				}
				d.info, nvcpus = info, nv
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if vmm == nil {
		return formatErr(ErrNotVMMDump, segs[0].off, "core file has no VMM note")
	}
	if uint64(nvcpus) != uint64(len(prs)) {
		return formatErr(ErrCorrupt, vmm.doff+16, "VMM note says %d vCPUs, but there are %d NT_PRSTATUS notes", nvcpus, len(prs))
	}
	if len(qemu) != len(prs) {
		return formatErr(ErrCorrupt, segs[0].off, "%d QEMU notes for %d NT_PRSTATUS notes", len(qemu), len(prs))
	}
	for i := range prs {
		v, err := vcpuOf(&prs[i], &qemu[i], prAt[i])
		if err != nil {
			return err
		}
		d.vcpus = append(d.vcpus, v)
	}
	return d.attachHandlers(handlers, handlerAt)
}

// attachHandlers gives each handler-context thread to its vCPU; it takes
// the control registers of the vCPU (the handler ran with the same ones).
func (d *Dump) attachHandlers(handlers []elfPrstatus, at []uint64) error {
	for i := range handlers {
		idx := int64(handlers[i].Pid) - HandlerPIDBase - 1
		j := slices.IndexFunc(d.vcpus, func(v VCPU) bool { return int64(v.Index) == idx })
		if j < 0 {
			return formatErr(ErrCorrupt, at[i]+32, "handler NT_PRSTATUS pr_pid %d names no vCPU of this dump", handlers[i].Pid)
		}
		if d.vcpus[j].Handler != nil {
			return formatErr(ErrCorrupt, at[i]+32, "second handler NT_PRSTATUS for vCPU %d", idx)
		}
		q := qemuCPUState{CR: [5]uint64{d.vcpus[j].CR0, 0, d.vcpus[j].CR2, d.vcpus[j].CR3, d.vcpus[j].CR4}}
		h, err := vcpuOf(&handlers[i], &q, at[i])
		if err != nil {
			return err
		}
		h.Index = int(idx)
		d.vcpus[j].Handler = &h
	}
	return nil
}

func decodeQEMU(n note) (qemuCPUState, error) {
	var st qemuCPUState
	if len(n.desc) < qemuStateMinSize {
		return st, formatErr(ErrCorrupt, n.off+4, "QEMU note descsz is %d, want at least %d", len(n.desc), qemuStateMinSize)
	}
	buf := make([]byte, qemuStateSize)
	copy(buf, n.desc) // a short (432-byte) state reads kernel_gs_base as 0
	decode(buf, &st)
	if st.Version != qemuStateVersion {
		return st, formatErr(ErrCorrupt, n.doff, "QEMU note version is %d, want %d", st.Version, qemuStateVersion)
	}
	if uint64(st.Size) < qemuStateMinSize || uint64(st.Size) > uint64(len(n.desc)) {
		return st, formatErr(ErrCorrupt, n.doff+4, "QEMU note size field is %d, want %d..%d", st.Size, qemuStateMinSize, len(n.desc))
	}
	return st, nil
}

// vcpuOf combines a vCPU's NT_PRSTATUS (at file offset at) and QEMU notes.
func vcpuOf(pr *elfPrstatus, q *qemuCPUState, at uint64) (VCPU, error) {
	if pr.Pid < 1 {
		return VCPU{}, formatErr(ErrCorrupt, at+32, "NT_PRSTATUS pr_pid is %d, want vCPU index + 1 >= 1", pr.Pid)
	}
	r := &pr.Reg
	sel := []struct {
		name string
		v    uint64
		off  uint64
	}{{"cs", r.CS, 17}, {"ss", r.SS, 20}, {"ds", r.DS, 23}, {"es", r.ES, 24}, {"fs", r.FS, 25}, {"gs", r.GS, 26}}
	for _, s := range sel {
		if s.v > 0xffff {
			return VCPU{}, formatErr(ErrCorrupt, at+112+8*s.off, "NT_PRSTATUS %s selector is %#x, wider than 16 bits", s.name, s.v)
		}
	}
	return VCPU{
		Index: int(pr.Pid - 1), Signal: int(pr.Info[0]), // pr_cursig is the process's
		RAX: r.RAX, RBX: r.RBX, RCX: r.RCX, RDX: r.RDX, RSI: r.RSI, RDI: r.RDI, RSP: r.RSP, RBP: r.RBP,
		R8: r.R8, R9: r.R9, R10: r.R10, R11: r.R11, R12: r.R12, R13: r.R13, R14: r.R14, R15: r.R15,
		RIP: r.RIP, RFLAGS: r.EFLAGS,
		CS: uint16(r.CS), SS: uint16(r.SS), DS: uint16(r.DS), ES: uint16(r.ES), FS: uint16(r.FS), GS: uint16(r.GS),
		FSBase: r.FSBase, GSBase: r.GSBase,
		CR0: q.CR[0], CR2: q.CR[2], CR3: q.CR[3], CR4: q.CR[4],
	}, nil
}

// decodeInfo parses the VMM note's desc (layout in the package comment) and
// returns the Info and vCPU count it records.
func decodeInfo(n note) (Info, uint32, error) {
	d, at := n.desc, n.doff
	size := uint64(len(d))
	if size < vmmHeaderSize {
		return Info{}, 0, formatErr(ErrCorrupt, n.off+4, "VMM note descsz is %d, want at least %d", size, vmmHeaderSize)
	}
	var h vmmNoteHeader
	decode(d[:vmmHeaderSize], &h)
	switch {
	case h.Version != NoteVersion:
		return Info{}, 0, formatErr(ErrCorrupt, at, "VMM note version is %d; this reader knows version %d", h.Version, NoteVersion)
	case h.Flags&^(vmmFlagReg|vmmFlagHeld) != 0:
		return Info{}, 0, formatErr(ErrCorrupt, at+4, "VMM note flags %#x has unknown bits", h.Flags)
	case h.NRanges > MaxRanges:
		return Info{}, 0, formatErr(ErrCorrupt, at+8, "VMM note has %d memory map ranges, more than %d", h.NRanges, MaxRanges)
	case h.NRoots > MaxRoots:
		return Info{}, 0, formatErr(ErrCorrupt, at+12, "VMM note has %d page-table roots, more than %d", h.NRoots, MaxRoots)
	case h.NVCPUs > MaxVCPUs:
		return Info{}, 0, formatErr(ErrCorrupt, at+16, "VMM note has %d vCPUs, more than %d", h.NVCPUs, MaxVCPUs)
	case h.ReasonLen > MaxReasonLen:
		return Info{}, 0, formatErr(ErrCorrupt, at+20, "VMM note reason is %d bytes, more than %d", h.ReasonLen, MaxReasonLen)
	}
	rangesAt := uint64(vmmHeaderSize)
	rootsAt := rangesAt + uint64(h.NRanges)*vmmRangeSize // all bounded above: no overflow
	reasonAt := rootsAt + uint64(h.NRoots)*8
	end := reasonAt + uint64(h.ReasonLen)
	if h.Flags&vmmFlagHeld != 0 {
		end += 8
	}
	if end > size {
		return Info{}, 0, formatErr(ErrCorrupt, at+8, "VMM note fields need %d bytes, descsz is %d", end, size)
	}
	var info Info
	if h.Flags&vmmFlagReg != 0 {
		info.Reg = &Registration{MetaPhys: h.Reg[0], FrameCount: h.Reg[1], Version: h.Reg[2], StatePhys: h.Reg[3]}
	}
	for i := range uint64(h.NRanges) {
		var r vmmNoteRange
		off := rangesAt + i*vmmRangeSize
		decode(d[off:off+vmmRangeSize], &r)
		info.Map = append(info.Map, memmap.Range{Base: r.Base, Size: r.Size, Kind: memmap.Kind(r.Kind)})
	}
	if err := checkMap(info.Map, at+rangesAt); err != nil {
		return Info{}, 0, err
	}
	for i := range uint64(h.NRoots) {
		info.Roots = append(info.Roots, le.Uint64(d[rootsAt+i*8:]))
	}
	info.Reason = string(d[reasonAt : reasonAt+uint64(h.ReasonLen)])
	if h.Flags&vmmFlagHeld != 0 {
		info.Holdings = le.Uint64(d[reasonAt+uint64(h.ReasonLen):])
	}
	return info, h.NVCPUs, nil
}

// checkMap checks ranges are non-empty, do not wrap, and are sorted and
// disjoint; at is the file offset of the first range.
func checkMap(ranges []memmap.Range, at uint64) error {
	var prevEnd uint64
	for i, r := range ranges {
		off := at + uint64(i)*vmmRangeSize
		end, ok := memmap.CheckedAdd(r.Base, r.Size)
		switch {
		case r.Size == 0:
			return formatErr(ErrCorrupt, off, "memory map range %d at %#x is empty", i, r.Base)
		case !ok:
			return formatErr(ErrCorrupt, off, "memory map range %d [%#x, +%#x) wraps past 2^64", i, r.Base, r.Size)
		case i > 0 && r.Base < prevEnd:
			return formatErr(ErrCorrupt, off, "memory map range %d at %#x overlaps or precedes the previous one (ending %#x)", i, r.Base, prevEnd)
		}
		prevEnd = end
	}
	return nil
}
