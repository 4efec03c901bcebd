package layers

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// The stock gradient of DotGeneral in gomlx v0.26 is built as a broadcast multiply followed by
// a reduce-sum, which materialises tensors such as [batch, seq, d_in, d_out]; XLA would fuse
// them, the pure-Go backend runs them literally (about 5x slower for a training step). The
// gradient of a dot product is itself a dot product, so this file registers a VJP that builds
// two DotGenerals and a transpose instead.
//
// A DotGeneral node does not export its axes, so the model records them when it creates the
// node (dot below); DotGenerals created elsewhere (by other ops' gradients, for instance) keep
// the stock VJP. The replacement is checked against the stock gradient on many shapes in
// dotvjp_test.go, and gomlx stays pinned at v0.26.0.

type dotAxes struct {
	lhsContract, lhsBatch, rhsContract, rhsBatch []int
}

var (
	dotAxesByNode sync.Map // *graph.Node -> dotAxes
	stockDotVJP   graph.VJP
	fastDotVJP    atomic.Bool
	fastDotBuilt  atomic.Int64 // gradients built by the fast path, for tests
)

func init() {
	stockDotVJP = graph.VJPRegistration[graph.NodeTypeDotGeneral]
	graph.VJPRegistration[graph.NodeTypeDotGeneral] = dotGeneralVJP
	fastDotVJP.Store(true)
}

// SetFastMatmulGradient switches the DotGeneral gradient used by graphs built afterwards
// between the project's (true, the default) and gomlx's stock one (false); benchmarks and
// tests compare the two. It returns the previous setting.
func SetFastMatmulGradient(on bool) bool { return fastDotVJP.Swap(on) }

// dot is graph.DotGeneral that remembers its axes for the fast gradient.
func dot(lhs *graph.Node, lhsContract, lhsBatch []int, rhs *graph.Node, rhsContract, rhsBatch []int) *graph.Node {
	out := graph.DotGeneral(lhs, lhsContract, lhsBatch, rhs, rhsContract, rhsBatch)
	if out.Type() == graph.NodeTypeDotGeneral {
		dotAxesByNode.Store(out, dotAxes{slices.Clone(lhsContract), slices.Clone(lhsBatch), slices.Clone(rhsContract), slices.Clone(rhsBatch)})
	}
	return out
}

// forgetGraph drops the recorded axes of a graph's nodes once the graph is built.
func forgetGraph(g *graph.Graph) {
	dotAxesByNode.Range(func(k, _ any) bool {
		if k.(*graph.Node).Graph() == g {
			dotAxesByNode.Delete(k)
		}
		return true
	})
}

func dotGeneralVJP(node *graph.Node, vjpOutputs []*graph.Node, outShape shapes.Shape) []*graph.Node {
	raw, ok := dotAxesByNode.Load(node)
	if !ok || !fastDotVJP.Load() {
		return stockDotVJP(node, vjpOutputs, outShape)
	}
	ax := raw.(dotAxes)
	fastDotBuilt.Add(1)
	inputs := node.Inputs()
	lhs, rhs, v := inputs[0], inputs[1], vjpOutputs[0]
	nb := len(ax.lhsBatch)
	lhsCross := crossAxes(lhs.Rank(), ax.lhsContract, ax.lhsBatch)
	rhsCross := crossAxes(rhs.Rank(), ax.rhsContract, ax.rhsBatch)
	// Output axes of the forward: [batch..., lhs cross..., rhs cross...].
	vBatch := iota(0, nb)
	vLhsCross := iota(nb, len(lhsCross))
	vRhsCross := iota(nb+len(lhsCross), len(rhsCross))

	// d lhs = v · rhs, contracting the rhs cross axes. Result axes:
	// [batch..., lhs cross..., rhs contracting axes in rhs order].
	gl := graph.DotGeneral(v, vRhsCross, vBatch, rhs, rhsCross, ax.rhsBatch)
	lhsPerm := make([]int, lhs.Rank())
	for i, a := range ax.lhsBatch {
		lhsPerm[a] = i
	}
	for i, a := range lhsCross {
		lhsPerm[a] = nb + i
	}
	rhsContractSorted := slices.Sorted(slices.Values(ax.rhsContract))
	for i, a := range ax.lhsContract {
		lhsPerm[a] = nb + len(lhsCross) + slices.Index(rhsContractSorted, ax.rhsContract[i])
	}

	// d rhs = lhs · v, contracting the lhs cross axes. Result axes:
	// [batch..., lhs contracting axes in lhs order..., rhs cross...].
	gr := graph.DotGeneral(lhs, lhsCross, ax.lhsBatch, v, vLhsCross, vBatch)
	rhsPerm := make([]int, rhs.Rank())
	for i, a := range ax.rhsBatch {
		rhsPerm[a] = i
	}
	lhsContractSorted := slices.Sorted(slices.Values(ax.lhsContract))
	for i, a := range ax.rhsContract {
		rhsPerm[a] = nb + slices.Index(lhsContractSorted, ax.lhsContract[i])
	}
	for i, a := range rhsCross {
		rhsPerm[a] = nb + len(ax.lhsContract) + i
	}
	return []*graph.Node{transposeTo(gl, lhsPerm), transposeTo(gr, rhsPerm)}
}

// transposeTo reorders x so that output axis j is x's axis perm[j]; a no-op for the identity.
func transposeTo(x *graph.Node, perm []int) *graph.Node {
	for i, p := range perm {
		if i != p {
			return graph.TransposeAllAxes(x, perm...)
		}
	}
	return x
}

func crossAxes(rank int, contract, batch []int) []int {
	var out []int
	for a := 0; a < rank; a++ {
		if !slices.Contains(contract, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

func iota(start, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = start + i
	}
	return out
}
