package firmware

import (
	"testing"
	"unsafe"
)

// field is one pinned field: where the struct puts it, and where the ABI
// says it is. The wanted offsets are written out as numbers on purpose: a
// change to a struct must come with a change here (and a version bump).
type field struct {
	name      string
	got, want uintptr
}

func checkFields(t *testing.T, typ string, fields []field) {
	t.Helper()
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s.%s at %d, want %d", typ, f.name, f.got, f.want)
		}
	}
}

func TestBootInfoLayout(t *testing.T) {
	var b BootInfo
	checkFields(t, "BootInfo", []field{
		{"size", unsafe.Sizeof(b), 4240},
		{"Magic", unsafe.Offsetof(b.Magic), 0},
		{"Version", unsafe.Offsetof(b.Version), 8},
		{"NumCPUs", unsafe.Offsetof(b.NumCPUs), 12},
		{"RAMBytes", unsafe.Offsetof(b.RAMBytes), 16},
		{"RAMTop", unsafe.Offsetof(b.RAMTop), 24},
		{"TSCKHz", unsafe.Offsetof(b.TSCKHz), 32},
		{"PerCPUBase", unsafe.Offsetof(b.PerCPUBase), 40},
		{"PerCPUStride", unsafe.Offsetof(b.PerCPUStride), 48},
		{"KernelStart", unsafe.Offsetof(b.KernelStart), 56},
		{"KernelEnd", unsafe.Offsetof(b.KernelEnd), 64},
		{"TraceBase", unsafe.Offsetof(b.TraceBase), 72},
		{"TraceSize", unsafe.Offsetof(b.TraceSize), 80},
		{"TickNanos", unsafe.Offsetof(b.TickNanos), 88},
		{"NumMem", unsafe.Offsetof(b.NumMem), 96},
		{"NumInUse", unsafe.Offsetof(b.NumInUse), 100},
		{"NumBad", unsafe.Offsetof(b.NumBad), 104},
		{"CmdlineLen", unsafe.Offsetof(b.CmdlineLen), 108},
		{"Workload", unsafe.Offsetof(b.Workload), 112},
		{"Mem", unsafe.Offsetof(b.Mem), 144},
		{"InUse", unsafe.Offsetof(b.InUse), 144 + 24*MaxMemRanges},
		{"Cmdline", unsafe.Offsetof(b.Cmdline), 144 + 24*(MaxMemRanges+MaxInUse)},
		{"BadFrames", unsafe.Offsetof(b.BadFrames), 144 + 24*(MaxMemRanges+MaxInUse) + CmdlineMax},
	})
	var r MemRange
	checkFields(t, "MemRange", []field{
		{"size", unsafe.Sizeof(r), 24},
		{"Base", unsafe.Offsetof(r.Base), 0},
		{"Size", unsafe.Offsetof(r.Size), 8},
		{"Kind", unsafe.Offsetof(r.Kind), 16},
	})
	if unsafe.Sizeof(b) > BootInfoSize {
		t.Errorf("BootInfo is %d bytes, exceeds its %d-byte area", unsafe.Sizeof(b), BootInfoSize)
	}
}

func TestReportRingLayout(t *testing.T) {
	var r ReportRing
	var e ReportEntry
	checkFields(t, "ReportRing", []field{
		{"size", unsafe.Sizeof(r), 1600},
		{"Head", unsafe.Offsetof(r.Head), 0},
		{"Tail", unsafe.Offsetof(r.Tail), 8},
		{"Entries", unsafe.Offsetof(r.Entries), 64},
	})
	checkFields(t, "ReportEntry", []field{
		{"size", unsafe.Sizeof(e), 24},
		{"Key", unsafe.Offsetof(e.Key), 0},
		{"KeyLen", unsafe.Offsetof(e.KeyLen), 8},
		{"Value", unsafe.Offsetof(e.Value), 16},
	})
	if unsafe.Sizeof(r) != ReportRingSize || ReportRingEntries&(ReportRingEntries-1) != 0 {
		t.Errorf("ReportRing is %d bytes, ReportRingSize %d, %d entries", unsafe.Sizeof(r), ReportRingSize, ReportRingEntries)
	}
}

func TestMailboxLayout(t *testing.T) {
	var m Mailbox
	checkFields(t, "Mailbox", []field{
		{"size", unsafe.Sizeof(m), MailboxStride},
		{"Nr", unsafe.Offsetof(m.Nr), 0},
		{"Args", unsafe.Offsetof(m.Args), 8},
		{"Ret", unsafe.Offsetof(m.Ret), 48},
		{"Seq", unsafe.Offsetof(m.Seq), 56},
	})
	if len(m.Args) != 5 {
		t.Errorf("Mailbox has %d arguments, want 5", len(m.Args))
	}
}

func TestConsoleHeaderLayout(t *testing.T) {
	var h ConsoleHeader
	checkFields(t, "ConsoleHeader", []field{
		{"size", unsafe.Sizeof(h), 64},
		{"Head", unsafe.Offsetof(h.Head), 0},
		{"Tail", unsafe.Offsetof(h.Tail), 8},
	})
}

func TestFaultFrameLayout(t *testing.T) {
	var f FaultFrame
	checkFields(t, "FaultFrame", []field{
		{"size", unsafe.Sizeof(f), 200},
		{"Vector", unsafe.Offsetof(f.Vector), 0},
		{"ErrorCode", unsafe.Offsetof(f.ErrorCode), 8},
		{"CR2", unsafe.Offsetof(f.CR2), 16},
		{"RIP", unsafe.Offsetof(f.RIP), 24},
		{"CS", unsafe.Offsetof(f.CS), 32},
		{"RFLAGS", unsafe.Offsetof(f.RFLAGS), 40},
		{"RSP", unsafe.Offsetof(f.RSP), 48},
		{"SS", unsafe.Offsetof(f.SS), 56},
		{"RBP", unsafe.Offsetof(f.RBP), 64},
		{"Regs", unsafe.Offsetof(f.Regs), 72},
	})
	if len(f.Regs) != 16 {
		t.Errorf("FaultFrame has %d registers, want 16", len(f.Regs))
	}
}
