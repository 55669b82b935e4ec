// Package safefile reads the CLI's input files and writes its output files
// without ever blocking on, destroying or truncating what the user had.
//
// Inputs must be regular files no larger than a caller-given maximum: a FIFO,
// device, socket or directory is refused without blocking (it is stat'ed
// before it is opened, opened with O_NONBLOCK, and the open file is checked
// again), and the size is checked before anything is read.
//
// Outputs are written to a temporary file created beside the target, synced
// and renamed over it only when complete: a failed write leaves the previous
// file as it was and removes only the temporary file. A target must be
// absent or a regular file; a symlink is followed and its target replaced
// (the link stays); a device, FIFO, socket, directory or dangling symlink is
// refused.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotRegular: the path names something other than a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge: an input file is larger than its documented maximum.
var ErrTooLarge = errors.New("file too large")

// Kind names a non-regular file's type for error messages ("a FIFO").
func Kind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeSymlink != 0:
		return "a symlink"
	default:
		return "not a regular file (" + t.String() + ")"
	}
}

func notRegular(path string, m fs.FileMode) error {
	return fmt.Errorf("%s: %w: it is %s", path, ErrNotRegular, Kind(m))
}

// OpenRegular opens path read-only if it is a regular file. It never blocks
// on a FIFO and never opens a device.
func OpenRegular(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	// The path may be swapped between Stat and open: O_NONBLOCK keeps a
	// FIFO from blocking the open, and the fstat below catches the swap.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ofi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !ofi.Mode().IsRegular() {
		f.Close()
		return nil, notRegular(path, ofi.Mode())
	}
	return f, nil
}

// ReadRegular reads the whole regular file at path, refusing it if it is
// larger than maxSize bytes (checked before reading, and again while
// reading in case the file grows).
func ReadRegular(path string, maxSize int64) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", path, ErrTooLarge, fi.Size(), maxSize)
	}
	// One buffer of the size fstat gave, plus a byte to see the file grow:
	// io.ReadAll's growing buffer copied a 2.4 MiB program several times
	// and took 4-7 ms of every `vmm run`.
	r := io.LimitReader(f, maxSize+1)
	b := make([]byte, 0, fi.Size()+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if int64(len(b)) > maxSize {
		return nil, fmt.Errorf("%s: %w: it grew past %d bytes while being read", path, ErrTooLarge, maxSize)
	}
	return b, nil
}

// resolve returns the path CreateAtomic will replace (path itself, or the
// file a symlink chain at path leads to) and the mode of the existing
// file there (nil if none). It refuses every non-regular target.
func resolve(path string) (string, fs.FileInfo, error) {
	lfi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	if lfi.Mode().Type() == fs.ModeSymlink {
		target, err := filepath.EvalSymlinks(path)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("%s: %w: it is a symlink to a missing file", path, ErrNotRegular)
		}
		if err != nil {
			return "", nil, err
		}
		fi, err := os.Stat(target)
		if err != nil {
			return "", nil, err
		}
		if !fi.Mode().IsRegular() {
			return "", nil, fmt.Errorf("%s: %w: it is a symlink to %s (%s)", path, ErrNotRegular, Kind(fi.Mode()), target)
		}
		return target, fi, nil
	}
	if !lfi.Mode().IsRegular() {
		return "", nil, notRegular(path, lfi.Mode())
	}
	return path, lfi, nil
}

// CheckTarget reports whether CreateAtomic(path) could replace path: it is
// absent or a regular file (through symlinks), and a file can be created
// in its directory. It leaves nothing behind. Call it before long work
// whose result goes to path.
func CheckTarget(path string) error {
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	return f.Abort()
}

// File is an output file being written; nothing at the target changes
// until Commit.
type File struct {
	*os.File
	target string
	done   bool
}

// CreateAtomic starts writing a file that will replace path on Commit. The
// data goes to a new temporary file in path's directory (after symlinks),
// with the permissions of the file it replaces, or 0644 less the umask.
func CreateAtomic(path string) (*File, error) {
	target, old, err := resolve(path)
	if err != nil {
		return nil, err
	}
	perm := fs.FileMode(0o644)
	if old != nil {
		perm = old.Mode().Perm()
	}
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	for range 100 {
		tmp := filepath.Join(dir, fmt.Sprintf(".%s.tmp%06d", base, rand.IntN(1e6)))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: cannot create a temporary file beside it: %w", path, err)
		}
		if old != nil {
			// Keep the replaced file's mode and (when allowed) owner.
			f.Chmod(perm)
			if st, ok := old.Sys().(*syscall.Stat_t); ok {
				f.Chown(int(st.Uid), int(st.Gid))
			}
		}
		return &File{File: f, target: target}, nil
	}
	return nil, fmt.Errorf("%s: cannot find a free temporary file name beside it", path)
}

// Target is the path Commit replaces (a symlink's target, not the link).
func (f *File) Target() string { return f.target }

// Commit syncs the data, closes the file and renames it over the target,
// then syncs the directory so the rename survives a crash. On error the
// temporary file is removed and the target is unchanged.
func (f *File) Commit() error { return f.commit(true) }

// Replace closes the file and renames it over the target without waiting
// for the disk: every process sees the old file or the whole new one (a
// crash of the writer cannot leave a partial target), but a crash of the
// machine before the kernel writes the data back may lose the new file.
// A write error the disk reports later is not seen. On error the
// temporary file is removed and the target is unchanged.
func (f *File) Replace() error { return f.commit(false) }

func (f *File) commit(durable bool) error {
	if f.done {
		return errors.New("safefile: Commit or Replace after Commit, Replace or Abort")
	}
	f.done = true
	tmp := f.Name()
	var err error
	if durable {
		err = syncFile(f.File)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Refuse a target that became non-regular since CreateAtomic.
		if fi, lerr := os.Lstat(f.target); lerr == nil && !fi.Mode().IsRegular() {
			err = notRegular(f.target, fi.Mode())
		} else {
			err = os.Rename(tmp, f.target)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", f.target, err)
	}
	if durable {
		if d, err := os.Open(filepath.Dir(f.target)); err == nil {
			syncFile(d)
			d.Close()
		}
	}
	return nil
}

// syncFile is (*os.File).Sync; tests count the calls.
var syncFile = (*os.File).Sync

// Abort discards the temporary file; the target is unchanged. Abort after
// Commit does nothing, so `defer f.Abort()` is safe.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	tmp := f.Name()
	err := f.Close()
	if rerr := os.Remove(tmp); err == nil {
		err = rerr
	}
	return err
}
