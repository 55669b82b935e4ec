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
	"testing"
)

var (
	once  sync.Once
	image []byte
	err   error
)

// RepoRoot is the module root (this file lives two levels below it).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// build runs scripts/build-guest.sh into a temporary directory, keeps the
// ELF's bytes and removes the directory again.
func build() ([]byte, error) {
	dir, err := os.MkdirTemp("", "vmm-guest-")
	if err != nil {
		return nil, fmt.Errorf("building the guest: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "guest.elf")
	cmd := exec.Command(filepath.Join(RepoRoot(), "scripts", "build-guest.sh"), out)
	cmd.Dir = RepoRoot()
	if log, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the guest: %w\n%s", err, log)
	}
	return os.ReadFile(out)
}

// Image builds the guest once and returns the ELF's bytes.
func Image() ([]byte, error) {
	once.Do(func() { image, err = build() })
	return image, err
}

// Path writes the guest ELF into tb's temporary directory (removed when the
// test ends) and returns its path.
func Path(tb testing.TB) (string, error) {
	img, err := Image()
	if err != nil {
		return "", err
	}
	p := filepath.Join(tb.TempDir(), "guest.elf")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		return "", fmt.Errorf("writing the guest ELF: %w", err)
	}
	return p, nil
}
