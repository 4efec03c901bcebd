package cpu

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// fmaExact rounds a*b + c computed exactly (big.Float) to float32 once.
func fmaExact(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(200).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}

func TestFMA32IsSingleRounded(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	wide := func() float32 { return float32((r.Float64()*2 - 1) * math.Pow(2, float64(r.IntN(40)-20))) }
	cases := [][3]float32{{1, 1, 0}, {0, 5, -0}, {1 + 1.0/(1<<23), 1 - 1.0/(1<<23), -1}, {3, 1.0 / 3, -1}, {1e20, 1e20, 1}}
	for i := 0; i < 200000; i++ {
		cases = append(cases, [3]float32{wide(), wide(), wide()})
		// Near-cancellation, where double rounding would show.
		a, b := wide(), wide()
		cases = append(cases, [3]float32{a, b, -float32(float64(a) * float64(b))})
	}
	// A case where rounding to float64 first and then to float32 (double rounding) is wrong:
	// the exact sum lies just below a float32 halfway point and the float64 rounding lands on it.
	hard := [3]float32{1 + 1.0/(1<<23), float32((1 - 1.0/(1<<23)) / (1 << 24)), 1 + 1.0/(1<<23)}
	if naive := float32(math.FMA(float64(hard[0]), float64(hard[1]), float64(hard[2]))); naive == fmaExact(hard[0], hard[1], hard[2]) {
		t.Fatal("the double-rounding case does not show double rounding")
	}
	cases = append(cases, hard)
	for _, c := range cases {
		got, want := fma32(c[0], c[1], c[2]), fmaExact(c[0], c[1], c[2])
		if math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", c[0], c[1], c[2], got, want)
		}
	}
}
