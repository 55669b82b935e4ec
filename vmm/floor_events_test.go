package vmm

import "testing"

// Each event floor must have caused exactly the events it times: n
// exceptions counted by the ring-0 stub, n MMIO exits seen by the VMM, n
// fresh pages written.
func TestEventFloorsCountTheirEvents(t *testing.T) {
	requireKVM(t)
	const n = 64
	tm, err := EventFloors(n)
	if err != nil {
		t.Fatal(err)
	}
	if tm.Exceptions != n || tm.MMIOExits != n || tm.Touches != n {
		t.Fatalf("%d exceptions, %d MMIO exits, %d pages touched; want %d of each", tm.Exceptions, tm.MMIOExits, tm.Touches, n)
	}
	if tm.ExceptionNanos <= 0 || tm.MMIOExitNanos <= 0 || tm.FirstTouchNanos <= 0 {
		t.Fatalf("timings not filled: %+v", tm)
	}
	t.Logf("%+v", tm)
	for _, bad := range []int{0, 1, evMaxTouches + 1} {
		if _, err := EventFloors(bad); err == nil {
			t.Errorf("EventFloors(%d) accepted", bad)
		}
	}
}
