package vmm

import (
	"fmt"
	"strings"
)

// Exit statuses. The guest's own status (0..GuestStatusMax) passes through
// unchanged; the VMM's verdicts sit above it, where no guest status can be
// taken for one (the way container runners keep 125–127 for themselves).
const (
	GuestStatusMax  = 119 // highest exit status a guest may request
	StatusViolation = 120 // host verification found violations (overrides the guest's status)
	StatusFault     = 121 // the guest crashed, or made an invalid exit request
	StatusTimeout   = 124 // --timeout expired (as timeout(1))
	StatusVMMError  = 125 // the VMM failed: KVM, I/O, a dump that could not be written
	StatusUsage     = 126 // bad flags or arguments: no VM was created
	StatusSIGINT    = 130 // stopped by SIGINT (128+2)
	StatusSIGTERM   = 143 // stopped by SIGTERM (128+15)
)

// StatusMeaning is one row of the exit-status table (for -h and docs).
type StatusMeaning struct {
	Status  string
	Meaning string
}

// StatusTable lists every exit status vmm uses, in order.
func StatusTable() []StatusMeaning {
	return []StatusMeaning{
		{fmt.Sprintf("0..%d", GuestStatusMax), "the guest's own exit status (the guest kernel uses 10..14 for its own failures)"},
		{fmt.Sprint(StatusViolation), "host verification found violations"},
		{fmt.Sprint(StatusFault), "guest fault: exception, triple fault, emulation failure, invalid exit request"},
		{fmt.Sprint(StatusTimeout), "--timeout expired"},
		{fmt.Sprint(StatusVMMError), "VMM error (KVM, I/O, dump not written)"},
		{fmt.Sprint(StatusUsage), "bad flags or arguments (no VM was created)"},
		{fmt.Sprint(StatusSIGINT), "interrupted by SIGINT"},
		{fmt.Sprint(StatusSIGTERM), "terminated by SIGTERM"},
	}
}

// StatusHelp renders StatusTable as indented lines.
func StatusHelp(indent string) string {
	var b strings.Builder
	for _, m := range StatusTable() {
		fmt.Fprintf(&b, "%s%-8s %s\n", indent, m.Status, m.Meaning)
	}
	return b.String()
}

// ExitRequest parses the first exit=N request in a guest command line (the
// one the guest honours). ok is false when there is none; err says why a
// request is malformed or out of range.
func ExitRequest(cmdline string) (status int, ok bool, err error) {
	for _, field := range strings.Fields(cmdline) {
		v, found := strings.CutPrefix(field, "exit=")
		if !found {
			continue
		}
		n := 0
		for _, c := range v {
			if c < '0' || c > '9' || n > GuestStatusMax {
				return 0, true, fmt.Errorf("exit=%s: must be a number in 0..%d", v, GuestStatusMax)
			}
			n = n*10 + int(c-'0')
		}
		if v == "" || n > GuestStatusMax {
			return 0, true, fmt.Errorf("exit=%s: must be a number in 0..%d", v, GuestStatusMax)
		}
		return n, true, nil // the guest honours the first exit= only
	}
	return 0, false, nil
}
