package main

import "github.com/vmm-dev/vmm/guest/mm"

// The program's /tmp: a writable in-memory file system mounted over the
// read-only --dir tree at /tmp (the rest of the tree stays read-only).
// Nodes are a fixed table in a buddy block of their own, made when the
// program starts (tmpfsMount) and declared as a holding; a file's data are
// order-0 KERNEL blocks from
// the buddy allocator, found through one open-addressing hash table of
// {node and page index, block} pairs that itself sits in a buddy block.
// That table is declared to the host as a holding (its block, and a table
// of held blocks, stride 2), so at every checkpoint each data page has an
// owner; a file's pages go back to the allocator when it is removed and
// no descriptor has it open, and everything goes back at program exit.
// The size is bounded as Linux's tmpfs default: half the RAM that was free
// when the program started; past that, or when the allocator says no,
// writes fail with ENOSPC. The caller is root, so permission bits are kept
// and reported but never refuse anything.

const (
	tmpBit      = 1 << 32 // a vnode (fileDesc.node) at or above this is tmpfs node vnode-tmpBit
	tmpMaxNodes = 380     // files and directories, the root included (more: ENOSPC, as nr_inodes)
	tmpNodesOrd = 5       // the node table's block: 128 KiB
	tmpDevice   = 0x1e    // st_dev of every tmpfs node
	tmpDirent   = 20      // a tmpfs directory's size grows by this per entry (BOGO_DIRENT_SIZE)
	tmpMaxSize  = 1 << 52 // largest file (page indexes fit the hash key's 40 bits); beyond: EFBIG
	tmpMaxRW    = 0x7ffff000
	tmpKeyShift = 40

	oWronly   = 1
	oAppend   = 0x400
	oLargeF   = 0x8000
	eNXIO     = 6
	eXDEV     = 18
	eFBIG     = 27
	eNOSPC    = 28
	eNOTSUP   = 95
	sIFDir    = 0o040000
	sIFReg    = 0o100000
	seekData  = 3
	seekHole  = 4
	renNorepl = 1
	renExch   = 2
	eLOOP     = 40
	oNofollow = 0x20000
	dtLnk     = 10
	sIFLnk    = 0o120000
)

type tmpNode struct {
	used, dir, linked bool
	link              bool   // a symlink: its target is its data
	parent            uint64 // node index; the root's is itself (its ".." is the tree's /)
	opens             uint64 // descriptors open on it
	mode              uint64 // permission bits (and sticky, for the root)
	size              uint64 // file: bytes; directory: entries
	pages             uint64 // data pages held
	subdirs           uint64
	ino               uint64
	mtime, ctime      uint64 // Unix nanoseconds
	nameLen           uint64
	name              [255]byte
}

var tmpfs struct {
	mounted   bool
	nodes     uint64 // the node table's block (phys)
	nodesHeld int
	nextIno   uint64
	umask     uint64 // xor 022, the umask at start (so the zero value is right)
	limit     uint64 // data pages allowed
	pages     uint64 // data pages held
	peak      uint64
	tab       uint64 // the hash table's block (phys), 0 before the first page
	tabOrder  uint8
	tabBits   uint64 // log2 of its slots
	tabUsed   uint64
	held      int
}

func isTmp(v uint64) bool { return v >= tmpBit }

func tmpOf(v uint64) *tmpNode { return &tmpNodes()[(v-tmpBit)%tmpMaxNodes] }

// vnIsDir says whether the vnode v (a --dir entry or a tmpfs node) is a directory.
func vnIsDir(v uint64) bool {
	if isTmp(v) {
		return tmpOf(v).dir
	}
	return fsIsDir(v)
}

func wallNow() uint64 { return nowNanos() + proc.wallNanos }

// tmpRoot returns the root's vnode.
func tmpRoot() uint64 { return tmpBit }

// tmpfsMount makes the file system as the program starts (its node
// table's block, declared to the host); false if there is no room.
func tmpfsMount() bool {
	tok := kernelMM.Lock()
	f, err := kernelMM.AllocFlags(tmpNodesOrd, &tok, mm.FlagKernel)
	kernelMM.Unlock(&tok)
	if err != mm.ErrNone {
		return false
	}
	held := hold(mm.Holding{Block: mm.HeldBlock(f, tmpNodesOrd)})
	if held < 0 {
		tok := kernelMM.Lock()
		kernelMM.Free(f, tmpNodesOrd, &tok)
		kernelMM.Unlock(&tok)
		return false
	}
	clear(physBytes(f.StartAddress(), mm.PageSize<<tmpNodesOrd))
	now := wallNow()
	tmpfs.mounted, tmpfs.nodes, tmpfs.nodesHeld, tmpfs.nextIno, tmpfs.held = true, f.StartAddress(), held, 2, -1
	tmpfs.limit = proc.framesBefore / 2
	tmpNodes()[0] = tmpNode{used: true, dir: true, linked: true, mode: 0o1777, ino: 1, mtime: now, ctime: now}
	return true
}

// ---- the page table ----

func tmpKey(node, idx uint64) uint64 { return (node+1)<<tmpKeyShift | idx }

func tmpSlots() uint64 { return 1 << tmpfs.tabBits }

func tmpTab() []uint64 { return physWords(tmpfs.tab, int(2*tmpSlots())) }

func tmpHome(key uint64) uint64 { return (key * 0x9e3779b97f4a7c15) >> (64 - tmpfs.tabBits) }

// tmpFind returns the slot holding key, or -1.
func tmpFind(key uint64) int {
	if tmpfs.tab == 0 {
		return -1
	}
	t, mask := tmpTab(), tmpSlots()-1
	for i := tmpHome(key); ; i = (i + 1) & mask {
		switch t[2*i] {
		case key:
			return int(i)
		case 0:
			return -1
		}
	}
}

// tmpPage returns the data page idx of node, or 0 for a hole.
func tmpPage(node, idx uint64) uint64 {
	if s := tmpFind(tmpKey(node, idx)); s >= 0 {
		return tmpTab()[2*s+1] &^ (mm.PageSize - 1)
	}
	return 0
}

// tmpInsert puts {key, blk} in the table, growing it first if it would
// be more than 3/4 full; false if no block can be had for that.
func tmpInsert(key, blk uint64) bool {
	if tmpfs.tab == 0 || 4*(tmpfs.tabUsed+1) > 3*tmpSlots() {
		if !tmpGrow() {
			return false
		}
	}
	t, mask := tmpTab(), tmpSlots()-1
	i := tmpHome(key)
	for t[2*i] != 0 {
		i = (i + 1) & mask
	}
	t[2*i], t[2*i+1] = key, blk
	tmpfs.tabUsed++
	return true
}

// tmpGrow moves the table into a block twice the size (or makes the
// first, one page) and declares it in place of the old one.
func tmpGrow() bool {
	order := uint8(0)
	if tmpfs.tab != 0 {
		order = tmpfs.tabOrder + 1
	}
	if order > mm.MaxOrder || (uint64(mm.PageSize)<<order)/8 > mm.MaxHoldWords {
		return false
	}
	tok := kernelMM.Lock()
	f, err := kernelMM.AllocFlags(order, &tok, mm.FlagKernel)
	kernelMM.Unlock(&tok)
	if err != mm.ErrNone {
		return false
	}
	phys := f.StartAddress()
	bits := uint64(mm.PageShift-4) + uint64(order) // 16-byte slots
	clear(physWords(phys, 2<<bits))
	old, oldOrder, oldSlots := tmpfs.tab, tmpfs.tabOrder, uint64(0)
	if old != 0 {
		oldSlots = tmpSlots()
	}
	tmpfs.tab, tmpfs.tabOrder, tmpfs.tabBits, tmpfs.tabUsed = phys, order, bits, 0
	if old != 0 {
		ot := physWords(old, int(2*oldSlots))
		for i := uint64(0); i < oldSlots; i++ {
			if ot[2*i] != 0 {
				t, mask := tmpTab(), tmpSlots()-1
				j := tmpHome(ot[2*i])
				for t[2*j] != 0 {
					j = (j + 1) & mask
				}
				t[2*j], t[2*j+1] = ot[2*i], ot[2*i+1]
				tmpfs.tabUsed++
			}
		}
	}
	decl := mm.Holding{Block: mm.HeldBlock(f, order), Table: phys, Words: 2 << bits, Stride: 2}
	if tmpfs.held < 0 {
		if tmpfs.held = hold(decl); tmpfs.held < 0 { // no declaration left: pages the host could not see
			tmpfs.tab = 0
			tok := kernelMM.Lock()
			kernelMM.Free(f, order, &tok)
			kernelMM.Unlock(&tok)
			return false
		}
	} else {
		rehold(tmpfs.held, decl)
	}
	if old != 0 {
		tok := kernelMM.Lock()
		kernelMM.Free(mm.ContainingAddress(old), oldOrder, &tok)
		kernelMM.Unlock(&tok)
	}
	return true
}

// tmpRemoveSlot empties slot s, shifting later entries of its probe run
// back so lookups never stop early (deletion without tombstones).
func tmpRemoveSlot(s uint64) {
	t, mask := tmpTab(), tmpSlots()-1
	i := s
	for j := (i + 1) & mask; t[2*j] != 0; j = (j + 1) & mask {
		k := tmpHome(t[2*j])
		// Entry j may fill the hole at i unless its home lies in (i, j].
		if i <= j && i < k && k <= j || i > j && (i < k || k <= j) {
			continue
		}
		t[2*i], t[2*i+1] = t[2*j], t[2*j+1]
		i = j
	}
	t[2*i], t[2*i+1] = 0, 0
	tmpfs.tabUsed--
}

func tmpFreeBlock(blk uint64) {
	tok := kernelMM.Lock()
	kernelMM.Free(mm.ContainingAddress(blk&^(mm.PageSize-1)), 0, &tok)
	kernelMM.Unlock(&tok)
	tmpfs.pages--
}

// tmpGetPage returns page idx of node, allocating a zeroed one for a hole
// (fresh); ENOSPC when the size limit or the allocator says no.
func tmpGetPage(node, idx uint64) (phys uint64, fresh bool, e uint64) {
	if p := tmpPage(node, idx); p != 0 {
		return p, false, 0
	}
	if tmpfs.pages >= tmpfs.limit {
		return 0, false, errno(eNOSPC)
	}
	p, ok := allocZeroed(mm.FlagKernel)
	if !ok {
		return 0, false, errno(eNOSPC)
	}
	if !tmpInsert(tmpKey(node, idx), p) {
		tok := kernelMM.Lock()
		kernelMM.Free(mm.ContainingAddress(p), 0, &tok)
		kernelMM.Unlock(&tok)
		return 0, false, errno(eNOSPC)
	}
	tmpfs.pages++
	tmpfs.peak = max(tmpfs.peak, tmpfs.pages)
	tmpNodes()[node].pages++
	return p, true, 0
}

// tmpDropPages frees node's pages from index from on: by lookups when the
// range is short, else by one pass over the table.
func tmpDropPages(node, from uint64) {
	n := &tmpNodes()[node]
	end := (n.size + mm.PageSize - 1) / mm.PageSize
	if n.pages == 0 || from >= end {
		return
	}
	if end-from <= 2*n.pages+64 {
		for idx := from; idx < end && n.pages > 0; idx++ {
			if s := tmpFind(tmpKey(node, idx)); s >= 0 {
				tmpFreeBlock(tmpTab()[2*s+1])
				tmpRemoveSlot(uint64(s))
				n.pages--
			}
		}
		if n.pages == 0 || from > 0 {
			return
		}
		// Freeing a node: no page of it may outlive it, even one past
		// its size (none should be), so the pass over the table follows.
	}
	// Removing slot i can move a later entry into i, so i advances only
	// past entries that stay.
	for i := uint64(0); i < tmpSlots() && n.pages > 0; {
		k := tmpTab()[2*i]
		if k != 0 && k>>tmpKeyShift == node+1 && k&(1<<tmpKeyShift-1) >= from {
			tmpFreeBlock(tmpTab()[2*i+1])
			tmpRemoveSlot(i)
			n.pages--
			continue
		}
		i++
	}
}

// ---- nodes ----

// tmpLookup finds name in directory dir (node indexes).
func tmpLookup(dir uint64, name []byte) (uint64, uint64) {
	if len(name) > len(tmpNodes()[0].name) {
		return 0, errno(eNAMETOOLONG)
	}
	for i := uint64(1); i < tmpMaxNodes; i++ {
		n := &tmpNodes()[i]
		if n.used && n.linked && n.parent == dir && string(n.name[:n.nameLen]) == string(name) {
			return i, 0
		}
	}
	return 0, errno(eNOENT)
}

// tmpCreate makes name (not present) in directory vnode dir.
func tmpCreate(dir uint64, name []byte, isDir bool, mode uint64) (uint64, uint64) {
	d := tmpOf(dir)
	if !d.linked {
		return 0, errno(eNOENT) // a removed directory takes no new entries
	}
	if len(name) > len(d.name) {
		return 0, errno(eNAMETOOLONG)
	}
	for i := uint64(1); i < tmpMaxNodes; i++ {
		n := &tmpNodes()[i]
		if n.used {
			continue
		}
		now := wallNow()
		perm := mode & 0o7777 // as Linux: a directory keeps only the sticky bit of the special ones
		if isDir {
			perm &= 0o1777
		}
		*n = tmpNode{used: true, dir: isDir, linked: true, parent: dir - tmpBit, mode: perm &^ (tmpfs.umask ^ 0o022),
			ino: tmpfs.nextIno, mtime: now, ctime: now, nameLen: uint64(len(name))}
		copy(n.name[:], name)
		tmpfs.nextIno++
		d.size++
		if isDir {
			d.subdirs++
		}
		d.mtime, d.ctime = now, now
		return tmpBit + i, 0
	}
	return 0, errno(eNOSPC)
}

// tmpUnlink takes node i out of its directory; it is freed once nothing
// has it open.
func tmpUnlink(i uint64) {
	n := &tmpNodes()[i]
	d := &tmpNodes()[n.parent]
	d.size--
	if n.dir {
		d.subdirs--
	}
	now := wallNow()
	d.mtime, d.ctime, n.ctime = now, now, now
	n.linked = false
	tmpMaybeFree(i)
}

func tmpMaybeFree(i uint64) {
	n := &tmpNodes()[i]
	if i == 0 || n.linked || n.opens > 0 {
		return
	}
	tmpDropPages(i, 0)
	*n = tmpNode{}
}

// tmpRelease drops a descriptor's hold on vnode v (closeFD).
func tmpRelease(v uint64) {
	n := tmpOf(v)
	if n.opens > 0 {
		n.opens--
	}
	tmpMaybeFree(v - tmpBit)
}

// tmpfsTeardown gives every page and the table back (program exit, after
// every descriptor is closed).
func tmpfsTeardown() {
	if tmpfs.tab != 0 {
		t := tmpTab()
		for i := uint64(0); i < tmpSlots(); i++ {
			if t[2*i] != 0 {
				tmpFreeBlock(t[2*i+1])
				t[2*i] = 0
			}
		}
		unhold(tmpfs.held)
		tok := kernelMM.Lock()
		kernelMM.Free(mm.ContainingAddress(tmpfs.tab), tmpfs.tabOrder, &tok)
		kernelMM.Unlock(&tok)
	}
	if tmpfs.mounted {
		unhold(tmpfs.nodesHeld)
		tok := kernelMM.Lock()
		kernelMM.Free(mm.ContainingAddress(tmpfs.nodes), tmpNodesOrd, &tok)
		kernelMM.Unlock(&tok)
	}
	report("run.tmpfs_peak_pages", tmpfs.peak)
	tmpfs.mounted, tmpfs.tab, tmpfs.tabUsed, tmpfs.held = false, 0, 0, -1
}

// tmpTruncate sets node i's size (ftruncate, O_TRUNC, truncate).
func tmpTruncate(i, length uint64) uint64 {
	n := &tmpNodes()[i]
	if length > tmpMaxSize {
		return errno(eFBIG)
	}
	if length == n.size {
		return 0
	}
	if length < n.size {
		tmpDropPages(i, (length+mm.PageSize-1)/mm.PageSize)
		if off := length % mm.PageSize; off != 0 {
			if p := tmpPage(i, length/mm.PageSize); p != 0 {
				clear(physBytes(p+off, int(mm.PageSize-off))) // a later extension reads zeros
			}
		}
	}
	n.size = length
	n.mtime = wallNow()
	n.ctime = n.mtime
	return 0
}

// ---- data ----

// tmpRead copies up to count bytes of node i from off to the user.
func tmpRead(i, buf, count, off uint64) uint64 {
	n := &tmpNodes()[i]
	if off >= n.size {
		return 0
	}
	count = min(count, n.size-off, tmpMaxRW)
	done := uint64(0)
	for done < count {
		pos := off + done
		po := pos % mm.PageSize
		chunk := min(count-done, mm.PageSize-po, pageSizeLeft(buf+done))
		if p := tmpPage(i, pos/mm.PageSize); p != 0 {
			if !copyToUser(buf+done, physBytes(p+po, int(chunk))) {
				break
			}
		} else if up := userPhys(buf+done, true); up != 0 { // a hole: zeros (chunk is within one user page)
			clear(physBytes(up, int(chunk)))
		} else {
			break
		}
		done += chunk
	}
	if done == 0 {
		return errno(eFAULT)
	}
	return done
}

// tmpWrite copies count user bytes into node i at off; a short count if
// space or the user buffer runs out part way.
func tmpWrite(i, buf, count, off uint64) uint64 {
	n := &tmpNodes()[i]
	if count == 0 {
		return 0
	}
	if off >= tmpMaxSize {
		return errno(eFBIG)
	}
	count = min(count, tmpMaxSize-off, tmpMaxRW)
	done, e := uint64(0), uint64(0)
	for done < count {
		pos := off + done
		po := pos % mm.PageSize
		chunk := min(count-done, mm.PageSize-po, pageSizeLeft(buf+done))
		p, fresh, err := tmpGetPage(i, pos/mm.PageSize)
		if err != 0 {
			e = err
			break
		}
		if !copyFromUser(physBytes(p+po, int(chunk)), buf+done) {
			// A page made for this chunk holds nothing written; past the
			// end it goes back (pages never lie beyond the size).
			if idx := pos / mm.PageSize; fresh && idx >= (n.size+mm.PageSize-1)/mm.PageSize {
				if s := tmpFind(tmpKey(i, idx)); s >= 0 {
					tmpFreeBlock(tmpTab()[2*s+1])
					tmpRemoveSlot(uint64(s))
					n.pages--
				}
			}
			e = errno(eFAULT)
			break
		}
		done += chunk
	}
	if done == 0 {
		return e
	}
	n.size = max(n.size, off+done)
	n.mtime = wallNow()
	n.ctime = n.mtime
	return done
}

// fileWrite is write(2) on a file descriptor.
func fileWrite(f *fileDesc, buf, count uint64) uint64 {
	if f.flags&oAccMode == 0 || !isTmp(f.node) {
		return errno(eBADF)
	}
	pos := f.pos
	if f.flags&oAppend != 0 {
		pos = tmpOf(f.node).size
	}
	r := tmpWrite(f.node-tmpBit, buf, count, pos)
	if int64(r) > 0 {
		f.pos = pos + r
	}
	return r
}

func sysPwrite(fd, buf, count, off uint64) uint64 {
	if int64(off) < 0 {
		return errno(eINVAL)
	}
	f := fdOf(fd, fdFile)
	if f == nil {
		return fdSeekErr(fd)
	}
	if f.flags&oAccMode == 0 || !isTmp(f.node) {
		return errno(eBADF)
	}
	if f.flags&oAppend != 0 { // as Linux: O_APPEND wins over the offset
		off = tmpOf(f.node).size
	}
	return tmpWrite(f.node-tmpBit, buf, count, off)
}

func sysFtruncate(fd, length uint64) uint64 {
	if int64(length) < 0 {
		return errno(eINVAL)
	}
	f := fdOf(fd, fdFile)
	if f == nil {
		if fd < 3 && !fdClosed[fd] || fd >= 3 && fd < maxFDs && fds[fd].kind != fdNone {
			return errno(eINVAL)
		}
		return errno(eBADF)
	}
	if f.flags&oAccMode == 0 || vnIsDir(f.node) {
		return errno(eINVAL)
	}
	return tmpTruncate(f.node-tmpBit, length)
}

func sysTruncate(path, length uint64) uint64 {
	node, e := fsLookup(atFDCWD, path, false)
	if e != 0 {
		return e
	}
	if vnIsDir(node) {
		return errno(eISDIR)
	}
	if !isTmp(node) {
		return errno(eROFS)
	}
	if int64(length) < 0 {
		return errno(eINVAL)
	}
	return tmpTruncate(node-tmpBit, length)
}

// sysFsync: file data live in RAM, so fsync and fdatasync succeed on a
// file; the other descriptors are pipes and counters (EINVAL, as Linux).
func sysFsync(fd uint64) uint64 {
	if fdOf(fd, fdFile) != nil {
		return 0
	}
	if fd < 3 && !fdClosed[fd] || fd >= 3 && fd < maxFDs && fds[fd].kind != fdNone {
		return errno(eINVAL)
	}
	return errno(eBADF)
}

func sysUmask(mask uint64) uint64 {
	old := tmpfs.umask ^ 0o022
	tmpfs.umask = mask&0o777 ^ 0o022
	return old
}

// tmpSeekData answers SEEK_DATA and SEEK_HOLE on node i (page granularity,
// as tmpfs): ENXIO at or past the end.
func tmpSeekData(i, off, whence uint64) uint64 {
	n := &tmpNodes()[i]
	if int64(off) < 0 || off >= n.size {
		return errno(eNXIO)
	}
	end := (n.size + mm.PageSize - 1) / mm.PageSize
	idx := off / mm.PageSize
	if whence == seekHole {
		for ; idx < end && tmpPage(i, idx) != 0; idx++ {
		}
		return min(max(idx*mm.PageSize, off), n.size)
	}
	// SEEK_DATA: the lowest page at or after idx; by lookups when the range
	// is short, else by one pass over the table.
	best := end
	if end-idx <= 2*n.pages+64 {
		for ; idx < end && tmpPage(i, idx) == 0; idx++ {
		}
		best = idx
	} else if tmpfs.tab != 0 {
		t := tmpTab()
		for s := uint64(0); s < tmpSlots(); s++ {
			if k := t[2*s]; k != 0 && k>>tmpKeyShift == i+1 && k&(1<<tmpKeyShift-1) >= idx {
				best = min(best, k&(1<<tmpKeyShift-1))
			}
		}
	}
	if best >= end {
		return errno(eNXIO)
	}
	return max(best*mm.PageSize, off)
}

// tmpStat fills st (struct stat) for node i.
func tmpStat(i uint64, st *[144]byte) {
	n := &tmpNodes()[i]
	mode, size, nlink := n.mode|sIFReg, n.size, uint64(0)
	if n.link {
		mode = sIFLnk | 0o777
	}
	if n.dir {
		mode, size = n.mode|sIFDir, (2+n.size)*tmpDirent
		if n.linked {
			nlink = 2 + n.subdirs
		}
	} else if n.linked {
		nlink = 1
	}
	putLE(st[0:8], tmpDevice)
	putLE(st[8:16], n.ino)
	putLE(st[16:24], nlink)
	putLE(st[24:28], mode)
	putLE(st[48:56], size)
	putLE(st[56:64], mm.PageSize)
	putLE(st[64:72], n.pages*8)
	for k, o := range [3]int{72, 88, 104} {
		t := n.mtime
		if k == 2 {
			t = n.ctime
		}
		putLE(st[o:o+8], t/1e9)
		putLE(st[o+8:o+16], t%1e9)
	}
}

// tmpGetdents lists directory node i: ".", "..", then its entries in node
// order; f.pos is 0, 1, or 1 + the node index to look at next.
func tmpGetdents(f *fileDesc, buf, count uint64) uint64 {
	i := f.node - tmpBit
	d := &tmpNodes()[i]
	if !d.linked {
		return errno(eNOENT) // as Linux for a removed directory
	}
	var rec [24 + 255 + 8]byte
	done := uint64(0)
	for {
		var name []byte
		ino, typ, next := d.ino, uint64(dtDir), f.pos+1
		switch {
		case f.pos == 0:
			name = dotdot[:1]
		case f.pos == 1:
			name = dotdot[:]
			if i == 0 {
				ino = 1 // the tree's root
			} else {
				ino = tmpNodes()[d.parent].ino
			}
		default:
			c := f.pos - 1
			for ; c < tmpMaxNodes; c++ {
				n := &tmpNodes()[c]
				if n.used && n.linked && n.parent == i {
					break
				}
			}
			if c >= tmpMaxNodes {
				return done
			}
			n := &tmpNodes()[c]
			name, ino, next = n.name[:n.nameLen], n.ino, c+2
			switch {
			case n.link:
				typ = dtLnk
			case !n.dir:
				typ = dtReg
			}
		}
		reclen := direntRec(&rec, ino, next, typ, name)
		if done+reclen > count {
			if done == 0 {
				return errno(eINVAL)
			}
			return done
		}
		if !copyToUser(buf+done, rec[:reclen]) {
			return errno(eFAULT)
		}
		done += reclen
		f.pos = next
	}
}

var dotdot = [2]byte{'.', '.'}

// direntRec lays out one linux_dirent64 in rec and returns its length.
func direntRec(rec *[24 + 255 + 8]byte, ino, next, typ uint64, name []byte) uint64 {
	reclen := (19 + uint64(len(name)) + 1 + 7) &^ 7
	clear(rec[:reclen])
	putLE(rec[0:8], ino)
	putLE(rec[8:16], next)
	putLE(rec[16:18], reclen)
	rec[18] = byte(typ)
	copy(rec[19:], name)
	return reclen
}

// ---- namespace operations ----

// tmpMkdir makes directory name in the tmpfs directory dir.
func tmpMkdir(dir uint64, name []byte, mode uint64) uint64 {
	if _, e := tmpLookup(dir-tmpBit, name); e == 0 {
		return errno(eEXIST)
	} else if e != errno(eNOENT) {
		return e
	}
	_, e := tmpCreate(dir, name, true, mode)
	return e
}

// tmpRemove is unlinkat for a name in the tmpfs directory dir; slash says
// the path ended in '/'.
func tmpRemove(dir uint64, name []byte, rmdir, slash bool) uint64 {
	i, e := tmpLookup(dir-tmpBit, name)
	if e != 0 {
		return e
	}
	n := &tmpNodes()[i]
	switch {
	case !rmdir && n.dir:
		return errno(eISDIR)
	case !rmdir && slash:
		return errno(eNOTDIR)
	case rmdir && !n.dir:
		return errno(eNOTDIR)
	case rmdir && n.size != 0:
		return errno(eNOTEMPTY)
	}
	tmpUnlink(i)
	return 0
}

// renameOld holds the old name while the new path resolves: it lives in
// the node table's block, past the nodes (kernel image space is short).
func renameOld() *[255]byte { return tmpRenameBuf() }

// sysRenameat2 renames within the tmpfs (anything else: EXDEV across file
// systems, EROFS inside the tree), checking in Linux's order.
func sysRenameat2(olddir, oldpath, newdir, newpath, flags uint64) uint64 {
	if flags&^(renNorepl|renExch) != 0 || flags == renNorepl|renExch {
		return errno(eINVAL) // RENAME_WHITEOUT is not served
	}
	oc, e := fsParentName(olddir, oldpath)
	if e != 0 {
		return e
	}
	oldLong := oc.end-oc.at > len(renameOld())
	oldLen := copy(renameOld()[:], fsPath[oc.at:oc.end])
	oldSlash := oc.end < oc.n
	nc, e := fsParentName(newdir, newpath)
	if e != 0 {
		return e
	}
	if isTmp(oc.dir) != isTmp(nc.dir) {
		return errno(eXDEV)
	}
	if oc.kind != 0 {
		return errno(eBUSY)
	}
	if nc.kind != 0 {
		if flags&renNorepl != 0 {
			return errno(eEXIST)
		}
		return errno(eBUSY)
	}
	if !isTmp(oc.dir) {
		return errno(eROFS)
	}
	if oldLong {
		return errno(eNAMETOOLONG)
	}
	od, nd := oc.dir-tmpBit, nc.dir-tmpBit
	src, e := tmpLookup(od, renameOld()[:oldLen])
	if e != 0 {
		return e
	}
	newName := fsPath[nc.at:nc.end]
	dst, e := tmpLookup(nd, newName)
	if e != 0 && e != errno(eNOENT) {
		return e
	}
	exists := e == 0
	if flags&renNorepl != 0 && exists {
		return errno(eEXIST)
	}
	if flags&renExch != 0 {
		if !exists {
			return errno(eNOENT)
		}
		if !tmpNodes()[dst].dir && nc.end < nc.n {
			return errno(eNOTDIR)
		}
	}
	if !tmpNodes()[src].dir && (oldSlash || flags&renExch == 0 && nc.end < nc.n) {
		return errno(eNOTDIR)
	}
	// Neither may be an ancestor of the other's new parent.
	if tmpAncestor(src, nd) {
		return errno(eINVAL)
	}
	if exists && tmpAncestor(dst, od) {
		if flags&renExch != 0 {
			return errno(eINVAL)
		}
		return errno(eNOTEMPTY)
	}
	if exists && src == dst {
		return 0
	}
	if exists && flags&renExch == 0 {
		s, d := &tmpNodes()[src], &tmpNodes()[dst]
		switch {
		case s.dir && !d.dir:
			return errno(eNOTDIR)
		case !s.dir && d.dir:
			return errno(eISDIR)
		case d.dir && d.size != 0:
			return errno(eNOTEMPTY)
		}
		tmpUnlink(dst)
	}
	now := wallNow()
	if flags&renExch != 0 {
		tmpMove(dst, od, renameOld()[:oldLen], now)
	}
	tmpMove(src, nd, newName, now)
	return 0
}

// tmpAncestor says whether node a is dir or one of its ancestors.
func tmpAncestor(a, dir uint64) bool {
	for d := dir; ; d = tmpNodes()[d].parent {
		if d == a {
			return true
		}
		if d == 0 {
			return false
		}
	}
}

// tmpMove gives node i the name name in directory dir.
func tmpMove(i, dir uint64, name []byte, now uint64) {
	n := &tmpNodes()[i]
	from, to := &tmpNodes()[n.parent], &tmpNodes()[dir]
	from.size--
	to.size++
	if n.dir {
		from.subdirs--
		to.subdirs++
	}
	n.parent, n.nameLen, n.ctime = dir, uint64(copy(n.name[:], name)), now
	from.mtime, from.ctime, to.mtime, to.ctime = now, now, now, now
}

// ---- symlinks ----

// tmpGetBytes copies the start of node i's data (a symlink's target) to b.
func tmpGetBytes(i uint64, b []byte) {
	for off := uint64(0); off < uint64(len(b)); {
		chunk := min(uint64(len(b))-off, mm.PageSize-off%mm.PageSize)
		if p := tmpPage(i, off/mm.PageSize); p != 0 {
			copy(b[off:off+chunk], physBytes(p+off%mm.PageSize, int(chunk)))
		} else {
			clear(b[off : off+chunk])
		}
		off += chunk
	}
}

// sysSymlinkat makes a symlink in /tmp (the tree: EROFS), with Linux's
// checks in Linux's order: the target, the parent, then the name.
func sysSymlinkat(target, dirfd, path uint64) uint64 {
	tl, e := copyPath(target)
	if e != 0 {
		return e
	}
	if tl == 0 {
		return errno(eNOENT)
	}
	// The target waits in a page of its own while the link's path
	// resolves (no checkpoint can fall inside a system call).
	tp, ok := allocZeroed(mm.FlagKernel)
	if !ok {
		return errno(eNOMEM)
	}
	copy(physBytes(tp, tl), fsPath[:tl])
	e = tmpSymlink(physBytes(tp, tl), dirfd, path)
	putFrame(tp)
	return e
}

func tmpSymlink(target []byte, dirfd, path uint64) uint64 {
	tl := len(target)
	lc, e := fsParentName(dirfd, path)
	if e != 0 {
		return e
	}
	if lc.kind != 0 {
		return errno(eEXIST)
	}
	name := fsPath[lc.at:lc.end]
	if _, e := fsChild(lc.dir, name); e == 0 {
		return errno(eEXIST)
	} else if e != errno(eNOENT) {
		return e
	}
	if lc.end < lc.n {
		return errno(eNOENT) // a trailing slash on a name that does not exist
	}
	if !isTmp(lc.dir) {
		return errno(eROFS)
	}
	v, e := tmpCreate(lc.dir, name, false, 0o777)
	if e != 0 {
		return e
	}
	i := v - tmpBit
	n := &tmpNodes()[i]
	n.link, n.mode = true, 0o777
	for off := uint64(0); off < uint64(tl); {
		p, _, err := tmpGetPage(i, off/mm.PageSize)
		if err != 0 {
			tmpUnlink(i)
			return err
		}
		chunk := min(uint64(tl)-off, mm.PageSize-off%mm.PageSize)
		copy(physBytes(p+off%mm.PageSize, int(chunk)), target[off:off+chunk])
		off += chunk
	}
	n.size = uint64(tl)
	return 0
}
