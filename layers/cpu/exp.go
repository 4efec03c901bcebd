package cpu

import "math"

// e^x in float32, one definition for every path: the vector kernel (exp_amd64.s) computes
// each lane with the same IEEE operations in the same order as exp32, so a row gives the same
// bits whatever part of it the kernel takes and whatever the CPU (the thread count and the
// batch only decide which rows run where). It replaced math.Exp in float64, which took 11-15%
// of a decode step and has no vector form.
//
// The method is Cephes' expf: n = round(x·log2 e) (to even), r = x - n·ln 2 in two FMAs
// (ln 2 split in a high part exact in few bits and a low part), e^r by a degree-7 polynomial
// (Horner, FMA), times 2^n built in the exponent bits. Below expLo (results under the
// smallest normal float32) it is 0, above expHi (n would be 128) +Inf, NaN stays NaN. Its
// error is within 2 ulp of e^x (TestExp32).
const (
	expLog2e = float32(1.44269504088896341)
	expLn2Hi = float32(0.693359375)
	expLn2Lo = float32(-2.12194440e-4)
	expC5    = float32(1.9875691500e-4)
	expC4    = float32(1.3981999507e-3)
	expC3    = float32(8.3334519073e-3)
	expC2    = float32(4.1665795894e-2)
	expC1    = float32(1.6666665459e-1)
	expC0    = float32(5.0000001201e-1)
	expHi    = float32(88.37626)
	expLo    = float32(-87.33654)
)

// exp32 is e^x (see above); the explicit conversions keep the compiler from fusing
// operations the kernel rounds one by one.
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > expHi:
		return float32(math.Inf(1))
	case x < expLo:
		return 0
	}
	n := float32(math.RoundToEven(float64(float32(x * expLog2e))))
	r := fma32(n, -expLn2Hi, x)
	r = fma32(n, -expLn2Lo, r)
	p := fma32(r, expC5, expC4)
	p = fma32(r, p, expC3)
	p = fma32(r, p, expC2)
	p = fma32(r, p, expC1)
	p = fma32(r, p, expC0)
	r2 := float32(r * r)
	y := fma32(r2, p, r)
	y = float32(y + 1)
	return float32(y * math.Float32frombits(uint32(int32(n)+127)<<23))
}

// expRow writes e^src[i] to dst[i] (len(dst) >= len(src)): blocks of 8 on the vector kernel
// where the CPU has one, the rest with exp32.
func expRow(dst, src []float32) { byEights(dst, src, exp8, exp32) }

// byEights writes f of each src value to dst: blocks of 8 on the vector kernel k (which
// computes f's bits on every lane) where the CPU has one, the rest one by one.
func byEights(dst, src []float32, k func(dst, src *float32, n int), f func(float32) float32) {
	n := len(src)
	done := 0
	if hasExpVec && n >= 8 {
		done = n &^ 7
		k(&dst[0], &src[0], done)
	}
	for i := done; i < n; i++ {
		dst[i] = f(src[i])
	}
}

// logistic32 is 1/(1+e^-x) from e = exp32(-|x|) (which never overflows): 1/(1+e) for
// x >= 0, e/(1+e) below; the numerator is chosen by x's sign bit (for -0 either gives 1/2).
func logistic32(x float32) float32 {
	e := exp32(math.Float32frombits(math.Float32bits(x) | 1<<31))
	num := float32(1)
	if math.Float32bits(x)>>31 != 0 {
		num = e
	}
	return float32(num / float32(1+e))
}

// logisticRow writes logistic32 of each x of src to dst: blocks of 8 on the vector kernel
// where the CPU has one (the same operations per lane: 0.4 ns a value, where the scalar
// loops took 3), the rest one by one.
func logisticRow(dst, src []float32) { byEights(dst, src, logistic8, logistic32) }
