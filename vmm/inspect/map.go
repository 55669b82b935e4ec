package inspect

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/bits"
	"strings"

	"github.com/vmm-dev/vmm/guest/mm"
	"github.com/vmm-dev/vmm/vmm/verify"
)

// Colours the map draws beyond the frame classes of classify.go.
const (
	cLeaked    = numClasses + iota // referenced more often than mapped
	cViolation                     // any other frame the verifier flags
	cAxis                          // ticks and grid
	cBorder                        // outline of a marked frame
	numColors
)

// palette is indexed by class. Free blocks are a ramp of greens, light for
// small orders and dark for large ones, so fragmentation is visible.
var palette = func() color.Palette {
	p := make(color.Palette, numColors)
	p[cNotRAM] = color.RGBA{0, 0, 0, 255}
	for k := 0; k < mm.NumOrders; k++ {
		t := float64(k) / mm.MaxOrder
		p[cFree+class(k)] = color.RGBA{uint8(190 - 180*t), uint8(250 - 140*t), uint8(170 - 160*t), 255}
	}
	p[cKernel] = color.RGBA{60, 110, 235, 255}
	p[cUser] = color.RGBA{245, 150, 40, 255}
	p[cAnonymous] = color.RGBA{245, 225, 60, 255}
	p[cCOW] = color.RGBA{225, 60, 205, 255}
	p[cDLL] = color.RGBA{145, 85, 225, 255}
	p[cPoisoned] = color.RGBA{230, 30, 30, 255}
	p[cPageTable] = color.RGBA{40, 225, 235, 255}
	p[cIllegal] = color.RGBA{255, 255, 255, 255}
	p[cBackground] = color.RGBA{48, 48, 48, 255}
	p[cText] = color.RGBA{235, 235, 235, 255}
	p[cLeaked] = color.RGBA{255, 120, 120, 255}
	p[cViolation] = color.RGBA{255, 255, 0, 255}
	p[cAxis] = color.RGBA{150, 150, 150, 255}
	p[cBorder] = color.RGBA{0, 0, 0, 255}
	return p
}()

// states are the legend's entries, in order. Marked states are drawn as a
// bordered square of markSide pixels around each frame (when there are at
// most maxMarked of them), so one frame is visible in a 4 GiB map.
var states = []struct {
	c      class
	label  string
	marked bool
}{
	{cFree, "free", false}, {cKernel, "kernel", false}, {cUser, "user", false}, {cAnonymous, "anonymous", false},
	{cPageTable, "page table", false}, {cNotRAM, "not RAM", false},
	{cCOW, "COW", true}, {cDLL, "DLL", true}, {cPoisoned, "poisoned", true}, {cIllegal, "illegal", true},
	{cLeaked, "leaked", true}, {cViolation, "violation", true},
}

// Map geometry.
const (
	minRowFrames = 256
	maxRowFrames = 1024
	mapPixels    = 1024 // a row's width in pixels when frames are scaled up
	margin       = 6
	swatch       = 7
	markSide     = 7 // marker outline; the frame's colour fills the 5x5 inside
	maxMarked    = 4096
	minTickGap   = 24 // pixels between physical-address ticks
	panelBar     = 300
)

// LegendEntry is one state of the map and how many frames it covers.
type LegendEntry struct {
	State  string `json:"state"`
	Frames uint64 `json:"frames"`
}

// MapInfo describes a rendered map.
type MapInfo struct {
	Width          int    `json:"width"`
	Height         int    `json:"height"`
	Frames         uint64 `json:"frames"`
	FramesPerRow   int    `json:"frames_per_row"`
	PixelsPerFrame int    `json:"pixels_per_frame"` // side of a frame's square
	// MapX, MapY are the pixel of PFN 0's top-left corner.
	MapX   int           `json:"map_x"`
	MapY   int           `json:"map_y"`
	Legend []LegendEntry `json:"legend"`
	// FreeBlocks are the free blocks per order of the second panel.
	FreeBlocks [mm.NumOrders]uint64 `json:"free_blocks"`
}

// Map draws physical memory as a PNG: frames left to right from PFN 0,
// FramesPerRow to a row, each a square of PixelsPerFrame pixels, with
// physical-address ticks down the left, rare states marked, a legend with
// counts, and a panel of free blocks per order.
func (in *Inspection) Map(w io.Writer) (MapInfo, error) {
	cls, err := in.classes()
	if err != nil {
		return MapInfo{}, err
	}
	var free [mm.NumOrders]uint64
	var marks map[uint64]class
	if rep, err := in.Verify(); err == nil {
		free, marks = rep.FreeBlocks, violationMarks(rep)
	} else {
		free = countFree(cls)
	}
	img, info := render(cls, marks, free)
	return info, png.Encode(w, img)
}

// violationMarks names the frames the verifier flags: leaked (more
// references than mappings) or otherwise in violation.
func violationMarks(rep *verify.Report) map[uint64]class {
	m := map[uint64]class{}
	for _, v := range rep.Violations {
		if v.Field == "refcount" && v.Source == "pagetable" && v.Actual > v.Expected {
			m[v.PFN] = cLeaked
		} else if m[v.PFN] == 0 {
			m[v.PFN] = cViolation
		}
	}
	return m
}

// countFree counts free block heads from the classes when the verifier
// could not run (each free block's frames share one class).
func countFree(cls []class) [mm.NumOrders]uint64 {
	var free [mm.NumOrders]uint64
	for p := uint64(0); p < uint64(len(cls)); {
		c := cls[p]
		if c < cFree || c > cFree+mm.MaxOrder {
			p++
			continue
		}
		k := uint64(c - cFree)
		free[k]++
		p += 1 << k
	}
	return free
}

// layout is the geometry of one map.
type layout struct {
	n          uint64
	perRow     int // frames per row
	px         int // pixels per frame
	rows       int
	axisW      int // width of the tick labels
	mapX, mapY int
	width      int
}

func newLayout(n uint64) layout {
	l := layout{n: n, perRow: rowFrames(n)}
	l.px = max(1, mapPixels/l.perRow)
	l.rows = int((n + uint64(l.perRow) - 1) / uint64(l.perRow))
	l.axisW = textWidth(addrLabel(n*mm.PageSize, n)) + 6
	l.mapX = margin + l.axisW
	l.width = l.mapX + l.perRow*l.px + margin
	return l
}

// rowFrames picks a power-of-two row width giving a roughly square map,
// capped so huge guests stay viewable.
func rowFrames(n uint64) int {
	side := uint64(1) << ((bits.Len64(max(n, 2)-1) + 1) / 2) // >= sqrt(n)
	return int(min(max(side, minRowFrames), maxRowFrames))
}

// render draws the whole picture and says what it shows.
func render(cls []class, marks map[uint64]class, free [mm.NumOrders]uint64) (*image.Paletted, MapInfo) {
	l := newLayout(uint64(len(cls)))
	counts := stateCounts(cls, marks)
	title := words(fmt.Sprintf("physical memory: %d frames (%s), %d frames = %s per row, %dx%d px per frame",
		l.n, sizeText(l.n*mm.PageSize), l.perRow, sizeText(uint64(l.perRow)*mm.PageSize), l.px, l.px))
	note := words(fmt.Sprintf("COW, DLL, poisoned, illegal, leaked and violation frames are drawn as %dx%d squares", markSide, markSide))
	leg := legendItems(counts)
	textW := l.width - 2*margin
	titleH := flow(nil, 0, textW, title) + flow(nil, 0, textW, note)
	l.mapY = margin + titleH + margin
	mapH := l.rows * l.px
	legendY := l.mapY + mapH + markSide + margin
	legendH := flow(nil, 0, textW, leg)
	panelY := legendY + legendH + margin
	panelH := (mm.NumOrders + 1) * (glyphH + 3)
	width := max(l.width, 2*margin+textWidth(strings.Repeat("0", 12))+panelBar+textWidth(" 0000000 blocks 0000 MIB"))
	img := image.NewPaletted(image.Rect(0, 0, width, panelY+panelH+margin), palette)
	for i := range img.Pix {
		img.Pix[i] = uint8(cBackground)
	}
	y := margin
	y += flow(img, y, textW, title)
	flow(img, y, textW, note)
	drawFrames(img, l, cls)
	drawTicks(img, l)
	drawMarks(img, l, cls, marks, counts)
	flow(img, legendY, textW, leg)
	drawBuddyPanel(img, panelY, free)

	info := MapInfo{Width: img.Rect.Dx(), Height: img.Rect.Dy(), Frames: l.n, FramesPerRow: l.perRow,
		PixelsPerFrame: l.px, MapX: l.mapX, MapY: l.mapY, FreeBlocks: free}
	for _, s := range states {
		info.Legend = append(info.Legend, LegendEntry{State: s.label, Frames: counts[s.c]})
	}
	return img, info
}

// stateCounts counts frames per legend state (every free order under
// cFree; leaked and violation frames from marks, on top of their class).
func stateCounts(cls []class, marks map[uint64]class) *[numColors]uint64 {
	var counts [numColors]uint64
	for _, c := range cls {
		counts[c]++
	}
	for k := class(1); k <= mm.MaxOrder; k++ {
		counts[cFree] += counts[cFree+k]
		counts[cFree+k] = 0
	}
	for _, c := range marks {
		counts[c]++
	}
	return &counts
}

func drawFrames(img *image.Paletted, l layout, cls []class) {
	for p, c := range cls {
		x, y := l.cell(uint64(p))
		if l.px == 1 {
			img.Pix[y*img.Stride+x] = uint8(c)
			continue
		}
		fill(img, image.Rect(x, y, x+l.px, y+l.px), c)
	}
}

// cell is the top-left pixel of frame p.
func (l layout) cell(p uint64) (int, int) {
	return l.mapX + int(p%uint64(l.perRow))*l.px, l.mapY + int(p/uint64(l.perRow))*l.px
}

// drawTicks labels rows with their physical start address, at a power-of-
// two number of rows at least minTickGap pixels apart.
func drawTicks(img *image.Paletted, l layout) {
	every := 1
	for every*l.px < minTickGap {
		every *= 2
	}
	for r := 0; r <= l.rows; r += every {
		y := l.mapY + r*l.px
		fill(img, image.Rect(l.mapX-4, y, l.mapX-1, y+1), cAxis)
		label := addrLabel(uint64(r)*uint64(l.perRow)*mm.PageSize, l.n)
		drawText(img, l.mapX-5-textWidth(label), max(y-glyphH/2, 0), label, uint8(cText))
	}
}

// addrLabel formats a physical address with as many hex digits as the
// guest's highest address needs.
func addrLabel(addr, frames uint64) string {
	digits := max(1, (bits.Len64(frames*mm.PageSize)+3)/4)
	return fmt.Sprintf("0x%0*x", digits, addr)
}

// drawMarks draws every frame of a rare state as a bordered square centred
// on its cell, the rarest states last so they stay on top.
func drawMarks(img *image.Paletted, l layout, cls []class, marks map[uint64]class, counts *[numColors]uint64) {
	mark := func(p uint64, c class) {
		x, y := l.cell(p)
		cx, cy := x+l.px/2, y+l.px/2
		h := max(markSide, l.px+2) / 2
		fill(img, image.Rect(cx-h, cy-h, cx+h+1, cy+h+1), cBorder)
		fill(img, image.Rect(cx-h+1, cy-h+1, cx+h, cy+h), c)
	}
	for _, s := range states {
		if !s.marked || counts[s.c] == 0 || counts[s.c] > maxMarked {
			continue
		}
		if s.c == cLeaked || s.c == cViolation {
			for p, c := range marks {
				if c == s.c && p < uint64(len(cls)) {
					mark(p, c)
				}
			}
			continue
		}
		for p, c := range cls {
			if c == s.c {
				mark(uint64(p), c)
			}
		}
	}
}

// legendItems is one swatch, name and frame count per state (the free
// swatch is the ramp of orders).
func legendItems(counts *[numColors]uint64) []item {
	var items []item
	for _, s := range states {
		sw := []class{s.c}
		if s.c == cFree {
			sw = make([]class, mm.NumOrders)
			for k := range sw {
				sw[k] = cFree + class(k)
			}
		}
		items = append(items, item{swatches: sw, text: fmt.Sprintf("%s %d", s.label, counts[s.c])})
	}
	return items
}

// drawBuddyPanel draws free blocks per order as /proc/buddyinfo counts
// them, with a bar for the memory each order holds.
func drawBuddyPanel(img *image.Paletted, y int, free [mm.NumOrders]uint64) {
	drawText(img, margin, y, "free blocks per order (as /proc/buddyinfo), bar: memory held", uint8(cText))
	var most uint64
	for k, n := range free {
		most = max(most, n<<k)
	}
	for k, n := range free {
		y += glyphH + 3
		label := fmt.Sprintf("order %2d", k)
		drawText(img, margin, y, label, uint8(cText))
		x := margin + textWidth(label+"  ")
		w := 0
		if most > 0 {
			w = int((n << k) * panelBar / most)
		}
		if n > 0 {
			w = max(w, 1)
		}
		fill(img, image.Rect(x, y, x+w, y+glyphH-1), cFree+class(k))
		drawText(img, x+panelBar+glyphW, y, fmt.Sprintf("%7d blocks %s", n, sizeText(n<<k*mm.PageSize)), uint8(cText))
	}
}

// sizeText formats a byte count in the largest binary unit that divides it
// ("4 KiB", "2 MiB"), else in KiB.
func sizeText(b uint64) string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", b>>20)
	}
	return fmt.Sprintf("%d KiB", b>>10)
}

// item is one unit of a flow layout: a swatch (or ramp) and/or text.
type item struct {
	swatches []class
	text     string
}

func (it item) width() int { return swatchW(it) + textWidth(it.text) }

// swatchW is the width of an item's swatches plus the gap after them.
func swatchW(it item) int {
	switch len(it.swatches) {
	case 0:
		return 0
	case 1:
		return swatch + 3
	}
	return len(it.swatches)*4 + 3 // a ramp: 4 px per colour
}

func words(s string) []item {
	var out []item
	for _, w := range strings.Fields(s) {
		out = append(out, item{text: w})
	}
	return out
}

// flow lays items out left to right from (margin, y), wrapping at width
// (the text area's, margins excluded); it draws them when img is not nil
// and returns the height used.
func flow(img *image.Paletted, y, width int, items []item) int {
	const lineH, gap = glyphH + 2, glyphW
	x, h := margin, lineH
	for _, it := range items {
		if x > margin && x+it.width() > margin+width {
			x, y, h = margin, y+lineH, h+lineH
		}
		if img != nil {
			drawItem(img, x, y, it)
		}
		x += it.width() + gap
	}
	return h
}

func drawItem(img *image.Paletted, x, y int, it item) {
	sw := swatch
	if len(it.swatches) > 1 {
		sw = 4
	}
	for i, c := range it.swatches {
		fill(img, image.Rect(x+i*sw, y, x+(i+1)*sw, y+swatch), c)
	}
	drawText(img, x+swatchW(it), y, it.text, uint8(cText))
}

func fill(img *image.Paletted, r image.Rectangle, c class) {
	r = r.Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Pix[(y-img.Rect.Min.Y)*img.Stride+x-img.Rect.Min.X] = uint8(c)
		}
	}
}
