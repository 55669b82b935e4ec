# make        builds the guest kernel, then bin/vmm with it embedded
# make run    builds and boots the default guest (needs /dev/kvm)
# make test   builds, then runs every test (KVM tests skip without /dev/kvm)
# make mutate boots one mutant guest per injected bug; fails unless every one is caught
GO ?= go
GUEST := cmd/vmm/kernel/guest.elf

.PHONY: all vmm guest run test bench mutate clean
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

mutate:
	$(GO) test -count=1 -timeout 30m -run '^TestMutants$$' -v ./internal/mutate/ -mutate

clean:
	rm -rf bin $(GUEST)
