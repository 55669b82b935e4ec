package coredump

import (
	"errors"
	"fmt"
)

// Error classes, for errors.Is on what Open returns.
var (
	// ErrNotELF: the file is not an ELF file at all.
	ErrNotELF = errors.New("not an ELF file")
	// ErrNotCore: an ELF file, but not an x86-64 little-endian core file.
	ErrNotCore = errors.New("not an x86-64 ELF64 core file")
	// ErrNotVMMDump: a core file, but not one vmm boot --dump wrote.
	ErrNotVMMDump = errors.New("not written by vmm boot --dump")
	// ErrTruncated: something the headers describe lies past end of file.
	ErrTruncated = errors.New("truncated dump")
	// ErrCorrupt: a header or note field has an impossible value.
	ErrCorrupt = errors.New("corrupt dump")
)

// FormatError describes a malformed dump: what is wrong, at which file
// offset, and which class of error (one of the Err* variables) it is.
type FormatError struct {
	Off uint64 // file offset of the offending field or structure
	Msg string
	Err error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("file offset %#x: %s: %v", e.Off, e.Msg, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(class error, off uint64, format string, args ...any) error {
	return &FormatError{Off: off, Msg: fmt.Sprintf(format, args...), Err: class}
}
