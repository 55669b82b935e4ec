# make        builds the guest kernel, then bin/vmm with it embedded
# make run    builds and boots the default guest (needs /dev/kvm)
# make test   builds, then runs every test (KVM tests skip without /dev/kvm)
GO ?= go
GUEST := cmd/vmm/kernel/guest.elf

.PHONY: all vmm guest run test bench clean
all: vmm

guest:
	scripts/build-guest.sh $(GUEST)

vmm: guest
	$(GO) build -o bin/vmm ./cmd/vmm

run: vmm
	bin/vmm boot

test: vmm
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race ./guest/mm/ ./vmm/ ./cmd/vmm/

bench: vmm
	$(GO) test -run '^$$' -bench . -benchtime 2s ./guest/mm/
	bin/vmm bench
	bin/vmm bench --floors

clean:
	rm -rf bin $(GUEST)
