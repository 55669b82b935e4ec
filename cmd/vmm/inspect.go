package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vmm-dev/vmm/internal/safefile"
	"github.com/vmm-dev/vmm/vmm"
	"github.com/vmm-dev/vmm/vmm/coredump"
	"github.com/vmm-dev/vmm/vmm/inspect"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// inspectFlags are `vmm inspect`'s flags.
type inspectFlags struct {
	json   bool
	frame  string
	mapOut string
	path   string
}

// parseInspectArgs accepts flags before and after FILE (flag stops at the
// first non-flag, so parse again after each positional argument).
func parseInspectArgs(args []string, stderr io.Writer) (*inspectFlags, error) {
	f := &inspectFlags{}
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&f.json, "json", false, "print JSON on stdout instead of text")
	fs.StringVar(&f.frame, "frame", "", "decode the frame holding physical `ADDR` (0x hex or decimal)")
	fs.StringVar(&f.mapOut, "map", "", "draw physical memory as a PNG into `FILE`")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stderr)
				fmt.Fprintln(stderr, "usage: vmm inspect [--json] [--frame ADDR] [--map FILE.png] DUMP")
				fs.PrintDefaults()
			}
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 1 {
		return nil, fmt.Errorf("want exactly one dump FILE, got %d arguments", len(pos))
	}
	f.path = pos[0]
	return f, nil
}

// parseAddr reads a physical address: 0x-prefixed hex, else decimal (a
// leading 0 is not octal: addresses are never written that way).
func parseAddr(s string) (uint64, error) {
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		return strconv.ParseUint(h, 16, 64)
	}
	return strconv.ParseUint(s, 10, 64)
}

func cmdInspect(args []string, stdout, stderr io.Writer) (int, error) {
	f, err := parseInspectArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	}
	if err != nil {
		return vmm.StatusUsage, usagef("%v", err)
	}
	var addr uint64
	if f.frame != "" {
		if addr, err = parseAddr(f.frame); err != nil {
			return vmm.StatusUsage, usagef("--frame %q: not a physical address (0x hex or decimal)", f.frame)
		}
	}
	if f.mapOut != "" { // refuse a device, FIFO or directory before reading the dump
		if err := safefile.CheckTarget(f.mapOut); err != nil {
			return vmm.StatusUsage, usagef("--map: %v", err)
		}
		if sameFile(f.mapOut, f.path) {
			return vmm.StatusUsage, usagef("--map %s is the dump: writing it would replace the dump", f.mapOut)
		}
	}
	in, err := inspect.Open(f.path)
	if err != nil {
		return vmm.StatusVMMError, err
	}
	defer in.Close()
	return inspectOpened(in, f, addr, stdout)
}

// inspectOpened does the work on an open dump. Every read of the dump's
// mapping happens inside Guard: a dump that shrinks meanwhile (another
// `vmm boot --dump` rewriting it) gives an error, not a SIGBUS.
func inspectOpened(in *inspect.Inspection, f *inspectFlags, addr uint64, stdout io.Writer) (int, error) {
	var status int
	err := in.Dump.Guard(func() error {
		var err error
		if f.frame != "" || f.mapOut != "" {
			status, err = inspectTools(in, f, addr, stdout)
		} else {
			status, err = inspectReport(in, f.json, stdout)
		}
		return err
	})
	if errors.Is(err, coredump.ErrChanged) {
		return vmm.StatusVMMError, fmt.Errorf("%s: %w", in.Path, err)
	}
	return status, err
}

// inspectReport prints the header and the verification report; exit
// status 5 when the verifier found violations.
func inspectReport(in *inspect.Inspection, asJSON bool, stdout io.Writer) (int, error) {
	h := in.Header()
	rep, verr := in.Verify()
	if verr != nil {
		verr = fmt.Errorf("%s: cannot verify: %w", in.Path, verr)
	}
	if asJSON {
		out := struct {
			Schema string `json:"schema"`
			inspect.Header
			Report *verify.Report `json:"report"`
			Error  string         `json:"error,omitempty"`
		}{Schema: schemaInspect, Header: h, Report: rep}
		if verr != nil {
			out.Error = verr.Error()
		}
		if err := writeJSON(stdout, out); err != nil {
			return vmm.StatusVMMError, err
		}
	} else {
		h.WriteText(stdout)
		if rep != nil {
			fmt.Fprintln(stdout)
			rep.WriteText(stdout)
		}
	}
	switch {
	case verr != nil:
		return vmm.StatusVMMError, verr
	case rep.TotalViolations > 0:
		return vmm.StatusViolation, nil
	}
	return 0, nil
}

// inspectTools runs --frame and/or --map.
func inspectTools(in *inspect.Inspection, f *inspectFlags, addr uint64, stdout io.Writer) (int, error) {
	out := struct {
		Schema string             `json:"schema"`
		Frame  *inspect.FrameInfo `json:"frame,omitempty"`
		Map    *mapResult         `json:"map,omitempty"`
	}{Schema: schemaInspectTools}
	if f.frame != "" {
		fi, err := in.Frame(addr)
		if err != nil {
			return vmm.StatusVMMError, fmt.Errorf("--frame %s: %w", f.frame, err)
		}
		out.Frame = &fi
		if !f.json {
			fi.WriteText(stdout)
		}
	}
	if f.mapOut != "" {
		m, err := writeMap(in, f.mapOut)
		if err != nil {
			return vmm.StatusVMMError, fmt.Errorf("--map %s: %w", f.mapOut, err)
		}
		out.Map = m
		if !f.json {
			var legend []string
			for _, e := range m.Legend {
				legend = append(legend, fmt.Sprintf("%s %d", e.State, e.Frames))
			}
			fmt.Fprintf(stdout, "map:          %s (%dx%d pixels; %d frames per row, %dx%d pixels per frame)\n",
				m.Path, m.Width, m.Height, m.FramesPerRow, m.PixelsPerFrame, m.PixelsPerFrame)
			fmt.Fprintf(stdout, "frames:       %s\n", strings.Join(legend, ", "))
		}
	}
	if f.json {
		if err := writeJSON(stdout, out); err != nil {
			return vmm.StatusVMMError, err
		}
	}
	return 0, nil
}

type mapResult struct {
	Path string `json:"path"`
	inspect.MapInfo
}

// writeMap writes the PNG beside path and renames it into place only when
// complete: on error the file at path, if any, is unchanged.
func writeMap(in *inspect.Inspection, path string) (*mapResult, error) {
	file, err := safefile.CreateAtomic(path)
	if err != nil {
		return nil, err
	}
	defer file.Abort() // removes only the temporary file, if not committed
	r, err := in.Map(file)
	if err == nil {
		err = file.Commit()
	}
	if err != nil {
		return nil, err
	}
	return &mapResult{Path: path, MapInfo: r}, nil
}
