package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

func randMat(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// chain is the documented result of one element, computed the slow way.
func chain(a, b Mat, i, j, k int) float32 {
	var c float32
	for p := 0; p < k; p++ {
		c = fma32(a.Data[a.at(i, p)], b.Data[b.at(p, j)], c)
	}
	return c
}

type shape struct{ m, n, k int }

var gemmShapes = []shape{
	{1, 1, 1}, {1, 384, 128}, {3, 5, 7}, {13, 33, 17}, {12, 32, 256}, {12, 32, 257}, {25, 70, 300},
	{8, 128, 384}, {97, 31, 513}, {64, 96, 128}, {1, 1408, 512}, {130, 40, 3},
	{2, 200, 300}, {11, 145, 40}, {5, 256, 32}, {1, 32, 256}, {14, 130, 9},
	{8, 32, 1}, {8, 33, 300}, {8, 64, 257}, {8, 1408, 512}, {8, 5, 9}, {16, 96, 40},
	{5, 64, 300}, {6, 33, 40}, {7, 128, 384}, {7, 31, 5},
	{8, 112, 70}, {1, 96, 33}, {1, 48, 300}, {1, 240, 64}, // the row kernel's 64, 32 and 16 columns
}

// Every kernel on this CPU gives, on every shape and operand layout, exactly the FMA chain of
// each element: the same bits as each other and as the definition.
func TestGemmIsTheFMAChainOnEveryKernel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, s := range gemmShapes {
		for _, trans := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			a, b := RowMajor(randMat(r, s.m*s.k), s.k), RowMajor(randMat(r, s.k*s.n), s.n)
			if trans[0] {
				a = RowMajor(randMat(r, s.m*s.k), s.m).T()
			}
			if trans[1] {
				b = RowMajor(randMat(r, s.k*s.n), s.k).T()
			}
			want := make([]float32, s.m*s.n)
			for i := 0; i < s.m; i++ {
				for j := 0; j < s.n; j++ {
					want[i*s.n+j] = chain(a, b, i, j, s.k)
				}
			}
			for _, kern := range kernels() {
				for _, threads := range []int{1, 2, 3} {
					c := randMat(r, s.m*s.n) // garbage in C must not matter
					if err := gemmWith(kern, s.m, s.n, s.k, a, b, c, s.n, threads); err != nil {
						t.Fatal(err)
					}
					for x := range c {
						if math.Float32bits(c[x]) != math.Float32bits(want[x]) {
							t.Fatalf("%s, %d threads, %+v trans %v: C[%d][%d] = %g, the chain gives %g",
								kern.name, threads, s, trans, x/s.n, x%s.n, c[x], want[x])
						}
					}
				}
			}
		}
	}
}

// Views whose rows are longer than the product reads (a slice of a wider matrix), as the
// kernels that read A and B in place see them: the same chain.
func TestGemmReadsViewsWithWideRows(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range []shape{{8, 96, 40}, {8, 130, 300}, {5, 64, 17}, {1, 200, 33}, {13, 40, 20}} {
		a := Mat{Data: randMat(r, s.m*(s.k+3)), RowStride: s.k + 3, ColStride: 1}
		b := Mat{Data: randMat(r, s.k*(s.n+5)), RowStride: s.n + 5, ColStride: 1}
		for _, kern := range kernels() {
			c := randMat(r, s.m*s.n)
			if err := gemmWith(kern, s.m, s.n, s.k, a, b, c, s.n, 1); err != nil {
				t.Fatal(err)
			}
			for x := range c {
				if want := chain(a, b, x/s.n, x%s.n, s.k); math.Float32bits(c[x]) != math.Float32bits(want) {
					t.Fatalf("%s %+v: C[%d] = %g, the chain gives %g", kern.name, s, x, c[x], want)
				}
			}
		}
	}
}

// A row's bits do not depend on the rows computed with it: a batch of 8 gives each row what
// it gets alone (prefill equals token-by-token, batch 8 equals batch 1).
func TestGemmRowsDoNotDependOnTheBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 9))
	const m, n, k = 37, 200, 333
	a, b := randMat(r, m*k), randMat(r, k*n)
	all := make([]float32, m*n)
	if err := Gemm(m, n, k, RowMajor(a, k), RowMajor(b, n), all, n, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < m; i++ {
		one := make([]float32, n)
		if err := Gemm(1, n, k, RowMajor(a[i*k:(i+1)*k], k), RowMajor(b, n), one, n, 1); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one, all[i*n:(i+1)*n]) {
			t.Fatalf("row %d alone differs from row %d of the batch", i, i)
		}
	}
}

// The result is a matrix product: against a float64 reference within float32 rounding.
func TestGemmAgreesWithFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const m, n, k = 50, 77, 640
	a, b := randMat(r, m*k), randMat(r, k*n)
	c := make([]float32, m*n)
	if err := Gemm(m, n, k, RowMajor(a, k), RowMajor(b, n), c, n, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, mag float64
			for p := 0; p < k; p++ {
				s += float64(a[i*k+p]) * float64(b[p*n+j])
				mag += math.Abs(float64(a[i*k+p]) * float64(b[p*n+j]))
			}
			if d := math.Abs(float64(c[i*n+j]) - s); d > 1e-5*mag {
				t.Fatalf("C[%d][%d] = %g, float64 gives %g", i, j, c[i*n+j], s)
			}
		}
	}
}

func TestGemmRefusesViewsThatDoNotFit(t *testing.T) {
	a, b, c := make([]float32, 6), make([]float32, 6), make([]float32, 4)
	for name, err := range map[string]error{
		"A short": Gemm(2, 2, 4, RowMajor(a, 4), RowMajor(b, 2), c, 2, 1),
		"B short": Gemm(2, 2, 3, RowMajor(a, 3), RowMajor(b, 3), c, 2, 1),
		"C short": Gemm(2, 3, 2, RowMajor(a, 2), RowMajor(b, 3), c, 3, 1),
		"ldc < n": Gemm(2, 2, 3, RowMajor(a, 3), RowMajor(b, 2), c, 1, 1),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzGemm runs random shapes and strides on every kernel and checks the chain's bits.
func FuzzGemm(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint16(1), false, false, uint8(1), uint64(0))
	f.Add(uint8(13), uint8(33), uint16(300), true, false, uint8(2), uint64(5))
	f.Fuzz(func(t *testing.T, m8, n8 uint8, k16 uint16, ta, tb bool, threads uint8, seed uint64) {
		m, n, k := int(m8%40), int(n8%80), int(k16%600)
		r := rand.New(rand.NewPCG(seed, 1))
		a, b := RowMajor(randMat(r, m*k), k), RowMajor(randMat(r, k*n), n)
		if ta {
			a = RowMajor(a.Data, m).T()
		}
		if tb {
			b = RowMajor(b.Data, k).T()
		}
		for _, kern := range kernels() {
			c := make([]float32, m*n)
			if err := gemmWith(kern, m, n, k, a, b, c, n, int(threads%4)); err != nil {
				t.Fatal(err)
			}
			for x := range c {
				if want := chain(a, b, x/n, x%n, k); math.Float32bits(c[x]) != math.Float32bits(want) {
					t.Fatalf("%s: %dx%dx%d: C[%d] = %g, want %g", kern.name, m, n, k, x, c[x], want)
				}
			}
		}
	})
}

// A decode step's attention: one query row per head against each head's keys or values, the
// heads a batch axis. Each output is the FMA chain, whether the row kernel runs straight per
// head (the product small) or Gemm runs per head.
func TestBatchedRowProductsAreTheChain(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 8))
	for _, s := range []struct{ heads, k, n int }{{32, 32, 256}, {32, 256, 32}, {8, 64, 40}, {3, 7, 300}, {64, 512, 64}, {6, 300, 32}, {9, 40, 96}} {
		lhsShape := shapes.Make(dtypes.Float32, s.heads, 1, s.k)
		rhsShape := shapes.Make(dtypes.Float32, s.heads, s.k, s.n)
		d, _, err := planDot(lhsShape, []int{2}, []int{0}, rhsShape, []int{1}, []int{0})
		if err != nil {
			t.Fatal(err)
		}
		lhs, rhs := randMat(r, s.heads*s.k), randMat(r, s.heads*s.k*s.n)
		for _, threads := range []int{1, 2} {
			out := randMat(r, s.heads*s.n)
			if err := runDot(d, lhs, rhs, lhsShape.Dimensions, rhsShape.Dimensions, out, threads); err != nil {
				t.Fatal(err)
			}
			for h := 0; h < s.heads; h++ {
				a, b := RowMajor(lhs[h*s.k:(h+1)*s.k], s.k), RowMajor(rhs[h*s.k*s.n:(h+1)*s.k*s.n], s.n)
				for j := 0; j < s.n; j++ {
					if got, want := out[h*s.n+j], chain(a, b, 0, j, s.k); math.Float32bits(got) != math.Float32bits(want) {
						t.Fatalf("%+v, %d threads: head %d column %d = %g, the chain gives %g", s, threads, h, j, got, want)
					}
				}
			}
		}
	}
}

// NEUROSHARD_KERNEL picks a kernel this CPU runs (the one named, when it passes the start-up
// check), and anything else leaves the best one.
func TestChooseTakesTheNamedKernel(t *testing.T) {
	best := choose("")
	if got := choose("go"); got != goKernel {
		t.Fatalf("choose(go) = %s", got.name)
	}
	for _, k := range kernels() {
		want := k
		if k != goKernel && !agrees(k) {
			want = best // a kernel that disagrees is never used, named or not
		}
		if got := choose(k.name); got != want {
			t.Fatalf("choose(%s) = %s, want %s", k.name, got.name, want.name)
		}
	}
	if got := choose("sse9"); got != best {
		t.Fatalf("an unknown name gave %s, not the best kernel %s", got.name, best.name)
	}
}
