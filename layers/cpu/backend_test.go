package cpu_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/neuroshard/neuroshard/layers/cpu"
)

func backendsUnderTest(t *testing.T) (ours, ref backends.Backend) {
	t.Helper()
	ours, err := backends.NewWithConfig(cpu.BackendName)
	if err != nil {
		t.Fatal(err)
	}
	ref, err = backends.NewWithConfig("go:ops_sequential")
	if err != nil {
		t.Fatal(err)
	}
	return ours, ref
}

func randTensor(r *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

func run(t *testing.T, be backends.Backend, fn func([]*Node) []*Node, args ...*tensors.Tensor) [][]float32 {
	t.Helper()
	e, err := NewExec(be, fn)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]any, len(args))
	for i, a := range args {
		c, err := a.LocalClone() // a tensor sticks to the first backend it ran on
		if err != nil {
			t.Fatal(err)
		}
		in[i] = c
	}
	outs, err := e.Exec(in...)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(outs))
	for i, o := range outs {
		if o.DType() != dtypes.Float32 {
			o = tensors.FromFlatDataAndDimensions(convertToF32(o), o.Shape().Dimensions...)
		}
		res[i] = tensors.MustCopyFlatData[float32](o)
	}
	return res
}

func convertToF32(t *tensors.Tensor) []float32 {
	switch t.DType() {
	case dtypes.Bool:
		var out []float32
		for _, b := range tensors.MustCopyFlatData[bool](t) {
			if b {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
		return out
	case dtypes.Int32:
		var out []float32
		for _, x := range tensors.MustCopyFlatData[int32](t) {
			out = append(out, float32(x))
		}
		return out
	}
	panic(t.DType())
}

// Every op the model uses, on shapes with odd sizes and broadcasting, against simplego: exact
// for element-wise ops and data movement; within 2e-6 relative for products and sums, whose
// order simplego does not fix.
func TestOpsAgainstSimpleGo(t *testing.T) {
	ours, ref := backendsUnderTest(t)
	r := rand.New(rand.NewPCG(5, 5))
	x, y, v, w := randTensor(r, 3, 5, 7), randTensor(r, 3, 5, 7), randTensor(r, 1, 5, 1), randTensor(r, 7)
	cases := map[string]struct {
		exact bool
		fn    func(in []*Node) []*Node
		args  []*tensors.Tensor
	}{
		"add sub mul div": {true, func(in []*Node) []*Node {
			return []*Node{Add(in[0], in[1]), Sub(in[0], in[1]), Mul(in[0], in[1]), Div(in[0], in[1]), Max(in[0], in[1]), Min(in[0], in[1])}
		}, []*tensors.Tensor{x, y}},
		"broadcast size-1 and rank": {true, func(in []*Node) []*Node {
			return []*Node{Add(in[0], in[1]), Sub(in[1], in[0]), Div(in[1], in[0]), Mul(in[0], ExpandLeftToRank(in[2], 3)), Sub(ExpandLeftToRank(in[2], 3), in[0]), MulScalar(in[0], 0.3), AddScalar(in[0], 1), OneMinus(in[0])}
		}, []*tensors.Tensor{x, v, w}},
		"unary": {true, func(in []*Node) []*Node {
			a := Abs(in[0])
			return []*Node{Neg(in[0]), Exp(in[0]), Log(AddScalar(a, 0.1)), Sqrt(a), Sigmoid(in[0]), Tanh(in[0]), Square(in[0])}
		}, []*tensors.Tensor{x}},
		"reshape transpose": {true, func(in []*Node) []*Node {
			return []*Node{TransposeAllAxes(in[0], 2, 0, 1), Reshape(in[0], 15, 7), TransposeAllAxes(in[0], 1, 0, 2)}
		}, []*tensors.Tensor{x}},
		"reduce": {false, func(in []*Node) []*Node {
			return []*Node{ReduceSum(in[0], 1), ReduceSum(in[0], 0, 2), ReduceSum(in[0], 0), ReduceSum(in[0], 0, 1), ReduceAllSum(in[0]), ReduceMax(in[0], -1), ReduceMax(in[0], 0), ReduceAndKeep(in[0], ReduceMean, -1)}
		}, []*tensors.Tensor{x}},
		"softmax": {false, func(in []*Node) []*Node { return []*Node{Softmax(in[0], -1), LogSoftmax(in[0], -1)} }, []*tensors.Tensor{x}},
		"one-hot and compare": {true, func(in []*Node) []*Node {
			ids := ConvertDType(MulScalar(Abs(in[0]), 3), dtypes.Int32)
			return []*Node{OneHot(ids, 11, dtypes.Float32), ConvertDType(Equal(in[0], in[0]), dtypes.Float32), Where(GreaterThan(in[0], in[1]), in[0], in[1])}
		}, []*tensors.Tensor{x, y}},
		"dot general": {false, func(in []*Node) []*Node {
			a, b := in[0], in[1]
			return []*Node{
				DotGeneral(a, []int{2}, nil, b, []int{2}, nil),           // [3,5,3,5]
				DotGeneral(a, []int{2}, []int{0}, b, []int{2}, []int{0}), // batched, contract last
				DotGeneral(a, []int{1}, []int{0}, b, []int{1}, []int{0}), // contract the middle
				DotGeneral(a, []int{0, 1}, nil, b, []int{0, 1}, nil),     // two contracting axes
				DotGeneral(a, []int{2}, nil, in[2], []int{0}, nil),       // activation x weights
			}
		}, []*tensors.Tensor{x, y, randTensor(r, 7, 13)}},
	}
	for name, c := range cases {
		got, want := run(t, ours, c.fn, c.args...), run(t, ref, c.fn, c.args...)
		for o := range want {
			if len(got[o]) != len(want[o]) {
				t.Fatalf("%s output %d: %d values, simplego %d", name, o, len(got[o]), len(want[o]))
			}
			for i := range want[o] {
				g, w := got[o][i], want[o][i]
				same := math.Float32bits(g) == math.Float32bits(w) || (g != g && w != w)
				if c.exact && !same && math.Abs(float64(g-w)) > 2e-7*math.Abs(float64(w)) {
					// exp, log, tanh: Go's float64 functions rounded once can differ from
					// simplego's float32 ones by an ulp.
					t.Fatalf("%s output %d [%d]: %g, simplego %g", name, o, i, g, w)
				}
				if !c.exact && math.Abs(float64(g-w)) > 2e-6*(1+math.Abs(float64(w))) {
					t.Fatalf("%s output %d [%d]: %g, simplego %g", name, o, i, g, w)
				}
			}
		}
	}
}

// An op the backend lacks is an error that names it, never a silent fallback.
func TestMissingOpIsNamed(t *testing.T) {
	ours, _ := backendsUnderTest(t)
	e, err := NewExec(ours, func(x *Node) *Node { return Cos(x) })
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Exec(tensors.FromFlatDataAndDimensions([]float32{1, 2}, 2))
	if err == nil || !strings.Contains(err.Error(), "Cos") {
		t.Fatalf("Cos on the cpu backend: %v", err)
	}
}

// The gradient of a small network (through gomlx's autodiff) on both backends.
func TestGradientsAgainstSimpleGo(t *testing.T) {
	ours, ref := backendsUnderTest(t)
	r := rand.New(rand.NewPCG(8, 1))
	fn := func(in []*Node) []*Node {
		h := DotGeneral(in[0], []int{2}, nil, in[1], []int{0}, nil)
		h = Mul(h, Sigmoid(h))
		ms := ReduceAndKeep(Square(h), ReduceMean, -1)
		h = Div(h, Sqrt(AddScalar(ms, 1e-5)))
		loss := ReduceAllSum(Mul(Softmax(h, -1), in[2]))
		return append([]*Node{loss}, Gradient(loss, in[0], in[1])...)
	}
	args := []*tensors.Tensor{randTensor(r, 2, 9, 6), randTensor(r, 6, 10), randTensor(r, 2, 9, 10)}
	got, want := run(t, ours, fn, args...), run(t, ref, fn, args...)
	for o := range want {
		for i := range want[o] {
			if d := math.Abs(float64(got[o][i] - want[o][i])); d > 1e-5*(1+math.Abs(float64(want[o][i]))) {
				t.Fatalf("output %d [%d]: %g, simplego %g", o, i, got[o][i], want[o][i])
			}
		}
	}
}

// A yielding backend's computation waits between ops while the foreground is busy, at most its
// limit, and returns the same bits.
func TestYieldingWaitsForTheForeground(t *testing.T) {
	ours, _ := backendsUnderTest(t)
	r := rand.New(rand.NewPCG(1, 2))
	a, b := randTensor(r, 64, 96), randTensor(r, 96, 32)
	fn := func(in []*Node) []*Node {
		p := DotGeneral(in[0], []int{1}, nil, in[1], []int{0}, nil)
		return []*Node{Tanh(p), Exp(Neg(p))}
	}
	want := run(t, ours, fn, a, b)

	var busy atomic.Bool
	busy.Store(true)
	bg := ours.(*cpu.Backend).Yielding(busy.Load, 10*time.Second)
	start := time.Now()
	time.AfterFunc(150*time.Millisecond, func() { busy.Store(false) })
	got := run(t, bg, fn, a, b)
	if took := time.Since(start); took < 150*time.Millisecond || took > 5*time.Second {
		t.Fatalf("a computation with the foreground busy for 150 ms took %v", took)
	}
	// Always busy: the computation still ends after its limit.
	start = time.Now()
	busy.Store(true)
	again := run(t, ours.(*cpu.Backend).Yielding(busy.Load, 100*time.Millisecond), fn, a, b)
	if took := time.Since(start); took < 100*time.Millisecond || took > 5*time.Second {
		t.Fatalf("a computation always yielding, limit 100 ms, took %v", took)
	}
	for _, res := range [][][]float32{got, again} {
		for i := range want {
			if !slices.Equal(math32bits(want[i]), math32bits(res[i])) {
				t.Fatalf("output %d differs after yielding", i)
			}
		}
	}
}

func math32bits(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}
