package firmware

// Exit statuses the guest kernel gives HCExit for its own failures; the
// VMM passes a guest exit status through as its process exit status. They
// sit above the VMM's own statuses (vmm.Status*).
const (
	GuestExitBadBootInfo  = 10 // boot info magic or version wrong
	GuestExitBadWorkload  = 11 // --workload names no workload
	GuestExitMMInitFailed = 12 // frame metadata or buddy allocator setup failed
	GuestExitWorkloadFail = 13 // a workload failed
	GuestExitViolations   = 14 // the guest's own checker found violations
)
