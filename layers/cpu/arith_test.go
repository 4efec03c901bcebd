package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
)

// The row kernels give the bits of the Go loops: every op, both operands as rows or one as a
// scalar, every length up to a few vectors (the 32-, 8- and 1-wide parts), with infinities,
// NaNs, zeros of both signs and subnormals among the values.
func TestRowKernelsMatchGo(t *testing.T) {
	if !hasVecRows {
		t.Skip("no row kernels on this CPU")
	}
	r := rand.New(rand.NewPCG(1, 2))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.SmallestNonzeroFloat32, -1e-40, math.MaxFloat32, 1}
	val := func() float32 {
		if r.IntN(8) == 0 {
			return special[r.IntN(len(special))]
		}
		return float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(9)-4)))
	}
	for _, op := range []backends.OpType{backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv} {
		for n := 0; n <= 75; n++ {
			a, b := make([]float32, n), make([]float32, n)
			for i := range a {
				a[i], b[i] = val(), val()
			}
			s := val()
			for form, args := range map[string][2][]float32{"row op row": {a, b}, "row op scalar": {a, nil}, "scalar op row": {nil, b}} {
				got, want := make([]float32, n), make([]float32, n)
				if !vecRow(op, got, args[0], args[1], s, s) {
					rowOpGo(op, got, args[0], args[1], s, s)
					if n >= 8 {
						t.Fatalf("%s %s, %d values: no row kernel ran", op, form, n)
					}
				}
				rowOpGo(op, want, args[0], args[1], s, s)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
						t.Fatalf("%s %s, %d values: [%d] = %v, Go gives %v", op, form, n, i, got[i], want[i])
					}
				}
			}
		}
	}
}
