package cpu

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// reduceT reduces the sorted axes of x with f, from the first element on, in index order.
func reduceT[T any](x []T, dims, axes []int, out shapes.Shape, f func(acc, v T) T) []T {
	res := make([]T, out.Size())
	if len(x) == 0 || len(res) == 0 {
		return res
	}
	// The same order as the general walk below (index order), in row loops.
	inner, prefix := 1, true
	for i, a := range axes {
		prefix = prefix && a == i
	}
	if prefix { // leading axes: add whole rows in turn
		for _, d := range dims[len(axes):] {
			inner *= d
		}
		copy(res, x[:inner])
		for o := inner; o < len(x); o += inner {
			row := x[o : o+inner]
			for j, v := range row {
				res[j] = f(res[j], v)
			}
		}
		return res
	}
	if len(axes) == 1 && axes[0] == len(dims)-1 { // the last axis: one row per output
		inner = dims[len(dims)-1]
		for o := range res {
			row := x[o*inner : (o+1)*inner]
			acc := row[0]
			for _, v := range row[1:] {
				acc = f(acc, v)
			}
			res[o] = acc
		}
		return res
	}
	started := make([]bool, len(res))
	reduced := make([]bool, len(dims))
	for _, a := range axes {
		reduced[a] = true
	}
	// Output offset of each input element: its kept axes in order.
	outStr := make([]int, len(dims))
	acc := 1
	for a := len(dims) - 1; a >= 0; a-- {
		if !reduced[a] {
			outStr[a] = acc
			acc *= dims[a]
		}
	}
	forIndex(dims, outStr, func(i, o int) {
		if !started[o] {
			res[o], started[o] = x[i], true
			return
		}
		res[o] = f(res[o], x[i])
	})
	return res
}

func reduceAny(op backends.OpType, x *Buffer, axes []int, out shapes.Shape) (any, error) {
	dims := x.shape.Dimensions
	switch v := x.flat.(type) {
	case []float32:
		if op == backends.OpTypeReduceSum {
			if len(axes) == 1 && axes[0] == len(dims)-1 && len(v) > 0 && out.Size() > 0 {
				return sumRowsF32(v, dims[len(dims)-1], out.Size()), nil
			}
			return reduceT(v, dims, axes, out, func(a, b float32) float32 { return a + b }), nil
		}
		if len(axes) == 1 && axes[0] == len(dims)-1 && len(v) > 0 && out.Size() > 0 {
			return maxRowsF32(v, dims[len(dims)-1], out.Size()), nil
		}
		return reduceT(v, dims, axes, out, arith[float32](backends.OpTypeMax)), nil
	case []float64:
		if op == backends.OpTypeReduceSum {
			return reduceT(v, dims, axes, out, func(a, b float64) float64 { return a + b }), nil
		}
		return reduceT(v, dims, axes, out, arith[float64](backends.OpTypeMax)), nil
	case []int32:
		if op == backends.OpTypeReduceSum {
			return reduceT(v, dims, axes, out, func(a, b int32) int32 { return a + b }), nil
		}
		return reduceT(v, dims, axes, out, arith[int32](backends.OpTypeMax)), nil
	case []int64:
		if op == backends.OpTypeReduceSum {
			return reduceT(v, dims, axes, out, func(a, b int64) int64 { return a + b }), nil
		}
		return reduceT(v, dims, axes, out, arith[int64](backends.OpTypeMax)), nil
	}
	return nil, fmt.Errorf("cpu backend: %s of %s", op, x.shape.DType)
}

// maxRowsF32 is the maximum of each row of x, Max's comparison inlined (softmax's max over
// a cache's positions took 2 ns a value through the function value).
func maxRowsF32(x []float32, inner, rows int) []float32 {
	res := make([]float32, rows)
	for o := range res {
		row := x[o*inner : (o+1)*inner]
		acc := row[0]
		for _, v := range row[1:] {
			if !(acc != acc || acc > v) { // as Max: a NaN kept, b on a tie
				acc = v
			}
		}
		res[o] = acc
	}
	return res
}

// sumRowsF32 sums each row of x in order (the general path's order, without its calls).
func sumRowsF32(x []float32, inner, rows int) []float32 {
	res := make([]float32, rows)
	for o := range res {
		row := x[o*inner : (o+1)*inner]
		acc := row[0]
		for _, v := range row[1:] {
			acc += v
		}
		res[o] = acc
	}
	return res
}
