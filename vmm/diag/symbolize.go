// Package diag turns a guest crash into a readable report: it symbolizes
// guest addresses from the guest ELF (.gopclntab and the ELF symbol table),
// disassembles the faulting instruction and walks the frame-pointer chain.
//
// Everything here reads hostile input (a guest ELF, guest memory): it
// returns errors or "unknown", never panics.
package diag

import (
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
	"sort"
)

// Errors from NewSymbolizer.
var (
	ErrNoELF     = errors.New("diag: no ELF file")
	ErrNoSymbols = errors.New("diag: ELF has neither .gopclntab nor a symbol table (stripped?)")
)

// maxSectionSize caps how much of one section NewSymbolizer reads.
const maxSectionSize = 1 << 30

// Symbolizer maps guest code addresses to functions and source lines.
// A nil *Symbolizer is valid and knows no symbols.
type Symbolizer struct {
	table *gosym.Table // from .gopclntab; nil if absent or unparsable
	syms  []elfSym     // function symbols from the ELF symtab, sorted by addr
}

type elfSym struct {
	name       string
	addr, size uint64
}

// NewSymbolizer reads the symbol information of the guest ELF f. It uses
// .gopclntab (function names, files, lines) and the ELF symbol table (for
// functions pclntab lacks, e.g. "pkg.f.abi0" assembly). One of the two is
// enough; with neither it returns ErrNoSymbols.
func NewSymbolizer(f *elf.File) (sym *Symbolizer, err error) {
	if f == nil {
		return nil, ErrNoELF
	}
	defer func() {
		if r := recover(); r != nil { // debug/elf or debug/gosym on hostile input
			err = fmt.Errorf("diag: malformed ELF: %v", r)
		}
	}()
	s := &Symbolizer{}
	tabErr := s.loadPclntab(f)
	symErr := s.loadSymtab(f)
	if s.table == nil && len(s.syms) == 0 {
		return nil, fmt.Errorf("%w: pclntab: %v; symtab: %v", ErrNoSymbols, tabErr, symErr)
	}
	return s, nil
}

func (s *Symbolizer) loadPclntab(f *elf.File) (err error) {
	pcln := f.Section(".gopclntab")
	if pcln == nil {
		return errors.New("no .gopclntab section")
	}
	data, err := sectionData(pcln)
	if err != nil {
		return err
	}
	var textStart uint64
	if text := f.Section(".text"); text != nil {
		textStart = text.Addr
	}
	var symtab []byte
	if st := f.Section(".gosymtab"); st != nil && st.Type != elf.SHT_NOBITS {
		symtab, _ = sectionData(st) // empty in Go >= 1.3; optional
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf(".gopclntab at file offset %#x: malformed: %v", pcln.Offset, r)
		}
	}()
	tab, err := gosym.NewTable(symtab, gosym.NewLineTable(data, textStart))
	if err != nil {
		return fmt.Errorf(".gopclntab at file offset %#x: %w", pcln.Offset, err)
	}
	if len(tab.Funcs) == 0 {
		return fmt.Errorf(".gopclntab at file offset %#x: no functions", pcln.Offset)
	}
	s.table = tab
	return nil
}

func sectionData(sec *elf.Section) ([]byte, error) {
	if sec.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("section %s has no file data", sec.Name)
	}
	if sec.Size > maxSectionSize {
		return nil, fmt.Errorf("section %s at file offset %#x: size %#x too large", sec.Name, sec.Offset, sec.Size)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("section %s at file offset %#x: %w", sec.Name, sec.Offset, err)
	}
	return data, nil
}

func (s *Symbolizer) loadSymtab(f *elf.File) error {
	syms, err := f.Symbols()
	if err != nil {
		return err
	}
	for _, sym := range syms {
		if elf.ST_TYPE(sym.Info) != elf.STT_FUNC || sym.Value == 0 || sym.Name == "" {
			continue
		}
		s.syms = append(s.syms, elfSym{name: sym.Name, addr: sym.Value, size: sym.Size})
	}
	sort.SliceStable(s.syms, func(i, j int) bool { return s.syms[i].addr < s.syms[j].addr })
	if len(s.syms) == 0 {
		return errors.New("no function symbols")
	}
	return nil
}

// Lookup returns the function containing pc, pc's offset from the function's
// entry and, when .gopclntab knows it, the source file and line. ok is false
// when pc is in no known function.
func (s *Symbolizer) Lookup(pc uint64) (fn string, off uint64, file string, line int, ok bool) {
	if s == nil {
		return "", 0, "", 0, false
	}
	if fn, entry, file, line, ok := s.pclnLookup(pc); ok {
		return fn, pc - entry, file, line, true
	}
	if sym, ok := s.symLookup(pc); ok {
		return sym.name, pc - sym.addr, "", 0, true
	}
	return "", 0, "", 0, false
}

// pclnLookup asks .gopclntab for the function and line of pc.
func (s *Symbolizer) pclnLookup(pc uint64) (fn string, entry uint64, file string, line int, ok bool) {
	if s.table == nil {
		return "", 0, "", 0, false
	}
	defer func() {
		if recover() != nil { // a corrupt table must not kill the VMM
			fn, entry, file, line, ok = "", 0, "", 0, false
		}
	}()
	f := s.table.PCToFunc(pc)
	if f == nil {
		return "", 0, "", 0, false
	}
	file, line, _ = s.table.PCToLine(pc)
	return f.Name, f.Entry, file, line, true
}

func (s *Symbolizer) symLookup(pc uint64) (elfSym, bool) {
	// Last symbol starting at or below pc, then its aliases at that address.
	i := sort.Search(len(s.syms), func(i int) bool { return s.syms[i].addr > pc }) - 1
	if i < 0 {
		return elfSym{}, false
	}
	for a := s.syms[i].addr; i >= 0 && s.syms[i].addr == a; i-- {
		if pc-a < s.syms[i].size || pc == a {
			return s.syms[i], true
		}
	}
	return elfSym{}, false
}

// Describe formats pc as "main.kmain+0x1c (/path/main.go:42)", or
// "pkg.f.abi0+0x4" when only the ELF symbol is known, or "0x4012ab (unknown)".
func (s *Symbolizer) Describe(pc uint64) string {
	return s.Frame(pc, false).String()
}

// describe formats pc; for a return address (retAddr) the source line is
// that of pc-1, the call instruction, as Go's own tracebacks do.
func (s *Symbolizer) describe(pc uint64, retAddr bool) string {
	return s.Frame(pc, retAddr).String()
}
