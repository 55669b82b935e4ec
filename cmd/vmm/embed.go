package main

import _ "embed"

// guestELF is the default guest. It is committed (built reproducibly by
// scripts/build-guest.sh) so that `go install .../cmd/vmm@version` gives a
// vmm that boots without make. `make guest` rebuilds it from ./guest;
// `make guest-check` (TestEmbeddedGuestMatchesSource) fails when it is stale.
//
//go:embed kernel/guest.elf
var guestELF []byte

func embeddedKernel() ([]byte, bool) {
	return guestELF, len(guestELF) > 0
}
