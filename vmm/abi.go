package vmm

import (
	"fmt"
	"unsafe"

	"github.com/vmm-dev/vmm/firmware"
)

// The guest/host ABI types in package firmware are fixed-layout (pinned
// field by field by its tests) and little-endian, as the host is, so their
// Go definition is the decoder: host code reads and writes them whole and
// never spells a field's offset.

// asBytes is the memory of *p as bytes.
func asBytes[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// readGuest copies the T at guest physical gpa into *p.
func readGuest[T any](mem *GuestMemory, gpa uint64, p *T) error {
	return mem.Read(gpa, asBytes(p))
}

// writeGuest copies *p to guest physical gpa.
func writeGuest[T any](mem *GuestMemory, gpa uint64, p *T) error {
	return mem.Write(gpa, asBytes(p))
}

// guestView returns the T at guest physical gpa in place, for structures
// the VMM and the guest share (mailbox, console header). gpa must be aligned
// for T; the host mapping is page aligned, so the view is too.
func guestView[T any](mem *GuestMemory, gpa uint64) (*T, error) {
	var zero T
	if gpa%uint64(unsafe.Alignof(zero)) != 0 {
		return nil, fmt.Errorf("guest physical %#x is not aligned for %T", gpa, zero)
	}
	b, err := mem.Slice(gpa, uint64(unsafe.Sizeof(zero)))
	if err != nil {
		return nil, err
	}
	return (*T)(unsafe.Pointer(&b[0])), nil
}

// mailboxGPA is where vCPU cpu's hypercall Mailbox lives.
func mailboxGPA(cpu int) uint64 {
	return firmware.MailboxBase + uint64(cpu)*firmware.MailboxStride
}
