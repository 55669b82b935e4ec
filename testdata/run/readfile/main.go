// Command readfile reads the directory tree it is given (its current
// directory, or the argument) with os.ReadFile, os.ReadDir and
// filepath.WalkDir, and prints what it saw. Errors are printed too: their
// text must match the host's.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	b, err := os.ReadFile(filepath.Join(root, "hello.txt"))
	fmt.Printf("ReadFile hello.txt: %q %v\n", b, err)
	_, err = os.ReadFile(filepath.Join(root, "missing"))
	fmt.Println("ReadFile missing:", err)
	_, err = os.ReadFile(filepath.Join(root, "hello.txt", "x"))
	fmt.Println("ReadFile under a file:", err)
	// Under vmm run the tree is /, and / has tmp: a mount point the host's
	// copy of the tree does not have.
	mountPoint := func(path string) bool {
		abs, _ := filepath.Abs(path)
		return abs == "/tmp"
	}
	ents, err := os.ReadDir(root)
	for _, e := range ents {
		if mountPoint(filepath.Join(root, e.Name())) {
			continue
		}
		fmt.Println("ReadDir:", e.Name(), e.IsDir(), e.Type())
	}
	fmt.Println("ReadDir err:", err)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if mountPoint(path) {
			return fs.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum := "" // a directory's size depends on the host's file system
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%d %.8x", info.Size(), sha256.Sum256(b))
		}
		fmt.Println("Walk:", path, d.IsDir(), info.Mode(), sum)
		return nil
	})
	fmt.Println("WalkDir err:", err)
	f, err := os.Open(filepath.Join(root, "sub", "big.bin"))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer f.Close()
	var buf [10]byte
	n, err := f.ReadAt(buf[:], 5000)
	fmt.Println("ReadAt:", n, err, buf[:n])
	off, err := f.Seek(-3, io.SeekEnd)
	fmt.Println("Seek:", off, err)
	n, err = f.Read(buf[:])
	fmt.Println("Read after seek:", n, err, buf[:n])
	n, err = f.Read(buf[:])
	fmt.Println("Read at end:", n, err)
	st, err := os.Stat(filepath.Join(root, "sub"))
	fmt.Println("Stat sub:", st.Name(), st.IsDir(), err)
	wd, err := os.Getwd()
	fmt.Println("Getwd ok:", wd != "" && err == nil)
	if root != "." { // run from inside the tree: where (the root's host name differs)
		fmt.Println("Getwd base:", filepath.Base(wd))
		b, err := os.ReadFile("n.txt")
		fmt.Printf("ReadFile n.txt in the working directory: %q %v\n", b, err)
	}
}
