package main

import (
	"strings"
	"testing"
)

func TestParseMem(t *testing.T) {
	const MiB, GiB = 1 << 20, 1 << 30
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"128", 128 * MiB}, // bare numbers are MiB, as QEMU's -m
		{"8", 8 * MiB},
		{"128M", 128 * MiB},
		{"128m", 128 * MiB},
		{"128MiB", 128 * MiB},
		{"128MB", 128 * MiB},
		{"4G", 4 * GiB},
		{"4GiB", 4 * GiB},
		{"64G", 64 * GiB},
		{"65536K", 64 * MiB},
		{"134217728B", 128 * MiB},
		{"0x200M", 512 * MiB},
		{"0x80", 128 * MiB},
		{"0X10G", 16 * GiB},
		{" 256M ", 256 * MiB},
		{"010", 10 * MiB}, // decimal, not octal
	} {
		got, err := parseMem(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseMem(%q) = %#x, %v; want %#x", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, say string }{
		{"", "not a size"},
		{"0", "not a size"},
		{"M", "not a size"},
		{"12X", "unknown unit"},
		{"1.5G", "unknown unit"},
		{"-1G", "not a size"},
		{"6M", "below the minimum of 8 MiB"},
		{"6", "a bare number: 6 MiB"},
		{"128B", "below the minimum"},
		{"9M", "multiple of 2 MiB"},
		{"65G", "above the maximum of 64 GiB"},
		{"0x8000000", "a bare number: 134217728 MiB"},
		{"99999999999999999999", "not a size"},
		{"20000000000000T", "too large"},
		{"0x", "not a size"},
		{"0xG", "not a size"},
	} {
		got, err := parseMem(c.in)
		if err == nil || !strings.Contains(err.Error(), c.say) {
			t.Errorf("parseMem(%q) = %#x, %v; want an error saying %q", c.in, got, err, c.say)
		}
	}
}
