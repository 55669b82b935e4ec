#!/bin/sh
# Builds the Go standard library's own tests with `go test -c` and runs each
# binary under `bin/vmm run --dir ... -test.short`, printing one line a package:
# PASS, or FAIL with vmm's exit status, how many tests failed and why the
# first did (its panic, or the first message logged under its --- FAIL line).
# usage: scripts/run-stdlib-tests.sh [PKG...]   (needs bin/vmm and /dev/kvm)
set -u
cd "$(dirname "$0")/.."
pkgs=${*:-"sort strconv strings bytes bufio unicode/utf8 container/heap math math/big encoding/json encoding/binary regexp compress/flate hash/crc32 crypto/sha256 text/template
	io io/fs errors slices unicode fmt path path/filepath encoding/base64 encoding/hex encoding/csv archive/zip hash/fnv crypto/sha1 container/list html math/bits"}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
src=$(go env GOROOT)/src
for p in $pkgs; do
	bin="$dir/$(echo "$p" | tr / _).test"
	if ! CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS= go test -c -o "$bin" "$p" >/dev/null 2>"$dir/build.log"; then
		echo "BUILD-FAIL $p: $(tail -1 "$dir/build.log")"
		fail=1
		continue
	fi
	# The package's directory (its testdata) and src/testdata, which some
	# packages reach as ../../testdata, as the program's file system, at
	# their host paths (tests that look under runtime.GOROOT() find them),
	# and the few other source directories a package's tests walk.
	tree="$dir/tree"
	rm -rf "$tree" && mkdir -p "$tree$src/$p"
	cp -r "$src/$p/." "$tree$src/$p/" && cp -r "$src/testdata" "$tree$src/"
	case $p in
	path/filepath) mkdir -p "$tree$src/unicode" && cp -r "$src/unicode/." "$tree$src/unicode/" ;; # TestBug3486
	esac
	out=$(bin/vmm run --timeout 10m --dir "$tree" --cwd "$src/$p" "$bin" -test.short 2>&1)
	st=$?
	if [ $st -eq 0 ]; then
		echo "PASS $p"
	else
		n=$(echo "$out" | grep -c '^--- FAIL')
		why=$(echo "$out" | grep -m1 '^panic:')
		[ -n "$why" ] || why=$(echo "$out" | grep -m1 -A1 '^--- FAIL' | tail -1 | sed 's/^[[:space:]]*//')
		[ -n "$why" ] || why=$(echo "$out" | grep -v '^vmm run:' | tail -1)
		echo "FAIL $p (status $st, $n failed): $why"
		fail=1
	fi
done
exit $fail
