package vmm

import (
	"fmt"

	"github.com/vmm-dev/vmm/firmware"
)

// Posted reports (firmware.ReportRing): the guest's HCReport calls without
// their exits. Nothing here trusts the ring: the host keeps its own count
// of the entries it took, reads at most a ring's worth per drain, and
// checks every key against guest RAM as HCReport does.

// reportRing is the ring the guest registered, and what the host took.
type reportRing struct {
	phys    uint64 // 0: none registered
	taken   uint64 // entries taken since boot (the host's Tail)
	refused uint64 // entries with a key outside RAM or too long, and ring resyncs
}

func registerReports(mem *GuestMemory, st *hcState, phys, size uint64) uint64 {
	if phys == 0 || phys%8 != 0 || size != firmware.ReportRingSize {
		return firmware.HCErrInvalid
	}
	if _, err := mem.Slice(phys, size); err != nil {
		return firmware.HCErrInvalid
	}
	if st.ring.phys != 0 {
		return firmware.HCErrState
	}
	st.ring = reportRing{phys: phys}
	return 0
}

// drainReports takes the entries the guest posted since the last drain,
// in order, as HCReport calls, and tells the guest how far it got (Tail).
// It returns a note for the log when the ring was not as it should be.
// The caller holds the VM's lock.
func drainReports(mem *GuestMemory, st *hcState) string {
	r := &st.ring
	if r.phys == 0 {
		return ""
	}
	head, err := mem.ReadU64(r.phys)
	if err != nil {
		return ""
	}
	note := ""
	if n := head - r.taken; n > firmware.ReportRingEntries {
		// More than the ring holds, or Head went back: nothing in it can
		// be told from garbage. Start again from where the guest is.
		note = fmt.Sprintf("report ring: head %d is not within %d entries of the %d taken; skipped", head, firmware.ReportRingEntries, r.taken)
		r.refused++
		r.taken = head
	}
	for ; r.taken != head; r.taken++ {
		var e firmware.ReportEntry
		at := r.phys + 64 + r.taken%firmware.ReportRingEntries*24
		if readGuest(mem, at, &e) != nil {
			r.refused++
			continue
		}
		if key, ok := guestString(mem, e.Key, e.KeyLen, maxKeyLen); ok && key != "" {
			st.report(key, e.Value)
		} else {
			r.refused++
		}
	}
	mem.WriteU64(r.phys+8, r.taken)
	return note
}
