package main

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// An x86-64 ELF for another OS (GOOS=freebsd marks it with its OSABI) is
// refused before any VM, not run until its first system call crashes it.
func TestCheckProgramRefusesAnotherOS(t *testing.T) {
	img, err := os.ReadFile(buildProgram(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkProgram(img); err != nil {
		t.Fatalf("a linux/amd64 program refused: %v", err)
	}
	bsd := append([]byte(nil), img...)
	bsd[7] = 9 // EI_OSABI: ELFOSABI_FREEBSD
	if err := checkProgram(bsd); !errors.Is(err, ErrBadProgram) || !strings.Contains(err.Error(), "FREEBSD") {
		t.Errorf("a FreeBSD ELF: %v, want ErrBadProgram naming FreeBSD", err)
	}
}
