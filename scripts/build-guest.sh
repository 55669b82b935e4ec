#!/bin/sh
# Builds the guest kernel ELF: a normal linux/amd64 Go build whose entry point
# is the assembly stub main.entry, so the Go runtime's startup never runs.
# GOAMD64=v1: the guest CPU may lack SSE3 and later (KVM's CPUID here has
# no SSE3). -trimpath: reports name module paths, not the build machine's.
# usage: scripts/build-guest.sh OUT.elf
set -eu
out=${1:?usage: build-guest.sh OUT.elf}
cd "$(dirname "$0")/.."
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOAMD64=v1 \
	go build -trimpath -ldflags='-E main.entry' -o "$out" ./guest
