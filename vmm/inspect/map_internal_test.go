package inspect

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"github.com/vmm-dev/vmm/guest/mm"
)

// countColour counts the pixels of colour c inside r.
func countColour(img *image.Paletted, r image.Rectangle, c class) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if img.ColorIndexAt(x, y) == uint8(c) {
				n++
			}
		}
	}
	return n
}

// TestMapMarksOneFrameIn4GiB: a 4 GiB guest (1 Mi frames, one pixel each)
// with a single poisoned frame shows it as a visible square, the legend
// counts it, and the geometry is what MapInfo states.
func TestMapMarksOneFrameIn4GiB(t *testing.T) {
	const n = 1 << 20
	cls := make([]class, n)
	for i := range cls {
		cls[i] = cFree + mm.MaxOrder
	}
	const bad = 0x80123
	cls[bad] = cPoisoned
	var free [mm.NumOrders]uint64
	free[mm.MaxOrder] = n >> mm.MaxOrder
	img, info := render(cls, map[uint64]class{0x1000: cLeaked}, free)

	if info.FramesPerRow != 1024 || info.PixelsPerFrame != 1 || info.Frames != n ||
		info.Width != img.Rect.Dx() || info.Height != img.Rect.Dy() || info.Height < n/1024 {
		t.Fatalf("geometry %+v for image %v", info, img.Rect)
	}
	want := map[string]uint64{"free": n - 1, "poisoned": 1, "leaked": 1, "COW": 0, "DLL": 0, "illegal": 0, "kernel": 0}
	got := map[string]uint64{}
	for _, e := range info.Legend {
		got[e.State] = e.Frames
	}
	for s, w := range want {
		if f, ok := got[s]; !ok || f != w {
			t.Errorf("legend %q = %d (present %v), want %d; legend %+v", s, f, ok, w, info.Legend)
		}
	}
	x, y := info.MapX+bad%1024, info.MapY+bad/1024
	// The poisoned marker: a 5x5 square of its colour around the frame,
	// and no other poisoned pixel in the frame area.
	if c := countColour(img, image.Rect(x-2, y-2, x+3, y+3), cPoisoned); c != 25 {
		t.Errorf("one poisoned frame gives %d poisoned pixels around (%d,%d), want a 5x5 square", c, x, y)
	}
	area := image.Rect(info.MapX, info.MapY, info.MapX+1024, info.MapY+1024)
	if c := countColour(img, area, cPoisoned); c != 25 {
		t.Errorf("%d poisoned pixels in the frame area, want 25", c)
	}
	if c := countColour(img, img.Rect, cLeaked); c < 25+7 { // marker plus its legend swatch
		t.Errorf("one leaked frame gives %d pixels, want a marker", c)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if dec, err := png.Decode(&buf); err != nil || dec.Bounds() != img.Rect {
		t.Fatalf("PNG round trip: %v, %v", err, dec.Bounds())
	}
}

// TestMapTicksAndPanel: rows are labelled with physical addresses, and the
// buddy panel has a bar per order that holds free memory.
func TestMapTicksAndPanel(t *testing.T) {
	const n = 32768
	cls := make([]class, n)
	var free [mm.NumOrders]uint64
	for i := range cls {
		cls[i] = cFree + 3
	}
	free[3] = n / 8
	img, info := render(cls, nil, free)
	l := newLayout(n)
	if info.FramesPerRow != 256 || info.PixelsPerFrame != 4 || l.axisW < textWidth("0x8000000") {
		t.Fatalf("geometry %+v, axis %d", info, l.axisW)
	}
	// Text pixels left of the map: the address labels.
	if c := countColour(img, image.Rect(0, 40, l.mapX, 40+n/256*4), cText); c < 200 {
		t.Errorf("%d text pixels in the address axis, want labels", c)
	}
	// The order-3 bar below the legend: a run of its colour at least
	// panelBar/2 wide; no other order has one.
	below := image.Rect(0, img.Rect.Dy()-(mm.NumOrders+1)*(glyphH+3), img.Rect.Dx(), img.Rect.Dy())
	if c := countColour(img, below, cFree+3); c < panelBar*(glyphH-1)-10 {
		t.Errorf("order-3 bar has %d pixels, want %d", c, panelBar*(glyphH-1))
	}
	if c := countColour(img, below, cFree+4); c > swatch*swatch {
		t.Errorf("order-4 bar has %d pixels, want none", c)
	}
}
