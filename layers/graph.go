package layers

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // the graph DSL reads better unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// normEps is RMSNorm's epsilon.
const normEps = 1e-5

// stageNodes are a stage graph's inputs: parameters by name, the input (tokens or activation),
// the rotary tables for the positions being computed, and the additive attention mask.
type stageNodes struct {
	cfg      Config
	span     Span
	p        map[string]*Node
	in       *Node // int32 [B,T] tokens on the first stage, float32 [B,T,D] otherwise
	cos, sin *Node // [T, headDim]
	mask     *Node // [T, S]: 0 where attention is allowed, a large negative number elsewhere

	// KV-cache mode (nil otherwise): per layer of the span, the cache buffers [B,H,C,hd] in and
	// out, and where the T new keys and values go: pos, the first position (an int32 scalar),
	// on a backend with DynamicUpdateSlice; else write [T,C], the one-hot positions.
	cacheK, cacheV []*Node
	newK, newV     []*Node
	pos, write     *Node

	rows *rowNodes // a batched decoding step (nil otherwise)
}

// forward runs the stage's layers; the last stage returns logits [B,T,V], others the
// activation [B,T,D].
func (n *stageNodes) forward() *Node {
	x := n.in
	if n.span.First == 0 {
		oh := OneHot(x, n.cfg.Vocab, dtypes.Float32)
		x = dot(oh, []int{2}, nil, n.p["embed.table"], []int{0}, nil)
	}
	for i := n.span.First; i <= n.span.Last; i++ {
		x = n.block(x, i)
	}
	if n.span.Last == n.cfg.Layers-1 {
		x = rmsNorm(x, n.p["head.norm"])
		x = dot(x, []int{2}, nil, n.p["head.out"], []int{0}, nil)
	}
	return x
}

func rmsNorm(x, gain *Node) *Node {
	ms := ReduceAndKeep(Square(x), ReduceMean, -1)
	// Div by Sqrt rather than Mul by Rsqrt: gomlx v0.26 has no gradient for Rsqrt.
	return Mul(Div(x, Sqrt(AddScalar(ms, normEps))), ExpandLeftToRank(gain, x.Rank()))
}

// linear is x [B,T,in] · w [in,out].
func linear(x, w *Node) *Node { return dot(x, []int{2}, nil, w, []int{0}, nil) }

func (n *stageNodes) block(x *Node, i int) *Node {
	p := func(name string) *Node { return n.p[layerName(i, name)] }
	h := Add(x, n.attention(rmsNorm(x, p("attn_norm")), i))
	m := rmsNorm(h, p("mlp_norm"))
	a := linear(m, p("w1"))
	gated := Mul(Mul(a, Sigmoid(a)), linear(m, p("w3"))) // SwiGLU: silu(m·W1) * (m·W3)
	return Add(h, linear(gated, p("w2")))
}

// heads reshapes [B,T,D] to [B,H,T,hd].
func (n *stageNodes) heads(x *Node) *Node {
	dims := x.Shape().Dimensions
	x = Reshape(x, dims[0], dims[1], n.cfg.Heads, n.cfg.HeadDim())
	return TransposeAllAxes(x, 0, 2, 1, 3)
}

// rope rotates each head's two halves by the position's angles (GPT-NeoX layout):
// x·cos + rotateHalf(x)·sin, with cos and sin [T, hd] (each angle repeated for both halves).
// rotateHalf ([x1, x2] -> [-x2, x1]) is a matmul with a constant ±1 permutation matrix: slicing
// the halves would need Pad for its gradient, which the pure-Go backend lacks.
func (n *stageNodes) rope(x *Node) *Node {
	hd := n.cfg.HeadDim()
	rot := dot(x, []int{3}, nil, ConstTensor(x.Graph(), tensors.FromFlatDataAndDimensions(rotateHalfMatrix(hd), hd, hd)), []int{0}, nil)
	return Add(Mul(x, ExpandLeftToRank(n.cos, 4)), Mul(rot, ExpandLeftToRank(n.sin, 4)))
}

// rotateHalfMatrix is R [hd, hd] with (x·R) = [-x2, x1] for x = [x1, x2].
func rotateHalfMatrix(hd int) []float32 {
	half := hd / 2
	r := make([]float32, hd*hd)
	for j := 0; j < half; j++ {
		r[(j+half)*hd+j] = -1
		r[j*hd+j+half] = 1
	}
	return r
}

func (n *stageNodes) attention(x *Node, i int) *Node {
	p := func(name string) *Node { return n.p[layerName(i, name)] }
	if n.rows != nil {
		return n.attentionRows(x, i)
	}
	q := n.rope(n.heads(linear(x, p("wq"))))
	k := n.rope(n.heads(linear(x, p("wk"))))
	v := n.heads(linear(x, p("wv")))
	if n.cacheK == nil {
		scores := dot(q, []int{3}, []int{0, 1}, k, []int{3}, []int{0, 1}) // [B,H,T,S]
		return n.attend(q, scores, v, x.Shape().Dimensions, p("wo"))
	}
	// The key cache is kept transposed, [B,H,hd,C]: the scores of one new position read it
	// row by row, as the GEMM reads a matrix in place, instead of packing the whole cache
	// on every step. Each score is the same FMA chain over hd either way.
	j := i - n.span.First
	kT := n.place(n.cacheK[j], TransposeAllAxes(k, 0, 1, 3, 2), 3)
	v = n.place(n.cacheV[j], v, 2)
	n.newK[j], n.newV[j] = kT, v
	scores := dot(q, []int{3}, []int{0, 1}, kT, []int{2}, []int{0, 1}) // [B,H,T,C]
	return n.attend(q, scores, v, x.Shape().Dimensions, p("wo"))
}

// place writes new keys [B,H,hd,T] or values [B,H,T,hd] into their cache buffer ([B,H,hd,C]
// or [B,H,C,hd]) along axis, from position n.pos: in place on the project's backend (the
// cache is donated). gomlx's pure-Go backend has no DynamicUpdateSlice, so there the
// positions of n.write [T,C] are placed with a product and elementwise ops. Either way one
// compiled graph serves every position of a cache size, and the values placed are the same.
func (n *stageNodes) place(cache, fresh *Node, axis int) *Node {
	if n.pos != nil {
		zero := ScalarZero(n.pos.Graph(), n.pos.DType())
		starts := []*Node{zero, zero, zero, zero}
		starts[axis] = n.pos
		return DynamicUpdateSlice(cache, fresh, starts)
	}
	c := n.write.Shape().Dimensions[1]
	keep := Reshape(OneMinus(ReduceSum(n.write, 0)), c) // 1 where the buffer keeps its value
	if axis == 3 {
		placed := DotGeneral(fresh, []int{3}, nil, n.write, []int{0}, nil) // [B,H,hd,C]
		return Add(Mul(cache, Reshape(keep, 1, 1, 1, c)), placed)
	}
	placed := DotGeneral(n.write, []int{0}, nil, fresh, []int{2}, nil) // [C,B,H,hd]
	placed = TransposeAllAxes(placed, 1, 2, 0, 3)
	return Add(Mul(cache, Reshape(keep, 1, 1, c, 1)), placed)
}

// attend is softmax(scores/√hd + mask)·v, merged back to [B,T,D] and projected by wo.
func (n *stageNodes) attend(q, scores, v *Node, outDims []int, wo *Node) *Node {
	scores = MulScalar(scores, 1/math.Sqrt(float64(n.cfg.HeadDim())))
	scores = Add(scores, ExpandLeftToRank(n.mask, 4))
	probs := Softmax(scores, -1)
	out := dot(probs, []int{3}, []int{0, 1}, v, []int{2}, []int{0, 1}) // [B,H,T,hd]
	out = TransposeAllAxes(out, 0, 2, 1, 3)
	out = Reshape(out, outDims...)
	return linear(out, wo)
}

// meanCrossEntropy is the weighted mean over positions of -log p(target); weights [B,T] are 1
// for real positions and 0 for padding.
func meanCrossEntropy(logits, targets, weights *Node, vocab int) *Node {
	logp := LogSoftmax(logits, -1)
	oh := OneHot(targets, vocab, dtypes.Float32)
	nll := Neg(ReduceSum(Mul(logp, oh), -1)) // [B,T]
	return Div(ReduceAllSum(Mul(nll, weights)), ReduceAllSum(weights))
}
