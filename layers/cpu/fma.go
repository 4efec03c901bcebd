package cpu

import "math"

// fma32 is a float32 fused multiply-add, a*b + c rounded once, as VFMADD231PS computes it.
// The product of two float32 values is exact in float64; the sum is computed exactly as
// s + e (TwoSum) and s is rounded to odd (its last bit set when e is not zero), after which
// the conversion to float32 rounds exactly as a single rounding would (53 >= 24 + 2 bits).
// Explicit float64 conversions keep the compiler from fusing any of it.
func fma32(a, b, c float32) float32 {
	p := float64(float64(a) * float64(b))
	z := float64(c)
	s := float64(p + z)
	bv := float64(s - p)
	e := float64(float64(p-float64(s-bv)) + float64(z-bv))
	if e != 0 && !math.IsInf(s, 0) {
		bits := math.Float64bits(s)
		if bits&1 == 0 {
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}
