package main

import "github.com/vmm-dev/vmm/firmware"

// The read-only file system of `vmm run --dir` (firmware.FSHeader): the
// image sits in the run bundle; fsInit checks it once, as untrusted input,
// and the system calls below serve it. The tree's root is /; the working
// directory is the directory the VMM named (vmm run --cwd) and never
// changes only by chdir and fchdir. The tree has no symlinks (a /tmp one
// is followed by fsWalk), and lookups scan a directory's children (they
// are few in test trees). /tmp is the one
// writable place: a tmpfs (tmpfs.go) mounted over the tree's /tmp, which
// the lookups below cross into. A vnode (fileDesc.node) is a tree entry's
// index, or tmpBit + a tmpfs node's.

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
	cwd                uint64 // the working directory's vnode
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
		return fsMount(fsys.cwd), 0
	}
	f := fdOf(dirfd, fdFile)
	if f == nil {
		if dirfd < maxFDs && (dirfd < 3 || fds[dirfd].kind != fdNone) {
			return 0, errno(eNOTDIR)
		}
		return 0, errno(eBADF)
	}
	if !vnIsDir(f.node) {
		return 0, errno(eNOTDIR)
	}
	return f.node, 0
}

// fsMount maps the tree's /tmp entry to the tmpfs mounted over it.
func fsMount(v uint64) uint64 {
	if !isTmp(v) && v != 0 && fsParent(v) == 0 && string(fsName(v)) == "tmp" {
		return tmpRoot()
	}
	return v
}

// vnParent is the vnode of v's "..": the tree's root for the tmpfs root.
func vnParent(v uint64) uint64 {
	if !isTmp(v) {
		return fsParent(v)
	}
	if v == tmpBit {
		return 0
	}
	return tmpBit + tmpOf(v).parent
}

// fsChild looks name up in directory dir; /tmp is the tmpfs.
func fsChild(dir uint64, name []byte) (uint64, uint64) {
	if isTmp(dir) {
		i, e := tmpLookup(dir-tmpBit, name)
		return tmpBit + i, e
	}
	if len(name) > firmware.FSMaxName {
		return 0, errno(eNAMETOOLONG)
	}
	if dir == 0 && string(name) == "tmp" {
		return tmpRoot(), 0
	}
	for c := fsOff(dir); c < fsOff(dir)+fsSize(dir); c++ {
		if string(fsName(c)) == string(name) {
			return c, 0
		}
	}
	return 0, errno(eNOENT)
}

// fsResolve looks up fsPath[:n] from directory start, following symlinks
// (tmpfs ones: the tree has none) everywhere.
func fsResolve(start uint64, n int) (uint64, uint64) { return fsWalk(start, n, true) }

// fsMaxLinks is Linux's bound on the symlinks one lookup follows (ELOOP).
const fsMaxLinks = 40

// fsWalk looks up fsPath[:n] from directory start; a symlink in the last
// component is followed only if follow is set or a slash comes after it.
func fsWalk(start uint64, n int, follow bool) (uint64, uint64) {
	if n == 0 {
		return 0, errno(eNOENT)
	}
	cur := start
	if fsPath[0] == '/' {
		cur = 0
	}
	links := 0
	for i := 0; i < n; {
		if fsPath[i] == '/' {
			i++
			continue
		}
		j := i
		for j < n && fsPath[j] != '/' {
			j++
		}
		comp := fsPath[i:j]
		i = j
		if !vnIsDir(cur) {
			return 0, errno(eNOTDIR)
		}
		if len(comp) > firmware.FSMaxName {
			return 0, errno(eNAMETOOLONG)
		}
		if len(comp) == 1 && comp[0] == '.' {
			continue
		}
		if len(comp) == 2 && comp[0] == '.' && comp[1] == '.' {
			cur = vnParent(cur)
			continue
		}
		next, e := fsChild(cur, comp)
		if e != 0 {
			return 0, e
		}
		if !isTmp(next) || !tmpOf(next).link || (i == n && !follow) {
			cur = next
			continue
		}
		// Follow: the target, then what is left of the path, resolved
		// from the link's directory (or the root, for an absolute target).
		if links++; links > fsMaxLinks {
			return 0, errno(eLOOP)
		}
		tl := tmpOf(next).size
		if tl+uint64(n-i) > fsMaxPath {
			return 0, errno(eNAMETOOLONG)
		}
		rest := n - i
		copy(fsPath[tl:], fsPath[i:n]) // the rest moves up (copy is memmove), the target goes before it
		tmpGetBytes(next-tmpBit, fsPath[:tl])
		n, i = int(tl)+rest, 0
		if fsPath[0] == '/' {
			cur = 0
		}
	}
	if fsPath[n-1] == '/' && !vnIsDir(cur) {
		return 0, errno(eNOTDIR)
	}
	return cur, 0
}

// fsLookup resolves the user path at va relative to dirfd.
func fsLookup(dirfd, va uint64, emptyOK bool) (uint64, uint64) {
	return fsLookupAt(dirfd, va, emptyOK, true)
}

// fsLookupAt is fsLookup that can leave a final symlink unfollowed.
func fsLookupAt(dirfd, va uint64, emptyOK, follow bool) (uint64, uint64) {
	n, e := copyPath(va)
	if e != 0 {
		return 0, e
	}
	if n == 0 && emptyOK {
		if dirfd == atFDCWD || dirfd&0xffffffff == atFDCWD&0xffffffff {
			return fsMount(fsys.cwd), 0
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
	return fsWalk(start, n, follow)
}

// sysOpenat opens a tree or tmpfs path; O_CREAT makes a file in the tmpfs
// (elsewhere: EROFS), with Linux's checks in Linux's order.
func sysOpenat(dirfd, path, flags, mode uint64) uint64 {
	if flags&oAccMode == oAccMode {
		return errno(eINVAL)
	}
	if fdsFree() == 0 {
		return errno(eMFILE) // Linux takes the descriptor before it looks the path up
	}
	if flags&oCreat == 0 {
		node, e := fsLookupAt(dirfd, path, false, flags&oNofollow == 0)
		if e != 0 {
			return e
		}
		if isTmp(node) && tmpOf(node).link {
			return errno(eLOOP) // O_NOFOLLOW on a symlink
		}
		return fsOpenNode(node, flags)
	}
	lc, e := fsParentName(dirfd, path)
	if e != 0 {
		return e
	}
	if lc.kind != 0 { // ".", ".." or "/": the directory itself
		if flags&oExcl != 0 {
			return errno(eEXIST)
		}
		return errno(eISDIR)
	}
	if lc.end < lc.n { // a trailing slash
		return errno(eISDIR)
	}
	name := fsPath[lc.at:lc.end]
	node, e := fsChild(lc.dir, name)
	if e == 0 && isTmp(node) && tmpOf(node).link {
		switch {
		case flags&oExcl != 0:
			return errno(eEXIST)
		case flags&oNofollow != 0:
			return errno(eLOOP)
		}
		// Through the link: its target if that exists; making a missing
		// target is not served.
		if node, e = fsWalk(lc.dir, lc.end, true); e == errno(eNOENT) {
			return errno(eNOTSUP)
		} else if e != 0 {
			return e
		}
	}
	if e == 0 {
		if flags&oExcl != 0 {
			return errno(eEXIST)
		}
		if vnIsDir(node) {
			return errno(eISDIR)
		}
		return fsOpenNode(node, flags)
	}
	if e != errno(eNOENT) {
		return e
	}
	if !isTmp(lc.dir) {
		return errno(eROFS)
	}
	if node, e = tmpCreate(lc.dir, name, false, mode); e != 0 {
		return e
	}
	return fsOpenNode(node, flags&^oTrunc)
}

// fsOpenNode gives node a descriptor as open(2) with flags would.
func fsOpenNode(node, flags uint64) uint64 {
	write := flags&oAccMode != 0
	if vnIsDir(node) && (write || flags&oTrunc != 0) && flags&oTmpfile == 0 {
		return errno(eISDIR)
	}
	if flags&oTmpfile != 0 && isTmp(node) {
		return errno(eNOTSUP) // unnamed tmpfs files are not served
	}
	if !isTmp(node) && (write || flags&(oTrunc|oTmpfile) != 0) {
		return errno(eROFS)
	}
	if flags&oDirectory != 0 && !vnIsDir(node) {
		return errno(eNOTDIR)
	}
	fd := newFD(fdFile)
	if fd == 0 {
		return errno(eMFILE)
	}
	if isTmp(node) {
		if flags&oTrunc != 0 && !vnIsDir(node) {
			tmpTruncate(node-tmpBit, 0) // as Linux, even when opened O_RDONLY
		}
		tmpOf(node).opens++
	}
	fds[fd].node, fds[fd].nonblock = node, flags&oNonblk != 0
	fds[fd].flags = flags & (oAccMode | oAppend)
	return fd
}

// fsRead copies up to n bytes of f's file from offset off to the user.
func fsRead(f *fileDesc, buf, n, off uint64) uint64 {
	if f.flags&oAccMode == oWronly {
		return errno(eBADF)
	}
	if vnIsDir(f.node) {
		return errno(eISDIR)
	}
	if isTmp(f.node) {
		return tmpRead(f.node-tmpBit, buf, n, off)
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
		switch {
		case vnIsDir(f.node):
			return errno(eINVAL)
		case isTmp(f.node):
			base = tmpOf(f.node).size
		default:
			base = fsSize(f.node)
		}
	case seekData, seekHole:
		switch {
		case vnIsDir(f.node):
			return errno(eINVAL)
		case isTmp(f.node):
			r := tmpSeekData(f.node-tmpBit, off, whence)
			if int64(r) >= 0 {
				f.pos = r
			}
			return r
		}
		// A tree file is all data.
		if off >= fsSize(f.node) {
			return errno(eNXIO)
		}
		if whence == seekHole {
			off = fsSize(f.node)
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
	if isTmp(node) {
		tmpStat(node-tmpBit, &st)
		if !copyToUser(va, st[:]) {
			return errno(eFAULT)
		}
		return 0
	}
	mode, size, nlink := fsMode(node), fsSize(node), uint64(1)
	if fsIsDir(node) {
		size, nlink = 4096, 2 // "." and the parent's entry, plus each subdirectory's ".."
		for c := fsOff(node); c < fsOff(node)+fsSize(node); c++ {
			if fsIsDir(c) {
				nlink++
			}
		}
		if node == 0 && !fsHasTmp() {
			nlink++ // the mount point's ".."
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
	node, e := fsLookupAt(dirfd, path, flags&atEmptyPath != 0, flags&atSymlinkNofollow == 0)
	if e != 0 {
		return e
	}
	return fsStat(node, va)
}

// sysGetdents64 writes linux_dirent64 records: ".", "..", then the
// children in name order; f.pos counts the records already returned. A
// tree without a tmp directory still lists one at its root, after the rest:
// the tmpfs mount point (Go's os.Getwd, for one, finds its way up by
// reading each parent's entries).
func sysGetdents64(fd, buf, count uint64) uint64 {
	f := fdOf(fd, fdFile)
	if f == nil {
		if fd < 3 && !fdClosed[fd] {
			return errno(eNOTDIR)
		}
		return errno(eBADF)
	}
	if !vnIsDir(f.node) {
		return errno(eNOTDIR)
	}
	if isTmp(f.node) {
		return tmpGetdents(f, buf, count)
	}
	var rec [24 + firmware.FSMaxName + 8]byte
	end := 2 + fsSize(f.node)
	if f.node == 0 && !fsHasTmp() {
		end++
	}
	done := uint64(0)
	for f.pos < end {
		name := dotdot[:1]
		ino, typ := f.node+1, uint64(dtDir)
		switch {
		case f.pos == 1:
			name = dotdot[:]
			ino = fsParent(f.node) + 1
		case f.pos == 2+fsSize(f.node): // the mount point
			name, ino = tmpName[:], fsys.n+1
		case f.pos >= 2:
			c := fsOff(f.node) + f.pos - 2
			name, ino = fsName(c), c+1
			if !fsIsDir(c) {
				typ = dtReg
			}
		}
		reclen := direntRec(&rec, ino, f.pos+1, typ, name)
		if done+reclen > count {
			if done == 0 {
				return errno(eINVAL)
			}
			break
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
	d := fsMount(fsys.cwd)
	if isTmp(d) && !tmpOf(d).linked {
		return errno(eNOENT) // as Linux for a removed working directory
	}
	for ; d != 0; d = vnParent(d) {
		var name []byte
		switch {
		case d == tmpBit:
			name = tmpName[:]
		case isTmp(d):
			name = tmpOf(d).name[:tmpOf(d).nameLen]
		default:
			name = fsName(d)
		}
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

var tmpName = [3]byte{'t', 'm', 'p'}

// fsHasTmp says whether the tree's root has an entry named tmp.
func fsHasTmp() bool {
	for c := fsOff(0); c < fsOff(0)+fsSize(0); c++ {
		if string(fsName(c)) == "tmp" {
			return true
		}
	}
	return false
}

// sysChdir and sysFchdir move the working directory; a tmpfs one is held
// open (a removed one stays usable, and getcwd answers ENOENT).
func sysChdir(path uint64) uint64 {
	node, e := fsLookup(atFDCWD, path, false)
	if e != 0 {
		return e
	}
	return fsSetCwd(node)
}

func sysFchdir(fd uint64) uint64 {
	f := fdOf(fd, fdFile)
	if f == nil {
		if fd < 3 && !fdClosed[fd] || fd >= 3 && fd < maxFDs && fds[fd].kind != fdNone {
			return errno(eNOTDIR)
		}
		return errno(eBADF)
	}
	return fsSetCwd(f.node)
}

func fsSetCwd(v uint64) uint64 {
	if !vnIsDir(v) {
		return errno(eNOTDIR)
	}
	v = fsMount(v)
	if isTmp(v) {
		tmpOf(v).opens++
	}
	if old := fsys.cwd; isTmp(old) {
		tmpRelease(old)
	}
	fsys.cwd = v
	return 0
}

// sysFchmodat sets a tmpfs node's permission bits (the tree: EROFS).
func sysFchmodat(dirfd, path, mode uint64) uint64 {
	node, e := fsLookup(dirfd, path, false)
	if e != 0 {
		return e
	}
	return fsChmod(node, mode)
}

func sysFchmod(fd, mode uint64) uint64 {
	f := fdOf(fd, fdFile)
	if f == nil {
		if fd < 3 && !fdClosed[fd] || fd >= 3 && fd < maxFDs && fds[fd].kind != fdNone {
			return errno(eNOSYS) // pipes, eventfds and the standard streams: not served
		}
		return errno(eBADF)
	}
	return fsChmod(f.node, mode)
}

func fsChmod(v, mode uint64) uint64 {
	if !isTmp(v) {
		return errno(eROFS)
	}
	n := tmpOf(v)
	n.mode, n.ctime = mode&0o7777, wallNow()
	return 0
}

// lastComp is a path split as Linux's parent lookup splits it: the
// directory that would hold the last component, and that component.
type lastComp struct {
	dir     uint64
	kind    int // 0: a name, 1: ".", 2: "..", 3: none (the path is "/")
	at, end int // the name is fsPath[at:end]
	n       int // the path's length: end < n means trailing slashes
}

// fsParentName resolves the user path's parent directory (into fsPath).
func fsParentName(dirfd, path uint64) (lastComp, uint64) {
	var lc lastComp
	n, e := copyPath(path)
	if e != 0 {
		return lc, e
	}
	if n == 0 || fsys.n == 0 {
		return lc, errno(eNOENT)
	}
	end := n
	for end > 0 && fsPath[end-1] == '/' {
		end--
	}
	at := end
	for at > 0 && fsPath[at-1] != '/' {
		at--
	}
	lc.at, lc.end, lc.n = at, end, n
	switch {
	case end == 0:
		lc.kind = 3
	case end-at == 1 && fsPath[at] == '.':
		lc.kind = 1
	case end-at == 2 && fsPath[at] == '.' && fsPath[at+1] == '.':
		lc.kind = 2
	}
	start := uint64(0)
	if fsPath[0] != '/' { // an absolute path ignores dirfd
		if start, e = fsStart(dirfd); e != 0 {
			return lc, e
		}
	}
	lc.dir = start
	if at == 0 {
		return lc, 0
	}
	// Following a symlink in the parent rewrites fsPath: the last
	// component (at most one byte too long to keep ENAMETOOLONG) goes to
	// the front of it afterwards.
	var last [firmware.FSMaxName + 1]byte
	k := copy(last[:], fsPath[at:end])
	dir, e := fsResolve(start, at)
	if e == 0 && !vnIsDir(dir) {
		e = errno(eNOTDIR)
	}
	copy(fsPath[:], last[:k])
	lc.dir, lc.at, lc.end = dir, 0, k
	lc.n = k
	if end < n {
		lc.n = k + 1 // trailing slashes
	}
	return lc, e
}

// sysMkdirat makes a tmpfs directory; in the read-only tree it answers as
// a read-only mount does: EEXIST for what exists (or "/", ".", ".."), the
// parent lookup's error, else EROFS.
func sysMkdirat(dirfd, path, mode uint64) uint64 {
	lc, e := fsParentName(dirfd, path)
	if e != 0 {
		return e
	}
	if lc.kind != 0 {
		return errno(eEXIST)
	}
	name := fsPath[lc.at:lc.end]
	if isTmp(lc.dir) {
		return tmpMkdir(lc.dir, name, mode)
	}
	if _, e := fsChild(lc.dir, name); e == 0 {
		return errno(eEXIST)
	}
	return errno(eROFS)
}

// sysUnlinkat removes a tmpfs name. Linux checks the parent and the last
// component's form first; in the read-only tree it then refuses to write
// (EROFS) before it looks the name up.
func sysUnlinkat(dirfd, path, flags uint64) uint64 {
	const atRemovedir = 0x200
	if flags&^atRemovedir != 0 {
		return errno(eINVAL)
	}
	lc, e := fsParentName(dirfd, path)
	if e != 0 {
		return e
	}
	if flags&atRemovedir == 0 && lc.kind != 0 {
		return errno(eISDIR)
	}
	switch lc.kind {
	case 1:
		return errno(eINVAL)
	case 2:
		return errno(eNOTEMPTY)
	case 3:
		return errno(eBUSY)
	}
	if isTmp(lc.dir) {
		return tmpRemove(lc.dir, fsPath[lc.at:lc.end], flags&atRemovedir != 0, lc.end < lc.n)
	}
	return errno(eROFS)
}

// sysReadlinkat copies a tmpfs symlink's target (not NUL-terminated, cut
// to bufsiz); anything else: EINVAL.
func sysReadlinkat(dirfd, path, buf, bufsiz uint64) uint64 {
	if int64(bufsiz) <= 0 || bufsiz > 1<<31-1 {
		return errno(eINVAL)
	}
	node, e := fsLookupAt(dirfd, path, false, false)
	if e != 0 {
		return e
	}
	if !isTmp(node) || !tmpOf(node).link {
		return errno(eINVAL)
	}
	n := min(tmpOf(node).size, bufsiz)
	tmpGetBytes(node-tmpBit, fsPath[:n]) // the lookup is done with fsPath
	if !copyToUser(buf, fsPath[:n]) {
		return errno(eFAULT)
	}
	return n
}
