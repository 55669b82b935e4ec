package vmm

import (
	"testing"

	"github.com/vmm-dev/vmm/firmware"
)

// TestHostDecodesABIWords writes the guest's words at the offsets the ABI
// states (as numbers, not through the structs) and checks that the VMM's
// struct-based decoding finds each one in its field.
func TestHostDecodesABIWords(t *testing.T) {
	mem := testMemory(t, 4<<20)
	const ffAt = 0x200008 // the guest may pass any address: no alignment needed
	for i := range uint64(25) {
		mem.WriteU64(ffAt+8*i, 0x100+i)
	}
	var ff firmware.FaultFrame
	if err := readGuest(mem, ffAt, &ff); err != nil {
		t.Fatal(err)
	}
	want := firmware.FaultFrame{Vector: 0x100, ErrorCode: 0x101, CR2: 0x102, RIP: 0x103, CS: 0x104,
		RFLAGS: 0x105, RSP: 0x106, SS: 0x107, RBP: 0x108}
	for i := range want.Regs {
		want.Regs[i] = 0x109 + uint64(i)
	}
	if ff != want {
		t.Errorf("FaultFrame decoded as %+v, want %+v", ff, want)
	}
	res := handleHypercall(mem, &hcState{cpus: 1}, 0, &firmware.Mailbox{Nr: firmware.HCFault, Args: [5]uint64{ffAt}})
	if e, ok := res.effect.(effFault); !ok || *e.frame != want {
		t.Errorf("HCFault decoded %+v, want %+v", res.effect, want)
	}

	cpu := 3
	gpa := mailboxGPA(cpu)
	if gpa != firmware.MailboxBase+3*64 {
		t.Fatalf("vCPU 3's mailbox at %#x", gpa)
	}
	for i := range uint64(8) {
		mem.WriteU64(gpa+8*i, 0x200+i)
	}
	mb, err := guestView[firmware.Mailbox](mem, gpa)
	if err != nil {
		t.Fatal(err)
	}
	if mb.Nr != 0x200 || mb.Args != [5]uint64{0x201, 0x202, 0x203, 0x204, 0x205} || mb.Ret != 0x206 || mb.Seq != 0x207 {
		t.Errorf("Mailbox decoded as %+v", *mb)
	}
	mb.Ret = 0xfeed
	if got, _ := mem.ReadU64(gpa + 48); got != 0xfeed {
		t.Errorf("Ret written to word 6 = %#x", got)
	}
	if _, err := guestView[firmware.Mailbox](mem, gpa+4); err == nil {
		t.Error("a misaligned view was accepted")
	}
	if _, err := guestView[firmware.Mailbox](mem, mem.Map.RAMTop()-8); err == nil {
		t.Error("a view past the end of RAM was accepted")
	}

	var bi firmware.BootInfo
	bi.Magic, bi.NumCPUs, bi.BadFrames[255] = firmware.BootInfoMagic, 7, 0xbad
	if err := writeGuest(mem, firmware.BootInfoBase, &bi); err != nil {
		t.Fatal(err)
	}
	magic, _ := mem.ReadU64(firmware.BootInfoBase)
	cpus, _ := mem.ReadU64(firmware.BootInfoBase + 8)
	bad, _ := mem.ReadU64(firmware.BootInfoBase + 4240 - 8)
	if magic != firmware.BootInfoMagic || cpus>>32 != 7 || bad != 0xbad {
		t.Errorf("BootInfo written as magic %#x, version|cpus %#x, last bad frame %#x", magic, cpus, bad)
	}
}
