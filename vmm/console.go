package vmm

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/vmm-dev/vmm/firmware"
)

// console drains the guest's console ring (firmware.ConsoleHeader at
// ConsoleBase, data at ConsoleBase+ConsoleDataOff) to out.
type console struct {
	mu      sync.Mutex
	header  *firmware.ConsoleHeader
	data    []byte
	out     io.Writer
	lost    uint64 // bytes the guest claimed to write beyond the ring
	corrupt uint64 // times Head was found behind Tail or more than a ring ahead
	written uint64
}

// ConsoleStats is what the console ring carried, and what it could not.
type ConsoleStats struct {
	Written     uint64 `json:"written"`
	Lost        uint64 `json:"lost"`
	Corruptions uint64 `json:"corruptions"`
	// DoorbellExits counts the doorbells that stopped a vCPU (MMIO exits);
	// DoorbellEventfd says whether later ones went through an ioeventfd.
	DoorbellExits   uint64 `json:"doorbell_exits"`
	DoorbellEventfd bool   `json:"doorbell_eventfd"`
}

func (c *console) stats() ConsoleStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ConsoleStats{Written: c.written, Lost: c.lost, Corruptions: c.corrupt}
}

func newConsole(mem *GuestMemory, out io.Writer) (*console, error) {
	h, err := guestView[firmware.ConsoleHeader](mem, firmware.ConsoleBase)
	if err != nil {
		return nil, err
	}
	d, err := mem.Slice(firmware.ConsoleBase+firmware.ConsoleDataOff, firmware.ConsoleDataSize)
	if err != nil {
		return nil, err
	}
	*h = firmware.ConsoleHeader{}
	if out == nil {
		out = io.Discard
	}
	return &console{header: h, data: d, out: out}, nil
}

// drain copies unread bytes out. The guest owns Head and may lie: a Head
// behind Tail or more than a ring ahead is resynchronised, never trusted.
func (c *console) drain() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.header == nil {
		return nil // closed: guest memory is gone
	}
	head := atomic.LoadUint64(&c.header.Head)
	tail := c.header.Tail // the VMM's own field
	if head == tail {
		return nil
	}
	var err error
	if head < tail || head-tail > firmware.ConsoleDataSize {
		c.corrupt++
		if head > tail {
			c.lost += head - tail
		}
		err = fmt.Errorf("console ring corrupt: head %d, tail %d", head, tail)
		tail = head
	}
	for tail != head {
		i := tail & (firmware.ConsoleDataSize - 1)
		n := min(head-tail, firmware.ConsoleDataSize-i)
		if _, werr := c.out.Write(c.data[i : i+n]); werr != nil && err == nil {
			err = werr
		}
		c.written += n
		tail += n
	}
	atomic.StoreUint64(&c.header.Tail, tail)
	return err
}

// close waits for a drain in progress and makes later ones no-ops, so the
// doorbell goroutine never touches guest memory after it is unmapped.
func (c *console) close() {
	c.mu.Lock()
	c.header, c.data = nil, nil
	c.mu.Unlock()
}
