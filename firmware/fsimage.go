package firmware

// The `vmm run --dir` file system image: a read-only copy of a host
// directory tree, carried in the run bundle (RunHeader.FSOff, FSSize).
// Offsets are from the image's start. The guest treats it as untrusted and
// checks every field before serving a file from it.
//
//	FSHeader
//	FSEntry table     Entries entries from FSHeaderSize; entry 0 is the root
//	names             NamesOff, NamesSize: the entries' names, not terminated
//	file data         DataOff, DataSize
//
// A directory's children are the entries [Off, Off+Size), all after it in
// the table, each naming it as Parent; the host sorts them by name.

// FSMagic opens an image ("VMMFS001" little-endian).
const FSMagic = 0x31303053464d4d56

// FSMaxEntries bounds the files and directories in one image.
const FSMaxEntries = 1 << 20

// FSMaxName is the longest name (as Linux's NAME_MAX).
const FSMaxName = 255

// FSHeader starts an image.
type FSHeader struct {
	Magic     uint64
	Entries   uint64
	NamesOff  uint64
	NamesSize uint64
	DataOff   uint64
	DataSize  uint64
	_         [2]uint64
}

// FSHeaderSize is FSHeader's size in bytes.
const FSHeaderSize = 8 * 8

// Entry kinds (FSEntry.Mode&FSTypeMask, as Linux's S_IFMT bits).
const (
	FSTypeMask = 0o170000
	FSDir      = 0o040000
	FSRegular  = 0o100000
)

// FSEntry describes one file or directory.
type FSEntry struct {
	Mode    uint32 // FSDir or FSRegular | permission bits (0o777)
	Parent  uint32 // index of the containing directory (the root: 0)
	NameOff uint32 // in the names region
	NameLen uint32
	Off     uint64 // file: data offset in the data region; directory: first child's index
	Size    uint64 // file: bytes; directory: number of children
	MTime   uint64 // Unix nanoseconds
	_       uint64
}

// FSEntrySize is FSEntry's size in bytes.
const FSEntrySize = 6 * 8
