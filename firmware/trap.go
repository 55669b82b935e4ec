package firmware

import "unsafe"

// Exceptions and interrupts. The guest's IDT (at IDTBase) sends vectors
// 0..31 and TimerVector to the ring-0 stubs in trap_amd64.s. A stub runs at
// CPL0 (in KVM's instruction emulator on the PVM host: integer only, about
// 1 µs an instruction), so it does the least it can: it copies the frame
// words it is about to overwrite (RIP, RSP) and CR2 into this vCPU's
// TrapRecord, rewrites the frame to return to
// the ring-3 dispatcher (TrapRecord.Dispatch) on the exception stack, sets
// TrapRecord.Masked, and IRETQs. The dispatcher saves every register, calls Go,
// and returns to the interrupted code at ring 3 (POPFQ; RET on the
// interrupted stack), so a handled exception costs one trip through ring 0.
// The rest of the frame (vector, error code, CS, RFLAGS) stays in place
// below the record (TrapFrame) and the dispatcher copies it into the record
// first thing, at ring 3, where instructions cost nanoseconds.
//
// Interrupt masking is paravirtual: code at CPL3 cannot change RFLAGS.IF
// here (STI raises #GP on the PVM host, and POPFQ ignores IF), so the
// guest runs with IF set and TrapRecord.Masked is the interrupt flag that
// counts. The stub sets it; the dispatcher clears it with its very last
// store, after it has left the exception stack. The VMM injects an
// interrupt only into a vCPU whose record has a Dispatch entry and Masked
// clear, and it looks only while the vCPU is out of the guest.

// TimerVector is the external interrupt the VMM injects for --tick.
const TimerVector = 32

// NumTrapVectors is how many IDT entries the guest fills (0..TimerVector).
const NumTrapVectors = TimerVector + 1

// TrapRecord is one vCPU's exception record, at per-CPU block +
// PerCPUTrapOff (= TSS.RSP0). The stub writes the first fields; the guest
// fills Dispatch and DispatchStack once at boot. The assembly's offsets are
// generated from this definition; TestTrapRecordLayout pins every field.
type TrapRecord struct {
	Vector        uint64 // 0
	ErrorCode     uint64 // 8
	RIP           uint64 // 16
	CS            uint64 // 24
	RFLAGS        uint64 // 32
	RSP           uint64 // 40
	SS            uint64 // 48
	CR2           uint64 // 56
	SavedRAX      uint64 // 64: scratch for the stub
	Dispatch      uint64 // 72: ring-3 entry the stub returns to
	DispatchStack uint64 // 80: top of the exception stack
	Depth         uint64 // 88: nesting count kept by the dispatcher
	Masked        uint64 // 96: non-zero while the dispatcher runs: no interrupts
	// PrevMasked is Masked as the interrupted code had it (an exception
	// inside an irqSave region): the stub saves it, and the return to the
	// interrupted code restores it instead of unmasking.
	PrevMasked uint64 // 104
	_          [2]uint64
}

// TrapFrame is the ring-0 stack just below the TrapRecord as the stub
// leaves it: the vector and error code the entry stub pushed (a dummy 0 for
// vectors without one) and the CPU's frame, whose RIP and RSP slots now
// return to the dispatcher (the record holds the interrupted ones).
type TrapFrame struct {
	Vector, ErrorCode, DispatchRIP, CS, RFLAGS, DispatchRSP, SS uint64
}

// TrapFrameSize is TrapFrame's size: it starts at PerCPUTrapOff - TrapFrameSize.
const TrapFrameSize = 56

//go:generate go run ./internal/abigen

// TrapRecordSize is the record's size (a multiple of 16 keeps RSP0 aligned).
const TrapRecordSize = 128

// Offsets into TrapRecord for host code reading a record in guest memory.
// The assembly takes its offsets from trap_offsets.h, which go generate
// writes from the struct itself (internal/abigen).
const (
	TrapOffDispatch = uint64(unsafe.Offsetof(TrapRecord{}.Dispatch))
	TrapOffMasked   = uint64(unsafe.Offsetof(TrapRecord{}.Masked))
)

// TrapErrorCode reports whether the CPU pushes an error code for vector v.
// It is the one table of vectors: internal/abigen generates the entry stubs
// in trap_stubs_amd64.s from it, and TestStubInstructionCounts checks each
// linked stub against it.
func TrapErrorCode(v int) bool {
	switch v {
	case 8, 10, 11, 12, 13, 14, 17, 21, 29, 30:
		return true
	}
	return false
}

// Gate encodes a 16-byte 64-bit interrupt gate to handler (selector
// SelKernelCode, type 0xE, present, DPL 0, the given IST index).
func Gate(handler uint64, ist uint8) (lo, hi uint64) {
	lo = handler&0xffff | uint64(SelKernelCode)<<16 | uint64(ist&7)<<32 |
		uint64(0x8e)<<40 | (handler>>16&0xffff)<<48
	return lo, handler >> 32
}

// RFlagsIF is RFLAGS' interrupt flag.
const RFlagsIF = 1 << 9
