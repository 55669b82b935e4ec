package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/internal/safefile"
)

// `vmm run --dir HOSTDIR`: HOSTDIR's tree becomes the program's read-only
// file system (firmware.FSHeader), its root the program's / (the guest
// mounts a writable tmpfs at /tmp over it); --cwd names
// the working directory (default: the root). Only regular files and directories are copied; a
// symlink to a regular file inside the tree is copied as that file; every
// other kind of entry refuses the run before any VM exists.

// maxDirImage bounds the image (it sits in low guest RAM with the program).
const maxDirImage = 256 << 20

// ErrBadDir wraps every reason a --dir tree is refused.
var ErrBadDir = errors.New("cannot use this --dir")

type fsNode struct {
	host string // path read from
	name string
	info fs.FileInfo
}

// packDir walks root and returns its image, at most limit bytes, and the
// entry index of the directory cwd (a path inside the tree).
func packDir(root, cwd string, limit uint64) ([]byte, uint64, error) {
	img, idx, err := packTree(root, cwd, limit)
	if err != nil {
		return nil, 0, err
	}
	if idx < 0 {
		return nil, 0, fmt.Errorf("%w: --cwd %s is not a directory of the tree", ErrBadDir, cwd)
	}
	return img, uint64(idx), nil
}

func packTree(root, cwd string, limit uint64) ([]byte, int, error) {
	root = filepath.Clean(root)
	cwdHost := filepath.Join(root, filepath.Clean("/"+cwd))
	cwdIdx := -1
	fi, err := os.Stat(root)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrBadDir, err)
	}
	if !fi.IsDir() {
		return nil, 0, fmt.Errorf("%w: %s is not a directory", ErrBadDir, root)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrBadDir, err)
	}
	if realRoot, err = filepath.Abs(realRoot); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrBadDir, err)
	}
	var (
		entries []firmware.FSEntry
		names   []byte
		data    []byte
		total   = uint64(firmware.FSHeaderSize)
	)
	grow := func(n uint64) error {
		total += n
		if total > limit {
			return fmt.Errorf("%w: %s needs more than %d bytes of image; give a smaller tree or more --mem",
				ErrBadDir, root, limit)
		}
		return nil
	}
	add := func(n fsNode, parent uint32) error {
		if len(entries) >= firmware.FSMaxEntries {
			return fmt.Errorf("%w: %s has more than %d files and directories", ErrBadDir, root, firmware.FSMaxEntries)
		}
		if len(n.name) > firmware.FSMaxName {
			return fmt.Errorf("%w: %s: name longer than %d bytes", ErrBadDir, n.host, firmware.FSMaxName)
		}
		if err := grow(firmware.FSEntrySize + uint64(len(n.name))); err != nil {
			return err
		}
		e := firmware.FSEntry{Mode: uint32(n.info.Mode().Perm()), Parent: parent, NameOff: uint32(len(names)),
			NameLen: uint32(len(n.name)), MTime: uint64(n.info.ModTime().UnixNano())}
		if n.info.IsDir() {
			e.Mode |= firmware.FSDir
		} else {
			if err := grow(uint64(n.info.Size()) + 7); err != nil {
				return err
			}
			b, err := safefile.ReadRegular(n.host, int64(limit-total+uint64(n.info.Size())))
			if err != nil {
				return fmt.Errorf("%w: %w", ErrBadDir, err)
			}
			total = total - uint64(n.info.Size()) + uint64(len(b)) // it may have changed since Lstat
			e.Mode |= firmware.FSRegular
			e.Off, e.Size = uint64(len(data)), uint64(len(b))
			data = append(data, b...)
			for len(data)%8 != 0 {
				data = append(data, 0)
			}
		}
		names = append(names, n.name...)
		entries = append(entries, e)
		return nil
	}
	if err := add(fsNode{host: root, info: fi}, 0); err != nil {
		return nil, 0, err
	}
	queue := []fsNode{{host: root, info: fi}}
	for i := 0; len(queue) > 0; i++ { // breadth first: a directory's children are contiguous
		dir := queue[0]
		queue = queue[1:]
		for entries[i].Mode&firmware.FSTypeMask != firmware.FSDir {
			i++
		}
		if dir.host == cwdHost {
			cwdIdx = i
		}
		kids, err := readChildren(dir.host, realRoot)
		if err != nil {
			return nil, 0, err
		}
		entries[i].Off, entries[i].Size = uint64(len(entries)), uint64(len(kids))
		for _, k := range kids {
			if err := add(k, uint32(i)); err != nil {
				return nil, 0, err
			}
			if k.info.IsDir() {
				queue = append(queue, k)
			}
		}
	}
	return encodeImage(entries, names, data), cwdIdx, nil
}

// emptyRootImage is the image of a tree with nothing but its root (the
// file system without --dir: / and the /tmp mounted on it).
func emptyRootImage() []byte {
	return encodeImage([]firmware.FSEntry{{Mode: firmware.FSDir | 0o755, Off: 1}}, nil, nil)
}

// encodeImage lays out an image (firmware.FSHeader) from its parts.
func encodeImage(entries []firmware.FSEntry, names, data []byte) []byte {
	h := firmware.FSHeader{Magic: firmware.FSMagic, Entries: uint64(len(entries))}
	h.NamesOff = firmware.FSHeaderSize + firmware.FSEntrySize*h.Entries
	h.NamesSize = uint64(len(names))
	h.DataOff = (h.NamesOff + h.NamesSize + 7) &^ 7
	h.DataSize = uint64(len(data))
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, &h)
	binary.Write(&b, binary.LittleEndian, entries)
	b.Write(names)
	for uint64(b.Len()) < h.DataOff {
		b.WriteByte(0)
	}
	b.Write(data)
	return b.Bytes()
}

// readChildren lists dir sorted by name, refusing what the image cannot
// hold.
func readChildren(dir, realRoot string) ([]fsNode, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadDir, err)
	}
	var out []fsNode
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		info, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadDir, err)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: dangling or unreadable symlink: %w", ErrBadDir, p, err)
			}
			if target, err = filepath.Abs(target); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadDir, err)
			}
			if rel, err := filepath.Rel(realRoot, target); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				return nil, fmt.Errorf("%w: %s is a symlink to %s, outside the tree", ErrBadDir, p, target)
			}
			if info, err = os.Stat(p); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadDir, err)
			}
			if !info.Mode().IsRegular() {
				return nil, fmt.Errorf("%w: %s is a symlink to %s; only symlinks to regular files are copied", ErrBadDir, p, safefile.Kind(info.Mode()))
			}
		}
		if !info.IsDir() && !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s is %s; only regular files and directories can be copied", ErrBadDir, p, safefile.Kind(info.Mode()))
		}
		out = append(out, fsNode{host: p, name: de.Name(), info: info})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}
