package cpu_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/neuroshard/neuroshard/layers/cpu"
)

// Released intermediate values are reused by later ops: an output that is a view of an
// intermediate (a Reshape) must keep its values while other computations reuse the pool, and
// inputs are never reused.
func TestPooledValuesNeverReachOutputsOrInputs(t *testing.T) {
	be, err := backends.NewWithConfig(cpu.BackendName)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	x := randTensor(r, 64, 64)
	xv := tensors.MustCopyFlatData[float32](x)
	keep, err := NewExec(be, func(in []*Node) []*Node {
		s := Add(in[0], in[0]) // released after its last use, but its array lives on in the view
		return []*Node{Reshape(s, 4096), MulScalar(s, 3)}
	})
	if err != nil {
		t.Fatal(err)
	}
	churn, err := NewExec(be, func(in []*Node) *Node {
		a := Neg(in[0])
		b := Sub(a, in[0])
		return Reshape(Mul(b, a), 64, 64)
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := keep.Exec(x)
	if err != nil {
		t.Fatal(err)
	}
	view := tensors.MustCopyFlatData[float32](outs[0])
	for i, v := range xv {
		if view[i] != v+v {
			t.Fatalf("view [%d] = %v, want %v", i, view[i], v+v)
		}
	}
	for range 20 {
		if _, err := churn.Exec(x); err != nil {
			t.Fatal(err)
		}
	}
	if got := tensors.MustCopyFlatData[float32](outs[0]); !slices.Equal(got, view) {
		t.Fatal("an output changed while other computations ran")
	}
	if got := tensors.MustCopyFlatData[float32](x); !slices.Equal(got, xv) {
		t.Fatal("an input changed")
	}
}
