package gdbstub

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// regInfo is one register of the target description: its size in bytes
// and where it lives in Regs (nil: unavailable, sent as "xx..").
type regInfo struct {
	name string
	size int
	get  func(r *Regs) *uint64
}

// regTable lists registers in remote register number order: the order of
// targetXML below (gdb numbers them sequentially as written).
var regTable = func() []regInfo {
	var t []regInfo
	gpr := []string{"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
		"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}
	for i, n := range gpr {
		t = append(t, regInfo{n, 8, func(r *Regs) *uint64 { return &r.GPR[i] }})
	}
	t = append(t, regInfo{"rip", 8, func(r *Regs) *uint64 { return &r.RIP }})
	t = append(t, regInfo{"eflags", 4, func(r *Regs) *uint64 { return &r.RFLAGS }})
	for i, n := range []string{"cs", "ss", "ds", "es", "fs", "gs"} {
		t = append(t, regInfo{n, 4, func(r *Regs) *uint64 { return &r.Seg[i] }})
	}
	for i := range 8 {
		t = append(t, regInfo{"st" + strconv.Itoa(i), 10, nil})
	}
	for _, n := range []string{"fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"} {
		t = append(t, regInfo{n, 4, nil})
	}
	t = append(t, regInfo{"fs_base", 8, func(r *Regs) *uint64 { return &r.FSBase }})
	t = append(t, regInfo{"gs_base", 8, func(r *Regs) *uint64 { return &r.GSBase }})
	return t
}()

// targetXML describes x86-64 with the segment registers and their bases.
const targetXML = `<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
<architecture>i386:x86-64</architecture>
<feature name="org.gnu.gdb.i386.core">
<flags id="i386_eflags" size="4">
<field name="CF" start="0" end="0"/><field name="" start="1" end="1"/>
<field name="PF" start="2" end="2"/><field name="AF" start="4" end="4"/>
<field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
<field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/>
<field name="DF" start="10" end="10"/><field name="OF" start="11" end="11"/>
</flags>
<reg name="rax" bitsize="64" type="int64"/>
<reg name="rbx" bitsize="64" type="int64"/>
<reg name="rcx" bitsize="64" type="int64"/>
<reg name="rdx" bitsize="64" type="int64"/>
<reg name="rsi" bitsize="64" type="int64"/>
<reg name="rdi" bitsize="64" type="int64"/>
<reg name="rbp" bitsize="64" type="data_ptr"/>
<reg name="rsp" bitsize="64" type="data_ptr"/>
<reg name="r8" bitsize="64" type="int64"/>
<reg name="r9" bitsize="64" type="int64"/>
<reg name="r10" bitsize="64" type="int64"/>
<reg name="r11" bitsize="64" type="int64"/>
<reg name="r12" bitsize="64" type="int64"/>
<reg name="r13" bitsize="64" type="int64"/>
<reg name="r14" bitsize="64" type="int64"/>
<reg name="r15" bitsize="64" type="int64"/>
<reg name="rip" bitsize="64" type="code_ptr"/>
<reg name="eflags" bitsize="32" type="i386_eflags"/>
<reg name="cs" bitsize="32" type="int32"/>
<reg name="ss" bitsize="32" type="int32"/>
<reg name="ds" bitsize="32" type="int32"/>
<reg name="es" bitsize="32" type="int32"/>
<reg name="fs" bitsize="32" type="int32"/>
<reg name="gs" bitsize="32" type="int32"/>
<reg name="st0" bitsize="80" type="i387_ext"/>
<reg name="st1" bitsize="80" type="i387_ext"/>
<reg name="st2" bitsize="80" type="i387_ext"/>
<reg name="st3" bitsize="80" type="i387_ext"/>
<reg name="st4" bitsize="80" type="i387_ext"/>
<reg name="st5" bitsize="80" type="i387_ext"/>
<reg name="st6" bitsize="80" type="i387_ext"/>
<reg name="st7" bitsize="80" type="i387_ext"/>
<reg name="fctrl" bitsize="32" type="int" group="float"/>
<reg name="fstat" bitsize="32" type="int" group="float"/>
<reg name="ftag" bitsize="32" type="int" group="float"/>
<reg name="fiseg" bitsize="32" type="int" group="float"/>
<reg name="fioff" bitsize="32" type="int" group="float"/>
<reg name="foseg" bitsize="32" type="int" group="float"/>
<reg name="fooff" bitsize="32" type="int" group="float"/>
<reg name="fop" bitsize="32" type="int" group="float"/>
</feature>
<feature name="org.gnu.gdb.i386.segments">
<reg name="fs_base" bitsize="64" type="int"/>
<reg name="gs_base" bitsize="64" type="int"/>
</feature>
</target>
`

// encodeRegs renders every register as the g packet wants: little-endian
// hex, "xx" per byte of an unavailable register.
func encodeRegs(r *Regs) string {
	var b strings.Builder
	for _, ri := range regTable {
		encodeReg(&b, r, ri)
	}
	return b.String()
}

func encodeReg(b *strings.Builder, r *Regs, ri regInfo) {
	if ri.get == nil {
		b.WriteString(strings.Repeat("xx", ri.size))
		return
	}
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], *ri.get(r))
	fmt.Fprintf(b, "%x", buf[:ri.size])
}

// decodeRegs applies a G packet's hex to r; unavailable registers (and
// "xx" bytes) are skipped.
func decodeRegs(r *Regs, s string) error {
	for _, ri := range regTable {
		if len(s) < 2*ri.size {
			return fmt.Errorf("short G packet: ends before %s", ri.name)
		}
		if err := setReg(r, ri, s[:2*ri.size]); err != nil {
			return err
		}
		s = s[2*ri.size:]
	}
	return nil
}

// setReg sets one register from its little-endian hex.
func setReg(r *Regs, ri regInfo, h string) error {
	if ri.get == nil || strings.HasPrefix(h, "xx") {
		return nil
	}
	if len(h) != 2*ri.size {
		return fmt.Errorf("register %s takes %d bytes", ri.name, ri.size)
	}
	raw, err := hexBytes(h)
	if err != nil {
		return err
	}
	var buf [8]byte
	copy(buf[:], raw)
	*ri.get(r) = binary.LittleEndian.Uint64(buf[:])
	return nil
}
