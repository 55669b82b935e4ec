// GS-relative offsets of cpuData's system-call slots (guest/hypercall.go),
// as 32-bit two's-complement displacements: GS base is the per-CPU block +
// firmware.PerCPUFSOff, and cpuData sits at block + firmware.PerCPUDataOff.
// TestUserOffsets checks each value against the Go definition.
#define CPU_USP 0xfffff820
#define CPU_KSP 0xfffff828
#define CPU_RIP 0xfffff830
