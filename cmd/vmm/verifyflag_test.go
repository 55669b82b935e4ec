package main

import (
	"io"
	"testing"
)

// --verify takes auto, full or incremental only, in boot and run alike; an empty
// value must not slip through as the library's default.
func TestVerifyFlagRefusesOtherValues(t *testing.T) {
	for _, v := range []string{"", "bogus", "Full"} {
		if _, _, err := parseBootFlags([]string{"--verify", v}, io.Discard); err == nil {
			t.Errorf("vmm boot --verify %q accepted", v)
		}
		if _, err := parseRunFlags([]string{"--verify", v, "prog"}, io.Discard); err == nil {
			t.Errorf("vmm run --verify %q accepted", v)
		}
	}
	for _, v := range []string{"auto", "full", "incremental"} {
		f, _, err := parseBootFlags([]string{"--verify", v}, io.Discard)
		if err != nil || string(f.verify) != v {
			t.Errorf("vmm boot --verify %q: %v", v, err)
		}
		r, err := parseRunFlags([]string{"--verify", v, "prog"}, io.Discard)
		if err != nil || string(r.verifyMode) != v {
			t.Errorf("vmm run --verify %q: %v", v, err)
		}
	}
	if f, _, _ := parseBootFlags(nil, io.Discard); f.verify != "auto" {
		t.Errorf("vmm boot's default --verify is %q, want auto", f.verify)
	}
	if r, _ := parseRunFlags([]string{"prog"}, io.Discard); r.verifyMode != "auto" {
		t.Errorf("vmm run's default --verify is %q, want auto", r.verifyMode)
	}
}
