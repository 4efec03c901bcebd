package cpu_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/neuroshard/neuroshard/layers/cpu"
)

// DynamicUpdateSlice against the definition (a loop over the update's elements, start indices
// clamped so the update fits), with the operand donated (written in place) and not (copied):
// both give the same values, and a not-donated operand is left as it was.
func TestDynamicUpdateSlice(t *testing.T) {
	be, err := backends.NewWithConfig(cpu.BackendName)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		op, up []int
		start  []int32
	}{
		{[]int{2, 3, 16, 4}, []int{2, 3, 1, 4}, []int32{0, 0, 7, 0}},
		{[]int{2, 3, 4, 16}, []int{2, 3, 4, 3}, []int32{0, 0, 0, 5}},
		{[]int{5, 7}, []int{2, 3}, []int32{4, 6}},  // clamped to (3, 4)
		{[]int{5, 7}, []int{2, 3}, []int32{-3, 1}}, // clamped to (0, 1)
		{[]int{9}, []int{9}, []int32{2}},           // clamped to 0
		{[]int{3, 1, 5}, []int{1, 1, 2}, []int32{1, 0, 3}},
		{[]int{2, 3, 4, 16}, []int{2, 3, 4, 1}, []int32{0, 0, 0, 9}}, // a key cache's column
		{[]int{3, 5, 4, 6}, []int{2, 2, 3, 2}, []int32{1, 2, 1, 3}},
	} {
		base := randTensor(r, tc.op...)
		upd := randTensor(r, tc.up...)
		want := tensors.MustCopyFlatData[float32](base)
		u := tensors.MustCopyFlatData[float32](upd)
		start := make([]int, len(tc.op))
		for i, s := range tc.start {
			start[i] = min(max(int(s), 0), tc.op[i]-tc.up[i])
		}
		idx := make([]int, len(tc.up))
		for n := range u {
			off, rem := 0, n
			for i := len(tc.up) - 1; i >= 0; i-- {
				idx[i] = rem % tc.up[i]
				rem /= tc.up[i]
			}
			for i := range tc.op {
				off = off*tc.op[i] + start[i] + idx[i]
			}
			want[off] = u[n]
		}
		e, err := NewExec(be, func(in []*Node) *Node {
			starts := make([]*Node, len(tc.start))
			for i, s := range tc.start {
				starts[i] = Const(in[0].Graph(), s)
			}
			return DynamicUpdateSlice(in[0], in[1], starts)
		})
		if err != nil {
			t.Fatal(err)
		}
		before := tensors.MustCopyFlatData[float32](base)
		out, err := e.Exec(base, upd)
		if err != nil {
			t.Fatal(err)
		}
		if got := tensors.MustCopyFlatData[float32](out[0]); !slices.Equal(got, want) {
			t.Fatalf("%v into %v at %v: got %v, want %v", tc.up, tc.op, tc.start, got, want)
		}
		if got := tensors.MustCopyFlatData[float32](base); !slices.Equal(got, before) {
			t.Fatalf("%v into %v: the operand changed though it was not donated", tc.up, tc.op)
		}
		d, err := DonateTensorBuffer(base, be, 0)
		if err != nil {
			t.Fatal(err)
		}
		out, err = e.Exec(d, upd)
		if err != nil {
			t.Fatal(err)
		}
		if got := tensors.MustCopyFlatData[float32](out[0]); !slices.Equal(got, want) {
			t.Fatalf("donated, %v into %v at %v: got %v, want %v", tc.up, tc.op, tc.start, got, want)
		}
	}
}

// Writes in a chain (one row's key after another's) go into one buffer, the operand's when it
// is donated; a write whose result something else also reads is copied, so that reader sees
// the values before the next write.
func TestChainedUpdates(t *testing.T) {
	be, err := backends.NewWithConfig(cpu.BackendName)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	x, a, b := randTensor(r, 3, 2, 4), randTensor(r, 1, 2, 4), randTensor(r, 1, 2, 4)
	xs, as, bs := tensors.MustCopyFlatData[float32](x), tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](b)
	// Rows 0 and 1 become a, row 2 b; second, read also on its own, still has x's row 1.
	want := slices.Concat(as, as, bs)
	fn := func(in []*Node) []*Node {
		g := in[0].Graph()
		zero := Const(g, int32(0))
		first := DynamicUpdateSlice(in[0], in[1], []*Node{zero, zero, zero})
		second := DynamicUpdateSlice(first, in[2], []*Node{Const(g, int32(2)), zero, zero})
		third := DynamicUpdateSlice(second, in[1], []*Node{Const(g, int32(1)), zero, zero})
		return []*Node{third, Slice(second, AxisRange(1, 2))}
	}
	e, err := NewExec(be, fn)
	if err != nil {
		t.Fatal(err)
	}
	for _, donate := range []bool{false, true} {
		arg := any(x)
		if donate {
			if arg, err = DonateTensorBuffer(x, be, 0); err != nil {
				t.Fatal(err)
			}
		}
		out, err := e.Exec(arg, a, b)
		if err != nil {
			t.Fatal(err)
		}
		if got := tensors.MustCopyFlatData[float32](out[0]); !slices.Equal(got, want) {
			t.Fatalf("donated %v: chained writes gave %v, want %v", donate, got, want)
		}
		if got := tensors.MustCopyFlatData[float32](out[1]); !slices.Equal(got, xs[8:16]) {
			t.Fatalf("donated %v: the write read twice was overwritten: %v, want %v", donate, got, xs[8:16])
		}
		if !donate && !slices.Equal(tensors.MustCopyFlatData[float32](x), xs) {
			t.Fatal("the operand changed though it was not donated")
		}
	}
}

// Slice (with strides) and Concatenate against simplego.
func TestSliceAndConcatenateMatchSimpleGo(t *testing.T) {
	ours, ref := backendsUnderTest(t)
	r := rand.New(rand.NewPCG(8, 9))
	x, y := randTensor(r, 4, 5, 6), randTensor(r, 4, 2, 6)
	fn := func(in []*Node) []*Node {
		return []*Node{
			Slice(in[0], AxisRange(1, 3)),
			Slice(in[0], AxisRange(0, 4).Stride(2), AxisRange(), AxisRange(1, 6).Stride(3)),
			Concatenate([]*Node{in[0], in[1], in[0]}, 1),
			Concatenate([]*Node{Slice(in[0], AxisRange(3, 4)), Slice(in[0], AxisRange(0, 1))}, 0),
		}
	}
	got, want := run(t, ours, fn, x, y), run(t, ref, fn, x, y)
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("output %d: %v, simplego %v", i, got[i], want[i])
		}
	}
}

// Element-wise ops large enough to be split over threads give the bits of one thread: the
// same-shape, scalar and broadcast arithmetic, e^x and the logistic, on 4 threads and on 1.
func TestSplitElementwiseOpsGiveTheBitsOfOneThread(t *testing.T) {
	one, err := backends.NewWithConfig(cpu.BackendName + ":threads=1")
	if err != nil {
		t.Fatal(err)
	}
	four, err := backends.NewWithConfig(cpu.BackendName + ":threads=4")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(11, 12))
	x, y := randTensor(r, 8, 64, 384), randTensor(r, 8, 64, 384)
	row, col := randTensor(r, 1, 1, 384), randTensor(r, 8, 64, 1)
	fn := func(in []*Node) []*Node {
		return []*Node{
			Add(in[0], in[1]), Mul(in[0], in[1]), Div(in[0], in[1]), MulScalar(in[0], 0.37),
			Sub(in[0], in[2]), Mul(in[0], in[3]), Exp(in[0]), Logistic(in[1]),
		}
	}
	a, b := run(t, one, fn, x, y, row, col), run(t, four, fn, x, y, row, col)
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				t.Fatalf("output %d, value %d: 1 thread %v, 4 threads %v", i, j, a[i][j], b[i][j])
			}
		}
	}
}
