// Command tmpfs exercises a writable temporary directory (os.TempDir: /tmp
// under vmm run, $TMPDIR on the host): create, write, read back, pwrite,
// append, truncate, sparse files, rename, readdir, remove, and the errno
// of each mistake. It prints only what any Linux file system answers the
// same way (names relative to its own directory, sorted listings, no
// directory sizes or block counts), so its output must match the host's.
// With the argument keep it leaves a file, and a removed file open, behind.
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"
)

var dir string

// p names a path in the test's directory as given: a trailing slash or a
// "." stays (filepath.Join would clean them away).
func p(name string) string { return dir + "/" + name }

// try prints an operation's error as its errno (or nil).
func try(what string, err error) {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		fmt.Printf("%s: errno %d (%v)\n", what, int(errno), errno)
		return
	}
	fmt.Printf("%s: %v\n", what, err)
}

func check(err error) {
	if err != nil {
		fmt.Println("unexpected:", err)
		os.Exit(1)
	}
}

// listing prints the directory's entries, sorted (os.ReadDir sorts).
func listing(what, d string) {
	des, err := os.ReadDir(d)
	var parts []string
	for _, de := range des {
		parts = append(parts, fmt.Sprintf("%s(%v)", de.Name(), de.Type()))
	}
	fmt.Printf("%s: [%s] %v\n", what, strings.Join(parts, " "), err)
}

func renameat2(oldpath, newpath string, flags uintptr) error {
	o, _ := syscall.BytePtrFromString(oldpath)
	n, _ := syscall.BytePtrFromString(newpath)
	const sysRenameat2 = 316
	atFDCWD := -100
	_, _, e := syscall.Syscall6(sysRenameat2, uintptr(atFDCWD), uintptr(unsafe.Pointer(o)),
		uintptr(atFDCWD), uintptr(unsafe.Pointer(n)), flags, 0)
	if e != 0 {
		return e
	}
	return nil
}

func main() {
	syscall.Umask(0o022)
	var err error
	dir, err = os.MkdirTemp("", "tmpfs-test")
	check(err)
	if len(os.Args) > 1 && os.Args[1] == "fill" {
		fill()
		return
	}
	st, err := os.Stat(dir)
	check(err)
	fmt.Println("MkdirTemp:", st.IsDir(), st.Mode().Perm())

	// Create, write, read back.
	f, err := os.OpenFile(p("a.txt"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	check(err)
	n, err := f.Write([]byte("hello, tmpfs\n"))
	fmt.Println("write:", n, err)
	n, err = f.WriteAt([]byte("HELLO"), 0)
	fmt.Println("pwrite:", n, err)
	buf := make([]byte, 64)
	n, err = f.ReadAt(buf, 0)
	fmt.Printf("pread: %d %q %v\n", n, buf[:n], err)
	off, err := f.Seek(0, io.SeekEnd)
	fmt.Println("seek end:", off, err)
	fi, err := f.Stat()
	check(err)
	fmt.Println("fstat:", fi.Size(), fi.Mode(), fi.Mode().IsRegular())
	try("read at end", func() error { _, err := f.Read(buf); return err }())
	check(f.Close())
	b, err := os.ReadFile(p("a.txt"))
	fmt.Printf("ReadFile: %q %v\n", b, err)

	// Append, truncate shrinking and growing (the grown part reads zeros).
	f, err = os.OpenFile(p("a.txt"), os.O_WRONLY|os.O_APPEND, 0)
	check(err)
	_, err = f.Write([]byte("more\n"))
	check(err)
	check(f.Truncate(5))
	check(f.Truncate(8))
	try("read from O_WRONLY", func() error { _, err := f.Read(buf); return err }())
	check(f.Sync())
	check(f.Close())
	b, err = os.ReadFile(p("a.txt"))
	fmt.Printf("after append, truncate 5, 8: %q %v\n", b, err)
	check(os.Truncate(p("a.txt"), 3))
	b, _ = os.ReadFile(p("a.txt"))
	fmt.Printf("truncate by path: %q\n", b)

	// O_TRUNC empties; a sparse file reads zeros in its hole.
	check(os.WriteFile(p("a.txt"), []byte("new"), 0o600))
	b, _ = os.ReadFile(p("a.txt"))
	fmt.Printf("WriteFile over it: %q\n", b)
	f, err = os.Create(p("sparse"))
	check(err)
	_, err = f.WriteAt([]byte("end"), 3<<20)
	check(err)
	fi, _ = f.Stat()
	n, _ = f.ReadAt(buf[:8], 1<<20)
	fmt.Println("sparse: size", fi.Size(), "hole reads", buf[:n])
	check(f.Close())

	// A file of several MiB, written in odd-sized pieces, read back whole.
	big := make([]byte, 5<<20+123)
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	f, err = os.Create(p("big"))
	check(err)
	for rest := big; len(rest) > 0; {
		k := min(len(rest), 12345)
		_, err := f.Write(rest[:k])
		check(err)
		rest = rest[k:]
	}
	check(f.Close())
	got, err := os.ReadFile(p("big"))
	fmt.Printf("big: %d bytes, equal %v, sha256 %x %v\n", len(got), bytes.Equal(got, big), sha256.Sum256(got), err)
	check(os.Remove(p("big")))

	// Directories, rename, readdir.
	check(os.Mkdir(p("d"), 0o777))
	check(os.MkdirAll(p("d/e/f"), 0o755))
	st, _ = os.Stat(p("d"))
	fmt.Println("mkdir:", st.Mode())
	check(os.WriteFile(p("d/x"), []byte("x"), 0o644))
	check(os.Rename(p("a.txt"), p("d/e/b.txt")))
	try("stat the old name", func() error { _, err := os.Stat(p("a.txt")); return err }())
	b, _ = os.ReadFile(p("d/e/b.txt"))
	fmt.Printf("renamed: %q\n", b)
	check(os.WriteFile(p("c"), []byte("ccc"), 0o644))
	check(os.Rename(p("c"), p("d/x"))) // replaces x
	b, _ = os.ReadFile(p("d/x"))
	fmt.Printf("rename over a file: %q\n", b)
	check(os.Rename(p("d/e/f"), p("g")))
	listing("readdir", dir)
	listing("readdir d", p("d"))
	listing("readdir d/e", p("d/e"))

	// Mistakes.
	_, err = os.Open(p("missing"))
	try("open missing", err)
	_, err = os.OpenFile(p("d/x"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	try("O_EXCL on an existing file", err)
	_, err = os.OpenFile(p("d"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	try("O_EXCL on a directory", err)
	_, err = os.OpenFile(p("d"), os.O_RDWR|os.O_CREATE, 0o644)
	try("O_CREAT on a directory", err)
	_, err = os.OpenFile(p("new/"), os.O_RDWR|os.O_CREATE, 0o644)
	try("O_CREAT with a trailing slash", err)
	_, err = os.OpenFile(p("nodir/new"), os.O_RDWR|os.O_CREATE, 0o644)
	try("O_CREAT under a missing directory", err)
	_, err = os.OpenFile(p("d/x/new"), os.O_RDWR|os.O_CREATE, 0o644)
	try("O_CREAT under a file", err)
	_, err = os.OpenFile(p("d"), os.O_WRONLY, 0)
	try("open a directory O_WRONLY", err)
	_, err = os.Open(p("d/x/"))
	try("open file/", err)
	_, err = syscall.Open(p("d/x"), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	try("O_DIRECTORY on a file", err)
	_, err = os.Create(p(strings.Repeat("n", 256)))
	try("a 256-byte name", err)
	try("mkdir existing", os.Mkdir(p("d"), 0o755))
	try("mkdir over a file", os.Mkdir(p("d/x"), 0o755))
	try("mkdir under a missing directory", os.Mkdir(p("nodir/y"), 0o755))
	try("rmdir non-empty", syscall.Rmdir(p("d")))
	try("rmdir a file", syscall.Rmdir(p("d/x")))
	try("rmdir .", syscall.Rmdir(p("d/.")))
	try("unlink a directory", syscall.Unlink(p("d")))
	try("unlink missing", syscall.Unlink(p("missing")))
	try("unlink file/", syscall.Unlink(p("d/x/")))
	try("rename missing", syscall.Rename(p("missing"), p("y")))
	try("rename a dir onto a non-empty dir", syscall.Rename(p("g"), p("d")))
	try("rename a dir into itself", syscall.Rename(p("d"), p("d/e/inside")))
	try("rename a dir onto its parent", syscall.Rename(p("d/e"), p("d")))
	try("rename a dir onto a file", syscall.Rename(p("g"), p("d/x")))
	try("rename a file onto a dir", syscall.Rename(p("d/x"), p("g")))
	try("rename a file with a trailing slash", syscall.Rename(p("d/x/"), p("z")))
	try("rename . away", syscall.Rename(p("d/."), p("z")))
	try("RENAME_NOREPLACE onto a file", renameat2(p("d/e/b.txt"), p("d/x"), 1))
	try("RENAME_EXCHANGE", renameat2(p("d/e/b.txt"), p("d/x"), 2))
	b1, _ := os.ReadFile(p("d/e/b.txt"))
	b2, _ := os.ReadFile(p("d/x"))
	fmt.Printf("exchanged: %q %q\n", b1, b2)
	check(os.Mkdir(p("d/e/g2"), 0o755))
	try("rename a dir onto an empty dir", syscall.Rename(p("g"), p("d/e/g2")))
	try("rename onto itself", syscall.Rename(p("d/x"), p("d/x")))

	// Symlinks: relative and absolute, to a directory, a file and nothing.
	check(os.Symlink("d/e", p("ln")))
	check(os.Symlink(p("d/e/b.txt"), p("abs")))
	check(os.Symlink("nowhere", p("dangling")))
	target, err := os.Readlink(p("ln"))
	fmt.Println("readlink:", target, err)
	b, err = os.ReadFile(p("ln/b.txt"))
	fmt.Printf("through a link to a directory: %q %v\n", b, err)
	b, err = os.ReadFile(p("abs"))
	fmt.Printf("through an absolute link: %q %v\n", b, err)
	lst, err := os.Lstat(p("ln"))
	check(err)
	st, err = os.Stat(p("ln"))
	check(err)
	fmt.Println("lstat a link:", lst.Mode().Type() == os.ModeSymlink, lst.Size(), "stat it:", st.IsDir())
	_, err = os.Stat(p("dangling"))
	try("stat a dangling link", err)
	_, err = os.Lstat(p("dangling"))
	try("lstat it", err)
	_, err = syscall.Open(p("abs"), syscall.O_RDONLY|syscall.O_NOFOLLOW, 0)
	try("O_NOFOLLOW on a link", err)
	_, err = os.OpenFile(p("dangling"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	try("O_CREAT|O_EXCL on a dangling link", err)
	f, err = os.OpenFile(p("abs"), os.O_RDWR|os.O_CREATE, 0o644)
	try("O_CREAT through a link to a file", err)
	f.Close()
	try("symlink over a name", os.Symlink("x", p("ln")))
	try("symlink with an empty target", os.Symlink("", p("empty")))
	check(os.Symlink("loop", p("loop")))
	_, err = os.Stat(p("loop"))
	try("stat a link to itself", err)
	_, err = os.Readlink(p("d/x"))
	try("readlink a file", err)
	_, err = os.Readlink(p("missing"))
	try("readlink missing", err)
	try("rmdir a link to a directory", syscall.Rmdir(p("ln")))
	try("mkdir over a link", os.Mkdir(p("dangling"), 0o755))
	real, err := filepath.EvalSymlinks(p("ln/../e/b.txt"))
	fmt.Println("EvalSymlinks:", strings.TrimPrefix(real, dir), err)
	listing("readdir with links", dir)
	check(os.Rename(p("abs"), p("d/abs")))
	b, err = os.ReadFile(p("d/abs"))
	fmt.Printf("a moved absolute link: %q %v\n", b, err)
	for _, l := range []string{"ln", "dangling", "loop", "d/abs"} {
		check(os.Remove(p(l)))
	}
	_, err = os.Stat(p("d/e/b.txt"))
	fmt.Println("its target stays:", err)

	// The working directory can be in /tmp, and move back by descriptor.
	home, err := os.Open(".")
	check(err)
	check(os.Chdir(p("d/e")))
	check(os.WriteFile("rel", []byte("r"), 0o644))
	b, _ = os.ReadFile(p("d/e/rel"))
	wd, err := syscall.Getwd()
	fmt.Printf("chdir: %q %v, relative create: %q\n", strings.TrimPrefix(wd, dir), err, b)
	check(os.Chmod("rel", 0o640))
	st, _ = os.Stat("rel")
	fmt.Println("chmod:", st.Mode())
	f, err = os.Open("..")
	check(err)
	check(f.Chdir())
	f.Close()
	wd, err = syscall.Getwd()
	fmt.Printf("fchdir ..: %q %v\n", strings.TrimPrefix(wd, dir), err)
	check(os.Mkdir("gone-wd", 0o755))
	check(os.Chdir("gone-wd"))
	check(syscall.Rmdir(p("d/gone-wd")))
	_, err = syscall.Getwd()
	try("getcwd in a removed directory", err)
	_, err = os.Create("x")
	try("create in a removed working directory", err)
	check(home.Chdir())
	home.Close()
	try("chdir to a file", os.Chdir(p("d/x")))
	try("chdir to a missing directory", os.Chdir(p("missing")))

	// Descriptor mistakes.
	f, err = os.Open(p("d/x"))
	check(err)
	try("write to O_RDONLY", func() error { _, err := f.Write([]byte("x")); return err }())
	try("ftruncate O_RDONLY", f.Truncate(0))
	try("seek to -1", func() error { _, err := f.Seek(-1, io.SeekStart); return err }())
	f.Close()

	// A removed file stays readable through an open descriptor.
	f, err = os.Open(p("d/x"))
	check(err)
	check(os.Remove(p("d/x")))
	var sst syscall.Stat_t
	check(syscall.Fstat(int(f.Fd()), &sst))
	n, err = f.Read(buf)
	fmt.Printf("removed but open: %q %v nlink %d\n", buf[:n], err, sst.Nlink)
	f.Close()

	// A removed directory lists as ENOENT through an open descriptor.
	check(os.Mkdir(p("gone"), 0o755))
	dfd, err := syscall.Open(p("gone"), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	check(err)
	check(syscall.Rmdir(p("gone")))
	_, err = syscall.Getdents(dfd, buf)
	try("getdents of a removed directory", err)
	_, err = syscall.Openat(dfd, "new", syscall.O_RDWR|syscall.O_CREAT, 0o644)
	try("create in a removed directory", err)
	syscall.Close(dfd)

	if len(os.Args) > 1 && os.Args[1] == "keep" {
		// Left for the kernel to free at exit: a file, and a removed file
		// still open.
		check(os.WriteFile(p("kept"), big[:1<<20], 0o644))
		f, err = os.Create(p("open-removed"))
		check(err)
		_, err = f.Write(big[:100000])
		check(err)
		check(os.Remove(p("open-removed")))
		fmt.Println("kept")
		return
	}
	check(os.RemoveAll(dir))
	_, err = os.Stat(dir)
	try("after RemoveAll", err)
}

// fill (guest only: on the host it would fill the disk) writes until /tmp
// is full, then makes files until no node is left, checks both kinds of
// space come back after removal, and leaves everything for exit to free.
func fill() {
	f, err := os.Create(p("fill"))
	check(err)
	chunk := make([]byte, 1<<20)
	total := 0
	for {
		n, err := f.Write(chunk)
		total += n
		if err != nil {
			try("fill", err)
			break
		}
	}
	fi, _ := f.Stat()
	fmt.Println("filled:", total > 0, fi.Size() == int64(total))
	check(f.Truncate(0))
	_, err = f.Write(chunk)
	fmt.Println("write after truncate:", err)
	f.Close()
	check(os.Remove(p("fill")))
	made := 0
	for ; ; made++ {
		g, err := os.Create(p(fmt.Sprint("n", made)))
		if err != nil {
			try("files", err)
			break
		}
		g.Close()
	}
	fmt.Println("made some files:", made > 100)
	check(os.Remove(p("n0")))
	try("a file after one went", os.WriteFile(p("again"), chunk, 0o644))
}
