package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/vmm"
)

// TestUsageListsExitStatuses: -h shows every status the code returns, with
// the values of the constants (renumbering them changes the text).
func TestUsageListsExitStatuses(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"help", "boot"}} {
		st, out, _ := runCLI(args...)
		if st != 0 {
			t.Fatalf("%q: status %d", args, st)
		}
		for _, want := range []string{
			fmt.Sprintf("%-8d VMM error", vmm.StatusVMMError),
			fmt.Sprintf("%-8d bad flags", vmm.StatusUsage),
			fmt.Sprintf("%-8d guest fault", vmm.StatusFault),
			fmt.Sprintf("%-8d --timeout", vmm.StatusTimeout),
			fmt.Sprintf("%-8d host verification", vmm.StatusViolation),
			fmt.Sprintf("0..%d", vmm.GuestStatusMax),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: usage lacks %q:\n%s", args, want, out)
			}
		}
	}
	if _, out, _ := runCLI("help"); !strings.Contains(out, fmt.Sprintf("kills it, ends with %d", vmm.StatusFault)) {
		t.Errorf("help does not say what vmm run's program statuses above %d become:\n%s", vmm.GuestStatusMax, out)
	}
	st, _, errs := runCLI()
	if st != vmm.StatusUsage || !strings.Contains(errs, "Exit statuses") {
		t.Errorf("no arguments: status %d, stderr %q", st, errs)
	}
}

func TestHelpCommand(t *testing.T) {
	for cmd, want := range map[string]string{
		"boot": "-mem SIZE", "inspect": "-frame ADDR", "bench": "-host-runs", "version": "build id", "help": "vmm help",
		"run": "-dir HOSTDIR",
	} {
		st, out, errs := runCLI("help", cmd)
		if st != 0 || !strings.Contains(out, want) || errs != "" {
			t.Errorf("help %s: status %d, stdout lacks %q or stderr not empty:\n%s%s", cmd, st, want, out, errs)
		}
	}
	if _, out, _ := runCLI("help", "bench"); !strings.Contains(out, "-sizes") {
		t.Errorf("help bench lacks the --floors flags:\n%s", out)
	}
	for _, args := range [][]string{{"help", "nosuch"}, {"help", "boot", "inspect"}, {"version", "extra"}} {
		if st, _, errs := runCLI(args...); st != vmm.StatusUsage || errs == "" {
			t.Errorf("%q: status %d, stderr %q; want %d and a message", args, st, errs, vmm.StatusUsage)
		}
	}
}

// TestVersion: the guest build id is the Go linker's, as `go tool buildid`
// reads it from the committed image.
func TestVersion(t *testing.T) {
	st, out, _ := runCLI("version")
	if st != 0 {
		t.Fatalf("status %d", st)
	}
	for _, want := range []string{"vmm ", "github.com/vmm-dev/vmm", "revision: ", "go: " + runtime.Version(), "guest: build id "} {
		if !strings.Contains(out, want) {
			t.Errorf("version lacks %q:\n%s", want, out)
		}
	}
	id, err := exec.Command("go", "tool", "buildid", "kernel/guest.elf").Output()
	if err != nil {
		t.Skipf("go tool buildid: %v", err)
	}
	if want := "guest: build id " + strings.TrimSpace(string(id)) + " ("; !strings.Contains(out, want) {
		t.Errorf("version lacks %q:\n%s", want, out)
	}
}

func TestGoBuildIDRejectsDamage(t *testing.T) {
	img, _ := embeddedKernel()
	if _, err := goBuildID(img[:64]); err == nil {
		t.Error("truncated ELF accepted")
	}
	if g := describeGuest(nil); g.Err == "" {
		t.Error("no image: no error")
	}
	// Damage the note's descriptor size: it must be refused, not read past.
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	note := f.Section(".note.go.buildid")
	if note == nil {
		t.Fatal("no .note.go.buildid")
	}
	for _, off := range []uint64{0, 4, 8, 12} { // namesz, descsz, type, name
		b := append([]byte(nil), img...)
		b[note.Offset+off] ^= 0xff
		if id, err := goBuildID(b); err == nil {
			t.Errorf("note damaged at +%d: accepted %q", off, id)
		}
	}
}
