package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/vmm-dev/vmm/vmm"
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
	in, err := inspect.Open(f.path)
	if err != nil {
		return vmm.StatusVMMError, err
	}
	defer in.Close()
	if f.frame != "" || f.mapOut != "" {
		return inspectTools(in, f, addr, stdout)
	}
	return inspectReport(in, f.json, stdout)
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
			fmt.Fprintf(stdout, "map:          %s (%dx%d pixels, one per frame)\n", m.Path, m.Width, m.Height)
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
	Path   string `json:"path"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

func writeMap(in *inspect.Inspection, path string) (*mapResult, error) {
	file, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	r, err := in.Map(file)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // do not leave a half-written PNG behind
		return nil, err
	}
	return &mapResult{Path: path, Width: r.Dx(), Height: r.Dy()}, nil
}
