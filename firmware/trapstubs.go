package firmware

// TrapStub returns the address of vector v's ring-0 entry stub, read from
// the table the linker fills in trap_amd64.s (no init code needed).
func TrapStub(v int) uint64 { return trapStubTable()[v] }

// Implemented in trap_amd64.s.
func trapStubTable() *[NumTrapVectors]uint64
