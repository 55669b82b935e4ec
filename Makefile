# make        builds the guest kernel, then bin/vmm with it embedded
# make guest  rebuilds the committed guest image cmd/vmm/kernel/guest.elf
# make guest-check  fails if that image differs from a fresh build of ./guest
# make run    builds and boots the default guest (needs /dev/kvm)
# make test   builds, then runs every test (KVM tests skip without /dev/kvm)
# make check  gofmt, go vet, go mod tidy -diff and staticcheck (make tools installs it)
# make mutate boots one mutant guest per injected bug; fails unless every one is caught
GO ?= go
GUEST := cmd/vmm/kernel/guest.elf
STATICCHECK_VERSION := v0.8.2
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: all vmm guest guest-check run test check tools bench mutate clean
all: vmm

guest:
	scripts/build-guest.sh $(GUEST)

guest-check:
	$(GO) test -count=1 -run '^TestEmbeddedGuestMatchesSource$$' ./cmd/vmm/

vmm: guest
	$(GO) build -trimpath -o bin/vmm ./cmd/vmm

run: vmm
	bin/vmm boot

test: guest-check vmm
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race ./guest/mm/ ./vmm/ ./cmd/vmm/

check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(STATICCHECK) ./...

tools:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

bench: vmm
	$(GO) test -run '^$$' -bench . -benchtime 2s ./guest/mm/
	bin/vmm bench
	bin/vmm bench --floors

mutate:
	$(GO) test -count=1 -timeout 30m -run '^TestMutants$$' -v ./internal/mutate/ -mutate

clean:
	rm -rf bin
