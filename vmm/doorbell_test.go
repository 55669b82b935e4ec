package vmm

import (
	"strings"
	"testing"
)

// A guest that rings the console doorbell (doorbell=1: the guest kernel
// rings none by default, see consolePoll): a short run keeps it on MMIO
// exits (no ioeventfd, so no SRCU grace period for the VM fd's close to
// wait for); after doorbellExitsBeforeEventfd exits the doorbell becomes
// an ioeventfd, and the console carries the same bytes either way.
func TestConsoleDoorbellBecomesEventfdAfterExits(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload, cfg.Cmdline = "hello", "doorbell=1"
	res, exitsOnly := boot(t, cfg)
	if res.Outcome != OutcomeExit || res.ExitStatus != 0 {
		t.Fatalf("outcome %s status %d (%s)", res.Outcome, res.ExitStatus, res.Reason)
	}
	c := res.Console
	if c.DoorbellEventfd || c.DoorbellExits < 3 || c.DoorbellExits >= doorbellExitsBeforeEventfd {
		t.Fatalf("hello boot: console %+v, want at least 3 doorbell exits and no ioeventfd", c)
	}
	// Lines printed back to back ring once (the guest's console bursts).
	if lines := uint64(strings.Count(exitsOnly, "\n")); c.DoorbellExits > lines/2 {
		t.Errorf("hello boot: %d doorbell exits for %d lines, want at most half as many", c.DoorbellExits, lines)
	}

	defer func(n uint64) { doorbellExitsBeforeEventfd = n }(doorbellExitsBeforeEventfd)
	doorbellExitsBeforeEventfd = 2
	res, switched := boot(t, cfg)
	if res.Outcome != OutcomeExit || res.ExitStatus != 0 {
		t.Fatalf("outcome %s status %d (%s)", res.Outcome, res.ExitStatus, res.Reason)
	}
	if c := res.Console; !c.DoorbellEventfd || c.DoorbellExits != 2 || c.Written != uint64(len(switched)) || c.Lost != 0 {
		t.Errorf("after 2 exits: console %+v with %d bytes printed, want 2 exits, then the ioeventfd, nothing lost", c, len(switched))
	}
	if switched != exitsOnly {
		t.Errorf("console differs once the doorbell is an ioeventfd:\n%s\nwant:\n%s", switched, exitsOnly)
	}
}

// TestConsoleWithoutDoorbell: by default the guest rings no doorbell and
// the VMM's polling and its drains at hypercalls carry every byte, the
// same console as a guest that rings.
func TestConsoleWithoutDoorbell(t *testing.T) {
	cfg := bootConfig(t)
	cfg.Workload, cfg.Cmdline = "hello", "doorbell=1"
	_, rung := boot(t, cfg)
	cfg.Cmdline = ""
	res, polled := boot(t, cfg)
	if c := res.Console; c.DoorbellExits != 0 || c.Lost != 0 || c.Written != uint64(len(polled)) {
		t.Errorf("console %+v with %d bytes printed, want no doorbell exits, nothing lost", c, len(polled))
	}
	if strings.ReplaceAll(rung, "doorbell=1", "") != polled {
		t.Errorf("console without the doorbell:\n%s\nwant:\n%s", polled, rung)
	}
}
