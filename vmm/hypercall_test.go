package vmm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/memmap"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// testMemory is guest RAM without a VM: hypercall handling needs no KVM.
func testMemory(t *testing.T, size uint64) *GuestMemory {
	t.Helper()
	m, err := memmap.Build(size)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := NewGuestMemory(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	return mem
}

func TestHypercallArgumentChecks(t *testing.T) {
	mem := testMemory(t, 128<<20)
	copy(mem.Host()[0x200000:], "answer")
	top := mem.Map.RAMTop()
	const ver = uint64(mm.LayoutVersion)
	for _, tc := range []struct {
		name string
		nr   uint64
		args [5]uint64
		want uint64
	}{
		{"unknown", 77, [5]uint64{}, firmware.HCErrUnknown},
		{"exit status too big", firmware.HCExit, [5]uint64{300}, firmware.HCErrInvalid},
		{"exit status above the guest range", firmware.HCExit, [5]uint64{GuestStatusMax + 1}, firmware.HCErrInvalid},
		{"report ok", firmware.HCReport, [5]uint64{0x200000, 6, 42}, 0},
		{"report key past RAM", firmware.HCReport, [5]uint64{top - 2, 6, 1}, firmware.HCErrInvalid},
		{"report key wraps", firmware.HCReport, [5]uint64{^uint64(0) - 1, 6, 1}, firmware.HCErrInvalid},
		{"report key too long", firmware.HCReport, [5]uint64{0x200000, maxKeyLen + 1, 1}, firmware.HCErrInvalid},
		{"report empty key", firmware.HCReport, [5]uint64{0x200000, 0, 1}, firmware.HCErrInvalid},
		{"checkpoint label in MMIO", firmware.HCCheckpoint, [5]uint64{firmware.DoorbellBase, 8}, firmware.HCErrInvalid},
		{"checkpoint ok", firmware.HCCheckpoint, [5]uint64{0x200000, 6}, 0},
		{"checkpoint unwatched", firmware.HCCheckpoint, [5]uint64{0x200000, 6, firmware.CheckpointUnwatched}, 0},
		{"checkpoint last", firmware.HCCheckpoint, [5]uint64{0x200000, 6, firmware.CheckpointLast}, 0},
		{"checkpoint both hints", firmware.HCCheckpoint, [5]uint64{0x200000, 6, firmware.CheckpointUnwatched | firmware.CheckpointLast}, 0},
		{"checkpoint unknown flag", firmware.HCCheckpoint, [5]uint64{0x200000, 6, 4}, firmware.HCErrInvalid},
		{"checkpoint garbage flags", firmware.HCCheckpoint, [5]uint64{0x200000, 6, ^uint64(0)}, firmware.HCErrInvalid},
		{"meta misaligned", firmware.HCRegisterMeta, [5]uint64{0x100001, 10, ver, 0x2000}, firmware.HCErrInvalid},
		{"meta too many frames", firmware.HCRegisterMeta, [5]uint64{0x100000, top, ver, 0x2000}, firmware.HCErrInvalid},
		{"meta array past RAM", firmware.HCRegisterMeta, [5]uint64{top - 64*10, 11, ver, 0x2000}, firmware.HCErrInvalid},
		{"meta wrong version", firmware.HCRegisterMeta, [5]uint64{0x100000, 10, ver + 1, 0x2000}, firmware.HCErrInvalid},
		{"meta ok", firmware.HCRegisterMeta, [5]uint64{0x100000, top / 4096, ver, 0x100000 + top/64}, 0},
		{"meta twice", firmware.HCRegisterMeta, [5]uint64{0x100000, top / 4096, ver, 0x100000 + top/64}, firmware.HCErrState},
		{"root misaligned", firmware.HCRegisterRoot, [5]uint64{0x200010, 1}, firmware.HCErrInvalid},
		{"root ok", firmware.HCRegisterRoot, [5]uint64{0x200000, 1}, 0},
		{"root twice", firmware.HCRegisterRoot, [5]uint64{0x200000, 1}, firmware.HCErrState},
		{"root removed", firmware.HCRegisterRoot, [5]uint64{0x200000, 0}, 0},
		{"root unknown", firmware.HCRegisterRoot, [5]uint64{0x200000, 0}, firmware.HCErrState},
		{"wake bad cpu", firmware.HCWake, [5]uint64{1}, firmware.HCErrInvalid},
		{"kick bad cpu", firmware.HCKick, [5]uint64{1}, firmware.HCErrInvalid},
		{"kick self", firmware.HCKick, [5]uint64{0}, firmware.HCErrInvalid},
		{"fault frame outside RAM", firmware.HCFault, [5]uint64{top}, firmware.HCErrInvalid},
	} {
		st := &hcState{cpus: 1}
		if tc.name == "meta twice" || tc.name == "root twice" || tc.name == "root removed" {
			st = shared
		}
		res := handleHypercall(mem, st, 0, &firmware.Mailbox{Nr: tc.nr, Args: tc.args})
		if res.ret != tc.want {
			t.Errorf("%s: ret %#x, want %#x", tc.name, res.ret, tc.want)
		}
		if e, ok := res.effect.(effCheckpoint); (ok || tc.nr == firmware.HCCheckpoint && res.ret == 0) &&
			(e.label != "answer" || e.flags != tc.args[2] || res.ret != 0) {
			t.Errorf("%s: effect %+v, ret %#x", tc.name, res.effect, res.ret)
		}
		if tc.name == "meta ok" || tc.name == "root ok" {
			shared = st
		}
	}
}

// TestHypercallKick: HCKick names another vCPU, which the effect then
// interrupts (TLB shootdowns and vmm run's exit wait for it).
func TestHypercallKick(t *testing.T) {
	mem := testMemory(t, 4<<20)
	res := handleHypercall(mem, &hcState{cpus: 2}, 0, &firmware.Mailbox{Nr: firmware.HCKick, Args: [5]uint64{1}})
	if e, ok := res.effect.(effKick); !ok || e.cpu != 1 || res.ret != 0 {
		t.Fatalf("kick vCPU 1 from vCPU 0: %+v", res)
	}
}

// shared carries state between the "ok" and "twice" rows above.
var shared *hcState

func TestHypercallExitAndReport(t *testing.T) {
	mem := testMemory(t, 128<<20)
	copy(mem.Host()[0x200000:], "frames.free")
	st := &hcState{cpus: 1}
	res := handleHypercall(mem, st, 0, &firmware.Mailbox{Nr: firmware.HCReport, Args: [5]uint64{0x200000, 11, 99}})
	if res.ret != 0 || len(st.reports) != 1 || st.reports[0] != (Report{"frames.free", 99}) {
		t.Fatalf("report: ret %#x, reports %+v", res.ret, st.reports)
	}
	res = handleHypercall(mem, st, 0, &firmware.Mailbox{Nr: firmware.HCExit, Args: [5]uint64{42}})
	if e, ok := res.effect.(effExit); !ok || e.status != 42 {
		t.Fatalf("exit: %+v", res)
	}
}

func TestConsoleDrainSurvivesHostileHead(t *testing.T) {
	mem := testMemory(t, 4<<20)
	var out strings.Builder
	c, err := newConsole(mem, &out)
	if err != nil {
		t.Fatal(err)
	}
	data := mem.Host()[firmware.ConsoleBase+firmware.ConsoleDataOff:]
	copy(data, "hello\n")
	mem.WriteU64(firmware.ConsoleBase, 6)
	if err := c.drain(); err != nil || out.String() != "hello\n" {
		t.Fatalf("drain: %v, got %q", err, out.String())
	}
	mem.WriteU64(firmware.ConsoleBase, 1<<40) // far beyond the ring
	if err := c.drain(); err == nil {
		t.Fatal("a head a terabyte ahead was accepted")
	}
	mem.WriteU64(firmware.ConsoleBase, 3) // behind the tail
	if err := c.drain(); err == nil {
		t.Fatal("a head behind the tail was accepted")
	}
	if out.String() != "hello\n" {
		t.Fatalf("corrupt ring produced output %q", out.String())
	}
	if s := c.stats(); s.Written != 6 || s.Corruptions != 2 || s.Lost != 1<<40-6 {
		t.Errorf("console stats %+v, want 6 written, 2 corruptions, %d lost", s, uint64(1<<40-6))
	}
}

// TestReportsAreBounded: a guest reporting in a loop keeps the VMM's state
// bounded; repeated keys update in place and new keys past the cap are
// refused and counted.
func TestReportsAreBounded(t *testing.T) {
	mem := testMemory(t, 128<<20)
	st := &hcState{cpus: 1}
	for i := range 3 * maxReportKeys {
		key := fmt.Sprintf("k%04d", i%(maxReportKeys+10))
		copy(mem.Host()[0x200000:], key)
		res := handleHypercall(mem, st, 0, &firmware.Mailbox{Nr: firmware.HCReport, Args: [5]uint64{0x200000, uint64(len(key)), uint64(i)}})
		if want := i%(maxReportKeys+10) >= maxReportKeys; (res.ret != 0) != want {
			t.Fatalf("report %d (%s): ret %#x, want refusal %v", i, key, res.ret, want)
		}
	}
	if len(st.reports) != maxReportKeys || st.dropped != 20 {
		t.Fatalf("%d keys kept, %d dropped; want %d and 20", len(st.reports), st.dropped, maxReportKeys)
	}
	if st.reports[0].Key != "k0000" || st.reports[0].Value != 2*(maxReportKeys+10) {
		t.Errorf("first key %+v: want k0000 updated to its last value", st.reports[0])
	}
}

// TestRegisterMetaNamesTheRule: a registration that can never verify is
// refused with HCErrInvalid, the log line and the summary say which rule,
// and a later good registration clears the summary's error.
func TestRegisterMetaNamesTheRule(t *testing.T) {
	mem := testMemory(t, 128<<20)
	top := mem.Map.RAMTop()
	st := &hcState{cpus: 1, boot: &verify.Boot{InUse: []verify.Region{{Name: "kernel image", Base: 0x400000, Size: 0x100000}}}}
	ver := uint64(mm.LayoutVersion)
	for _, tc := range []struct {
		args [5]uint64
		rule string
	}{
		{[5]uint64{0x100000, 16, ver, 0x200008}, verify.RuleStateAlign},
		{[5]uint64{0x400000, 16, ver, 0x200000}, verify.RuleOverlap},
		{[5]uint64{firmware.BootInfoBase, 16, ver, 0x200000}, verify.RuleOverlap},
		{[5]uint64{0x100000, 0, ver, 0x200000}, verify.RuleFrameCount},
		{[5]uint64{0x100000, 16, ver + 1, 0x200000}, verify.RuleVersion},
	} {
		res := handleHypercall(mem, st, 0, &firmware.Mailbox{Nr: firmware.HCRegisterMeta, Args: tc.args})
		if res.ret != firmware.HCErrInvalid || verify.RuleOf(st.regErr) != tc.rule || !strings.Contains(res.why, tc.rule) {
			t.Errorf("%#x: ret %#x, error %v, log %q; want rule %s", tc.args, res.ret, st.regErr, res.why, tc.rule)
		}
	}
	res := handleHypercall(mem, st, 0, &firmware.Mailbox{Nr: firmware.HCRegisterMeta, Args: [5]uint64{0x1000000, top / 4096, ver, 0x1000000 + top/64}})
	if res.ret != 0 || st.reg == nil || st.regErr != nil {
		t.Fatalf("good registration: ret %#x, error %v", res.ret, st.regErr)
	}
}

// TestRegisterHeld: the holdings declaration must be aligned, the right
// size and in RAM, and is registered once.
// checkRegistration runs the refusals every registration hypercall makes
// (no address, a misaligned one, a wrong size, past RAM) and the one good
// call at 0x200000 that a second one then finds taken, in 16 MiB of RAM.
func checkRegistration(t *testing.T, mem *GuestMemory, st *hcState, nr, size uint64) {
	t.Helper()
	for _, tc := range []struct {
		phys, size, want uint64
	}{
		{0, size, firmware.HCErrInvalid},
		{0x200004, size, firmware.HCErrInvalid},
		{0x200000, size - 8, firmware.HCErrInvalid},
		{16<<20 - 8, size, firmware.HCErrInvalid},
		{0x200000, size, 0},
		{0x300000, size, firmware.HCErrState},
	} {
		res := handleHypercall(mem, st, 0, &firmware.Mailbox{Nr: nr, Args: [5]uint64{tc.phys, tc.size}})
		if res.ret != tc.want {
			t.Errorf("%s(%#x, %d) = %#x, want %#x", hcName(nr), tc.phys, tc.size, res.ret, tc.want)
		}
	}
}

func TestRegisterHeld(t *testing.T) {
	st := &hcState{cpus: 1}
	checkRegistration(t, testMemory(t, 16<<20), st, firmware.HCRegisterHeld, mm.HoldingsSize)
	if st.held != 0x200000 {
		t.Errorf("held = %#x", st.held)
	}
}

// TestRefusedRegistrationIsAViolation: while no registration stands, a
// refused one is what every checkpoint reports (1 violation naming the
// frame), so the run ends with StatusViolation rather than the guest's own
// status; a guest that never registered is only "not verified".
func TestRefusedRegistrationIsAViolation(t *testing.T) {
	vm := &VM{mem: testMemory(t, 128<<20)}
	vm.hc.boot = &verify.Boot{InUse: []verify.Region{{Name: "kernel image", Base: 0x400000, Size: 0x100000}}}
	if n := vm.checkpoint("before", false, 0); n != 0 || vm.result.Checkpoints[0].State() != "not verified (no metadata registered)" {
		t.Fatalf("no registration yet: %d violations, %q", n, vm.result.Checkpoints[0].State())
	}
	ver := uint64(mm.LayoutVersion)
	handleHypercall(vm.mem, &vm.hc, 0, &firmware.Mailbox{Nr: firmware.HCRegisterMeta, Args: [5]uint64{0x1000000, 16, ver, 0x480000}})
	vm.result.Outcome, vm.result.ExitStatus = OutcomeExit, firmware.GuestExitMMInitFailed
	vm.finish()
	cp := vm.result.Checkpoints[1]
	if cp.Verified || cp.Violations != 1 || cp.Report == nil || len(cp.Report.Violations) != 1 || cp.Report.Violations[0].PFN != 0x480 {
		t.Fatalf("refused registration: %+v", cp)
	}
	if vm.result.ExitStatus != StatusViolation || *vm.result.GuestExitStatus != firmware.GuestExitMMInitFailed {
		t.Errorf("exit status %d (guest %v), want %d over the guest's %d", vm.result.ExitStatus, vm.result.GuestExitStatus, StatusViolation, firmware.GuestExitMMInitFailed)
	}
}

// TestHypercallRandomIsNoted: HCRandom's bytes are the VMM's write to guest
// RAM, which KVM's dirty log never sees: the tracker must be told, or an
// incremental checkpoint would miss a buffer the guest placed over watched
// metadata.
func TestHypercallRandomIsNoted(t *testing.T) {
	mem := testMemory(t, 4<<20)
	tr := newDirtyTracker(0, mem.Map.Slots(), mem.Host())
	mem.dirty = tr
	res := handleHypercall(mem, &hcState{cpus: 1}, 0, &firmware.Mailbox{Nr: firmware.HCRandom, Args: [5]uint64{0x200010, 32}})
	if res.ret != 32 || len(tr.wrote) != 1 || tr.wrote[0] != (span{0x200010, 32}) {
		t.Fatalf("random: ret %#x, noted %+v", res.ret, tr.wrote)
	}
}
