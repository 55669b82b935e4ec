#!/bin/sh
# Boot timing: median over N runs of (a) process start to the guest's first
# instruction (vCPU 0 entering KVM_RUN) and (b) the whole `vmm boot` of the
# default guest, wall clock, as seen by the shell.
# usage: scripts/bench-boot.sh [N] [extra vmm boot flags]
set -eu
n=${1:-31}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
[ -x bin/vmm ] || make vmm >/dev/null
entry=""
wall=""
i=0
while [ $i -lt "$n" ]; do
	t0=$(date +%s%N)
	e=$(bin/vmm boot --json "$@" 2>/dev/null | sed -n 's/.*"start_to_entry_ns": \([0-9]*\).*/\1/p')
	t1=$(date +%s%N)
	entry="$entry $e"
	wall="$wall $((t1 - t0))"
	i=$((i + 1))
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1e6}'; }
echo "runs: $n   flags: $*"
echo "process start -> guest entry: median $(median "$entry") ms"
echo "whole vmm boot (wall):        median $(median "$wall") ms"
