package vmm

// Stop-the-world for checkpoints: the initiator sets pausing, kicks the
// other vCPUs out of KVM_RUN and waits until they have all parked; the run
// stopping or halting releases everyone.

// park holds a vCPU outside KVM_RUN while another one checkpoints.
func (vm *VM) park(v *vcpu) {
	vm.pauseMu.Lock()
	vm.parked++
	vm.pauseCnd.Broadcast()
	for vm.pausing.Load() && !vm.stopped.Load() && !vm.halting.Load() {
		vm.pauseCnd.Wait()
	}
	vm.parked--
	vm.pauseMu.Unlock()
}

// stopTheWorld brings every other vCPU out of KVM_RUN; resume undoes it.
func (vm *VM) stopTheWorld(self *vcpu) {
	vm.pauseMu.Lock()
	for vm.pausing.Load() { // another vCPU is checkpointing: wait our turn
		vm.pauseMu.Unlock()
		vm.park(self)
		vm.pauseMu.Lock()
	}
	vm.pausing.Store(true)
	vm.pauseMu.Unlock()
	for _, v := range vm.vcpus {
		if v != self {
			v.interrupt()
		}
	}
	vm.pauseMu.Lock()
	for vm.parked < len(vm.vcpus)-1 && !vm.stopped.Load() && !vm.halting.Load() {
		vm.pauseCnd.Wait()
	}
	vm.pauseMu.Unlock()
}

func (vm *VM) resumeTheWorld() {
	vm.pauseMu.Lock()
	vm.pausing.Store(false)
	vm.pauseCnd.Broadcast()
	vm.pauseMu.Unlock()
}
