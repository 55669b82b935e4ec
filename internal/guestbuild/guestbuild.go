// Package guestbuild builds the guest kernel ELF for tests, once per test
// binary, with the same recipe as scripts/build-guest.sh.
package guestbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

var (
	once sync.Once
	path string
	err  error
)

// RepoRoot is the module root (this file lives two levels below it).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Path builds the guest once and returns the ELF's path.
func Path() (string, error) {
	once.Do(func() {
		dir, e := os.MkdirTemp("", "vmm-guest-")
		if e != nil {
			err = e
			return
		}
		path = filepath.Join(dir, "guest.elf")
		cmd := exec.Command(filepath.Join(RepoRoot(), "scripts", "build-guest.sh"), path)
		cmd.Dir = RepoRoot()
		if out, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("building the guest: %v\n%s", e, out)
		}
	})
	return path, err
}

// Image returns the guest ELF's bytes.
func Image() ([]byte, error) {
	p, err := Path()
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}
