// Command fserrors prints the errors a read-only file system gives (vmm run
// --dir ../readfile/tree), which a host run on a writable tree cannot show.
// want.txt is its output on Linux, run as root under chroot in a read-only
// bind mount of that tree (mount --bind; mount -o remount,ro,bind), which
// vmm run must reproduce, with a tmp directory added to that tree and a
// tmpfs mounted on it (mount -t tmpfs), as vmm run mounts one at /tmp.
package main

import (
	"fmt"
	"os"
	"syscall"
)

func try(what string, err error) {
	if errno, ok := err.(syscall.Errno); ok {
		fmt.Printf("%s: errno %d (%v)\n", what, int(errno), err)
		return
	}
	fmt.Printf("%s: %v\n", what, err)
}

func main() {
	_, err := syscall.Open("hello.txt", syscall.O_WRONLY, 0)
	try("open O_WRONLY", err)
	_, err = syscall.Open("hello.txt", syscall.O_RDWR, 0)
	try("open O_RDWR", err)
	_, err = syscall.Open("new", syscall.O_RDONLY|syscall.O_CREAT, 0o644)
	try("open O_CREAT absent", err)
	_, err = syscall.Open("hello.txt", syscall.O_RDONLY|syscall.O_TRUNC, 0)
	try("open O_TRUNC", err)
	_, err = syscall.Open("sub", syscall.O_WRONLY, 0)
	try("open dir O_WRONLY", err)
	_, err = syscall.Open("hello.txt", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	try("open file O_DIRECTORY", err)
	_, err = syscall.Open("hello.txt/", syscall.O_RDONLY, 0)
	try("open file/", err)
	fd, err := syscall.Open("/sub/../sub/./deeper/../../hello.txt", syscall.O_RDONLY, 0)
	try("open absolute with . and ..", err)
	var b [32]byte
	n, err := syscall.Read(fd, b[:])
	fmt.Printf("read: %d %q %v\n", n, b[:n], err)
	_, err = syscall.Write(fd, []byte("x"))
	try("write to a read-only fd", err)
	_, err = syscall.Seek(fd, -1, 0)
	try("lseek to -1", err)
	syscall.Close(fd)
	_, err = syscall.Read(fd, b[:])
	try("read after close", err)
	dfd, err := syscall.Open("/../..", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	try("open /../..", err)
	_, err = syscall.Read(dfd, b[:])
	try("read a directory", err)
	_, err = syscall.Pread(dfd, b[:], 0)
	try("pread a directory", err)
	var st syscall.Stat_t
	err = syscall.Fstat(dfd, &st)
	fmt.Printf("fstat root: %v dir %v nlink %d\n", err, st.Mode&syscall.S_IFMT == syscall.S_IFDIR, st.Nlink)
	fd, err = syscall.Openat(dfd, "sub/deeper/n.txt", syscall.O_RDONLY, 0)
	try("openat relative to a directory fd", err)
	err = syscall.Fstat(fd, &st)
	fmt.Printf("fstat n.txt: %v size %d regular %v\n", err, st.Size, st.Mode&syscall.S_IFMT == syscall.S_IFREG)
	_, err = syscall.Openat(fd, "x", syscall.O_RDONLY, 0)
	try("openat relative to a file fd", err)
	_, err = syscall.Openat(99, "x", syscall.O_RDONLY, 0)
	try("openat relative to a closed fd", err)
	var buf [8]byte
	_, err = syscall.Getdents(dfd, buf[:])
	try("getdents64 into 8 bytes", err)
	_, err = syscall.Pread(1, b[:], 0)
	try("pread stdout", err)
	wd, err := os.Getwd()
	fmt.Printf("getwd: %q %v\n", wd, err)
	err = os.WriteFile("out.txt", []byte("x"), 0o644)
	fmt.Println("WriteFile:", err)
	_, err = os.Stat("/sub/deeper/n.txt")
	fmt.Println("Stat absolute:", err)
	try("mkdir new", syscall.Mkdir("newdir", 0o755))
	try("mkdir existing", syscall.Mkdir("sub/", 0o755))
	try("mkdir under a missing dir", syscall.Mkdir("nope/x", 0o755))
	try("mkdir under a file", syscall.Mkdir("hello.txt/x", 0o755))
	try("mkdir /", syscall.Mkdir("/", 0o755))
	try("unlink a file", syscall.Unlink("hello.txt"))
	try("unlink a directory", syscall.Unlink("sub"))
	try("rmdir a file", syscall.Rmdir("hello.txt"))
	try("rmdir a directory", syscall.Rmdir("sub/deeper"))
	try("unlink missing", syscall.Unlink("missing"))
	try("unlink under a missing dir", syscall.Unlink("nope/x"))
	try("rmdir .", syscall.Rmdir("sub/."))
	try("rmdir ..", syscall.Rmdir("sub/.."))
	try("rmdir /", syscall.Rmdir("/"))
	try("mkdir /sub/new", syscall.Mkdir("/sub/new", 0o755))
	_, err = os.Readlink("sub/big.bin")
	fmt.Println("Readlink a file:", err)
	_, err = os.Readlink("missing")
	fmt.Println("Readlink missing:", err)
	fmt.Println("MkdirTemp:", func() error {
		d, err := os.MkdirTemp("", "x")
		if err == nil {
			err = os.Remove(d)
		}
		return err
	}())
}
