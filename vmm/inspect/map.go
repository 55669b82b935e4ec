package inspect

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/bits"

	"github.com/vmm-dev/vmm/guest/mm"
)

// palette is indexed by class. Free blocks are a ramp of greens, light for
// small orders and dark for large ones, so fragmentation is visible.
var palette = func() color.Palette {
	p := make(color.Palette, numClasses)
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
	return p
}()

// legendEntries are the single-colour legend items (the free ramp is drawn
// separately).
var legendEntries = []struct {
	c     class
	label string
}{
	{cKernel, "kernel"}, {cUser, "user"}, {cAnonymous, "anonymous"}, {cCOW, "COW"}, {cDLL, "DLL"},
	{cPageTable, "page table"}, {cPoisoned, "poisoned"}, {cNotRAM, "not RAM"}, {cIllegal, "illegal"},
}

// Map geometry.
const (
	minRowFrames = 256
	maxRowFrames = 1024
	margin       = 4
	swatch       = 7
)

// Map draws physical memory as a PNG, one pixel per frame (PFN 0 at the top
// left, rows of Width frames), with a title and a legend, and returns the
// image bounds.
func (in *Inspection) Map(w io.Writer) (image.Rectangle, error) {
	img, err := in.render()
	if err != nil {
		return image.Rectangle{}, err
	}
	return img.Rect, png.Encode(w, img)
}

// render classifies every frame and lays out the image.
func (in *Inspection) render() (*image.Paletted, error) {
	cls, err := in.classes()
	if err != nil {
		return nil, err
	}
	n := uint64(len(cls))
	width := rowFrames(n)
	rows := int((n + uint64(width) - 1) / uint64(width))
	title := fmt.Sprintf("physical memory: %d frames (%d MiB of address space), %d frames per row", n, n*mm.PageSize>>20, width)
	titleH := flow(nil, 0, width, words(title))
	legendH := legend(nil, 0, width)
	mapY := margin + titleH + margin
	img := image.NewPaletted(image.Rect(0, 0, width, mapY+rows+margin+legendH+margin), palette)
	for i := range img.Pix {
		img.Pix[i] = uint8(cBackground)
	}
	flow(img, margin, width, words(title))
	copy(img.Pix[mapY*img.Stride:], classBytes(cls))
	legend(img, mapY+rows+margin, width)
	return img, nil
}

// rowFrames picks a power-of-two row width giving a roughly square map,
// wide enough for the legend and capped so huge guests stay viewable.
func rowFrames(n uint64) int {
	side := uint64(1) << ((bits.Len64(n-1) + 1) / 2) // >= sqrt(n)
	return int(min(max(side, minRowFrames), maxRowFrames))
}

func classBytes(c []class) []byte {
	b := make([]byte, len(c))
	for i, v := range c {
		b[i] = byte(v)
	}
	return b
}

// item is one unit of a flow layout: a swatch (or ramp) and/or text.
type item struct {
	swatches []class
	text     string
}

func (it item) width() int {
	return len(it.swatches)*swatch/max(1, len(it.swatches)/2+1)*0 + swatchW(it) + textWidth(it.text)
}

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
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if i > start {
				out = append(out, item{text: s[start:i]})
			}
			start = i + 1
		}
	}
	return out
}

// flow lays items out left to right from (margin, y), wrapping at width;
// it draws them when img is not nil and returns the height used.
func flow(img *image.Paletted, y, width int, items []item) int {
	const lineH, gap = glyphH + 2, glyphW
	x, h := margin, lineH
	for _, it := range items {
		if x > margin && x+it.width() > width-margin {
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
			img.SetColorIndex(x, y, uint8(c))
		}
	}
}

// legend draws (or measures, img == nil) the legend at y.
func legend(img *image.Paletted, y, width int) int {
	ramp := make([]class, mm.NumOrders)
	for k := range ramp {
		ramp[k] = cFree + class(k)
	}
	items := []item{{swatches: ramp, text: fmt.Sprintf("free, order 0-%d", mm.MaxOrder)}}
	for _, e := range legendEntries {
		items = append(items, item{swatches: []class{e.c}, text: e.label})
	}
	return flow(img, y, width, items)
}
