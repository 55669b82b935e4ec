package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/internal/safefile"
)

// maxTrace bounds a trace file and its gunzipped contents: both are held in
// VMM memory and the contents are copied into guest RAM.
const maxTrace = 256 << 20

// readTrace reads a page-allocation trace (a regular file, gzip or not) of
// at most limit bytes uncompressed, and checks every line: a malformed
// line, a frame number beyond 52-bit physical addresses or an order above
// mm.MaxOrder is refused with its line number, before any VM exists.
func readTrace(path string, limit int64) ([]byte, error) {
	limit = min(limit, maxTrace)
	raw, err := safefile.ReadRegular(path, maxTrace)
	if err != nil {
		return nil, err
	}
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		raw, err = io.ReadAll(io.LimitReader(zr, limit+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s: %w: the trace is larger than %d MiB (the limit is %d MiB or the guest RAM, whichever is less)",
			path, safefile.ErrTooLarge, limit>>20, maxTrace>>20)
	}
	if err := checkTrace(raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return raw, nil
}

var errBadTrace = errors.New("not a page-allocation trace (cpu,time_s,op,pfn,order)")

// checkTrace parses every line as the guest's replay will.
func checkTrace(b []byte) error {
	for line := 1; len(b) > 0; line++ {
		op, pfn, order, rest, ok := mm.ParseTraceLine(b)
		text := b[:len(b)-len(rest)]
		b = rest
		switch {
		case !ok:
			return fmt.Errorf("line %d %.60q: %w", line, bytes.TrimRight(text, "\r\n"), errBadTrace)
		case op != '#' && !mm.ValidTraceRecord(pfn, order):
			return fmt.Errorf("line %d %.60q: frame number %d or order %d out of range (at most %d and %d)",
				line, bytes.TrimRight(text, "\r\n"), pfn, order, uint64(mm.MaxTracePFN), mm.MaxOrder)
		}
	}
	return nil
}
