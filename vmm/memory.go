package vmm

import (
	"encoding/binary"
	"fmt"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/vmm/memmap"
	"golang.org/x/sys/unix"
)

// GuestMemory is guest RAM: one anonymous host mapping carved into the
// memory map's slots. Every guest physical address is checked against the
// slots before use; a bad address is an error, never a wild access.
type GuestMemory struct {
	Map  memmap.Map
	host []byte
}

// NewGuestMemory maps ramBytes of host memory with MAP_NORESERVE, so a large
// guest costs only the pages it touches.
func NewGuestMemory(m memmap.Map) (*GuestMemory, error) {
	size := m.TotalRAM()
	host, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes of guest RAM: %w", size, err)
	}
	return &GuestMemory{Map: m, host: host}, nil
}

// Close unmaps guest RAM.
func (g *GuestMemory) Close() error {
	if g.host == nil {
		return nil
	}
	err := unix.Munmap(g.host)
	g.host = nil
	return err
}

// Host returns the whole host mapping (slot host offsets index into it).
func (g *GuestMemory) Host() []byte { return g.host }

// Slice returns the host bytes behind guest physical [gpa, gpa+n).
func (g *GuestMemory) Slice(gpa, n uint64) ([]byte, error) {
	off, ok := g.Map.Translate(gpa, n)
	if !ok {
		return nil, fmt.Errorf("guest physical range [%#x, +%#x) is not in guest RAM", gpa, n)
	}
	return g.host[off : off+n : off+n], nil
}

// Read copies guest physical memory at gpa into buf.
func (g *GuestMemory) Read(gpa uint64, buf []byte) error {
	s, err := g.Slice(gpa, uint64(len(buf)))
	if err != nil {
		return err
	}
	copy(buf, s)
	return nil
}

// Write copies buf into guest physical memory at gpa.
func (g *GuestMemory) Write(gpa uint64, buf []byte) error {
	s, err := g.Slice(gpa, uint64(len(buf)))
	if err != nil {
		return err
	}
	copy(s, buf)
	return nil
}

// ReadU64 reads a little-endian uint64 at gpa.
func (g *GuestMemory) ReadU64(gpa uint64) (uint64, error) {
	s, err := g.Slice(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(s), nil
}

// WriteU64 writes a little-endian uint64 at gpa.
func (g *GuestMemory) WriteU64(gpa, v uint64) error {
	s, err := g.Slice(gpa, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(s, v)
	return nil
}

// ReadAt lets diagnostics read kernel memory by virtual address (the
// guest kernel sees physical memory through the physmap); it reports false
// instead of failing, also for an address outside the physmap.
func (g *GuestMemory) ReadAt(gva uint64, buf []byte) bool {
	gpa, ok := firmware.VirtToPhys(gva)
	return ok && g.Read(gpa, buf) == nil
}
