package vmm

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/memmap"
)

// FuzzHypercall: whatever a guest puts in its mailbox, the VMM answers
// without panicking, and it only ever returns a result or an error code.
func FuzzHypercall(f *testing.F) {
	m, err := memmap.Build(8 << 20)
	if err != nil {
		f.Fatal(err)
	}
	mem, err := NewGuestMemory(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { mem.Close() })
	for nr := uint64(0); nr <= firmware.HCCount; nr++ {
		f.Add(nr, uint64(0x200000), uint64(8), uint64(1), uint64(0x2000))
	}
	f.Add(uint64(firmware.HCRegisterMeta), ^uint64(0)-63, uint64(1<<40), uint64(2), ^uint64(0))
	f.Fuzz(func(t *testing.T, nr, a0, a1, a2, a3 uint64) {
		st := &hcState{cpus: 2}
		r := handleHypercall(mem, st, 0, &firmware.Mailbox{Nr: nr, Args: [5]uint64{a0, a1, a2, a3}})
		switch e := r.effect.(type) {
		case effExit:
			if e.status < 0 || e.status > GuestStatusMax {
				t.Fatalf("exit status %d out of range", e.status)
			}
		case effWake:
			if e.cpu < 0 || e.cpu >= st.cpus {
				t.Fatalf("wake of vCPU %d accepted with %d vCPUs", e.cpu, st.cpus)
			}
		case effSetCR3:
			if e.root%firmware.PageSize != 0 {
				t.Fatalf("misaligned CR3 %#x accepted", e.root)
			}
		case effSleep:
			if e.d <= 0 || e.d > time.Second {
				t.Fatalf("sleep of %v accepted", e.d)
			}
		}
	})
}

// FuzzParseKernel: a hostile ELF is refused or accepted, never a panic, and
// an accepted one fits in RAM above the firmware area.
func FuzzParseKernel(f *testing.F) {
	f.Add([]byte("\x7fELF"))
	hdr := make([]byte, 64+56)
	copy(hdr, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(hdr[16:], 2)  // ET_EXEC
	binary.LittleEndian.PutUint16(hdr[18:], 62) // EM_X86_64
	binary.LittleEndian.PutUint32(hdr[20:], 1)  // version
	binary.LittleEndian.PutUint64(hdr[24:], 0x400000)
	binary.LittleEndian.PutUint64(hdr[32:], 64) // phoff
	binary.LittleEndian.PutUint16(hdr[52:], 64) // ehsize
	binary.LittleEndian.PutUint16(hdr[54:], 56) // phentsize
	binary.LittleEndian.PutUint16(hdr[56:], 1)  // phnum
	binary.LittleEndian.PutUint32(hdr[64:], 1)  // PT_LOAD
	binary.LittleEndian.PutUint64(hdr[64+16:], 0x400000)
	binary.LittleEndian.PutUint64(hdr[64+40:], 0x1000)
	f.Add(hdr)
	const ramTop = 64 << 20
	f.Fuzz(func(t *testing.T, image []byte) {
		k, err := ParseKernel(image, ramTop)
		if err != nil {
			return
		}
		if k.Start < firmware.KernelMinAddr || k.End > ramTop+firmware.PageSize || !k.contains(k.Entry) {
			t.Fatalf("accepted kernel [%#x, %#x) entry %#x", k.Start, k.End, k.Entry)
		}
	})
}
