package diag

import (
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// ErrNoCode is returned by Disassemble for an empty code slice.
var ErrNoCode = errors.New("diag: no code bytes")

// Disassemble decodes the one instruction at the start of code, which sits
// at guest address pc, in 64-bit mode and formats it in GNU (AT&T) syntax,
// e.g. "mov %rax,(%rbx)". Call and jump targets are named through sym (which
// may be nil). It returns the instruction's length in bytes; undecodable or
// truncated bytes give an error (wrapping x86asm.ErrTruncated or
// x86asm.ErrUnrecognized when the decoder says which), never a panic.
func Disassemble(code []byte, pc uint64, sym *Symbolizer) (text string, length int, err error) {
	if len(code) == 0 {
		return "", 0, fmt.Errorf("disassemble at %#x: %w", pc, ErrNoCode)
	}
	defer func() {
		if r := recover(); r != nil {
			text, length = "", 0
			err = fmt.Errorf("disassemble at %#x (% x): decoder panic: %v", pc, head(code), r)
		}
	}()
	inst, err := x86asm.Decode(code, 64)
	if err == nil && inst.Op == 0 {
		// x86asm reports a cut-short instruction as a lone prefix byte
		// (libopcodes' "rex.w"); for a crash report that is no instruction.
		err = x86asm.ErrUnrecognized
		if len(code) < 15 {
			err = x86asm.ErrTruncated
		}
	}
	if err == nil && (inst.Len < 1 || inst.Len > len(code)) {
		err = fmt.Errorf("decoder returned length %d for %d bytes", inst.Len, len(code))
	}
	if err != nil {
		return "", 0, fmt.Errorf("disassemble at %#x (% x): %w", pc, head(code), err)
	}
	text = x86asm.GNUSyntax(inst, pc, symLookup(sym))
	return text + relTarget(inst, pc, sym), inst.Len, nil
}

// relTarget returns " <fn+0xoff>" for a branch into the middle of a known
// function (like objdump); GNUSyntax itself names only function entries.
func relTarget(inst x86asm.Inst, pc uint64, sym *Symbolizer) string {
	for _, a := range inst.Args {
		rel, ok := a.(x86asm.Rel)
		if !ok || pc == 0 {
			continue
		}
		target := pc + uint64(inst.Len) + uint64(int64(rel))
		if fn, off, _, _, ok := sym.Lookup(target); ok && off != 0 {
			return fmt.Sprintf(" <%s+%#x>", fn, off)
		}
	}
	return ""
}

// symLookup adapts a Symbolizer to x86asm's symbol callback: the name and
// entry address of the function containing addr.
func symLookup(sym *Symbolizer) x86asm.SymLookup {
	if sym == nil {
		return nil
	}
	return func(addr uint64) (string, uint64) {
		fn, off, _, _, ok := sym.Lookup(addr)
		if !ok {
			return "", 0
		}
		return fn, addr - off
	}
}

// head returns at most the first 15 bytes (the longest x86 instruction).
func head(b []byte) []byte {
	return b[:min(len(b), 15)]
}
