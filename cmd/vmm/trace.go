package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
)

// maxTrace bounds a trace file (uncompressed) copied into guest RAM.
const maxTrace = 256 << 20

// readTrace reads a page-allocation trace, gunzipping it if needed.
func readTrace(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		raw, err = io.ReadAll(io.LimitReader(zr, maxTrace+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if len(raw) > maxTrace {
		return nil, fmt.Errorf("%s: trace larger than %d MiB", path, maxTrace>>20)
	}
	return raw, nil
}
