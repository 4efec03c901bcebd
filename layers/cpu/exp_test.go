package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ulps is how many float32 values lie between a and b.
func ulps(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia < 0x80000000 != (ib < 0x80000000) {
		return math.MaxInt64
	}
	if ia > ib {
		return ia - ib
	}
	return ib - ia
}

func expEdges() []float32 {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, -0.5, expHi, expLo,
		math.Nextafter32(expHi, 100), math.Nextafter32(expLo, -100), math.Nextafter32(expHi, 0), math.Nextafter32(expLo, 0),
		88.7, -103, 1e-30, -1e-30, 1e30, -1e30, math.MaxFloat32, -math.MaxFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0.34657359, -0.34657359, 1e-45}
	for k := -126; k <= 127; k += 7 {
		xs = append(xs, float32(k)*float32(math.Ln2), float32(k)*float32(math.Ln2)+float32(math.Ln2)/2)
	}
	return xs
}

func TestExp32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	xs := expEdges()
	for range 200000 {
		xs = append(xs, (r.Float32()*2-1)*90)
	}
	for range 20000 {
		xs = append(xs, (r.Float32()*2-1)*2)
	}
	worst := int64(0)
	for _, x := range xs {
		got := exp32(x)
		switch {
		case x != x:
			if got == got {
				t.Fatalf("exp32(NaN) = %g", got)
			}
			continue
		case x > expHi:
			if !math.IsInf(float64(got), 1) {
				t.Fatalf("exp32(%g) = %g, want +Inf", x, got)
			}
			continue
		case x < expLo:
			if got != 0 {
				t.Fatalf("exp32(%g) = %g, want 0", x, got)
			}
			continue
		}
		want := float32(math.Exp(float64(x)))
		if u := ulps(got, want); u > worst {
			worst = u
			if u > 2 {
				t.Fatalf("exp32(%g) = %g, e^x = %g (%d ulp)", x, got, want, u)
			}
		}
	}
	t.Logf("worst error %d ulp over %d values", worst, len(xs))
}

// The vector kernel gives exp32's bits on every lane, at every length and offset.
func TestExpRowIsExp32(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	xs := expEdges()
	for range 4096 {
		xs = append(xs, (r.Float32()*2-1)*100)
	}
	for n := 0; n <= 40; n++ {
		for off := 0; off+n <= len(xs); off += 97 {
			src := xs[off : off+n]
			dst := make([]float32, n)
			expRow(dst, src)
			for i, x := range src {
				if want := exp32(x); math.Float32bits(dst[i]) != math.Float32bits(want) {
					t.Fatalf("n=%d lane %d: exp of %g (%#x): row %g (%#x), exp32 %g (%#x)", n, i, x, math.Float32bits(x), dst[i], math.Float32bits(dst[i]), want, math.Float32bits(want))
				}
			}
		}
	}
	in := append([]float32(nil), xs...) // in place
	want := make([]float32, len(in))
	for i, x := range in {
		want[i] = exp32(x)
	}
	expRow(in, in)
	for i := range in {
		if math.Float32bits(in[i]) != math.Float32bits(want[i]) {
			t.Fatalf("in place, lane %d: %g, want %g", i, in[i], want[i])
		}
	}
}

func TestLogisticRow(t *testing.T) {
	xs := expEdges()
	out := make([]float32, len(xs))
	logisticRow(out, xs)
	for i, x := range xs {
		if x != x {
			if out[i] == out[i] {
				t.Fatalf("logistic(NaN) = %g", out[i])
			}
			continue
		}
		want := 1 / (1 + math.Exp(-float64(x)))
		if d := math.Abs(float64(out[i]) - want); d > 2e-7*math.Max(1, want) && d > 1e-37 {
			t.Fatalf("logistic(%g) = %g, want %g", x, out[i], want)
		}
	}
}

// The logistic kernel gives logistic32's bits on every lane, at every length and offset, in
// place too; logistic32 is the old two-loop definition's value (-|x|, e^, then num/(1+e)).
func TestLogisticRowIsLogistic32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	xs := expEdges()
	for range 4096 {
		xs = append(xs, (r.Float32()*2-1)*30, (r.Float32()*2-1)*200)
	}
	for n := 0; n <= 40; n++ {
		for off := 0; off+n <= len(xs); off += 89 {
			src := xs[off : off+n]
			dst := make([]float32, n)
			logisticRow(dst, src)
			for i, x := range src {
				if want := logistic32(x); math.Float32bits(dst[i]) != math.Float32bits(want) && (x == x) {
					t.Fatalf("n=%d lane %d: logistic of %g (%#x): row %g (%#x), logistic32 %g (%#x)", n, i, x, math.Float32bits(x), dst[i], math.Float32bits(dst[i]), want, math.Float32bits(want))
				}
			}
		}
	}
	for _, x := range xs {
		if x != x {
			continue
		}
		e := exp32(-float32(math.Abs(float64(x))))
		num := float32(1)
		if x < 0 {
			num = e
		}
		if old := float32(num / float32(1+e)); math.Float32bits(old) != math.Float32bits(logistic32(x)) {
			t.Fatalf("logistic32(%g) = %g, the two-loop definition %g", x, logistic32(x), old)
		}
	}
	in := append([]float32(nil), xs...)
	want := make([]float32, len(in))
	for i, x := range in {
		want[i] = logistic32(x)
	}
	logisticRow(in, in)
	for i := range in {
		if math.Float32bits(in[i]) != math.Float32bits(want[i]) && want[i] == want[i] {
			t.Fatalf("in place, lane %d: %g, want %g", i, in[i], want[i])
		}
	}
}

func FuzzExpRow(f *testing.F) {
	f.Add(float32(1), float32(-87.3), float32(88.3), 9)
	f.Fuzz(func(t *testing.T, a, b, c float32, n int) {
		n = n%64 + 1
		if n < 1 {
			n = -n + 1
		}
		src := make([]float32, n)
		for i := range src {
			src[i] = []float32{a, b, c}[i%3] * float32(i%7+1) / 3
		}
		dst := make([]float32, n)
		expRow(dst, src)
		for i, x := range src {
			if math.Float32bits(dst[i]) != math.Float32bits(exp32(x)) {
				t.Fatalf("lane %d of %d: exp of %g: %g, exp32 %g", i, n, x, dst[i], exp32(x))
			}
		}
		logisticRow(dst, src)
		for i, x := range src {
			if want := logistic32(x); math.Float32bits(dst[i]) != math.Float32bits(want) && want == want {
				t.Fatalf("lane %d of %d: logistic of %g: %g, logistic32 %g", i, n, x, dst[i], want)
			}
		}
	})
}
