package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedFilesCurrent fails when a generated file no longer matches
// the Go definitions it comes from: run go generate ./firmware.
func TestGeneratedFilesCurrent(t *testing.T) {
	for path, want := range outputs() {
		got, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil || string(got) != want {
			t.Errorf("%s is stale or missing (%v): run go generate ./firmware", path, err)
		}
	}
}
