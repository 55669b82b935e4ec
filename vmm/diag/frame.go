package diag

import "fmt"

// Frame is one symbolized backtrace entry. Crash text and crash JSON are
// both made from Frames, so they cannot disagree.
type Frame struct {
	PC       uint64 `json:"pc"`
	Function string `json:"function"` // "" when pc is in no known function
	Offset   uint64 `json:"offset"`   // pc - function entry
	File     string `json:"file"`     // "" when the line table does not know pc
	Line     int    `json:"line"`
	// ReturnAddress is set for every frame but the first: PC is where the
	// call returns to, and File:Line are those of the call (PC-1), as Go's
	// own tracebacks and gdb report them.
	ReturnAddress bool `json:"return_address"`
}

// Frame symbolizes pc; retAddr says pc is a return address, whose source
// line is that of the call instruction before it.
func (s *Symbolizer) Frame(pc uint64, retAddr bool) Frame {
	f := Frame{PC: pc, ReturnAddress: retAddr}
	fn, off, file, line, ok := s.Lookup(pc)
	if !ok {
		return f
	}
	f.Function, f.Offset, f.File, f.Line = fn, off, file, line
	if retAddr && off > 0 {
		if _, _, file, line, ok := s.Lookup(pc - 1); ok && file != "" {
			f.File, f.Line = file, line
		}
	}
	return f
}

// String formats f as "main.kmain+0x1c (/path/main.go:42)", or
// "pkg.f.abi0+0x4" when only the ELF symbol is known, or
// "0x4012ab (unknown)".
func (f Frame) String() string {
	switch {
	case f.Function == "":
		return fmt.Sprintf("%#x (unknown)", f.PC)
	case f.File == "":
		return fmt.Sprintf("%s+%#x", f.Function, f.Offset)
	}
	return fmt.Sprintf("%s+%#x (%s:%d)", f.Function, f.Offset, f.File, f.Line)
}

// Frames unwinds the stack of ci (see Unwind) and symbolizes every frame,
// at most DefaultMaxFrames.
func Frames(ci CrashInfo, sym *Symbolizer, read func(gva uint64, buf []byte) bool) []Frame {
	pcs := Unwind(read, sym, ci.RIP, ci.RSP, ci.RBP, DefaultMaxFrames)
	out := make([]Frame, len(pcs))
	for i, pc := range pcs {
		out[i] = sym.Frame(pc, i > 0)
	}
	return out
}
