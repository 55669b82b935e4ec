package main

import (
	"unsafe"

	"github.com/vmm-dev/vmm/guest/mm"
)

// tmpNodes is the tmpfs node table, in its buddy block (tmpfsMount).
func tmpNodes() *[tmpMaxNodes]tmpNode { return (*[tmpMaxNodes]tmpNode)(ptr(uintptr(tmpfs.nodes))) }

// The table fits its block.
var _ [mm.PageSize<<tmpNodesOrd - tmpMaxNodes*unsafe.Sizeof(tmpNode{})]struct{}
