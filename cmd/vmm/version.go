package main

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// versionInfo is what `vmm version` prints.
type versionInfo struct {
	Module, Version string
	Revision, Time  string // VCS revision and commit time ("" when not stamped)
	Modified        bool
	GoVersion       string
	Guest           guestInfo
}

// guestInfo identifies the embedded guest image.
type guestInfo struct {
	Bytes     int
	BuildID   string // Go build ID from .note.go.buildid
	GoVersion string // toolchain that built it
	Err       string // why the image could not be read
}

func cmdVersion(args []string, stdout io.Writer) (int, error) {
	if len(args) > 0 {
		return 2, usagef("unexpected argument %q", args[0])
	}
	printVersion(stdout, readVersion())
	return 0, nil
}

func readVersion() versionInfo {
	v := versionInfo{Module: "github.com/vmm-dev/vmm", Version: "unknown", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.Module, v.Version = bi.Main.Path, bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	img, _ := embeddedKernel()
	v.Guest = describeGuest(img)
	return v
}

func printVersion(w io.Writer, v versionInfo) {
	fmt.Fprintf(w, "vmm %s (%s)\n", v.Version, v.Module)
	switch {
	case v.Revision == "":
		fmt.Fprintln(w, "revision: not recorded (built without VCS information)")
	default:
		mod := ""
		if v.Modified {
			mod = " with uncommitted changes"
		}
		fmt.Fprintf(w, "revision: %s%s (%s)\n", v.Revision, mod, v.Time)
	}
	fmt.Fprintf(w, "go: %s %s/%s\n", v.GoVersion, runtime.GOOS, runtime.GOARCH)
	if g := v.Guest; g.Err != "" {
		fmt.Fprintf(w, "guest: %s\n", g.Err)
	} else {
		fmt.Fprintf(w, "guest: build id %s (%s, %d bytes, embedded)\n", g.BuildID, g.GoVersion, g.Bytes)
	}
}

func describeGuest(img []byte) guestInfo {
	g := guestInfo{Bytes: len(img)}
	if len(img) == 0 {
		g.Err = "none embedded (boot needs --kernel FILE)"
		return g
	}
	id, err := goBuildID(img)
	if err != nil {
		g.Err = fmt.Sprintf("embedded image unreadable: %v", err)
		return g
	}
	g.BuildID = id
	if bi, err := buildinfo.Read(bytes.NewReader(img)); err == nil {
		g.GoVersion = bi.GoVersion
	} else {
		g.GoVersion = "Go version unknown"
	}
	return g
}

// goBuildID reads the Go linker's build ID note (.note.go.buildid: name
// "Go\0\0", type 4, the ID as its descriptor).
func goBuildID(img []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil {
		return "", errors.New("no .note.go.buildid section")
	}
	b, err := s.Data()
	if err != nil {
		return "", fmt.Errorf(".note.go.buildid: %w", err)
	}
	if len(b) < 16 {
		return "", fmt.Errorf(".note.go.buildid: %d bytes, too short", len(b))
	}
	namesz := uint64(binary.LittleEndian.Uint32(b[0:]))
	descsz := uint64(binary.LittleEndian.Uint32(b[4:]))
	typ := binary.LittleEndian.Uint32(b[8:])
	descOff := 12 + (namesz+3)&^3
	if typ != 4 || namesz != 4 || string(b[12:16]) != "Go\x00\x00" || descOff+descsz > uint64(len(b)) {
		return "", fmt.Errorf(".note.go.buildid: malformed note (type %d, name %d bytes, desc %d bytes)", typ, namesz, descsz)
	}
	return string(b[descOff : descOff+descsz]), nil
}
