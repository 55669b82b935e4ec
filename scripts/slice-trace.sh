#!/bin/sh
# Makes testdata/linux-pagealloc-gobuild-400k.csv.gz, the page-allocation
# trace the replay tests use, from the full trace (926,066 lines, 4.3 MB
# gzipped: too big to commit). It keeps the header comments and the first
# 400,000 lines: 209,763 allocations and 190,235 frees, every order 0..10
# that the full trace has (the order-10 burst is at line 189,695), and
# gzips without name or time stamp so the output is reproducible.
# usage: scripts/slice-trace.sh FULL.csv.gz [OUT.csv.gz [LINES]]
set -eu
src=${1:?usage: slice-trace.sh FULL.csv.gz [OUT.csv.gz [LINES]]}
cd "$(dirname "$0")/.."
out=${2:-testdata/linux-pagealloc-gobuild-400k.csv.gz}
n=${3:-400000}
gzip -dc "$src" | awk -v n="$n" '
	NR == 1 { print; next }
	NR == 2 { print; print "# slice: the first " n " lines of the trace (scripts/slice-trace.sh)"; next }
	NR <= n { print }' | gzip -9n >"$out.tmp"
mv "$out.tmp" "$out"
