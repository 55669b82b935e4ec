package kvmtest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestProbeCauses(t *testing.T) {
	dir := t.TempDir()
	if c, err := Probe(filepath.Join(dir, "kvm")); c != Absent || err == nil {
		t.Errorf("missing node: %v, %v; want absent", c, err)
	}
	// A node that opens but is not KVM: the API-version ioctl fails.
	if c, err := Probe(os.DevNull); c != Broken || err == nil || !strings.Contains(err.Error(), "KVM_GET_API_VERSION") {
		t.Errorf("%s: %v, %v; want not usable from the ioctl", os.DevNull, c, err)
	}
	if c, err := Probe(dir); c != Broken || err == nil {
		t.Errorf("directory: %v, %v; want not usable", c, err)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		errno syscall.Errno
		want  Cause
	}{
		{syscall.ENOENT, Absent},
		{syscall.EACCES, Denied},
		{syscall.EPERM, Denied},
		{syscall.ENXIO, Broken}, // node without a driver behind it
		{syscall.EBUSY, Broken},
	} {
		err := &fs.PathError{Op: "open", Path: Device, Err: c.errno}
		if got := classify(err); got != c.want {
			t.Errorf("%v: %v, want %v", c.errno, got, c.want)
		}
	}
}

func TestDecide(t *testing.T) {
	denied := &fs.PathError{Op: "open", Path: Device, Err: syscall.EACCES}
	absent := &fs.PathError{Op: "open", Path: Device, Err: syscall.ENOENT}
	broken := errors.New("KVM_GET_API_VERSION on /dev/kvm: 11, want 12")
	for _, c := range []struct {
		env   string
		cause Cause
		err   error
		want  Action
		say   []string // substrings the message must hold
	}{
		{"", Usable, nil, Run, nil},
		{"1", Usable, nil, Run, nil},
		{"0", Usable, nil, Run, nil},
		{"", Absent, absent, Skip, []string{"KVM absent", "no such file", "VMM_REQUIRE_KVM=1"}},
		{"", Denied, denied, Skip, []string{"KVM permission denied", "kvm group"}},
		{"", Broken, broken, Skip, []string{"KVM not usable", "want 12"}},
		{"0", Denied, denied, Skip, []string{"permission denied"}},
		{"false", Absent, absent, Skip, nil},
		{"1", Absent, absent, Fail, []string{"KVM absent", "VMM_REQUIRE_KVM is set"}},
		{"true", Denied, denied, Fail, []string{"KVM permission denied", "must run"}},
		{"1", Broken, broken, Fail, []string{"not usable", "want 12"}},
		{"yes please", Usable, nil, Fail, []string{`VMM_REQUIRE_KVM="yes please"`}},
		{"yes please", Absent, absent, Fail, []string{"want 1 or 0"}},
	} {
		act, msg := Decide(c.env, c.cause, c.err)
		if act != c.want {
			t.Errorf("env %q, %v: action %d, want %d (%s)", c.env, c.cause, act, c.want, msg)
		}
		for _, s := range c.say {
			if !strings.Contains(msg, s) {
				t.Errorf("env %q, %v: message %q lacks %q", c.env, c.cause, msg, s)
			}
		}
	}
}

// TestRequireAgreesWithProbe: on this host Require does what Decide says
// for the real device, so the CI variable really turns a skip into a failure.
func TestRequireAgreesWithProbe(t *testing.T) {
	cause, err := Probe(Device)
	act, msg := Decide(os.Getenv(EnvRequire), cause, err)
	t.Logf("%s: %v (%v); action %d %s", Device, cause, err, act, msg)
	if Available() != (cause == Usable) {
		t.Fatalf("Available() = %v, Probe says %v", Available(), cause)
	}
}

// TestKVMUsable is the gate .ci/run and the workflow run first: with
// VMM_REQUIRE_KVM=1 it fails, saying why, when /dev/kvm cannot be used.
func TestKVMUsable(t *testing.T) {
	Require(t)
	t.Logf("%s opens read-write and answers KVM_GET_API_VERSION 12", Device)
}
