package mm

// ParseTraceLine parses the first line of b in the page-allocation trace
// format "cpu,time_s,op,pfn,order" (op 'a' = alloc, 'f' = free) and returns
// the rest of b after that line. Comment lines (starting with '#') and
// blank lines return op '#' and ok true; a malformed line returns ok false.
// In every case rest starts after the line's newline, so a caller loops
// "for len(b) > 0 { op, pfn, order, b, ok = ParseTraceLine(b) ... }". It
// does not allocate and never reads outside b.
//
//go:nosplit
func ParseTraceLine(b []byte) (op byte, pfn uint64, order uint8, rest []byte, ok bool) {
	end := 0
	for end < len(b) && b[end] != '\n' {
		end++
	}
	line := b[:end]
	if end < len(b) {
		rest = b[end+1:]
	}
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) == 0 || line[0] == '#' {
		return '#', 0, 0, rest, true
	}
	// Skip cpu and time_s.
	i := 0
	for f := 0; f < 2; f++ {
		for i < len(line) && line[i] != ',' {
			i++
		}
		if i >= len(line) {
			return 0, 0, 0, rest, false
		}
		i++
	}
	if i+1 >= len(line) || (line[i] != 'a' && line[i] != 'f') || line[i+1] != ',' {
		return 0, 0, 0, rest, false
	}
	op = line[i]
	i += 2
	pfn, i, ok = parseUint(line, i)
	if !ok || i >= len(line) || line[i] != ',' {
		return 0, 0, 0, rest, false
	}
	o, j, ok := parseUint(line, i+1)
	if !ok || j != len(line) || o > 255 {
		return 0, 0, 0, rest, false
	}
	return op, pfn, uint8(o), rest, true
}

// parseUint parses decimal digits at b[i:], returning the value and the
// index after them; false if there are none or the value overflows.
//
//go:nosplit
func parseUint(b []byte, i int) (uint64, int, bool) {
	start := i
	v := uint64(0)
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, i, false
		}
		v = v*10 + d
		i++
	}
	return v, i, i > start
}

// MaxTracePFN is the largest frame number a trace may name: x86-64
// physical addresses have at most 52 bits.
const MaxTracePFN = 1<<(52-PageShift) - 1

// ValidTraceRecord reports whether a parsed trace line's frame number and
// order are possible (pfn at most MaxTracePFN, order at most MaxOrder).
// The host refuses a trace with any other line; the replay counts and
// skips them.
//
//go:nosplit
func ValidTraceRecord(pfn uint64, order uint8) bool {
	return pfn <= MaxTracePFN && order <= MaxOrder
}
