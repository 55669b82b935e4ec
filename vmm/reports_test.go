package vmm

import (
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
)

// TestRegisterReports: the ring must be aligned, whole, in RAM and
// registered once.
func TestRegisterReports(t *testing.T) {
	st := &hcState{cpus: 1}
	checkRegistration(t, testMemory(t, 16<<20), st, firmware.HCRegisterReports, firmware.ReportRingSize)
	if st.ring.phys != 0x200000 {
		t.Errorf("ring at %#x", st.ring.phys)
	}
}

// TestDrainReports: posted entries become reports in order, with the
// host's count written back as Tail; bad keys are refused and counted; a
// Head the ring cannot hold, ahead or behind, is skipped without reading
// past the ring.
func TestDrainReports(t *testing.T) {
	mem := testMemory(t, 16<<20)
	st := &hcState{cpus: 1}
	const ring, keys = 0x200000, 0x300000
	if registerReports(mem, st, ring, firmware.ReportRingSize) != 0 {
		t.Fatal("ring refused")
	}
	post := func(i uint64, key string, keyPhys, value uint64) {
		if keyPhys < uint64(len(mem.Host())) {
			copy(mem.Host()[keyPhys:], key)
		}
		e := firmware.ReportEntry{Key: keyPhys, KeyLen: uint64(len(key)), Value: value}
		if err := writeGuest(mem, ring+64+i%firmware.ReportRingEntries*24, &e); err != nil {
			t.Fatal(err)
		}
	}
	// 70 entries, in two drains: the second wraps around the ring.
	for i := range uint64(40) {
		post(i, "a.count", keys, i)
	}
	post(40, "b.count", keys+64, 7)
	mem.WriteU64(ring, 41)
	if note := drainReports(mem, st); note != "" || len(st.reports) != 2 || st.reports[0] != (Report{"a.count", 39}) || st.reports[1] != (Report{"b.count", 7}) {
		t.Fatalf("first drain: note %q, reports %+v", note, st.reports)
	}
	if tail, _ := mem.ReadU64(ring + 8); tail != 41 {
		t.Fatalf("Tail %d after taking 41", tail)
	}
	for i := uint64(41); i < 70; i++ {
		post(i, "c.count", keys+128, i)
	}
	post(69, "", keys, 1)                          // an empty key
	post(68, "x", 1<<40, 1)                        // a key outside RAM
	post(67, strings.Repeat("k", 65), keys+256, 1) // too long
	mem.WriteU64(ring, 70)
	drainReports(mem, st)
	if len(st.reports) != 3 || st.reports[2] != (Report{"c.count", 66}) || st.ring.refused != 3 {
		t.Fatalf("second drain: reports %+v, refused %d", st.reports, st.ring.refused)
	}
	// A Head more than a ring ahead, then one behind: skipped, counted.
	for _, head := range []uint64{70 + firmware.ReportRingEntries + 1, 5} {
		mem.WriteU64(ring, head)
		if note := drainReports(mem, st); !strings.Contains(note, "skipped") || st.ring.taken != head {
			t.Fatalf("head %d: note %q, taken %d", head, note, st.ring.taken)
		}
	}
	if len(st.reports) != 3 || st.ring.refused != 5 {
		t.Errorf("after hostile heads: %d reports, %d refused", len(st.reports), st.ring.refused)
	}
}

// TestReportsArePosted: a default boot's reports reach the summary, in
// full, without a report hypercall: the guest posts them in its ring.
func TestReportsArePosted(t *testing.T) {
	cfg := bootConfig(t)
	var log strings.Builder
	cfg.Log = &log
	res, _ := boot(t, cfg)
	if res.ExitStatus != 0 {
		t.Fatalf("boot: %s", res.Reason)
	}
	if n := strings.Count(log.String(), ": report("); n != 0 {
		t.Errorf("%d report hypercalls", n)
	}
	got := map[string]uint64{}
	for _, r := range res.Reports {
		got[r.Key] = r.Value
	}
	if len(res.Reports) < 20 || got["stress.allocs"] == 0 || got["stress.allocs"] != got["stress.frees"] || got["traps.handled"] == 0 {
		t.Errorf("reports %+v", res.Reports)
	}
	if !strings.Contains(log.String(), ": register-reports(") {
		t.Error("the guest never offered its ring")
	}
}
