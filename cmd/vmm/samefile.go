package main

import (
	"os"
	"path/filepath"
)

// sameFile reports whether paths a and b name one file: the same path, or
// both existing as one file (symlinks followed, hard links included). An
// output written over an input, or over another output, would destroy it.
func sameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}
