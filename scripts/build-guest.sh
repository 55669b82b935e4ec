#!/bin/sh
# Builds the guest kernel ELF: a normal linux/amd64 Go build whose entry point
# is the assembly stub main.entry, so the Go runtime's startup never runs.
# GOAMD64=v1: the guest CPU may lack SSE3 and later (docs/kvm-hosts.md).
# -T links the text at firmware.KernelLinkBase + 0x1000 (the ELF headers take
# the first page): the kernel lives in the physmap, leaving the low addresses
# to user programs (firmware/layout.go).
# The build is reproducible: -trimpath drops the checkout's path,
# -buildvcs=false the commit, and GOFLAGS from the caller is ignored, so the
# same source and Go version give the same bytes as the committed
# cmd/vmm/kernel/guest.elf (checked by `make guest-check`).
# usage: scripts/build-guest.sh OUT.elf
set -eu
out=${1:?usage: build-guest.sh OUT.elf}
cd "$(dirname "$0")/.."
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOAMD64=v1 GOFLAGS= \
	go build -trimpath -buildvcs=false -ldflags='-E main.entry -T 0x7e0000401000' -o "$out" ./guest
