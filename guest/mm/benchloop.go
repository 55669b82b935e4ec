package mm

// The timed loops of `vmm bench`. The guest kernel (workload "bench", timed
// with RDTSC) and the host (`go test -bench GuestLoop`, and `vmm bench`
// itself through testing.Benchmark) run exactly these functions, so the
// guest/host ratio compares the same machine code on the same data layout.
// They are runtime-free like the rest of the package.

// BenchBatchFrames is how many frames one BenchAllocOrder round takes:
// 2^14 frames (64 MiB), i.e. BenchBatchFrames>>order blocks of the order.
const BenchBatchFrames = 1 << 14

// BenchPairChunk is the number of BenchAllocFree pairs per timed
// repetition (about 4 ms).
const BenchPairChunk = 200000

// BenchInitChunkFrames is the record count of one InitMetadata call in
// BenchInitMetadata: one MaxOrder block's worth of records (4 MiB of
// metadata), the largest contiguous block the guest's buddy can give.
const BenchInitChunkFrames = (PageSize << MaxOrder) / FrameMetaSize

// BenchGiBFrames is the record count covering 1 GiB of RAM (262144 records,
// 16 MiB of metadata): BenchGiBFrames/BenchInitChunkFrames chunks.
const BenchGiBFrames = (1 << 30) / PageSize

// BenchInitChunks is the number of chunks BenchInitMetadata needs for 1 GiB.
const BenchInitChunks = BenchGiBFrames / BenchInitChunkFrames

// BenchAllocFree runs n order-0 alloc+free pairs, each under its own
// Lock/Unlock like a real caller, on the fast path: no split, no merge.
// Before the loop it allocates one or two frames and keeps them so that the
// order-0 free list is not empty; its head's buddy is then allocated (a
// free order-0 block never has a free buddy), so every pair takes that
// frame and puts it back without splitting or merging, whatever the free
// lists looked like before. (With an empty order-0 list each pair would
// split a larger block and merge it back: a different, slower path.)
//
//go:nosplit
func BenchAllocFree(b *Buddy, n int) AllocError {
	var keep [2]PhysFrame
	kept := 0
	tok := b.Lock()
	for kept < len(keep) && (kept == 0 || b.state().Heads[0] == LinkNone) {
		f, err := b.Alloc(0, &tok)
		if err != ErrNone {
			b.Unlock(&tok)
			return err
		}
		keep[kept] = f
		kept++
	}
	b.Unlock(&tok)
	var err AllocError
	for i := 0; i < n && err == ErrNone; i++ {
		tok := b.Lock()
		var f PhysFrame
		f, err = b.Alloc(0, &tok)
		if err == ErrNone {
			err = b.Free(f, 0, &tok)
		}
		b.Unlock(&tok)
	}
	tok = b.Lock()
	for i := kept - 1; i >= 0; i-- {
		if ferr := b.Free(keep[i], 0, &tok); err == ErrNone {
			err = ferr
		}
	}
	b.Unlock(&tok)
	return err
}

// BenchAllocOrder allocates up to len(out) blocks of the given order (one
// Lock/Alloc/Unlock each) and stores their PFNs in out. It stops at the
// first error; done is the number of blocks allocated (free them with
// BenchFreeOrder). This is the part that is timed.
//
//go:nosplit
func BenchAllocOrder(b *Buddy, order uint8, out []uint64) (done int, err AllocError) {
	for done < len(out) {
		tok := b.Lock()
		f, err := b.Alloc(order, &tok)
		b.Unlock(&tok)
		if err != ErrNone {
			return done, err
		}
		out[done] = f.PFN()
		done++
	}
	return done, ErrNone
}

// BenchFreeOrder frees the blocks BenchAllocOrder allocated, newest first
// (so the free lists end up as they were).
//
//go:nosplit
func BenchFreeOrder(b *Buddy, order uint8, blocks []uint64) AllocError {
	for i := len(blocks) - 1; i >= 0; i-- {
		tok := b.Lock()
		err := b.Free(FrameFromPFN(blocks[i]), order, &tok)
		b.Unlock(&tok)
		if err != ErrNone {
			return err
		}
	}
	return ErrNone
}

// BenchOrderBatch returns the blocks per BenchAllocOrder round for order:
// BenchBatchFrames worth, at least one.
//
//go:nosplit
func BenchOrderBatch(order uint8) int {
	if order > MaxOrder {
		return 0
	}
	return BenchBatchFrames >> order
}

// BenchInitMetadata initialises framesEach fresh metadata records at each
// physical address in chunks (host pointer = address + virtOffset), i.e.
// what InitMetadata does over len(chunks)*framesEach frames. With
// BenchInitChunks chunks of BenchInitChunkFrames it covers 1 GiB of RAM;
// the guest passes four separate MaxOrder blocks (it has no 16 MiB
// contiguous block), the host four quarters of one 16 MiB buffer: the same
// stores to 16 MiB of distinct memory either way.
//
//go:nosplit
func BenchInitMetadata(virtOffset uintptr, chunks []uint64, framesEach uint64) {
	for i := 0; i < len(chunks); i++ {
		InitMetadata(virtOffset, chunks[i], framesEach)
	}
}
