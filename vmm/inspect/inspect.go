// Package inspect reads a guest memory dump written by `vmm boot --dump`
// offline: it verifies the frame metadata the guest registered, decodes
// single frames (record, list links, where the page tables map them) and
// draws physical memory as a PNG.
//
// Everything in the dump is guest-controlled: every address, link and table
// entry is bounds-checked, and walks are capped, so a damaged or hostile dump
// yields an error or a violation report, never a panic.
package inspect

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vmm-dev/vmm/firmware"
	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/coredump"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// ErrNoRegistration: the dump carries no frame-metadata registration, so
// there is nothing to verify or decode.
var ErrNoRegistration = errors.New("the guest never registered its frame metadata")

// Inspection is an open dump plus what was decoded from its notes.
type Inspection struct {
	Path  string
	Dump  *coredump.Dump
	Info  coredump.Info
	VCPUs []coredump.VCPU

	// ExtraRoots are page-table roots verified and walked in addition to
	// the registered ones (tests use them to add crafted address spaces).
	ExtraRoots []uint64

	// mem is what is read: the dump, or a live guest's RAM (Live).
	mem verify.Memory
}

// Open opens and validates the dump at path. Format errors come back as
// the *coredump.FormatError the reader produced.
func Open(path string) (*Inspection, error) {
	d, err := coredump.Open(path)
	if err != nil {
		return nil, err
	}
	return &Inspection{Path: path, Dump: d, Info: d.Info(), VCPUs: d.VCPUs(), mem: d}, nil
}

// Live inspects a running guest's memory (stopped while it is read), for
// the debugger's monitor commands: info and vcpus say what a dump's notes
// would.
func Live(mem verify.Memory, info coredump.Info, vcpus []coredump.VCPU) *Inspection {
	return &Inspection{Path: "(live guest)", Info: info, VCPUs: vcpus, mem: mem}
}

// Close releases the dump's mapping; slices obtained earlier become invalid.
func (in *Inspection) Close() error {
	if in.Dump == nil {
		return nil
	}
	return in.Dump.Close()
}

// Roots returns the registered roots followed by ExtraRoots.
func (in *Inspection) Roots() []uint64 {
	return append(slices.Clone(in.Info.Roots), in.ExtraRoots...)
}

// spaces returns every address space worth showing: the registered roots,
// ExtraRoots, then each vCPU's CR3 not among them (the kernel's own tables,
// which the verifier does not judge but which explain where a frame is
// used), with a label for each.
func (in *Inspection) spaces() ([]uint64, map[uint64]string) {
	roots := in.Roots()
	label := make(map[uint64]string, len(roots))
	for i, r := range roots {
		if i < len(in.Info.Roots) {
			label[r] = "registered"
		} else {
			label[r] = "extra"
		}
	}
	for _, v := range in.VCPUs {
		if cr3 := v.CR3 & firmware.PTEAddrMask; label[cr3] == "" {
			label[cr3] = fmt.Sprintf("cr3 of vcpu %d", v.Index)
			roots = append(roots, cr3)
		}
	}
	return roots, label
}

// Input is the verifier's input built from the registration and Roots.
func (in *Inspection) Input() (verify.Input, error) {
	r := in.Info.Reg
	if r == nil {
		return verify.Input{}, ErrNoRegistration
	}
	boot, _ := verify.ReadBoot(in.mem) // a dump without a readable boot info skips the boot-info rules
	return verify.Input{Registration: *r, Boot: boot, Roots: in.Roots(), Holdings: in.Info.Holdings,
		SharedTables: []uint64{firmware.KernelPDPT}}, nil
}

// Verify runs the host verifier over the dump.
func (in *Inspection) Verify() (*verify.Report, error) {
	vin, err := in.Input()
	if err != nil {
		return nil, err
	}
	return verify.Verify(in.mem, vin)
}

// view returns the typed view of the registered metadata array and
// allocator state (bounds-checked against the dump).
func (in *Inspection) view() (mm.View, error) {
	vin, err := in.Input()
	if err != nil {
		return mm.View{}, err
	}
	return verify.NewView(in.mem, vin)
}
