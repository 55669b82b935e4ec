// Package kvmtest decides, once for every test package, whether a test that
// needs KVM runs, skips or fails. Outside CI a host without a usable
// /dev/kvm skips those tests with the cause; with VMM_REQUIRE_KVM=1 (set by
// .ci/run and the GitHub workflow) the same host fails them, so a CI run
// cannot pass green having booted nothing.
//
// It opens /dev/kvm itself rather than through package vmm so that vmm's
// own tests can use it without an import cycle.
package kvmtest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// EnvRequire names the environment variable that makes KVM mandatory.
const EnvRequire = "VMM_REQUIRE_KVM"

// Device is the KVM device node.
const Device = "/dev/kvm"

// Cause says why KVM is or is not usable.
type Cause int

const (
	Usable Cause = iota
	Absent       // no /dev/kvm
	Denied       // /dev/kvm exists but this user may not open it read-write
	Broken       // opened, but not a working KVM (or another open error)
)

func (c Cause) String() string {
	switch c {
	case Usable:
		return "usable"
	case Absent:
		return "absent"
	case Denied:
		return "permission denied"
	case Broken:
		return "not usable"
	}
	return fmt.Sprintf("Cause(%d)", int(c))
}

// kvmGetAPIVersion is _IO(0xAE, 0x00); every KVM since 2.6.22 answers 12.
const kvmGetAPIVersion = 0xAE00

// Probe opens path read-write, as the VMM does, and asks its API version.
func Probe(path string) (Cause, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return classify(err), err
	}
	defer f.Close()
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil {
		return Broken, fmt.Errorf("KVM_GET_API_VERSION on %s: %w", path, err)
	}
	if v != 12 {
		return Broken, fmt.Errorf("KVM_GET_API_VERSION on %s: %d, want 12", path, v)
	}
	return Usable, nil
}

// classify maps an open error to its cause.
func classify(err error) Cause {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return Absent
	case errors.Is(err, os.ErrPermission):
		return Denied
	}
	return Broken
}

// Action is what a test that needs KVM does.
type Action int

const (
	Run Action = iota
	Skip
	Fail
)

// Decide is the policy: env is the value of VMM_REQUIRE_KVM, cause and err
// come from Probe. The message says what was found and what to do.
func Decide(env string, cause Cause, err error) (Action, string) {
	required, perr := parseRequire(env)
	if perr != nil {
		return Fail, perr.Error()
	}
	if cause == Usable {
		return Run, ""
	}
	hint := ""
	switch cause {
	case Absent:
		hint = " (load kvm_intel, kvm_amd or kvm_pvm, or give the VM nested virtualisation)"
	case Denied:
		hint = " (run as root, join the kvm group, or chmod o+rw " + Device + ")"
	}
	msg := fmt.Sprintf("KVM %s: %v%s", cause, err, hint)
	if required {
		return Fail, msg + "; " + EnvRequire + " is set, so KVM tests must run"
	}
	return Skip, "skipping KVM test: " + msg + "; set " + EnvRequire + "=1 to make this a failure"
}

// parseRequire reads VMM_REQUIRE_KVM: empty means not required.
func parseRequire(env string) (bool, error) {
	if env == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(env)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1 or 0", EnvRequire, env)
	}
	return b, nil
}

var probe struct {
	once  sync.Once
	cause Cause
	err   error
}

func probeOnce() (Cause, error) {
	probe.once.Do(func() { probe.cause, probe.err = Probe(Device) })
	return probe.cause, probe.err
}

// Require runs tb when KVM is usable, and otherwise skips or fails it as
// Decide says.
func Require(tb testing.TB) {
	tb.Helper()
	cause, err := probeOnce()
	switch act, msg := Decide(os.Getenv(EnvRequire), cause, err); act {
	case Skip:
		tb.Skip(msg)
	case Fail:
		tb.Fatal(msg)
	}
}

// Available reports whether KVM is usable, for optional extras (a fuzz seed
// from a real boot) that need not fail when it is not; use Required too if
// CI must not lose them.
func Available() bool {
	cause, _ := probeOnce()
	return cause == Usable
}

// Required reports whether VMM_REQUIRE_KVM asks for KVM.
func Required() bool {
	r, err := parseRequire(os.Getenv(EnvRequire))
	return r || err != nil
}
