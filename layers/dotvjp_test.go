package layers

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func randomTensor(r *rand.Rand, dims ...int) *tensors.Tensor {
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

// dotGrads returns the gradients of sum(DotGeneral(lhs, rhs) * w) with respect to lhs and rhs,
// with the project's gradient (fast) or gomlx's stock one.
func dotGrads(t *testing.T, fast bool, lhsC, lhsB, rhsC, rhsB []int, lhs, rhs, w *tensors.Tensor) ([]float32, []float32) {
	t.Helper()
	prev := SetFastMatmulGradient(fast)
	defer SetFastMatmulGradient(prev)
	be, err := sharedBackend()
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExec(be, func(l, r, w *Node) (*Node, *Node) {
		out := dot(l, lhsC, lhsB, r, rhsC, rhsB)
		g := Gradient(ReduceAllSum(Mul(out, w)), l, r)
		forgetGraph(l.Graph())
		return g[0], g[1]
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := e.Exec(lhs, rhs, w)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// The fast DotGeneral gradient equals the stock one on every layout the model uses and on
// layouts it does not (contracting leading axes, several contracting axes, batch axes in the
// middle, swapped operand roles).
func TestFastMatmulGradientMatchesStock(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name                   string
		lhsDims, rhsDims       []int
		lhsC, lhsB, rhsC, rhsB []int
		outDims                []int
	}{
		{"linear [B,T,D]x[D,F]", []int{2, 5, 8}, []int{8, 6}, []int{2}, nil, []int{0}, nil, []int{2, 5, 6}},
		{"linear transposed weight", []int{2, 5, 8}, []int{6, 8}, []int{2}, nil, []int{1}, nil, []int{2, 5, 6}},
		{"attention scores", []int{2, 3, 5, 4}, []int{2, 3, 7, 4}, []int{3}, []int{0, 1}, []int{3}, []int{0, 1}, []int{2, 3, 5, 7}},
		{"attention values", []int{2, 3, 5, 7}, []int{2, 3, 7, 4}, []int{3}, []int{0, 1}, []int{2}, []int{0, 1}, []int{2, 3, 5, 4}},
		{"weight gradient layout", []int{2, 5, 8}, []int{2, 5, 6}, []int{0, 1}, nil, []int{0, 1}, nil, []int{8, 6}},
		{"contract leading axis", []int{8, 3}, []int{8, 4}, []int{0}, nil, []int{0}, nil, []int{3, 4}},
		{"two contracting axes out of order", []int{3, 4, 5}, []int{5, 2, 4}, []int{1, 2}, nil, []int{2, 0}, nil, []int{3, 2}},
		{"batch axis in the middle", []int{3, 6, 4}, []int{4, 6, 5}, []int{2}, []int{1}, []int{0}, []int{1}, []int{6, 3, 5}},
		{"plain vectors", []int{7}, []int{7}, []int{0}, nil, []int{0}, nil, []int{}},
		{"outer product", []int{3}, []int{4}, nil, nil, nil, nil, []int{3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lhs, rhs, w := randomTensor(r, tc.lhsDims...), randomTensor(r, tc.rhsDims...), randomTensor(r, tc.outDims...)
			before := fastDotBuilt.Load()
			fl, fr := dotGrads(t, true, tc.lhsC, tc.lhsB, tc.rhsC, tc.rhsB, lhs, rhs, w)
			if fastDotBuilt.Load() == before {
				t.Fatal("the fast gradient was not used")
			}
			before = fastDotBuilt.Load()
			sl, sr := dotGrads(t, false, tc.lhsC, tc.lhsB, tc.rhsC, tc.rhsB, lhs, rhs, w)
			if fastDotBuilt.Load() != before {
				t.Fatal("the stock gradient was not used")
			}
			if d := math.Max(maxAbsDiff(fl, sl), maxAbsDiff(fr, sr)); d > 1e-5 {
				t.Fatalf("fast and stock gradients differ by %g", d)
			}
		})
	}
}

// The whole model's gradients agree between the two implementations as well.
func TestFastMatmulGradientOnTheModel(t *testing.T) {
	cfg := tinyConfig()
	full := Span{0, cfg.Layers - 1}
	tokens, targets := sampleBatch(cfg, 2, 12, 7)
	grads := func(fast bool) *Gradients {
		prev := SetFastMatmulGradient(fast)
		defer SetFastMatmulGradient(prev)
		st, err := NewStage(cfg, full, cfg.InitParams(full, 1))
		if err != nil {
			t.Fatal(err)
		}
		g, err := st.BackwardLoss(tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	fast, stock := grads(true), grads(false)
	worst := 0.0
	for i, spec := range fast.Params.Specs {
		d := maxAbsDiff(fast.Params.Values[i], stock.Params.Values[i])
		if d > 1e-5 {
			t.Errorf("%s differs by %g", spec.Name, d)
		}
		worst = math.Max(worst, d)
	}
	t.Logf("max abs difference over %d gradient tensors: %g (loss %v vs %v)", len(fast.Params.Specs), worst, fast.Loss, stock.Loss)
	if fast.Loss != stock.Loss {
		t.Fatalf("loss differs: %v vs %v", fast.Loss, stock.Loss)
	}
}
