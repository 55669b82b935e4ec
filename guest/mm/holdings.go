package mm

// Holdings is the guest's declaration of the blocks its workloads hold
// outside any structure the host can see (page tables, the metadata, the
// kernel image...): the guest registers it once (HCRegisterHeld) and keeps
// it current; at every checkpoint the host reads it and counts each block
// it names as owned, so an ALLOCATED block that nothing owns is a leak.
//
// A declaration names one held block directly (Block) and/or a word array
// in guest RAM of held blocks (Table: Words words, an entry every Stride
// words whose last word is the block, 0 for an empty entry). Blocks are
// written phys | order, the way the workloads' tables hold them. The host
// bounds everything: N <= MaxHoldings, Stride 1..MaxHoldStride, Words <=
// MaxHoldWords, and each named block must be an allocated block of that
// order. Fixed layout, little-endian:
//
//	off  size field
//	  0     8 Magic      HoldingsMagic
//	  8     8 N          declarations in use (the first N of Decl)
//	 16  16*32 Decl[16]  {Block, Table, Words, Stride} uint64 each
//	528         (size)
type Holdings struct {
	Magic uint64
	N     uint64
	Decl  [MaxHoldings]Holding
}

// Holding is one declaration (see Holdings); the zero value declares nothing.
type Holding struct {
	Block  uint64 // phys | order of a held block, 0 = none
	Table  uint64 // physical address of a word array of held blocks, 0 = none
	Words  uint64 // the array's length in words
	Stride uint64 // words per entry; the last word of each entry is a block
}

// Holdings limits and layout.
const (
	HoldingsMagic   uint64 = 0x444c45484d4d4f47 // "GOMMHELD" little-endian
	MaxHoldings            = 16
	MaxHoldStride          = 8
	MaxHoldWords           = 1 << 20
	HoldingSize            = 32
	HoldingsOffDecl        = 16
	HoldingsSize           = HoldingsOffDecl + MaxHoldings*HoldingSize
)

// HeldBlock packs a block as a Holdings entry: phys | order.
//
//go:nosplit
func HeldBlock(f PhysFrame, order uint8) uint64 { return f.StartAddress() | uint64(order) }
