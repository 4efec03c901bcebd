package sim

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"slices"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Series is one line of a plot.
type Series struct {
	Name string
	X, Y []float64
}

// Plot is a line chart with dots, drawn to a PNG: enough to show how a figure grows with N.
type Plot struct {
	Title, XLabel, YLabel string
	LogX                  bool
	Series                []Series
}

var palette = []color.RGBA{{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {148, 103, 189, 255}}

// WritePNG draws the plot at w x h pixels.
func (p Plot) WritePNG(out io.Writer, w, h int) error {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	left, right, top, bottom := 70, w-20, 40, h-50
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), 0.0, math.Inf(-1)
	tx := func(x float64) float64 {
		if p.LogX {
			return math.Log10(x)
		}
		return x
	}
	for _, s := range p.Series {
		for i := range s.X {
			xmin, xmax = math.Min(xmin, tx(s.X[i])), math.Max(xmax, tx(s.X[i]))
			ymax = math.Max(ymax, s.Y[i])
		}
	}
	if xmax <= xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax *= 1.1
	px := func(x float64) int { return left + int((tx(x)-xmin)/(xmax-xmin)*float64(right-left)) }
	py := func(y float64) int { return bottom - int((y-ymin)/(ymax-ymin)*float64(bottom-top)) }
	grey, black := color.RGBA{200, 200, 200, 255}, color.RGBA{0, 0, 0, 255}
	for i := 0; i <= 4; i++ { // horizontal grid with the y values
		y := ymin + (ymax-ymin)*float64(i)/4
		line(img, left, py(y), right, py(y), grey)
		label(img, 4, py(y)+4, fmt.Sprintf("%.4g", y), black)
	}
	line(img, left, bottom, right, bottom, black)
	line(img, left, top, left, bottom, black)
	var xs []float64
	for _, s := range p.Series {
		xs = append(xs, s.X...)
	}
	slices.Sort(xs)
	xs = slices.Compact(xs)
	step := max(1, (len(xs)+7)/8) // at most about 8 labels
	for i, x := range xs {
		if i%step == 0 || i == len(xs)-1 {
			line(img, px(x), bottom, px(x), bottom+4, black)
			label(img, px(x)-10, bottom+16, fmt.Sprintf("%.4g", x), black)
		}
	}
	label(img, left, 20, p.Title, black)
	label(img, (left+right)/2-len(p.XLabel)*3, h-12, p.XLabel, black)
	label(img, 4, top-8, p.YLabel, black)
	for i, s := range p.Series {
		c := palette[i%len(palette)]
		for j := range s.X {
			x, y := px(s.X[j]), py(s.Y[j])
			if j > 0 {
				line(img, px(s.X[j-1]), py(s.Y[j-1]), x, y, c)
			}
			dot(img, x, y, c)
		}
		label(img, right-130, top+14*(i+1), "- "+s.Name, c)
	}
	return png.Encode(out, img)
}

func label(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func dot(img *image.RGBA, x, y int, c color.Color) {
	for dx := -2; dx <= 2; dx++ {
		for dy := -2; dy <= 2; dy++ {
			img.Set(x+dx, y+dy, c)
		}
	}
}

// line draws a straight line (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
