package verify

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
	"golang.org/x/sys/unix"
)

// bigGuest is a guest/mm allocator over a MAP_NORESERVE arena of size
// bytes (only the metadata and state get touched), with two CPUs' caches
// in use and a few thousand blocks of several orders allocated.
func bigGuest(b *testing.B, size uint64) (flatMemory, *mm.Buddy, Input) {
	b.Helper()
	raw, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		b.Skipf("mmap %d bytes: %v", size, err)
	}
	b.Cleanup(func() { unix.Munmap(raw) })
	mem := flatMemory(raw)
	var buddy mm.Buddy
	var boot mm.BootAllocator
	if err := buddy.Setup(uintptrOf(mem), &boot, []mm.Range{{Base: 0x10000, Size: size - 0x10000}}, nil, nil); err != mm.ErrNone {
		b.Fatal(err)
	}
	if err := buddy.SetCPUs(2); err != mm.ErrNone {
		b.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	tok := buddy.Lock()
	for range 4000 {
		if _, err := buddy.AllocFlags(uint8(r.Intn(6)), &tok, mm.FlagKernel); err != mm.ErrNone {
			b.Fatal(err)
		}
	}
	buddy.Unlock(&tok)
	for cpu := range 2 {
		for range 20 {
			buddy.AllocLocal(cpu, mm.FlagKernel)
		}
	}
	meta, n, st := buddy.Registration()
	return mem, &buddy, Input{Registration: Registration{MetaPhys: meta, FrameCount: n, Version: uint64(mm.LayoutVersion), StatePhys: st}}
}

// metaDiff is the simulated dirty log over the metadata and state (the
// only memory these checks read): pages that differ from snap.
func metaDiff(mem, snap []byte) pageDiff {
	var d pageDiff
	for p := 0; p+mm.PageSize <= len(snap); p += mm.PageSize {
		if !bytes.Equal(mem[p:p+mm.PageSize], snap[p:p+mm.PageSize]) {
			d.set(uint64(p))
			copy(snap[p:p+mm.PageSize], mem[p:p+mm.PageSize])
		}
	}
	return d
}

// BenchmarkCheckpoint16GiB: a checkpoint of a 16 GiB guest after a small
// change (one order-0 and one order-3 block allocated and freed, one
// cached frame taken), full and incremental. The dirty log is simulated
// outside the timer (a real one is KVM_GET_DIRTY_LOG, timed by vmm's own
// checkpoints).
func BenchmarkCheckpoint16GiB(b *testing.B) {
	mem, buddy, in := bigGuest(b, 16<<30)
	span := mem[:max(in.MetaPhys+in.FrameCount*mm.FrameMetaSize, in.StatePhys+mm.StateSize)]
	small := func() {
		tok := buddy.Lock()
		f0, _ := buddy.Alloc(0, &tok)
		f3, _ := buddy.Alloc(3, &tok)
		buddy.Free(f0, 0, &tok)
		buddy.Free(f3, 3, &tok)
		buddy.Unlock(&tok)
		if f, err := buddy.AllocLocal(0, mm.FlagKernel); err == mm.ErrNone {
			buddy.FreeLocal(1, f)
		}
	}
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			small()
			b.StartTimer()
			if r, err := Verify(mem, in); err != nil || r.TotalViolations != 0 {
				b.Fatal(err, r.Violations)
			}
		}
	})
	b.Run("incremental", func(b *testing.B) {
		var x Incremental
		if _, out, err := x.Check(mem, in, nil); err != nil || out.Kind != KindFull {
			b.Fatal(err, out)
		}
		snap := append([]byte(nil), span...)
		var rechecked uint64
		for b.Loop() {
			b.StopTimer()
			small()
			d := metaDiff(span, snap)
			b.StartTimer()
			r, out, err := x.Check(mem, in, d)
			if err != nil || r.TotalViolations != 0 || out.Kind != KindIncremental {
				b.Fatal(err, out)
			}
			rechecked += out.Rechecked
		}
		b.ReportMetric(float64(rechecked)/float64(b.N), "frames/op")
	})
	b.Run("rebase", func(b *testing.B) {
		var x Incremental
		for b.Loop() {
			if _, out, err := x.Full(mem, in); err != nil || out.Kind != KindFull {
				b.Fatal(err, out)
			}
		}
	})
}
