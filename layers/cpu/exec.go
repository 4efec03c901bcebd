package cpu

import (
	"fmt"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Executable runs a compiled computation: its ops in an order where each comes after its
// inputs, dropping every intermediate value after its last use.
type Executable struct {
	be      *Backend
	params  []*node
	outputs []*node
	order   []*node
	slot    map[*node]int
	release [][]int // per order position: the values whose last use it is
	inputs  [][]int // per order position: the positions of its inputs
	maxIn   int     // the most inputs of one op
	// soleUse marks the parameters one op alone reads: a donated one may be written in place.
	soleUse map[*node]bool
	// chained marks the DynamicUpdateSlice results that one op alone reads and no output
	// holds: the next write of a chain (one row's keys after another's) goes into the same
	// buffer instead of a copy of it.
	chained map[*node]bool
}

func newExecutable(b *Builder, outputs []*node) *Executable {
	e := &Executable{be: b.be, params: b.params, outputs: outputs, slot: map[*node]int{}}
	var visit func(n *node)
	visit = func(n *node) {
		if _, ok := e.slot[n]; ok {
			return
		}
		for _, in := range n.inputs {
			visit(in)
		}
		e.slot[n] = len(e.order)
		e.order = append(e.order, n)
	}
	for _, o := range outputs {
		visit(o)
	}
	e.inputs = make([][]int, len(e.order))
	for i, n := range e.order {
		e.inputs[i] = make([]int, len(n.inputs))
		for j, in := range n.inputs {
			e.inputs[i][j] = e.slot[in]
		}
		e.maxIn = max(e.maxIn, len(n.inputs))
	}
	last := make([]int, len(e.order))
	uses := make([]int, len(e.order))
	for i, n := range e.order {
		for _, in := range n.inputs {
			last[e.slot[in]] = i
			uses[e.slot[in]]++
		}
	}
	e.soleUse = map[*node]bool{}
	for _, p := range e.params {
		if s, ok := e.slot[p]; ok && uses[s] == 1 {
			e.soleUse[p] = true
		}
	}
	isOut := map[*node]bool{}
	for _, o := range outputs {
		isOut[o] = true
	}
	e.chained = map[*node]bool{}
	for i, n := range e.order {
		if n.op == backends.OpTypeDynamicUpdateSlice && uses[i] == 1 && !isOut[n] {
			e.chained[n] = true
		}
	}
	e.release = make([][]int, len(e.order))
	for v, at := range last {
		if n := e.order[v]; !isOut[n] && n.op != backends.OpTypeParameter && n.op != backends.OpTypeConstant && at > v {
			e.release[at] = append(e.release[at], v)
		}
	}
	return e
}

func (e *Executable) Finalize() {}

func (e *Executable) Inputs() ([]string, []shapes.Shape) {
	names, ss := make([]string, len(e.params)), make([]shapes.Shape, len(e.params))
	for i, p := range e.params {
		names[i], ss[i] = p.paramFor, p.shape
	}
	return names, ss
}

func (e *Executable) Outputs() []shapes.Shape {
	ss := make([]shapes.Shape, len(e.outputs))
	for i, o := range e.outputs {
		ss[i] = o.shape
	}
	return ss
}

// Execute runs the computation. Inputs are never changed, except a donated one that a
// DynamicUpdateSlice alone reads: it is written in place and returned as that output (a
// session's KV cache). Other outputs are new buffers.
func (e *Executable) Execute(inputs []backends.Buffer, donate []bool, _ backends.DeviceNum) ([]backends.Buffer, error) {
	if len(inputs) != len(e.params) {
		return nil, fmt.Errorf("cpu backend: %d inputs for %d parameters", len(inputs), len(e.params))
	}
	// The donated inputs that one op alone reads: that op may write into them.
	var writable map[*node]bool
	for i, p := range e.params {
		if i < len(donate) && donate[i] && e.soleUse[p] && p.shape.Size() > 0 {
			if writable == nil {
				writable = map[*node]bool{}
			}
			writable[p] = true
		}
	}
	vals := make([]*Buffer, len(e.order))
	made := make([]Buffer, len(e.order)) // the values the ops make, one allocation for all
	in := make([]*Buffer, 0, e.maxIn)
	// owner is, for each value, the position of the op that made its float32 array when this
	// execution made it (-1 otherwise: an input's, a constant's, not poolable); holders
	// counts, at that position, the values holding the array: when the last is released, the
	// array goes back to the pool. (A map from arrays to counts cost more per op than most of
	// a decode step's small ops themselves.)
	owner := make([]int32, len(e.order))
	holders := make([]int32, len(e.order))
	for i := range owner {
		owner[i] = -1 // parameters included
	}
	for i, p := range e.params {
		buf, err := asBuffer(inputs[i])
		if err != nil {
			return nil, fmt.Errorf("cpu backend: input %d (%s): %w", i, p.paramFor, err)
		}
		if !buf.shape.Equal(p.shape) {
			return nil, fmt.Errorf("cpu backend: input %d (%s) is %s, the computation takes %s", i, p.paramFor, buf.shape, p.shape)
		}
		if s, ok := e.slot[p]; ok {
			vals[s] = buf
		}
	}
	var waited time.Duration
	for i, n := range e.order {
		if n.op == backends.OpTypeParameter {
			continue
		}
		waited = e.be.yield.wait(waited)
		in = in[:0]
		for _, x := range e.inputs[i] {
			in = append(in, vals[x])
		}
		flat, err := e.run(n, in, writable)
		if err != nil {
			return nil, err
		}
		made[i] = Buffer{shape: n.shape, flat: flat}
		vals[i] = &made[i]
		if p := poolable(flat); p != nil && n.op != backends.OpTypeConstant {
			owner[i] = int32(i) // a new array, unless it is an input's
			for j, b := range in {
				if poolable(b.flat) == p {
					owner[i] = owner[e.inputs[i][j]] // a view (Reshape, Identity) or a write in place
					break
				}
			}
			if o := owner[i]; o >= 0 {
				holders[o]++
			}
		}
		for _, v := range e.release[i] {
			if o := owner[v]; o >= 0 {
				if holders[o]--; holders[o] == 0 {
					putF32(vals[v].flat.([]float32))
				}
			}
			vals[v] = nil
		}
	}
	out := make([]backends.Buffer, len(e.outputs))
	given := map[*Buffer]bool{}
	for i, o := range e.outputs {
		v := vals[e.slot[o]]
		// An output that is an input, a constant or another output is copied: the caller owns
		// and may change each output buffer.
		if o.op == backends.OpTypeParameter || o.op == backends.OpTypeConstant || given[v] {
			c := newBuffer(v.shape)
			copyFlat(c.flat, v.flat)
			v = c
		}
		given[v] = true
		out[i] = v
	}
	return out, nil
}

// dirtyBuffer is a buffer for an op that writes every element: float32 from the pool.
func dirtyBuffer(s shapes.Shape) *Buffer {
	if s.DType == dtypes.Float32 {
		return &Buffer{shape: s, flat: getF32(s.Size())}
	}
	return newBuffer(s)
}

// poolable is the identity of a float32 array worth pooling, or nil.
func poolable(flat any) *float32 {
	if s, ok := flat.([]float32); ok && len(s) >= poolMin && cap(s) == len(s) {
		return &s[0]
	}
	return nil
}

// run computes one op.
func (e *Executable) run(n *node, in []*Buffer, writable map[*node]bool) (any, error) {
	switch n.op {
	case backends.OpTypeSlice:
		out := dirtyBuffer(n.shape)
		return out.flat, sliceAny(in[0], n.axes, n.strides, out)
	case backends.OpTypeConcatenate:
		out := dirtyBuffer(n.shape)
		concatAny(in, n.axes[0], out)
		return out.flat, nil
	case backends.OpTypeDynamicUpdateSlice:
		dst := in[0].flat
		if !writable[n.inputs[0]] && !e.chained[n.inputs[0]] {
			c := newBuffer(in[0].shape)
			copyFlat(c.flat, in[0].flat)
			dst = c.flat
		}
		updateSlice(dst, in[0].shape.Dimensions, in[1], in[2:])
		return dst, nil
	case backends.OpTypeConstant:
		return n.value.flat, nil
	case backends.OpTypeIdentity, backends.OpTypeReshape:
		return in[0].flat, nil // values are never changed in place, so sharing is safe
	case backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv,
		backends.OpTypeMax, backends.OpTypeMin, backends.OpTypeEqual, backends.OpTypeNotEqual,
		backends.OpTypeGreaterThan, backends.OpTypeGreaterOrEqual, backends.OpTypeLessThan, backends.OpTypeLessOrEqual:
		return binaryAny(n.op, in[0], in[1], n.shape, e.be.threads)
	case backends.OpTypeNeg, backends.OpTypeAbs, backends.OpTypeExp, backends.OpTypeLog, backends.OpTypeSqrt,
		backends.OpTypeRsqrt, backends.OpTypeTanh, backends.OpTypeLogistic:
		return unaryAny(n.op, in[0], e.be.threads)
	case backends.OpTypeTranspose:
		if movesOnlyUnitAxes(in[0].shape.Dimensions, n.axes) { // the same order of values
			out := dirtyBuffer(n.shape)
			copyFlat(out.flat, in[0].flat)
			return out.flat, nil
		}
		return transposeAny(in[0].flat, in[0].shape.Dimensions, n.axes), nil
	case backends.OpTypeBroadcastInDim:
		return broadcastAny(in[0].flat, in[0].shape.Dimensions, n.shape, n.axes), nil
	case backends.OpTypeReduceSum, backends.OpTypeReduceMax:
		return reduceAny(n.op, in[0], n.axes, n.shape)
	case backends.OpTypeConvertDType:
		return convertAny(in[0], n.dtype), nil
	case backends.OpTypeIota:
		return iotaAny(n.shape, n.iotaAxis), nil
	case backends.OpTypeWhere:
		return whereAny(in[0], in[1], in[2], n.shape)
	case backends.OpTypeDotGeneral:
		out := getF32(n.shape.Size()) // the product writes every element
		err := runDot(n.dot, in[0].flat.([]float32), in[1].flat.([]float32), in[0].shape.Dimensions, in[1].shape.Dimensions, out, e.be.threads)
		return out, err
	}
	return nil, fmt.Errorf("cpu backend: op %s is not implemented", n.op)
}

// movesOnlyUnitAxes tells whether the permutation keeps the order of the axes longer than 1
// (a decode step's new key, [B,H,1,hd] to [B,H,hd,1]): the values keep their order too.
func movesOnlyUnitAxes(dims, perm []int) bool {
	last := -1
	for _, a := range perm {
		if dims[a] == 1 {
			continue
		}
		if a < last {
			return false
		}
		last = a
	}
	return true
}

func copyFlat(dst, src any) {
	switch d := dst.(type) {
	case []float32:
		copy(d, src.([]float32))
	case []float64:
		copy(d, src.([]float64))
	case []int32:
		copy(d, src.([]int32))
	case []int64:
		copy(d, src.([]int64))
	case []bool:
		copy(d, src.([]bool))
	}
}
