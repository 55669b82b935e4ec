package vmm

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vmm-dev/vmm/internal/guestbuild"
)

// requireKVM skips a test only when KVM is absent or not accessible.
func requireKVM(t testing.TB) {
	t.Helper()
	f, err := OpenKVM()
	if errors.Is(err, ErrNoKVM) {
		t.Skipf("skipping KVM test: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func guestImage(t testing.TB) []byte {
	t.Helper()
	img, err := guestbuild.Image()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// bootConfig is the default test boot: the real guest, 128 MiB, one vCPU.
func bootConfig(t testing.TB) Config {
	return Config{MemBytes: 128 << 20, CPUs: 1, Kernel: guestImage(t), Timeout: 30 * time.Second}
}

// boot runs one guest to completion and returns its result and console.
func boot(t testing.TB, cfg Config) (*Result, string) {
	t.Helper()
	requireKVM(t)
	var console bytes.Buffer
	cfg.Console = &console
	vm, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer vm.Close()
	res := vm.Run()
	if res.Crash != nil {
		t.Logf("crash report:\n%s", res.Crash.Text)
	}
	return res, console.String()
}
