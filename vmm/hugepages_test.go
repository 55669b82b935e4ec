package vmm

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// TestAdviseHuge: after AdviseHuge the kernel lists guest RAM's mapping
// with the hg (MADV_HUGEPAGE) flag in /proc/self/smaps; before, without.
func TestAdviseHuge(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("no transparent huge pages on this kernel")
	}
	g := testMemory(t, 64<<20)
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&g.Host()[0])))
	if vmFlagHg(t, start) {
		t.Fatal("hg set before AdviseHuge")
	}
	g.AdviseHuge()
	if !vmFlagHg(t, start) {
		t.Error("guest RAM not advised MADV_HUGEPAGE (no hg in its smaps VmFlags)")
	}
}

// vmFlagHg reports whether the mapping starting at start (hex, then "-")
// has hg in its VmFlags.
func vmFlagHg(t *testing.T, start string) bool {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if f := strings.Fields(l); len(f) > 0 && !strings.HasSuffix(f[0], ":") { // a mapping's header
			in = strings.HasPrefix(l, start)
			continue
		}
		if in && strings.HasPrefix(l, "VmFlags:") {
			return strings.Contains(" "+strings.TrimPrefix(l, "VmFlags:")+" ", " hg ")
		}
	}
	t.Fatalf("no mapping at %s in /proc/self/smaps", start)
	return false
}
