package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmm-dev/vmm/vmm/memmap"
)

// minMem is the smallest --mem the CLI accepts: the embedded guest's
// image, per-CPU areas, boot tables and frame metadata do not fit in less
// (memmap's own floor, 4 MiB, leaves no room for the kernel).
const minMem = 8 << 20

// memSyntax is the one-line summary used in flag help and errors.
const memSyntax = "a number with a unit (512M, 4G, 65536K, 0x200M; KiB, GB and the like too; " +
	"134217728B for bytes, in decimal) or a bare number of MiB (128 = 128 MiB, as QEMU's -m); " +
	"a multiple of 2 MiB from 8 MiB to 64 GiB"

// parseMem parses a --mem value (see memSyntax) and checks its range. The
// number may be decimal or 0x hex; without a unit it counts MiB.
func parseMem(s string) (uint64, error) {
	n, unit, err := splitSize(s)
	if err != nil {
		return 0, err
	}
	if n > (^uint64(0))>>unit.shift {
		return 0, fmt.Errorf("%q is too large (at most 64G)", s)
	}
	b := n << unit.shift
	what := fmt.Sprintf("%q", s)
	if unit.implied {
		what = fmt.Sprintf("%q (a bare number: %d MiB)", s, n)
	}
	switch {
	case b < minMem:
		return 0, fmt.Errorf("%s is below the minimum of 8 MiB (8M)", what)
	case b > memmap.MaxRAM:
		return 0, fmt.Errorf("%s is above the maximum of 64 GiB (64G)", what)
	case b%memmap.RAMAlign != 0:
		return 0, fmt.Errorf("%s is not a multiple of 2 MiB", what)
	}
	return b, nil
}

type sizeUnit struct {
	shift   uint
	implied bool // no unit written: MiB
}

var sizeUnits = map[string]uint{
	"B": 0, "K": 10, "KB": 10, "KIB": 10, "M": 20, "MB": 20, "MIB": 20,
	"G": 30, "GB": 30, "GIB": 30, "T": 40, "TB": 40, "TIB": 40,
}

// splitSize splits "0x200M" into 0x200 and the M unit. Units are powers of
// two whatever their spelling (KB is KiB), as memory sizes usually are.
func splitSize(s string) (uint64, sizeUnit, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	num, base := t, 10
	if strings.HasPrefix(t, "0X") {
		num, base = t[2:], 16
	}
	// The number ends at the first character that is not a digit of its
	// base (B is a hex digit, so "0x20B" is 0x20B MiB: write bytes in decimal).
	i := 0
	for i < len(num) && digitOf(num[i], base) {
		i++
	}
	digits, suffix := num[:i], strings.TrimSpace(num[i:])
	if digits == "" {
		return 0, sizeUnit{}, fmt.Errorf("%q is not a size: want %s", s, memSyntax)
	}
	unit := sizeUnit{shift: 20, implied: true}
	if suffix != "" {
		sh, ok := sizeUnits[suffix]
		if !ok {
			return 0, unit, fmt.Errorf("%q: unknown unit %q (want %s)", s, suffix, memSyntax)
		}
		unit = sizeUnit{shift: sh}
	}
	n, err := strconv.ParseUint(digits, base, 64)
	if err != nil || n == 0 {
		return 0, unit, fmt.Errorf("%q is not a size: want %s", s, memSyntax)
	}
	return n, unit, nil
}

func digitOf(c byte, base int) bool {
	return c >= '0' && c <= '9' || base == 16 && c >= 'A' && c <= 'F'
}

// parseFrames parses a comma-separated list of frame numbers (decimal or 0x hex).
func parseFrames(s string) ([]uint64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a frame number", f)
		}
		out = append(out, v)
	}
	return out, nil
}
