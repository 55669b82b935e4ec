package verify

import "unsafe"

// uintptrOf is the virtual offset that makes physical 0 the arena's start.
func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
