package main

import "github.com/vmm-dev/vmm/firmware"

// The read-only file system of `vmm run --dir` (firmware.FSHeader): the
// image sits in the run bundle; fsInit checks it once, as untrusted input,
// and the system calls below serve it. The tree's root is /; the working
// directory is the directory the VMM named (vmm run --cwd) and never
// changes (chdir is not served). There are no symlinks, nothing is writable, and
// lookups scan a directory's children (they are few in test trees).

const (
	fdFile = 5 // a --dir file or directory

	eACCES       = 13
	eBUSY        = 16
	eNOTEMPTY    = 39
	eNOTDIR      = 20
	eISDIR       = 21
	eSPIPE       = 29
	eROFS        = 30
	eRANGE       = 34
	eNAMETOOLONG = 36

	atFDCWD           = 0xffffffffffffff9c // -100 as a 64-bit register
	atSymlinkNofollow = 0x100
	atNoAutomount     = 0x800
	atEmptyPath       = 0x1000
	oAccMode          = 3
	oCreat            = 0x40
	oExcl             = 0x80
	oTrunc            = 0x200
	oDirectory        = 0x10000
	oTmpfile          = 0x400000
	fsMaxPath         = 4096
	fsDevice          = 0x1d // st_dev of every file
	dtDir, dtReg      = 4, 8
)

var fsys struct {
	base, size         uint64 // the image's physical range (a slice would need write barriers)
	n                  uint64 // entries
	namesOff, namesLen uint64
	dataOff, dataLen   uint64
	cwd                uint64 // the working directory's entry
}

var fsPath [fsMaxPath]byte // the path being resolved (one syscall at a time)

func fsImg() []byte { return physBytes(fsys.base, int(fsys.size)) }

func fsMode(i uint64) uint64   { return le32(fsImg(), firmware.FSHeaderSize+firmware.FSEntrySize*i) }
func fsParent(i uint64) uint64 { return le32(fsImg(), firmware.FSHeaderSize+firmware.FSEntrySize*i+4) }
func fsOff(i uint64) uint64    { return le64(fsImg(), firmware.FSHeaderSize+firmware.FSEntrySize*i+16) }
func fsSize(i uint64) uint64   { return le64(fsImg(), firmware.FSHeaderSize+firmware.FSEntrySize*i+24) }
func fsMTime(i uint64) uint64  { return le64(fsImg(), firmware.FSHeaderSize+firmware.FSEntrySize*i+32) }
func fsIsDir(i uint64) bool    { return fsMode(i)&firmware.FSTypeMask == firmware.FSDir }

func fsName(i uint64) []byte {
	e := firmware.FSHeaderSize + firmware.FSEntrySize*i
	off := fsys.namesOff + le32(fsImg(), e+8)
	return fsImg()[off : off+le32(fsImg(), e+12)]
}

// fsInit checks the image at phys [base, base+size) and serves it; false
// (with a console line) if any field is out of place.
func fsInit(base, size, cwd uint64) bool {
	img := physBytes(base, int(size))
	bad := func(what string) bool {
		putString("run: bad --dir image: ")
		putString(what)
		putString("\n")
		return false
	}
	if size < firmware.FSHeaderSize || le64(img, 0) != firmware.FSMagic {
		return bad("no header")
	}
	n, namesOff, namesLen, dataOff, dataLen := le64(img, 8), le64(img, 16), le64(img, 24), le64(img, 32), le64(img, 40)
	in := func(off, l uint64) bool { return off <= size && l <= size-off }
	if n == 0 || n > firmware.FSMaxEntries || !in(firmware.FSHeaderSize, firmware.FSEntrySize*n) ||
		namesOff < firmware.FSHeaderSize+firmware.FSEntrySize*n || !in(namesOff, namesLen) || !in(dataOff, dataLen) {
		return bad("regions out of place")
	}
	fsys.base, fsys.size, fsys.n, fsys.namesOff, fsys.namesLen, fsys.dataOff, fsys.dataLen = base, size, n, namesOff, namesLen, dataOff, dataLen
	for i := uint64(0); i < n; i++ {
		e := firmware.FSHeaderSize + firmware.FSEntrySize*i
		mode, noff, nlen := fsMode(i), le32(img, e+8), le32(img, e+12)
		if mode&^(firmware.FSTypeMask|0o777) != 0 {
			return fsFail(bad("entry mode"))
		}
		if noff > namesLen || nlen > namesLen-noff || nlen > firmware.FSMaxName || (i == 0) != (nlen == 0) {
			return fsFail(bad("entry name out of place"))
		}
		name := fsName(i)
		if (nlen == 1 && name[0] == '.') || (nlen == 2 && name[0] == '.' && name[1] == '.') {
			return fsFail(bad("entry named . or .."))
		}
		for _, c := range name {
			if c == '/' || c == 0 {
				return fsFail(bad("entry name with / or NUL"))
			}
		}
		switch mode & firmware.FSTypeMask {
		case firmware.FSRegular:
			if i == 0 || fsOff(i) > dataLen || fsSize(i) > dataLen-fsOff(i) {
				return fsFail(bad("file data out of place"))
			}
		case firmware.FSDir:
			// Children come after their directory (no cycles) and name it
			// as their parent (so child ranges never overlap).
			first, cnt := fsOff(i), fsSize(i)
			if first <= i || first > n || cnt > n-first {
				return fsFail(bad("directory children out of place"))
			}
			for c := first; c < first+cnt; c++ {
				if fsParent(c) != i {
					return fsFail(bad("child does not name its directory"))
				}
			}
		default:
			return fsFail(bad("entry neither file nor directory"))
		}
		if i == 0 && (mode&firmware.FSTypeMask != firmware.FSDir || fsParent(0) != 0) {
			return fsFail(bad("root is not a directory"))
		}
		if p := fsParent(i); i > 0 && (p >= i || !fsIsDir(p) || i < fsOff(p) || i >= fsOff(p)+fsSize(p)) {
			return fsFail(bad("entry outside its parent's children"))
		}
	}
	if cwd >= n || !fsIsDir(cwd) {
		return fsFail(bad("the working directory is not a directory of the image"))
	}
	fsys.cwd = cwd
	return true
}

func fsFail(bool) bool {
	fsys.base, fsys.size, fsys.n = 0, 0, 0
	return false
}

// copyPath copies the NUL-terminated user path at va into fsPath.
func copyPath(va uint64) (int, uint64) {
	n := 0
	for {
		pa := userPhys(va, false)
		if pa == 0 {
			return 0, errno(eFAULT)
		}
		chunk := physBytes(pa, int(pageSizeLeft(va)))
		for _, c := range chunk {
			if c == 0 {
				return n, 0
			}
			if n == fsMaxPath {
				return 0, errno(eNAMETOOLONG)
			}
			fsPath[n] = c
			n++
		}
		va += uint64(len(chunk))
	}
}

func pageSizeLeft(va uint64) uint64 { return 4096 - va%4096 }

// fsStart is where a lookup relative to dirfd begins.
func fsStart(dirfd uint64) (uint64, uint64) {
	if dirfd == atFDCWD || dirfd&0xffffffff == atFDCWD&0xffffffff {
		return fsys.cwd, 0
	}
	f := fdOf(dirfd, fdFile)
	if f == nil {
		if dirfd < maxFDs && (dirfd < 3 || fds[dirfd].kind != fdNone) {
			return 0, errno(eNOTDIR)
		}
		return 0, errno(eBADF)
	}
	if !fsIsDir(f.node) {
		return 0, errno(eNOTDIR)
	}
	return f.node, 0
}

// fsResolve looks up fsPath[:n] from directory start.
func fsResolve(start uint64, n int) (uint64, uint64) {
	p := fsPath[:n]
	if n == 0 {
		return 0, errno(eNOENT)
	}
	cur := start
	if p[0] == '/' {
		cur = 0
	}
	for i := 0; i < n; {
		if p[i] == '/' {
			i++
			continue
		}
		j := i
		for j < n && p[j] != '/' {
			j++
		}
		comp := p[i:j]
		i = j
		if !fsIsDir(cur) {
			return 0, errno(eNOTDIR)
		}
		if len(comp) > firmware.FSMaxName {
			return 0, errno(eNAMETOOLONG)
		}
		if len(comp) == 1 && comp[0] == '.' {
			continue
		}
		if len(comp) == 2 && comp[0] == '.' && comp[1] == '.' {
			cur = fsParent(cur)
			continue
		}
		next, found := uint64(0), false
		for c := fsOff(cur); c < fsOff(cur)+fsSize(cur); c++ {
			if string(fsName(c)) == string(comp) {
				next, found = c, true
				break
			}
		}
		if !found {
			return 0, errno(eNOENT)
		}
		cur = next
	}
	if p[n-1] == '/' && !fsIsDir(cur) {
		return 0, errno(eNOTDIR)
	}
	return cur, 0
}

// fsLookup resolves the user path at va relative to dirfd.
func fsLookup(dirfd, va uint64, emptyOK bool) (uint64, uint64) {
	n, e := copyPath(va)
	if e != 0 {
		return 0, e
	}
	if n == 0 && emptyOK {
		if dirfd == atFDCWD || dirfd&0xffffffff == atFDCWD&0xffffffff {
			return fsys.cwd, 0
		}
		if f := fdOf(dirfd, fdFile); f != nil {
			return f.node, 0
		}
		return 0, errno(eBADF)
	}
	if fsys.n == 0 {
		return 0, errno(eNOENT) // no --dir: an empty file system
	}
	start, e := fsStart(dirfd)
	if e != 0 {
		return 0, e
	}
	return fsResolve(start, n)
}

func sysOpenat(dirfd, path, flags uint64) uint64 {
	node, e := fsLookup(dirfd, path, false)
	write := flags&oAccMode != 0
	if flags&oAccMode == oAccMode {
		return errno(eINVAL)
	}
	if e == errno(eNOENT) && flags&oCreat != 0 && fsys.n != 0 {
		return errno(eROFS)
	}
	if e != 0 {
		return e
	}
	if flags&(oCreat|oExcl) == oCreat|oExcl {
		return errno(eEXIST)
	}
	if fsIsDir(node) && write && flags&oTmpfile == 0 {
		return errno(eISDIR)
	}
	if write || flags&(oTrunc|oTmpfile) != 0 {
		return errno(eROFS)
	}
	if flags&oDirectory != 0 && !fsIsDir(node) {
		return errno(eNOTDIR)
	}
	fd := newFD(fdFile)
	if fd == 0 {
		return errno(eMFILE)
	}
	fds[fd].node, fds[fd].nonblock = node, flags&oNonblk != 0
	return fd
}

// fsRead copies up to n bytes of f's file from offset off to the user.
func fsRead(f *fileDesc, buf, n, off uint64) uint64 {
	if fsIsDir(f.node) {
		return errno(eISDIR)
	}
	size := fsSize(f.node)
	if off >= size {
		return 0
	}
	n = min(n, size-off, 1<<30)
	start := fsys.dataOff + fsOff(f.node) + off
	if !copyToUser(buf, fsImg()[start:start+n]) {
		return errno(eFAULT)
	}
	return n
}

func sysFileRead(f *fileDesc, buf, n uint64) uint64 {
	r := fsRead(f, buf, n, f.pos)
	if int64(r) > 0 {
		f.pos += r
	}
	return r
}

func sysPread(fd, buf, n, off uint64) uint64 {
	f := fdOf(fd, fdFile)
	if f == nil {
		if fd == 1 || fd == 2 || fdOf(fd, fdPipeW) != nil {
			return errno(eBADF) // not open for reading: checked before seekability
		}
		return fdSeekErr(fd)
	}
	if int64(off) < 0 {
		return errno(eINVAL)
	}
	return fsRead(f, buf, n, off)
}

// fdSeekErr is what a positioned call on a descriptor that is not a file
// returns: ESPIPE for pipes and the standard streams, EBADF if not open.
func fdSeekErr(fd uint64) uint64 {
	if (fd < 3 && !fdClosed[fd]) || (fd >= 3 && fd < maxFDs && fds[fd].kind != fdNone) {
		return errno(eSPIPE)
	}
	return errno(eBADF)
}

func sysLseek(fd, off, whence uint64) uint64 {
	f := fdOf(fd, fdFile)
	if f == nil {
		return fdSeekErr(fd)
	}
	var base uint64
	switch whence {
	case 0:
	case 1:
		base = f.pos
	case 2:
		if !fsIsDir(f.node) {
			base = fsSize(f.node)
		} else {
			return errno(eINVAL)
		}
	default:
		return errno(eINVAL)
	}
	p := base + off
	if int64(p) < 0 || (int64(off) > 0 && p < base) {
		return errno(eINVAL)
	}
	f.pos = p
	return p
}

// fsStat writes node's struct stat (x86-64 layout, 144 bytes) to va.
func fsStat(node, va uint64) uint64 {
	var st [144]byte
	mode, size, nlink := fsMode(node), fsSize(node), uint64(1)
	if fsIsDir(node) {
		size, nlink = 4096, 2 // "." and the parent's entry, plus each subdirectory's ".."
		for c := fsOff(node); c < fsOff(node)+fsSize(node); c++ {
			if fsIsDir(c) {
				nlink++
			}
		}
	}
	putLE(st[0:8], fsDevice)
	putLE(st[8:16], node+1)
	putLE(st[16:24], nlink)
	putLE(st[24:28], mode)
	putLE(st[48:56], size)
	putLE(st[56:64], 4096)
	putLE(st[64:72], (size+4095)/4096*8)
	sec, nsec := fsMTime(node)/1e9, fsMTime(node)%1e9
	for _, o := range [3]int{72, 88, 104} {
		putLE(st[o:o+8], sec)
		putLE(st[o+8:o+16], nsec)
	}
	if !copyToUser(va, st[:]) {
		return errno(eFAULT)
	}
	return 0
}

func sysFstat(fd, va uint64) uint64 {
	f := fdOf(fd, fdFile)
	if f == nil {
		if fd < 3 && !fdClosed[fd] {
			return errno(eNOSYS) // the standard streams have no stat here
		}
		return errno(eBADF)
	}
	return fsStat(f.node, va)
}

func sysNewfstatat(dirfd, path, va, flags uint64) uint64 {
	if flags&^(atSymlinkNofollow|atNoAutomount|atEmptyPath) != 0 {
		return errno(eINVAL)
	}
	if fsys.n == 0 {
		return errno(eNOENT)
	}
	node, e := fsLookup(dirfd, path, flags&atEmptyPath != 0)
	if e != 0 {
		return e
	}
	return fsStat(node, va)
}

// sysGetdents64 writes linux_dirent64 records: ".", "..", then the
// children in name order; f.pos counts the records already returned.
func sysGetdents64(fd, buf, count uint64) uint64 {
	f := fdOf(fd, fdFile)
	if f == nil {
		if fd < 3 && !fdClosed[fd] {
			return errno(eNOTDIR)
		}
		return errno(eBADF)
	}
	if !fsIsDir(f.node) {
		return errno(eNOTDIR)
	}
	var rec [24 + firmware.FSMaxName + 8]byte
	done := uint64(0)
	for f.pos < 2+fsSize(f.node) {
		var name []byte
		ino, typ := f.node+1, uint64(dtDir)
		switch f.pos {
		case 0:
			name = rec[:0] // filled below as "."
		case 1:
			ino = fsParent(f.node) + 1
		default:
			c := fsOff(f.node) + f.pos - 2
			name, ino = fsName(c), c+1
			if !fsIsDir(c) {
				typ = dtReg
			}
		}
		nlen := uint64(len(name))
		if f.pos < 2 {
			nlen = f.pos + 1
		}
		reclen := (19 + nlen + 1 + 7) &^ 7
		if done+reclen > count {
			if done == 0 {
				return errno(eINVAL)
			}
			break
		}
		clear(rec[:reclen])
		putLE(rec[0:8], ino)
		putLE(rec[8:16], f.pos+1)
		putLE(rec[16:18], reclen)
		rec[18] = byte(typ)
		if f.pos < 2 {
			rec[19], rec[20] = '.', '.'
			rec[19+nlen] = 0
		} else {
			copy(rec[19:], name)
		}
		if !copyToUser(buf+done, rec[:reclen]) {
			return errno(eFAULT)
		}
		done += reclen
		f.pos++
	}
	return done
}

// sysGetcwd writes the working directory's absolute path, built from its
// names up to the root (fsPath holds it, right-aligned).
func sysGetcwd(buf, size uint64) uint64 {
	end := uint64(len(fsPath))
	at := end - 1
	fsPath[at] = 0
	for d := fsys.cwd; d != 0; d = fsParent(d) {
		name := fsName(d)
		if uint64(len(name))+1 > at {
			return errno(eNAMETOOLONG)
		}
		at -= uint64(len(name))
		copy(fsPath[at:], name)
		at--
		fsPath[at] = '/'
	}
	if at == end-1 { // the root
		at--
		fsPath[at] = '/'
	}
	n := end - at
	if size < n {
		return errno(eRANGE)
	}
	if !copyToUser(buf, fsPath[at:end]) {
		return errno(eFAULT)
	}
	return n
}

// fsParentOf resolves the directory that would hold the user path's last
// component, as Linux's parent lookup: it returns that directory and the
// component's kind (0: a name, 1: ".", 2: "..", 3: none, the path is "/").
func fsParentOf(dirfd, path uint64) (uint64, int, uint64) {
	n, e := copyPath(path)
	if e != 0 {
		return 0, 0, e
	}
	if n == 0 {
		return 0, 0, errno(eNOENT)
	}
	if fsys.n == 0 {
		return 0, 0, errno(eNOENT)
	}
	end := n
	for end > 0 && fsPath[end-1] == '/' {
		end--
	}
	at := end
	for at > 0 && fsPath[at-1] != '/' {
		at--
	}
	kind := 0
	switch {
	case end == 0:
		kind = 3
	case end-at == 1 && fsPath[at] == '.':
		kind = 1
	case end-at == 2 && fsPath[at] == '.' && fsPath[at+1] == '.':
		kind = 2
	}
	if fsPath[0] == '/' { // dirfd does not matter
		if at == 0 {
			return 0, kind, 0 // "/" itself
		}
		dir, e := fsResolve(0, at)
		if e == 0 && !fsIsDir(dir) {
			e = errno(eNOTDIR)
		}
		return dir, kind, e
	}
	start, e := fsStart(dirfd)
	if at == 0 || e != 0 {
		return start, kind, e
	}
	dir, e := fsResolve(start, at)
	if e == 0 && !fsIsDir(dir) {
		e = errno(eNOTDIR)
	}
	return dir, kind, e
}

// sysMkdirat answers as a read-only mount does: EEXIST for what exists (or
// "/", ".", ".."), the parent lookup's error, else EROFS.
func sysMkdirat(dirfd, path uint64) uint64 {
	_, kind, e := fsParentOf(dirfd, path)
	if e != 0 {
		return e
	}
	if kind != 0 {
		return errno(eEXIST)
	}
	if _, e := fsLookup(dirfd, path, false); e == 0 {
		return errno(eEXIST)
	}
	return errno(eROFS)
}

// sysUnlinkat answers as a read-only mount does: Linux checks the parent
// and the last component's form, then refuses to write (EROFS) before it
// looks the name up.
func sysUnlinkat(dirfd, path, flags uint64) uint64 {
	const atRemovedir = 0x200
	if flags&^atRemovedir != 0 {
		return errno(eINVAL)
	}
	_, kind, e := fsParentOf(dirfd, path)
	if e != 0 {
		return e
	}
	if flags&atRemovedir == 0 && kind != 0 {
		return errno(eISDIR)
	}
	switch kind {
	case 1:
		return errno(eINVAL)
	case 2:
		return errno(eNOTEMPTY)
	case 3:
		return errno(eBUSY)
	}
	return errno(eROFS)
}

// sysReadlinkat: nothing in the image is a symlink.
func sysReadlinkat(dirfd, path uint64) uint64 {
	if _, e := fsLookup(dirfd, path, false); e != 0 {
		return e
	}
	return errno(eINVAL)
}
