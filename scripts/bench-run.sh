#!/usr/bin/env bash
# bench-run.sh: Go programs on the host and under `vmm run`, for the
# "vmm run" section of BENCHMARKS.md (issue 12).
#
#   scripts/bench-run.sh [-n REPS] [-c | -C] [-k GUEST.ELF]
#
# -n REPS  runs of each timed program on each side, host and guest
#          interleaved (default 5); medians are reported, with the range
# -c       also measure checkpoint cost against program heap size (slow:
#          a 1 GiB heap is faulted in page by page); -C: only that
# -k FILE  boot this guest kernel instead of the one bin/vmm embeds
#
# Both sides run with GOMAXPROCS=1 (vmm run has one vCPU). The time is the
# program's own (its clock, printed on stderr as "NAME: N ms"), so the
# VM's creation and teardown are not in it; the whole process's wall time
# is given too, and its CPU time (user + system), which other load on the
# machine disturbs less than wall time. Needs bin/vmm (make), go, jq, bc
# and /usr/bin/time; run from the repository.
set -euo pipefail

reps=5 ckpt=0 only=0 kernel=()
while getopts "n:cCk:" o; do
	case $o in
	n) reps=$OPTARG ;;
	c) ckpt=1 ;;
	C) ckpt=1 only=1 ;;
	k) kernel=(--kernel "$OPTARG") ;;
	*) echo "usage: $0 [-n REPS] [-c | -C] [-k GUEST.ELF]" >&2; exit 2 ;;
	esac
done
vmm=${VMM:-bin/vmm}
for t in "$vmm" go jq bc /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "$0: $t not found (make builds bin/vmm)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for p in testdata/bench/binarytrees testdata/bench/allocmix testdata/bench/heaphold testdata/bench/pagetouch testdata/run/getpid testdata/run/clock testdata/run/hello; do
	(cd "$p" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS= go build -o "$work/$(basename "$p")" .)
done

load() { cut -d' ' -f1-3 /proc/loadavg; }
# median and range of the numbers on stdin
stats() { sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%g (%g-%g)", m, v[1], v[NR]}'; }
median() { sort -n | awk '{v[NR]=$1} END {printf "%.0f\n", (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(uname -r)," \
	"kvm module: $(for m in kvm_pvm kvm_intel kvm_amd; do [ -d /sys/module/$m ] && printf '%s ' $m; done)"
echo "go: $(go version | cut -d' ' -f3), vmm: $($vmm version 2>/dev/null | head -1 || true)"
echo "load average at start: $(load)"
echo

# timed NAME ARGS...: REPS interleaved host/guest runs of a program that
# prints "NAME: N ms" on stderr.
timed() {
	local name=$1; shift
	local prog=$work/$name
	: >"$work/h" ; : >"$work/g" ; : >"$work/hw" ; : >"$work/gw" ; : >"$work/hc" ; : >"$work/gc" ; : >"$work/pf" ; : >"$work/ld"
	for _ in $(seq "$reps"); do
		load >>"$work/ld"
		# /usr/bin/time: wall and CPU (user + system) seconds of the process
		GOMAXPROCS=1 /usr/bin/time -f '%e %U %S' -o "$work/t" "$prog" "$@" 2>"$work/err" >/dev/null
		awk '{print $1*1000 >> "'"$work/hw"'"; print ($2+$3)*1000 >> "'"$work/hc"'"}' "$work/t"
		sed -n "s/^$name: \([0-9]*\) ms$/\1/p" "$work/err" >>"$work/h"
		/usr/bin/time -f '%e %U %S' -o "$work/t" "$vmm" run "${kernel[@]}" --env GOMAXPROCS=1 --json-out "$work/run.json" "$prog" "$@" 2>"$work/err" >/dev/null
		awk '{print $1*1000 >> "'"$work/gw"'"; print ($2+$3)*1000 >> "'"$work/gc"'"}' "$work/t"
		sed -n "s/^$name: \([0-9]*\) ms$/\1/p" "$work/err" >>"$work/g"
		jq '.run.page_faults' "$work/run.json" >>"$work/pf"
		[ "$(jq '[.checkpoints[].violations] | add' "$work/run.json")" = 0 ] || { echo "$name: violations" >&2; exit 1; }
	done
	local hm gm hc gc
	hm=$(median <"$work/h") gm=$(median <"$work/g") hc=$(median <"$work/hc") gc=$(median <"$work/gc")
	printf '%s %s: host %s ms, guest %s ms, ratio %.2f; whole process wall: host %s ms, guest %s ms; CPU (user+sys): host %s ms, guest %s ms, ratio %.2f; guest page faults %s; load %s\n' \
		"$name" "$*" "$(stats <"$work/h")" "$(stats <"$work/g")" "$(echo "$gm / $hm" | bc -l)" \
		"$(median <"$work/hw")" "$(median <"$work/gw")" "$hc" "$gc" "$(echo "$gc / $hc" | bc -l)" \
		"$(median <"$work/pf")" "$(head -1 "$work/ld") .. $(tail -1 "$work/ld")"
}

# fixed: the whole-process cost of hello on each side, host and guest
# alternately, in batches of 20 runs (/usr/bin/time counts in 10 ms) so
# that each figure is per run to 0.5 ms: what `vmm run` adds to any program.
fixed() {
	local batch=20 side
	: >"$work/hw" ; : >"$work/gw" ; : >"$work/hc" ; : >"$work/gc" ; : >"$work/ld"
	for _ in $(seq "$reps"); do
		load >>"$work/ld"
		for side in h g; do
			if [ $side = h ]; then
				GOMAXPROCS=1 /usr/bin/time -f '%e %U %S' -o "$work/t" sh -c 'for i in $(seq '$batch'); do "$1" || exit 1; done' sh "$work/hello" >/dev/null
			else
				/usr/bin/time -f '%e %U %S' -o "$work/t" sh -c 'e=$1 v=$2; shift 2; for i in $(seq '$batch'); do "$v" run "$@" 2>"$e" || { cat "$e" >&2; exit 1; }; done' sh "$work/err" "$vmm" "${kernel[@]}" --env GOMAXPROCS=1 "$work/hello" >/dev/null
			fi
			awk -v n=$batch '{print $1*1000/n >> "'"$work/${side}w"'"; print ($2+$3)*1000/n >> "'"$work/${side}c"'"}' "$work/t"
		done
	done
	printf 'fixed cost, hello (per run, batches of %d): wall host %s ms, guest %s ms; CPU host %s ms, guest %s ms; load %s\n' "$batch" \
		"$(stats <"$work/hw")" "$(stats <"$work/gw")" "$(stats <"$work/hc")" "$(stats <"$work/gc")" "$(head -1 "$work/ld") .. $(tail -1 "$work/ld")"
}

if [ "$only" = 0 ]; then
fixed
timed binarytrees 16
timed allocmix 2048 32

# The system call round trip: getpid times 200,000 calls itself; the
# floor is 100,000 bare SYSCALLs whose LSTAR only jumps back, in a probe VM
# (vmm's BenchmarkSyscallRoundTrip).
go test -c -o "$work/vmm.test" ./vmm/
: >"$work/h" ; : >"$work/g" ; : >"$work/f"
for _ in $(seq "$reps"); do
	"$work/getpid" | sed -n 's/.*calls, \([0-9]*\) ns each/\1/p' >>"$work/h"
	"$vmm" run "${kernel[@]}" "$work/getpid" 2>/dev/null | sed -n 's/.*calls, \([0-9]*\) ns each/\1/p' >>"$work/g"
	"$work/vmm.test" -test.run '^$' -test.bench SyscallRoundTrip -test.benchtime 100000x |
		sed -n 's|.* \([0-9.]*\) ns/syscall.*|\1|p' >>"$work/f"
done
echo "getpid round trip: host $(stats <"$work/h") ns, guest $(stats <"$work/g") ns; bare SYSCALL floor $(stats <"$work/f") ns; load $(load)"

# time.Now: clock reads the clock 200,000 times (and makes 1,000 real
# clock_gettime calls); whole-process wall and CPU time.
for side in host guest; do
	: >"$work/a" ; : >"$work/b"
	for _ in $(seq "$reps"); do
		if [ $side = host ]; then
			/usr/bin/time -f '%e %U %S' -o "$work/t" "$work/clock" >/dev/null
		else
			/usr/bin/time -f '%e %U %S' -o "$work/t" "$vmm" run "${kernel[@]}" "$work/clock" >/dev/null 2>&1
		fi
		awk '{print $1*1000 >> "'"$work/a"'"; print ($2+$3)*1000 >> "'"$work/b"'"}' "$work/t"
	done
	echo "clock, 200,000 time.Now ($side): wall $(stats <"$work/a") ms, CPU $(stats <"$work/b") ms; load $(load)"
done

# A page's first write: pagetouch prints three figures in ns a page.
for side in host guest; do
	: >"$work/a" ; : >"$work/b" ; : >"$work/c"
	for _ in $(seq "$reps"); do
		if [ $side = host ]; then
			"$work/pagetouch" 2>"$work/err"
		else
			"$vmm" run "${kernel[@]}" "$work/pagetouch" 2>"$work/err" >/dev/null
		fi
		sed -n 's/^pagetouch: .*first write \([0-9]*\) ns, mapped \([0-9]*\) ns, after MADV_DONTNEED \([0-9]*\) ns.*/\1 \2 \3/p' "$work/err" |
			while read -r a b c; do echo "$a" >>"$work/a"; echo "$b" >>"$work/b"; echo "$c" >>"$work/c"; done
	done
	echo "page first write ($side, 128 MiB): fresh $(stats <"$work/a") ns, mapped $(stats <"$work/b") ns, after MADV_DONTNEED $(stats <"$work/c") ns; load $(load)"
done
fi

if [ "$ckpt" = 1 ]; then
	# Checkpoint cost by program heap size, in one guest size so that the
	# frame-metadata part stays the same: the periodic checkpoints of the
	# last second, taken while the heap is held (median and least; the
	# least is the one other load disturbed least). A 1 MiB heap is the
	# floor: the metadata check and a nearly empty address space.
	echo
	for mib in 1 64 256 1024; do
		"$vmm" run "${kernel[@]}" --mem 2G --verify-every 50ms --json-out "$work/hh.json" "$work/heaphold" "$mib" 2 >/dev/null 2>&1
		jq '[.checkpoints[] | select(.label == "run-periodic") | .ns] | .[-16:][]' "$work/hh.json" >"$work/ck"
		med=$(median <"$work/ck") least=$(sort -n "$work/ck" | head -1)
		[ "$mib" = 1 ] && { fmed=$med fleast=$least; }
		printf 'checkpoint, 2 GiB guest, %4d MiB heap held: median %.1f ms, least %.1f ms of %d; above the 1 MiB floor: %.1f ms (median), %.1f ms (least) per GiB of heap; %s page faults; load %s\n' \
			"$mib" "$(echo "$med / 1000000" | bc -l)" "$(echo "$least / 1000000" | bc -l)" "$(wc -l <"$work/ck")" \
			"$(echo "($med - $fmed) / 1000000 * 1024 / $mib" | bc -l)" "$(echo "($least - $fleast) / 1000000 * 1024 / $mib" | bc -l)" \
			"$(jq .run.page_faults "$work/hh.json")" "$(load)"
	done
fi
