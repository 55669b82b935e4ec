package vmm

import (
	"testing"
	"time"

	"github.com/vmm-dev/vmm/vmm/verify"
)

// TestWatchPolicy: watching stops after an interval whose faults cost more
// than a full check, for 1, 3, 7... checkpoints while it keeps not paying,
// and a paying interval resets the back-off.
func TestWatchPolicy(t *testing.T) {
	var p watchPolicy
	full := verify.Outcome{Kind: verify.KindFull}
	incr := verify.Outcome{Kind: verify.KindIncremental}
	fullCost := 10 * time.Millisecond
	if !p.pays(full, &verify.Report{Nanos: fullCost.Nanoseconds()}, 1<<20) || p.fullNanos != fullCost.Nanoseconds() || p.skip != 0 {
		t.Fatalf("a full check: %+v", p)
	}
	cheap := int64(fullCost / watchFaultCost)
	if !p.pays(incr, nil, cheap) || p.skip != 0 {
		t.Fatalf("%d writes against a %v full check: %+v", cheap, fullCost, p)
	}
	for _, want := range []int{1, 3, 7, 15} {
		if p.pays(incr, nil, cheap+1) || p.skip != want {
			t.Fatalf("%d writes: %+v, want %d checkpoints skipped", cheap+1, p, want)
		}
	}
	if !p.pays(incr, nil, 1) || p.backoff != 0 {
		t.Fatalf("a paying interval: %+v", p)
	}
}
