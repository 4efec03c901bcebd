package cpu

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Element-wise and data-movement ops. Each output element is computed from its inputs alone
// in one fixed way, and reductions add in index order, so results never depend on batch
// sizes or threads. Float32 math goes through float64 and rounds once at the end, explicitly.

type number interface {
	~float32 | ~float64 | ~int32 | ~int64
}

// strides of a row-major shape.
func strides(dims []int) []int {
	s := make([]int, len(dims))
	acc := 1
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= dims[i]
	}
	return s
}

// forIndex calls f with each output offset and the matching input offset, where the input's
// axes have the given strides in output-axis order (0 for broadcast axes).
func forIndex(dims, inStrides []int, f func(out, in int)) {
	n := 1
	for _, d := range dims {
		n *= d
	}
	if n == 0 {
		return
	}
	r := len(dims)
	idx := make([]int, r)
	in := 0
	for out := 0; out < n; out++ {
		f(out, in)
		for a := r - 1; a >= 0; a-- {
			idx[a]++
			in += inStrides[a]
			if idx[a] < dims[a] {
				break
			}
			in -= inStrides[a] * dims[a]
			idx[a] = 0
		}
	}
}

func transposeT[T any](x []T, dims, perm []int) []T {
	return transposeInto(make([]T, len(x)), x, dims, perm)
}

// transposeInto writes every element of out.
func transposeInto[T any](out, x []T, dims, perm []int) []T {
	st := strides(dims)
	r := len(perm)
	outDims, inStr := make([]int, r), make([]int, r)
	for i, a := range perm {
		outDims[i], inStr[i] = dims[a], st[a]
	}
	if r > 0 && perm[r-1] == r-1 {
		// The last axis stays last: move whole rows.
		inner := dims[r-1]
		forIndex(outDims[:r-1], inStr[:r-1], func(o, i int) { copy(out[o*inner:(o+1)*inner], x[i:i+inner]) })
		return out
	}
	// Otherwise each output row gathers its values at the stride of the input axis that
	// becomes the last one (one call per row, not per value: 6 -> 1 ns a value).
	inner, s := outDims[r-1], inStr[r-1]
	forIndex(outDims[:r-1], inStr[:r-1], func(o, i int) {
		row := out[o*inner : (o+1)*inner]
		for j := range row {
			row[j] = x[i+j*s]
		}
	})
	return out
}

func transposeF32(x []float32, dims, perm []int) []float32 {
	return transposeInto(getF32(len(x)), x, dims, perm)
}

func transposeAny(x any, dims, perm []int) any {
	switch v := x.(type) {
	case []float32:
		return transposeF32(v, dims, perm)
	case []float64:
		return transposeT(v, dims, perm)
	case []int32:
		return transposeT(v, dims, perm)
	case []int64:
		return transposeT(v, dims, perm)
	case []bool:
		return transposeT(v, dims, perm)
	}
	panic(fmt.Sprintf("cpu backend: transpose of %T", x))
}

// broadcastT maps input axis i to output axis axes[i] (its size 1 or the output's).
func broadcastT[T any](x []T, inDims []int, out shapes.Shape, axes []int) []T {
	return broadcastInto(make([]T, out.Size()), x, inDims, out, axes)
}

// broadcastInto writes every element of res.
func broadcastInto[T any](res, x []T, inDims []int, out shapes.Shape, axes []int) []T {
	st := strides(inDims)
	inStr := make([]int, out.Rank())
	for i, a := range axes {
		if inDims[i] != 1 {
			inStr[a] = st[i]
		}
	}
	r := out.Rank()
	if r > 0 && len(res) > 0 {
		inner := out.Dimensions[r-1]
		switch inStr[r-1] {
		case 1: // rows copied
			forIndex(out.Dimensions[:r-1], inStr[:r-1], func(o, i int) { copy(res[o*inner:(o+1)*inner], x[i:i+inner]) })
			return res
		case 0: // one value repeated along the row
			forIndex(out.Dimensions[:r-1], inStr[:r-1], func(o, i int) {
				row := res[o*inner : (o+1)*inner]
				for j := range row {
					row[j] = x[i]
				}
			})
			return res
		}
	}
	forIndex(out.Dimensions, inStr, func(o, i int) { res[o] = x[i] })
	return res
}

func broadcastAny(x any, inDims []int, out shapes.Shape, axes []int) any {
	switch v := x.(type) {
	case []float32:
		return broadcastInto(getF32(out.Size()), v, inDims, out, axes)
	case []float64:
		return broadcastT(v, inDims, out, axes)
	case []int32:
		return broadcastT(v, inDims, out, axes)
	case []int64:
		return broadcastT(v, inDims, out, axes)
	case []bool:
		return broadcastT(v, inDims, out, axes)
	}
	panic(fmt.Sprintf("cpu backend: broadcast of %T", x))
}

func iotaAny(s shapes.Shape, axis int) any {
	buf := newBuffer(s)
	st := strides(s.Dimensions)
	n := s.Size()
	val := func(i int) int { return (i / st[axis]) % s.Dimensions[axis] }
	switch v := buf.flat.(type) {
	case []float32:
		for i := 0; i < n; i++ {
			v[i] = float32(val(i))
		}
	case []float64:
		for i := 0; i < n; i++ {
			v[i] = float64(val(i))
		}
	case []int32:
		for i := 0; i < n; i++ {
			v[i] = int32(val(i))
		}
	case []int64:
		for i := 0; i < n; i++ {
			v[i] = int64(val(i))
		}
	}
	return buf.flat
}

func convertTo[T number](x any) []T {
	switch v := x.(type) {
	case []float32:
		return convSlice[float32, T](v)
	case []float64:
		return convSlice[float64, T](v)
	case []int32:
		return convSlice[int32, T](v)
	case []int64:
		return convSlice[int64, T](v)
	case []bool:
		out := make([]T, len(v))
		for i, b := range v {
			if b {
				out[i] = 1
			}
		}
		return out
	}
	return nil
}

func convSlice[S, T number](v []S) []T {
	out := make([]T, len(v))
	for i, a := range v {
		out[i] = T(a)
	}
	return out
}

func convertAny(x *Buffer, dt dtypes.DType) any {
	switch dt {
	case dtypes.Float32:
		if b, ok := x.flat.([]bool); ok { // a one-hot mask: every value written, from the pool
			out := getF32(len(b))
			for i, v := range b {
				out[i] = 0
				if v {
					out[i] = 1
				}
			}
			return out
		}
		return convertTo[float32](x.flat)
	case dtypes.Float64:
		return convertTo[float64](x.flat)
	case dtypes.Int32:
		return convertTo[int32](x.flat)
	case dtypes.Int64:
		return convertTo[int64](x.flat)
	case dtypes.Bool:
		f := convertTo[float64](x.flat)
		out := make([]bool, len(f))
		for i, a := range f {
			out[i] = a != 0
		}
		return out
	}
	return nil
}

func whereT[T any](c []bool, a, b []T, cs, as, bs, out shapes.Shape) []T {
	res := make([]T, out.Size())
	at := func(v []T, s shapes.Shape, i int) T {
		if s.IsScalar() {
			return v[0]
		}
		return v[i]
	}
	for i := range res {
		cond := c[0]
		if !cs.IsScalar() {
			cond = c[i]
		}
		if cond {
			res[i] = at(a, as, i)
		} else {
			res[i] = at(b, bs, i)
		}
	}
	return res
}

func whereAny(c, a, b *Buffer, out shapes.Shape) (any, error) {
	cv := c.flat.([]bool)
	switch av := a.flat.(type) {
	case []float32:
		return whereT(cv, av, b.flat.([]float32), c.shape, a.shape, b.shape, out), nil
	case []float64:
		return whereT(cv, av, b.flat.([]float64), c.shape, a.shape, b.shape, out), nil
	case []int32:
		return whereT(cv, av, b.flat.([]int32), c.shape, a.shape, b.shape, out), nil
	case []int64:
		return whereT(cv, av, b.flat.([]int64), c.shape, a.shape, b.shape, out), nil
	case []bool:
		return whereT(cv, av, b.flat.([]bool), c.shape, a.shape, b.shape, out), nil
	}
	return nil, fmt.Errorf("cpu backend: Where of %s", a.shape.DType)
}
