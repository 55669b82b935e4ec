package gdbstub

// Packet framing of the GDB remote serial protocol: $data#cs, where cs is
// the sum of data's bytes mod 256 in two hex digits; '+'/'-' acknowledge;
// a bare 0x03 byte is an interrupt request (Ctrl-C).

import (
	"fmt"
	"strings"
)

// MaxPacket is the largest packet body the stub accepts (and advertises as
// PacketSize). A client that sends more is cut off.
const MaxPacket = 0x4000

// eventKind is what the framer found in the byte stream.
type eventKind int

const (
	evNone      eventKind = iota
	evPacket              // a packet with a good checksum
	evBadSum              // a packet whose checksum did not match
	evInterrupt           // Ctrl-C
	evAck                 // '+'
	evNack                // '-'
	evOverflow            // a packet longer than MaxPacket
)

// framer turns a byte stream into events; it keeps no more than
// MaxPacket bytes whatever it is fed.
type framer struct {
	state int // 0 between packets, 1 in data, 2/3 checksum digits
	data  []byte
	sum   byte
	csum  byte
}

// feed consumes one byte and reports a complete event, if any; pkt aliases
// the framer's buffer until the next call.
func (f *framer) feed(b byte) (ev eventKind, pkt []byte) {
	switch f.state {
	case 0:
		switch b {
		case '$':
			f.state, f.data, f.sum = 1, f.data[:0], 0
		case 0x03:
			return evInterrupt, nil
		case '+':
			return evAck, nil
		case '-':
			return evNack, nil
		}
		// Anything else between packets is line noise: ignored.
	case 1:
		if b == '#' {
			f.state = 2
			return evNone, nil
		}
		if len(f.data) >= MaxPacket {
			f.state = 0
			return evOverflow, nil
		}
		f.data = append(f.data, b)
		f.sum += b
	case 2, 3:
		d, ok := unhex(b)
		if !ok {
			f.state = 0
			return evBadSum, nil
		}
		f.csum = f.csum<<4 | d
		if f.state == 2 {
			f.state = 3
			return evNone, nil
		}
		f.state = 0
		if f.csum != f.sum {
			return evBadSum, nil
		}
		return evPacket, f.data
	}
	return evNone, nil
}

func unhex(b byte) (byte, bool) {
	switch {
	case b >= '0' && b <= '9':
		return b - '0', true
	case b >= 'a' && b <= 'f':
		return b - 'a' + 10, true
	case b >= 'A' && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}

// frame wraps data as a packet, escaping the bytes the protocol reserves.
func frame(data string) []byte {
	out := make([]byte, 0, len(data)+4)
	out = append(out, '$')
	var sum byte
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '$' || c == '#' || c == '}' || c == '*' {
			out = append(out, '}')
			sum += '}'
			c ^= 0x20
		}
		out = append(out, c)
		sum += c
	}
	return fmt.Appendf(out, "#%02x", sum)
}

// unescape undoes the binary escaping of X packets ('}' then byte^0x20).
func unescape(b []byte) ([]byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '}' {
			i++
			if i == len(b) {
				return nil, fmt.Errorf("escape at end of packet")
			}
			out = append(out, b[i]^0x20)
			continue
		}
		out = append(out, b[i])
	}
	return out, nil
}

// hexBytes decodes an even-length hex string.
func hexBytes(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("odd hex length %d", len(s))
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("bad hex digit at %d", 2*i)
		}
		out[i] = hi<<4 | lo
	}
	return out, nil
}

// parseHex parses a hex number of at most 16 digits.
func parseHex(s string) (uint64, error) {
	if s == "" || len(s) > 16 {
		return 0, fmt.Errorf("bad hex number %q", s)
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d, ok := unhex(s[i])
		if !ok {
			return 0, fmt.Errorf("bad hex number %q", s)
		}
		v = v<<4 | uint64(d)
	}
	return v, nil
}

// parseAddrLen parses "addr,len" (as in m, M, X, Z packets).
func parseAddrLen(s string) (addr, n uint64, err error) {
	a, l, ok := strings.Cut(s, ",")
	if !ok {
		return 0, 0, fmt.Errorf("want addr,length: %q", s)
	}
	if addr, err = parseHex(a); err != nil {
		return 0, 0, err
	}
	if n, err = parseHex(l); err != nil {
		return 0, 0, err
	}
	return addr, n, nil
}

// parseThread parses a thread id as gdb sends it: hex, "-1" (all) or "0"
// (any); multiprocess "pP.T" ids are accepted for the thread part.
func parseThread(s string) (int, error) {
	if _, t, ok := strings.Cut(s, "."); ok && strings.HasPrefix(s, "p") {
		s = t
	}
	if s == "-1" {
		return -1, nil
	}
	v, err := parseHex(s)
	if err != nil || v > 1<<20 {
		return 0, fmt.Errorf("bad thread id %q", s)
	}
	return int(v), nil
}
