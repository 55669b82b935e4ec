package vmm

import "unsafe"

// Result is the summary of one run; `vmm boot --json` prints it.
type Result struct {
	Outcome    string `json:"outcome"` // OutcomeExit, OutcomeFault, OutcomeTimeout, OutcomeError
	ExitStatus int    `json:"exit_status"`
	// GuestExitStatus is the status the guest asked for (outcome "exit");
	// ExitStatus differs from it when the host found violations.
	// Absent when the guest never asked to exit.
	GuestExitStatus *int `json:"guest_exit_status,omitempty"`
	// ProgramExitStatus is the user program's own status (vmm run, outcome
	// "exit"); absent when no program ran to its end.
	ProgramExitStatus *int `json:"program_exit_status,omitempty"`
	// ProgramKilled says where a program the kernel killed was.
	ProgramKilled *ProgramKill  `json:"program_killed,omitempty"`
	Reason        string        `json:"reason"`
	CPUs          int           `json:"cpus"`
	MemBytes      uint64        `json:"mem_bytes"`
	Crash         *CrashReport  `json:"crash,omitempty"`
	Registration  *Registration `json:"registration,omitempty"`
	// RegistrationError says which rule a refused registration broke.
	RegistrationError string       `json:"registration_error,omitempty"`
	Checkpoints       []Checkpoint `json:"checkpoints"`
	Reports           []Report     `json:"reports"`
	// ReportsDropped counts HCReport calls refused for a new key once
	// maxReportKeys distinct keys were held.
	ReportsDropped uint64       `json:"reports_dropped"`
	Console        ConsoleStats `json:"console"`
	Dump           *DumpResult  `json:"dump,omitempty"`
	VCPUs          []VCPUStats  `json:"vcpus"`
	// TicksInjected counts timer interrupts delivered to vCPU 0 (--tick
	// ticks every vCPU; HCKick interrupts are not counted).
	TicksInjected uint64 `json:"ticks_injected"`
	Timing        Timing `json:"timing"`
}

// ProgramKill is a user program's fatal fault (vmm run): the signal Linux
// would have sent, the faulting instruction and, for a page fault, the
// address. Where is RIP symbolized from the program's own ELF (set by the
// CLI, which has it).
type ProgramKill struct {
	Signal  int    `json:"signal"`
	RIP     uint64 `json:"rip"`
	Address uint64 `json:"address"`
	Where   string `json:"where,omitempty"`
}

// VCPUStats is what one vCPU did. HypercallsIssued is the guest's own count
// (its mailbox Seq); it equals HypercallsHandled unless an exit was lost or
// handled twice.
type VCPUStats struct {
	CPU               int    `json:"cpu"`
	HypercallsIssued  uint64 `json:"hypercalls_issued"`
	HypercallsHandled uint64 `json:"hypercalls_handled"`
	// RIP and Where are where the vCPU was when the run ended.
	RIP   uint64 `json:"rip"`
	Where string `json:"where"`
}

// Timing holds the run's measured durations.
type Timing struct {
	// CreateToEntryNanos: VM fully built until vCPU 0 first entered KVM_RUN.
	CreateToEntryNanos int64 `json:"create_to_entry_ns"`
	RunNanos           int64 `json:"run_ns"`
}

// Violations is the total of violations found at every checkpoint.
func (r *Result) Violations() int {
	n := 0
	for _, c := range r.Checkpoints {
		n += c.Violations
	}
	return n
}

// ReportValue returns the last value the guest reported under key.
func (r *Result) ReportValue(key string) (uint64, bool) {
	for i := len(r.Reports) - 1; i >= 0; i-- {
		if r.Reports[i].Key == key {
			return r.Reports[i].Value, true
		}
	}
	return 0, false
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
