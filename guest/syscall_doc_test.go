package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateSyscallDoc = flag.Bool("update-syscalls", false, "rewrite docs/syscalls.md from the syscall table")

// syscallDoc renders the syscall table as docs/syscalls.md.
func syscallDoc() string {
	var b strings.Builder
	b.WriteString(`# System calls under ` + "`vmm run`" + `

Generated from the guest kernel's syscall table (guest/syscall.go) by
` + "`go test ./guest -run TestSyscallDoc -update-syscalls`" + `; the test fails when
this file and the table disagree. Every number not listed, and every
refused one, returns -ENOSYS and is counted by name in the run's report
(` + "`sys.refused.NAME`" + `; ` + "`vmm run`" + ` prints them).

| nr | name | support | notes |
|---:|------|---------|-------|
`)
	levels := [...]string{sysRefused: "refused (ENOSYS)", sysSupported: "supported", sysPartial: "partial"}
	for nr, e := range syscallTable {
		if e.name == "" {
			continue
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", nr, e.name, levels[e.level], e.note)
	}
	return b.String()
}

func TestSyscallDoc(t *testing.T) {
	path := filepath.Join("..", "docs", "syscalls.md")
	want := syscallDoc()
	if *updateSyscallDoc {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is out of date: go test ./guest -run TestSyscallDoc -update-syscalls", path)
	}
}

// TestSyscallTable: every entry the dispatcher implements is marked
// supported or partial, every refused one carries no note, partial ones say
// what is left out.
func TestSyscallTable(t *testing.T) {
	for nr, e := range syscallTable {
		if e.name == "" {
			continue
		}
		switch e.level {
		case sysRefused:
			if e.note != "" {
				t.Errorf("%d %s: refused with a note", nr, e.name)
			}
		case sysPartial:
			if e.note == "" {
				t.Errorf("%d %s: partial without a note", nr, e.name)
			}
		}
	}
}
