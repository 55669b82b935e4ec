package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// progressFlag is --progress: unset means "when stderr is a terminal";
// --progress forces progress lines on, --progress=false off.
type progressFlag struct {
	set, on bool
}

func (p *progressFlag) String() string {
	if !p.set {
		return "auto"
	}
	return strconv.FormatBool(p.on)
}

func (p *progressFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	p.set, p.on = true, v
	return nil
}

func (p *progressFlag) IsBoolFlag() bool { return true }

const progressUsage = "print progress of long work on stderr (default: only when stderr is a terminal)"

// writer returns where progress lines go, or nil for none.
func (p *progressFlag) writer(stderr io.Writer) io.Writer {
	if p.set && !p.on || !p.set && !isTerminal(stderr) {
		return nil
	}
	return stderr
}

// isTerminal reports whether w is a terminal (TCGETS succeeds on it).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressf writes one progress line if w is not nil.
func progressf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
