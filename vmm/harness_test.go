package vmm

import (
	"bytes"
	"testing"
	"time"

	"github.com/vmm-dev/vmm/internal/guestbuild"
	"github.com/vmm-dev/vmm/internal/kvmtest"
)

// requireKVM runs, skips or fails a KVM test as internal/kvmtest decides
// (VMM_REQUIRE_KVM=1 turns a skip into a failure).
func requireKVM(t testing.TB) {
	t.Helper()
	kvmtest.Require(t)
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
