// Command tmpfsedge prints edge cases of /tmp that a host run on a
// writable root cannot reproduce: a sparse file at 1 TiB with SEEK_DATA and
// SEEK_HOLE, truncation, bad offsets and user pointers, F_GETFL/F_SETFL
// O_APPEND, getdents64 in 40-byte pieces, and renames between /tmp and a
// read-only root (EXDEV, EROFS). want.txt is its output on Linux 6.18, run
// as root under chroot in a read-only bind mount of a directory holding
// only the binary and an empty tmp, with a tmpfs mounted on that tmp
// (unshare -m; mount --bind; mount -o remount,ro,bind; mount -t tmpfs),
// which vmm run (no --dir) must reproduce.
package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func try(what string, err error) {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		fmt.Printf("%s: errno %d (%v)\n", what, int(errno), errno)
		return
	}
	fmt.Printf("%s: %v\n", what, err)
}

func main() {
	dir, err := os.MkdirTemp("", "edge")
	if err != nil {
		panic(err)
	}
	f, _ := os.Create(dir + "/s")
	fd := int(f.Fd())
	defer os.RemoveAll(dir)
	// Sparse at a large offset, SEEK_DATA / SEEK_HOLE.
	_, err = syscall.Pwrite(fd, []byte("x"), 1<<40)
	try("pwrite at 1 TiB", err)
	for _, c := range []struct {
		off    int64
		whence int
	}{{0, 3}, {0, 4}, {1 << 40, 3}, {1<<40 + 1, 4}, {1<<40 + 5, 3}, {-1, 3}, {5, 4}} {
		r, err := syscall.Seek(fd, c.off, c.whence)
		fmt.Printf("seek %d %d: %d ", c.off, c.whence, r)
		try("", err)
	}
	var st syscall.Stat_t
	syscall.Fstat(fd, &st)
	fmt.Println("size", st.Size, "blocks", st.Blocks)
	try("ftruncate to 10", syscall.Ftruncate(fd, 10))
	syscall.Fstat(fd, &st)
	fmt.Println("size", st.Size, "blocks", st.Blocks)
	try("ftruncate -1", syscall.Ftruncate(fd, -1))
	_, err = syscall.Pwrite(fd, []byte("x"), -1)
	try("pwrite -1", err)
	_, err = syscall.Write(fd, nil)
	try("write 0", err)
	// Bad user buffer.
	_, _, e := syscall.Syscall(syscall.SYS_WRITE, uintptr(fd), 8, 10)
	try("write from a bad pointer", e)
	_, _, e = syscall.Syscall(syscall.SYS_READ, uintptr(fd), 8, 10)
	syscall.Seek(fd, 0, 0)
	_, _, e = syscall.Syscall(syscall.SYS_READ, uintptr(fd), 8, 10)
	try("read into a bad pointer", e)
	syscall.Fstat(fd, &st)
	fmt.Println("size after bad write", st.Size)
	// fsync on stdout and a bad fd; fdatasync on the file.
	try("fsync file", syscall.Fsync(fd))
	try("fsync bad fd", syscall.Fsync(999))
	f.Close()
	// O_APPEND via fcntl.
	f, _ = os.OpenFile(dir+"/a", os.O_RDWR|os.O_CREATE, 0o644)
	f.Write([]byte("abc"))
	fl, _, _ := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_GETFL, 0)
	fmt.Printf("F_GETFL %#x\n", fl)
	syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_SETFL, fl|syscall.O_APPEND)
	syscall.Seek(int(f.Fd()), 0, 0)
	syscall.Write(int(f.Fd()), []byte("Z"))
	b, _ := os.ReadFile(dir + "/a")
	fmt.Printf("append via F_SETFL: %q\n", b)
	f.Close()
	// getdents with a tiny buffer, then in pieces.
	for i := 0; i < 5; i++ {
		os.WriteFile(fmt.Sprintf("%s/f%d", dir, i), nil, 0o644)
	}
	dfd, _ := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	buf := make([]byte, 8)
	_, err = syscall.Getdents(dfd, buf)
	try("getdents 8 bytes", err)
	buf = make([]byte, 40)
	total := 0
	for {
		n, err := syscall.Getdents(dfd, buf)
		if n <= 0 || err != nil {
			try("getdents end", err)
			break
		}
		total++
	}
	fmt.Println("getdents calls of 40 bytes:", total)
	// Rename across file systems and within the tree.
	try("rename tmp -> /", syscall.Rename(dir+"/a", "/a"))
	try("rename / -> tmp", syscall.Rename("/nonexistent", dir+"/b"))
	try("rename /tmp itself", syscall.Rename("/tmp", "/tmp2"))
	try("rmdir /tmp", syscall.Rmdir("/tmp"))
	try("mkdir /tmp", syscall.Mkdir("/tmp", 0o755))
	try("rename onto itself", syscall.Rename(dir+"/a", dir+"/a"))
}
