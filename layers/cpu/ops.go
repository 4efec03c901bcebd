package cpu

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
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
	out := make([]T, len(x))
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
	forIndex(outDims, inStr, func(o, i int) { out[o] = x[i] })
	return out
}

func transposeF32(x []float32, dims, perm []int) []float32 { return transposeT(x, dims, perm) }

func transposeAny(x any, dims, perm []int) any {
	switch v := x.(type) {
	case []float32:
		return transposeT(v, dims, perm)
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
	res := make([]T, out.Size())
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
		return broadcastT(v, inDims, out, axes)
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

// binaryT applies f over two operands of the same rank whose size-1 axes broadcast (or a
// scalar on either side).
func binaryT[T, R any](l, r []T, ls, rs, out shapes.Shape, f func(a, b T) R) []R {
	res := make([]R, out.Size())
	switch {
	case len(l) == len(r) && ls.Equal(rs):
		for i := range res {
			res[i] = f(l[i], r[i])
		}
	case ls.IsScalar():
		for i := range res {
			res[i] = f(l[0], r[i])
		}
	case rs.IsScalar():
		for i := range res {
			res[i] = f(l[i], r[0])
		}
	default:
		lst, rst := strides(ls.Dimensions), strides(rs.Dimensions)
		for a := range out.Rank() {
			if ls.Dimensions[a] == 1 {
				lst[a] = 0
			}
			if rs.Dimensions[a] == 1 {
				rst[a] = 0
			}
		}
		// Walk the output with both inputs' offsets.
		n := len(res)
		idx := make([]int, out.Rank())
		lo, ro := 0, 0
		for o := 0; o < n; o++ {
			res[o] = f(l[lo], r[ro])
			for a := out.Rank() - 1; a >= 0; a-- {
				idx[a]++
				lo += lst[a]
				ro += rst[a]
				if idx[a] < out.Dimensions[a] {
					break
				}
				lo -= lst[a] * out.Dimensions[a]
				ro -= rst[a] * out.Dimensions[a]
				idx[a] = 0
			}
		}
	}
	return res
}

func arith[T number](op backends.OpType) func(a, b T) T {
	switch op {
	case backends.OpTypeAdd:
		return func(a, b T) T { return a + b }
	case backends.OpTypeSub:
		return func(a, b T) T { return a - b }
	case backends.OpTypeMul:
		return func(a, b T) T { return T(a * b) }
	case backends.OpTypeDiv:
		return func(a, b T) T {
			if isInt[T]() && b == 0 {
				return 0
			}
			return a / b
		}
	case backends.OpTypeMax:
		return func(a, b T) T {
			if a != a || a > b { // NaN propagates
				return a
			}
			return b
		}
	case backends.OpTypeMin:
		return func(a, b T) T {
			if a != a || a < b {
				return a
			}
			return b
		}
	}
	return nil
}

func isInt[T number]() bool {
	var x T = 1
	x /= 2
	return x == 0
}

func compare[T number](op backends.OpType) func(a, b T) bool {
	switch op {
	case backends.OpTypeEqual:
		return func(a, b T) bool { return a == b }
	case backends.OpTypeNotEqual:
		return func(a, b T) bool { return a != b }
	case backends.OpTypeGreaterThan:
		return func(a, b T) bool { return a > b }
	case backends.OpTypeGreaterOrEqual:
		return func(a, b T) bool { return a >= b }
	case backends.OpTypeLessThan:
		return func(a, b T) bool { return a < b }
	case backends.OpTypeLessOrEqual:
		return func(a, b T) bool { return a <= b }
	}
	return nil
}

func binaryNum[T number](op backends.OpType, l, r []T, ls, rs, out shapes.Shape) any {
	if f := compare[T](op); f != nil {
		return binaryT(l, r, ls, rs, out, f)
	}
	return binaryT(l, r, ls, rs, out, arith[T](op))
}

func binaryAny(op backends.OpType, l, r *Buffer, out shapes.Shape) (any, error) {
	switch lv := l.flat.(type) {
	case []float32:
		if res, ok := binaryF32(op, lv, r.flat.([]float32), l.shape, r.shape); ok {
			return res, nil
		}
		return binaryNum(op, lv, r.flat.([]float32), l.shape, r.shape, out), nil
	case []float64:
		return binaryNum(op, lv, r.flat.([]float64), l.shape, r.shape, out), nil
	case []int32:
		return binaryNum(op, lv, r.flat.([]int32), l.shape, r.shape, out), nil
	case []int64:
		return binaryNum(op, lv, r.flat.([]int64), l.shape, r.shape, out), nil
	case []bool:
		switch op {
		case backends.OpTypeEqual:
			return binaryT(lv, r.flat.([]bool), l.shape, r.shape, out, func(a, b bool) bool { return a == b }), nil
		case backends.OpTypeNotEqual:
			return binaryT(lv, r.flat.([]bool), l.shape, r.shape, out, func(a, b bool) bool { return a != b }), nil
		}
	}
	return nil, fmt.Errorf("cpu backend: %s of %s", op, l.shape.DType)
}

func unaryFloat(op backends.OpType) func(x float64) float64 {
	switch op {
	case backends.OpTypeExp:
		return math.Exp
	case backends.OpTypeLog:
		return math.Log
	case backends.OpTypeSqrt:
		return math.Sqrt
	case backends.OpTypeRsqrt:
		return func(x float64) float64 { return 1 / math.Sqrt(x) }
	case backends.OpTypeTanh:
		return math.Tanh
	case backends.OpTypeLogistic:
		return func(x float64) float64 {
			if x >= 0 {
				return 1 / (1 + math.Exp(-x))
			}
			e := math.Exp(x)
			return e / (1 + e)
		}
	}
	return nil
}

func unaryAny(op backends.OpType, x *Buffer) (any, error) {
	switch v := x.flat.(type) {
	case []float32:
		out := make([]float32, len(v))
		switch op {
		case backends.OpTypeNeg:
			for i, a := range v {
				out[i] = -a
			}
		case backends.OpTypeAbs:
			for i, a := range v {
				out[i] = float32(math.Abs(float64(a)))
			}
		default:
			f := unaryFloat(op)
			for i, a := range v {
				out[i] = float32(f(float64(a)))
			}
		}
		return out, nil
	case []float64:
		out := make([]float64, len(v))
		switch op {
		case backends.OpTypeNeg:
			for i, a := range v {
				out[i] = -a
			}
		case backends.OpTypeAbs:
			for i, a := range v {
				out[i] = math.Abs(a)
			}
		default:
			f := unaryFloat(op)
			for i, a := range v {
				out[i] = f(a)
			}
		}
		return out, nil
	case []int32:
		return negAbsInt(op, v), nil
	case []int64:
		return negAbsInt(op, v), nil
	}
	return nil, fmt.Errorf("cpu backend: %s of %s", op, x.shape.DType)
}

func negAbsInt[T ~int32 | ~int64](op backends.OpType, v []T) []T {
	out := make([]T, len(v))
	for i, a := range v {
		if op == backends.OpTypeNeg || a < 0 {
			a = -a
		}
		out[i] = a
	}
	return out
}

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

// binaryF32 runs the arithmetic ops on float32 operands of one shape, or one of them a scalar,
// in straight loops (the general path calls a function per element).
func binaryF32(op backends.OpType, l, r []float32, ls, rs shapes.Shape) ([]float32, bool) {
	var n int
	switch {
	case len(l) == len(r) && ls.Equal(rs):
		n = len(l)
	case ls.IsScalar():
		n = len(r)
	case rs.IsScalar():
		n = len(l)
	default:
		return binaryF32Broadcast(op, l, r, ls, rs)
	}
	out := make([]float32, n)
	same := len(l) == len(r) && ls.Equal(rs)
	lsc, rsc := !same && ls.IsScalar(), !same && rs.IsScalar()
	switch op {
	case backends.OpTypeAdd:
		switch {
		case lsc:
			for i, b := range r {
				out[i] = l[0] + b
			}
		case rsc:
			for i, a := range l {
				out[i] = a + r[0]
			}
		default:
			for i, a := range l {
				out[i] = a + r[i]
			}
		}
	case backends.OpTypeSub:
		switch {
		case lsc:
			for i, b := range r {
				out[i] = l[0] - b
			}
		case rsc:
			for i, a := range l {
				out[i] = a - r[0]
			}
		default:
			for i, a := range l {
				out[i] = a - r[i]
			}
		}
	case backends.OpTypeMul:
		switch {
		case lsc:
			for i, b := range r {
				out[i] = l[0] * b
			}
		case rsc:
			for i, a := range l {
				out[i] = a * r[0]
			}
		default:
			for i, a := range l {
				out[i] = a * r[i]
			}
		}
	case backends.OpTypeDiv:
		switch {
		case lsc:
			for i, b := range r {
				out[i] = l[0] / b
			}
		case rsc:
			for i, a := range l {
				out[i] = a / r[0]
			}
		default:
			for i, a := range l {
				out[i] = a / r[i]
			}
		}
	default:
		return nil, false
	}
	return out, true
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

// binaryF32Broadcast runs an arithmetic op on float32 operands of one rank whose size-1 axes
// broadcast: the outer axes are walked once per row of the last axis, and each row is a
// straight loop (both operands stepping, or one of them a repeated value).
func binaryF32Broadcast(op backends.OpType, l, r []float32, ls, rs shapes.Shape) ([]float32, bool) {
	rank := ls.Rank()
	if rank == 0 || rank != rs.Rank() {
		return nil, false
	}
	switch op {
	case backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv:
	default:
		return nil, false
	}
	dims := make([]int, rank)
	lst, rst := strides(ls.Dimensions), strides(rs.Dimensions)
	for a := range dims {
		dims[a] = max(ls.Dimensions[a], rs.Dimensions[a])
		if ls.Dimensions[a] == 1 {
			lst[a] = 0
		}
		if rs.Dimensions[a] == 1 {
			rst[a] = 0
		}
	}
	size := 1
	for _, d := range dims {
		size *= d
	}
	out := make([]float32, size)
	if size == 0 {
		return out, true
	}
	inner := dims[rank-1]
	ls1, rs1 := lst[rank-1], rst[rank-1]
	idx := make([]int, rank-1)
	lo, ro := 0, 0
	for o := 0; o < size; o += inner {
		row := out[o : o+inner]
		var lr, rr []float32
		if ls1 != 0 {
			lr = l[lo : lo+inner]
		}
		if rs1 != 0 {
			rr = r[ro : ro+inner]
		}
		rowOp(op, row, lr, rr, l[lo], r[ro])
		for a := rank - 2; a >= 0; a-- {
			idx[a]++
			lo += lst[a]
			ro += rst[a]
			if idx[a] < dims[a] {
				break
			}
			lo -= lst[a] * dims[a]
			ro -= rst[a] * dims[a]
			idx[a] = 0
		}
	}
	return out, true
}

// rowOp computes one row: lr and rr are the operands' rows, or nil where that operand is the
// single value lv or rv along the row.
func rowOp(op backends.OpType, row, lr, rr []float32, lv, rv float32) {
	switch {
	case lr != nil && rr != nil:
		switch op {
		case backends.OpTypeAdd:
			for j := range row {
				row[j] = lr[j] + rr[j]
			}
		case backends.OpTypeSub:
			for j := range row {
				row[j] = lr[j] - rr[j]
			}
		case backends.OpTypeMul:
			for j := range row {
				row[j] = lr[j] * rr[j]
			}
		case backends.OpTypeDiv:
			for j := range row {
				row[j] = lr[j] / rr[j]
			}
		}
	case lr != nil:
		switch op {
		case backends.OpTypeAdd:
			for j := range row {
				row[j] = lr[j] + rv
			}
		case backends.OpTypeSub:
			for j := range row {
				row[j] = lr[j] - rv
			}
		case backends.OpTypeMul:
			for j := range row {
				row[j] = lr[j] * rv
			}
		case backends.OpTypeDiv:
			for j := range row {
				row[j] = lr[j] / rv
			}
		}
	case rr != nil:
		switch op {
		case backends.OpTypeAdd:
			for j := range row {
				row[j] = lv + rr[j]
			}
		case backends.OpTypeSub:
			for j := range row {
				row[j] = lv - rr[j]
			}
		case backends.OpTypeMul:
			for j := range row {
				row[j] = lv * rr[j]
			}
		case backends.OpTypeDiv:
			for j := range row {
				row[j] = lv / rr[j]
			}
		}
	default:
		var v float32
		switch op {
		case backends.OpTypeAdd:
			v = lv + rv
		case backends.OpTypeSub:
			v = lv - rv
		case backends.OpTypeMul:
			v = lv * rv
		case backends.OpTypeDiv:
			v = lv / rv
		}
		for j := range row {
			row[j] = v
		}
	}
}
