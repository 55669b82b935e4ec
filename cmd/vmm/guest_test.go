package main

import (
	"bytes"
	"debug/buildinfo"
	"runtime"
	"testing"

	"github.com/vmm-dev/vmm/internal/guestbuild"
)

// refreshHint is what to do when the committed guest image is stale.
const refreshHint = "refresh it with `make guest` (scripts/build-guest.sh cmd/vmm/kernel/guest.elf) and commit it"

// TestEmbeddedGuestMatchesSource: the committed cmd/vmm/kernel/guest.elf,
// which `go install` users boot, is exactly what ./guest builds to now.
func TestEmbeddedGuestMatchesSource(t *testing.T) {
	emb, ok := embeddedKernel()
	if !ok {
		t.Fatal("cmd/vmm/kernel/guest.elf is empty: " + refreshHint)
	}
	bi, err := buildinfo.Read(bytes.NewReader(emb))
	if err != nil {
		t.Fatalf("embedded guest has no Go build info (%v): %s", err, refreshHint)
	}
	if bi.GoVersion != runtime.Version() {
		t.Skipf("the committed guest was built with %s and this toolchain is %s: the bytes cannot match (CI uses go.mod's version)", bi.GoVersion, runtime.Version())
	}
	fresh, err := guestbuild.Image()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(emb, fresh) {
		i := 0
		for i < len(emb) && i < len(fresh) && emb[i] == fresh[i] {
			i++
		}
		t.Fatalf("cmd/vmm/kernel/guest.elf (%d bytes) differs from a fresh build of ./guest (%d bytes) from offset %#x: %s",
			len(emb), len(fresh), i, refreshHint)
	}
}
