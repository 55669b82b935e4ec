package main

import (
	"unsafe"

	"github.com/vmm-dev/vmm/guest/mm"
)

// tmpNodes is the tmpfs node table, in its buddy block (tmpfsMount).
func tmpNodes() *[tmpMaxNodes]tmpNode { return (*[tmpMaxNodes]tmpNode)(ptr(uintptr(tmpfs.nodes))) }

// tmpRenameBuf is the 255 bytes after the nodes.
func tmpRenameBuf() *[255]byte {
	return (*[255]byte)(ptr(uintptr(tmpfs.nodes + tmpMaxNodes*uint64(unsafe.Sizeof(tmpNode{})))))
}

// The table and the rename buffer fit the block.
var _ [mm.PageSize<<tmpNodesOrd - tmpMaxNodes*unsafe.Sizeof(tmpNode{}) - 255]struct{}
