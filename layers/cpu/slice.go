package cpu

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Slice and Concatenate: a batched decoding step takes each sequence's row out of the batch
// for its own attention over its own cache, and puts the rows back together.

func (b *Builder) Slice(x backends.Op, starts, limits, strides []int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	s, err := shapeinference.SliceOp(ns[0].shape, starts, limits, strides)
	if err != nil {
		return nil, err
	}
	n := b.node(backends.OpTypeSlice, s, ns...)
	n.axes = slices.Clone(starts)
	n.strides = slices.Clone(strides)
	if n.strides == nil {
		n.strides = make([]int, len(starts))
		for i := range n.strides {
			n.strides[i] = 1
		}
	}
	return n, nil
}

func (b *Builder) Concatenate(axis int, operands ...backends.Op) (backends.Op, error) {
	ns, err := b.in(operands...)
	if err != nil {
		return nil, err
	}
	in := make([]shapes.Shape, len(ns))
	for i, x := range ns {
		in[i] = x.shape
	}
	s, err := shapeinference.ConcatenateOp(in, axis)
	if err != nil {
		return nil, err
	}
	n := b.node(backends.OpTypeConcatenate, s, ns...)
	n.axes = []int{axis}
	return n, nil
}

// sliceAny copies the slice of x (dims) starting at starts with strides into an array of the
// output's shape.
func sliceAny(x *Buffer, starts, step []int, out *Buffer) error {
	dims := x.shape.Dimensions
	st := strides(dims)
	inStr := make([]int, len(dims))
	base := 0
	for a := range dims {
		base += starts[a] * st[a]
		inStr[a] = st[a] * step[a]
	}
	switch src := x.flat.(type) {
	case []float32:
		sliceInto(out.flat.([]float32), src, out.shape.Dimensions, inStr, base)
	case []int32:
		sliceInto(out.flat.([]int32), src, out.shape.Dimensions, inStr, base)
	case []int64:
		sliceInto(out.flat.([]int64), src, out.shape.Dimensions, inStr, base)
	case []float64:
		sliceInto(out.flat.([]float64), src, out.shape.Dimensions, inStr, base)
	case []bool:
		sliceInto(out.flat.([]bool), src, out.shape.Dimensions, inStr, base)
	default:
		return fmt.Errorf("cpu backend: Slice of %T", x.flat)
	}
	return nil
}

// sliceInto fills dst (of dims) from src read at base with the input strides.
func sliceInto[T any](dst, src []T, dims, inStr []int, base int) {
	forIndex(dims, inStr, func(o, i int) { dst[o] = src[base+i] })
}

// concatAny writes the operands one after the other along axis into out.
func concatAny(in []*Buffer, axis int, out *Buffer) {
	outer := 1
	for _, d := range out.shape.Dimensions[:axis] {
		outer *= d
	}
	inner := 1
	for _, d := range out.shape.Dimensions[axis+1:] {
		inner *= d
	}
	off := 0
	for o := 0; o < outer; o++ {
		for _, x := range in {
			n := x.shape.Dimensions[axis] * inner
			copyRange(out.flat, off, x.flat, o*n, n)
			off += n
		}
	}
}
